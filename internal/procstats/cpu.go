package procstats

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTimes is how a set of CPUs spent its time since boot, from /proc/stat,
// in the three states the harness tells apart:
//
//   - Busy: user, nice, system, irq and softirq: work done on the CPU, by
//     any process or by the kernel for the network;
//   - Idle: idle and iowait: nothing to run (iowait is idle time with I/O
//     outstanding, which on this harness's paths is none of its work);
//   - Steal: time the hypervisor ran something else while this vCPU had
//     work: neither busy (no work of ours ran) nor idle (there was some).
//
// guest and guest_nice are left out: the kernel already counts them in user
// and nice.
type CPUTimes struct {
	Busy, Idle, Steal time.Duration
}

// Total is every state together: the CPUs' wall time.
func (t CPUTimes) Total() time.Duration { return t.Busy + t.Idle + t.Steal }

// Sub is the time spent between an earlier reading u and t.
func (t CPUTimes) Sub(u CPUTimes) CPUTimes {
	return CPUTimes{Busy: t.Busy - u.Busy, Idle: t.Idle - u.Idle, Steal: t.Steal - u.Steal}
}

// userHZ is the unit of /proc/stat (USER_HZ, sysconf(_SC_CLK_TCK)): 100 on
// every architecture Linux runs the project on, whatever the kernel's HZ.
const userHZ = 100

// ReadCPU reads /proc/stat: the sum of the named CPUs (0, 1, ...), or of all
// of them (its "cpu" line) when cpus is empty.
func ReadCPU(cpus ...int) (CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	defer f.Close()
	return ParseCPU(f, cpus...)
}

// ParseCPU is ReadCPU over a /proc/stat text. Every named CPU must be there
// (an offline CPU has no line): a sum over fewer would read as less work.
func ParseCPU(r io.Reader, cpus ...int) (CPUTimes, error) {
	want := map[string]bool{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	if len(cpus) == 0 {
		want["cpu"] = true
	}
	var sum CPUTimes
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !want[f[0]] {
			continue
		}
		t, err := parseCPULine(f)
		if err != nil {
			return CPUTimes{}, err
		}
		delete(want, f[0]) // a repeated line counts once
		found++
		sum.Busy += t.Busy
		sum.Idle += t.Idle
		sum.Steal += t.Steal
	}
	if err := sc.Err(); err != nil {
		return CPUTimes{}, fmt.Errorf("/proc/stat: %w", err)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for name := range want {
			missing = append(missing, name)
		}
		return CPUTimes{}, fmt.Errorf("/proc/stat: no line for %s (offline, or not on this machine)", strings.Join(missing, ", "))
	}
	return sum, nil
}

// parseCPULine reads "cpuN user nice system idle iowait irq softirq steal ...".
func parseCPULine(f []string) (CPUTimes, error) {
	if len(f) < 9 {
		return CPUTimes{}, fmt.Errorf("/proc/stat: %s has %d fields, want at least 8 after the name", f[0], len(f)-1)
	}
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || n < 0 {
			return CPUTimes{}, fmt.Errorf("/proc/stat: %s field %d: %q is not a tick count", f[0], i+1, f[i+1])
		}
		v[i] = n
	}
	tick := time.Second / userHZ
	user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	return CPUTimes{
		Busy:  time.Duration(user+nice+system+irq+softirq) * tick,
		Idle:  time.Duration(idle+iowait) * tick,
		Steal: time.Duration(steal) * tick,
	}, nil
}
