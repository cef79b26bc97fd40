package local

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// A process started through Start is recorded with its identity, and DownID
// ends it by PID. A record whose PID now belongs to another process (same
// number, other start time) is not signalled: that process lives on.
func TestDownIDEndsRecordedProcessesOnly(t *testing.T) {
	tb := up(t)
	// The DPDK prefix is recorded from the command line; sh takes it as $1.
	role := tb.Command(context.Background(), tb.Server, "sh", "-c", "exec sleep 60", "x", "--file-prefix=jrapp-"+tb.ID)
	if err := tb.Start(role); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { role.Wait(); close(exited) }()
	defer role.Process.Kill()
	// A helper the run started outside the namespaces, which only its
	// record can find.
	helper := exec.Command("sleep", "60")
	if err := tb.Start(helper); err != nil {
		t.Fatal(err)
	}
	helperExited := make(chan struct{})
	go func() { helper.Wait(); close(helperExited) }()
	defer helper.Process.Kill()

	recs, err := tb.Processes()
	if err != nil || len(recs) != 2 {
		t.Fatalf("records: %+v %v", recs, err)
	}
	r := recs[0]
	if r.PID != role.Process.Pid || r.Netns != tb.Server.Netns || r.FilePrefix != "jrapp-"+tb.ID || !r.Alive() {
		t.Fatalf("record %+v (pid %d, netns %s)", r, role.Process.Pid, tb.Server.Netns)
	}
	if recs[1].PID != helper.Process.Pid || recs[1].Netns != "" {
		t.Fatalf("helper's record %+v", recs[1])
	}
	if live := tb.Running(); len(live) != 2 {
		t.Fatalf("running: %+v", live)
	}

	// A bystander outside the testbed, recorded as if its PID had been
	// reused: same number, a start time that is not its own.
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer bystander.Process.Kill()
	me, err := identify(bystander.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(StartedProcess{Process: Process{PID: me.PID, Start: me.Start + 1}, Netns: tb.Server.Netns})
	f, err := os.OpenFile(procsPath(tb.ID), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(forged, '\n'))
	f.Close()

	start := time.Now()
	if err := DownID(tb.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the recorded process still runs after DownID")
	}
	select {
	case <-helperExited:
	case <-time.After(time.Second):
		t.Fatal("the recorded helper outside the namespaces still runs after DownID")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("DownID took %v (a sleep ends on SIGTERM at once)", took)
	}
	if !me.Alive() {
		t.Error("DownID killed a process whose PID matched a record but whose start time did not")
	}
	if _, err := os.Stat(procsPath(tb.ID)); err == nil {
		t.Error("the process list outlived the testbed")
	}
	assertGone(t, tb.ID)
}

// A testbed whose owner is gone is reported abandoned; a detached one never
// is, and a live owner's testbed is up.
func TestAbandonedTestbeds(t *testing.T) {
	owned := up(t)
	if owned.Owner == nil || owned.Owner.PID != os.Getpid() || owned.Abandoned() {
		t.Fatalf("owner %+v", owned.Owner)
	}
	id := testID(t)
	detached, err := Up(context.Background(), Options{ID: id, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	defer detached.Down()
	if detached.Owner != nil || detached.Abandoned() {
		t.Fatalf("detached testbed has owner %+v", detached.Owner)
	}
	// An owner that has exited: a real child process, gone.
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	gone, err := identify(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	child.Wait()
	left := up(t)
	left.Owner = &Owner{Process: gone, Command: "true"}
	if err := writeState(left); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	all, _ := List()
	for _, x := range all {
		status[x.ID] = x.Status
	}
	want := map[string]string{owned.ID: "up", detached.ID: "up", left.ID: "abandoned"}
	for id, s := range want {
		if status[id] != s {
			t.Errorf("testbed %s: status %q, want %q", id, status[id], s)
		}
	}
	if !slices.ContainsFunc(all, func(x *Testbed) bool { return x.ID == left.ID && x.Abandoned() }) {
		t.Error("List does not say the testbed is abandoned")
	}
}
