package afxdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ProgramName is the name of the XDP program this package loads; Cleanup
// recognises its own leftovers by it (BPF object names are at most 15 bytes).
const ProgramName = "jr_afxdp"

// mapName is the XSKMAP's name.
const mapName = "jr_afxdp_xsks"

// PinDir is where Cleanup looks for a pinned link, as PinDir/jr-afxdp-<iface>.
// This package never pins (see the package doc); the path is only swept.
const PinDir = "/sys/fs/bpf"

// forceLegacyAttach makes attach use the netlink attachment as on kernels
// without XDP links; the tests set it to produce a leftover that outlives its
// process.
var forceLegacyAttach = os.Getenv("JR_AFXDP_LEGACY_ATTACH") == "1"

// xdpProgram is the parsed-once description of the redirect program:
//
//	r2 = ctx->rx_queue_index
//	return bpf_redirect_map(&xsks_map, r2, XDP_PASS)
//
// XDP_PASS in the flags is the action when the map has no socket at that key.
func xdpProgram(xsks *ebpf.Map) *ebpf.ProgramSpec {
	const rxQueueIndexOff = 16 // offsetof(struct xdp_md, rx_queue_index)
	return &ebpf.ProgramSpec{
		Name:    ProgramName,
		Type:    ebpf.XDP,
		License: "Dual BSD/GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, rxQueueIndexOff, asm.Word),
			asm.LoadMapPtr(asm.R1, xsks.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	}
}

// loadProgram creates the XSKMAP (one entry per queue up to maxQueues) and the
// program that redirects into it.
func loadProgram(maxQueues int) (*ebpf.Map, *ebpf.Program, error) {
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       mapName,
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(maxQueues),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create XSKMAP: %w", err)
	}
	prog, err := ebpf.NewProgram(xdpProgram(xsks))
	if err != nil {
		xsks.Close()
		return nil, nil, fmt.Errorf("load XDP program: %w", err)
	}
	return xsks, prog, nil
}

// attachment is the XDP program's hold on the interface: a BPF link, or on old
// kernels (and in the crash test) a legacy netlink attachment.
type attachment struct {
	lnk     link.Link // nil for a legacy attachment
	ifindex int
	nlFlags int            // legacy: XDP_FLAGS_*_MODE used to attach
	ns      netns.NsHandle // legacy: the interface's network namespace
	native  bool
}

// attach puts prog on ifindex in the mode asked ("auto", "native", "generic").
func attach(prog *ebpf.Program, ifindex int, mode string) (*attachment, error) {
	try := []bool{true, false} // native, then generic
	switch mode {
	case "native":
		try = try[:1]
	case "generic":
		try = try[1:]
	}
	var errs []error
	for _, native := range try {
		a, err := attachOne(prog, ifindex, native)
		if err == nil {
			return a, nil
		}
		errs = append(errs, fmt.Errorf("%s mode: %w", modeName(native), err))
	}
	return nil, errors.Join(errs...)
}

func modeName(native bool) string {
	if native {
		return "native"
	}
	return "generic"
}

func attachOne(prog *ebpf.Program, ifindex int, native bool) (*attachment, error) {
	flags, nlFlags := link.XDPGenericMode, unix.XDP_FLAGS_SKB_MODE
	if native {
		flags, nlFlags = link.XDPDriverMode, unix.XDP_FLAGS_DRV_MODE
	}
	if !forceLegacyAttach {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
		if err == nil {
			return &attachment{lnk: l, ifindex: ifindex, native: native}, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return nil, err
		}
	}
	// No XDP links in this kernel: the netlink attachment, which outlives the
	// process and is what Cleanup exists for.
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get network namespace: %w", err)
	}
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	if err := netlink.LinkSetXdpFdWithFlags(dev, prog.FD(), nlFlags|unix.XDP_FLAGS_UPDATE_IF_NOEXIST); err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink attach: %w", err)
	}
	return &attachment{ifindex: ifindex, nlFlags: nlFlags, ns: ns, native: native}, nil
}

// detach removes the program from the interface.
func (a *attachment) detach() error {
	if a.lnk != nil {
		return a.lnk.Close()
	}
	defer a.ns.Close()
	// The netlink attachment is addressed by ifindex in the interface's
	// namespace, which need not be this thread's: enter it on a locked thread.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(a.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter the interface's network namespace: %w", err)
	}
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: a.ifindex}}
	err = netlink.LinkSetXdpFdWithFlags(dev, -1, a.nlFlags)
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread() // else the thread stays locked and dies with the goroutine
	}
	return err
}

// PinPath is the path Cleanup sweeps for a pinned link on iface.
func PinPath(iface string) string { return filepath.Join(PinDir, "jr-afxdp-"+iface) }

// Cleanup removes what a previous run of this package may have left on iface,
// in the calling thread's network namespace: a pinned link at PinPath(iface),
// and an XDP program named ProgramName attached the legacy (netlink) way. A
// program of ours held by an unpinned BPF link belongs to a live process (the
// kernel drops such links when their process exits); Cleanup leaves it and
// returns an error naming it. It returns nil when there is nothing to do.
func Cleanup(iface string) error {
	if err := cleanup(iface); err != nil {
		return fmt.Errorf("afxdp: cleanup %s: %w", iface, err)
	}
	return nil
}

func cleanup(iface string) error {
	if err := sweepPin(iface); err != nil {
		return err
	}
	nl, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface: %w", err)
	}
	x := nl.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return nil
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // went away meanwhile
		}
		return fmt.Errorf("open XDP program %d: %w", x.ProgId, err)
	}
	info, err := prog.Info()
	prog.Close()
	if err != nil {
		return fmt.Errorf("info of XDP program %d: %w", x.ProgId, err)
	}
	if info.Name != ProgramName {
		return nil // someone else's program: Open's attach will report the conflict
	}
	if id, ok := linkOf(ebpf.ProgramID(x.ProgId), nl.Attrs().Index); ok {
		return fmt.Errorf("XDP program %d is held by BPF link %d of a live process (an open Port); close it first", x.ProgId, id)
	}
	flags := unix.XDP_FLAGS_SKB_MODE
	if x.AttachMode == 1 { // XDP_ATTACHED_DRV
		flags = unix.XDP_FLAGS_DRV_MODE
	}
	if err := netlink.LinkSetXdpFdWithFlags(nl, -1, flags); err != nil {
		return fmt.Errorf("detach stale XDP program %d: %w", x.ProgId, err)
	}
	return nil
}

// sweepPin removes a link pinned at PinPath(iface), which detaches it.
func sweepPin(iface string) error {
	path := PinPath(iface)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return fmt.Errorf("load pinned link %s: %w", path, err)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// linkOf finds the XDP BPF link that attaches prog to ifindex, if any.
func linkOf(prog ebpf.ProgramID, ifindex int) (link.ID, bool) {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType || info.Program != prog {
			continue
		}
		if x := info.XDP(); x != nil && int(x.Ifindex) == ifindex {
			return it.ID, true
		}
	}
	return 0, false
}
