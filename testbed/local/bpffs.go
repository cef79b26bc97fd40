package local

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BPFFSPath is where libbpf/libxdp (used by DPDK's net_af_xdp) expect the
// BPF filesystem, to pin maps and XDP dispatcher programs.
const BPFFSPath = "/sys/fs/bpf"

// bpfFSMagic is BPF_FS_MAGIC from linux/magic.h.
const bpfFSMagic = 0xcafe4a11

// EnsureBPFFS mounts bpffs at /sys/fs/bpf in the caller's mount namespace
// when it is not mounted there yet. Processes started with Command get a
// fresh /sys from `ip netns exec` and need their own mount (the command
// `mount -t bpf bpf /sys/fs/bpf` inside, or run EnsureBPFFS in that
// process).
func EnsureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFSPath, &st); err == nil && uint32(st.Type) == bpfFSMagic {
		return nil
	} else if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("statfs %s: %w", BPFFSPath, err)
	}
	if err := os.MkdirAll(BPFFSPath, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", BPFFSPath, err)
	}
	if err := unix.Mount("bpf", BPFFSPath, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", BPFFSPath, err)
	}
	return nil
}
