//go:build dpdk && cgo

package shim

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// hoardProg opens UDP sockets and binds each (so the service holds it)
// until socket() or bind() fails, then prints how far it got and the errno.
const hoardProg = `#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	for (int i = 0; i < 100000; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0) {
			printf("RESULT opened=%d call=socket errno=%s\n", i, strerrorname_np(errno));
			return 0;
		}
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(20000 + i)};
		inet_pton(AF_INET, argv[1], &sa.sin_addr);
		if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
			printf("RESULT opened=%d call=bind errno=%s\n", i, strerrorname_np(errno));
			return 0;
		}
	}
	printf("RESULT opened=100000 call=none errno=none\n");
	return 0;
}
`

// An unmodified program at joyrided's socket limit (told to the shim when it
// registers) sees socket() fail with EMFILE, where a kernel out of
// descriptors fails it, not a later bind.
func TestSocketLimitReachesTheProgram(t *testing.T) {
	need(t, "gcc")
	b := upBed(t, false)
	const limit = 40
	b.startJoyrided(t, "-max-sockets", strconv.Itoa(limit))
	src := filepath.Join(b.dir, "hoard.c")
	prog := filepath.Join(b.dir, "hoard")
	if err := os.WriteFile(src, []byte(hoardProg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-o", prog, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := b.run(t, b.tb.Server, b.shimEnv(), nil, prog, b.tb.Server.Addr.Addr().String())
	if err != nil {
		t.Fatalf("hoard: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`RESULT opened=(\d+) call=(\w+) errno=(\w+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no RESULT line:\n%s", out)
	}
	if m[1] != strconv.Itoa(limit) || m[2] != "socket" || m[3] != "EMFILE" {
		t.Fatalf("the program opened %s sockets, then %s() failed with %s; want %d, then socket() with EMFILE",
			m[1], m[2], m[3], limit)
	}
	if !strings.Contains(b.jrd.out.String(), "name=hoard") {
		t.Errorf("joyrided did not log the program attaching:\n%s", b.jrd.out.String())
	}
}
