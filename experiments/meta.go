package experiments

// Run metadata: meta.json's types (Meta, RunRecord, PointMeta) and what
// identifies a run (its id, the commit, the host, the tools), written
// atomically.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/joyride-bench/joyride/analysis"
	"github.com/joyride-bench/joyride/loadgen"
	"github.com/joyride-bench/joyride/testbed/local"
)

// RunRecord is what every results file of a run records about it (meta.json,
// peer-check.json): which run, its state, the code and machine, the testbed,
// placement and PM QoS.
type RunRecord struct {
	RunID     string            `json:"run_id"`
	State     string            `json:"state"` // running, complete, interrupted, failed
	Error     string            `json:"error,omitempty"`
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end,omitempty"`
	Commit    string            `json:"commit"`
	Host      map[string]string `json:"host"`
	Tools     map[string]string `json:"tools"`
	Testbed   *local.Testbed    `json:"testbed,omitempty"`
	Placement Placement         `json:"placement"`
	PMQoS     PMQoSState        `json:"pm_qos"`
	GenDriver string            `json:"generator_driver"`
	// RemoteTestbed is the testbed file of a run over SSH (Testbed is then
	// empty), with what such a run does not measure.
	RemoteTestbed *RemoteTestbed `json:"remote_testbed,omitempty"`
	// InjectedStalls records stalls injected on purpose (RunOptions.InjectStalls).
	InjectedStalls *StallRecord `json:"injected_stalls,omitempty"`
}

// newRunRecord starts the record of a run with this machine's and code's
// identity.
func newRunRecord(pl Placement, genDriver string) RunRecord {
	return RunRecord{RunID: time.Now().UTC().Format("20060102-150405") + "-" + randomHex(2), State: "running",
		Start: time.Now().UTC(), Commit: gitCommit(), Host: hostInfo(), Tools: toolVersions(), Placement: pl, GenDriver: genDriver}
}

// Meta is meta.json: everything needed to know what a run measured and where.
type Meta struct {
	Experiment *Experiment `json:"experiment"`
	// Wire is the emulated wire's final counters (jremu's JSON), when the
	// experiment has a link.
	Wire json.RawMessage `json:"wire,omitempty"`
	RunRecord
	Order  string      `json:"order"`
	Seed   int64       `json:"seed"`
	Points []PointMeta `json:"points"`
	// Calibration is the testbed measured at the start of the run.
	Calibration *Calibration `json:"calibration,omitempty"`
}

// PMQoSState records the PM QoS request of the run.
type PMQoSState struct {
	Requested string `json:"requested"` // "on" or "off"
	Held      bool   `json:"held"`
	ValueUs   int32  `json:"value_us"`
	Error     string `json:"error,omitempty"`
}

// PointMeta is one point as run: its place in the order, what ran, where, and
// how it ended.
type PointMeta struct {
	Index     int             `json:"index"`
	Stack     string          `json:"stack"`
	Rate      float64         `json:"rate"`
	Window    int             `json:"window,omitempty"`
	Size      int             `json:"size,omitempty"`
	Instances int             `json:"instances,omitempty"`
	Rep       int             `json:"rep"`
	Seed      int64           `json:"seed"`
	Placement Placement       `json:"placement"`
	Start     time.Time       `json:"start,omitempty"`
	Seconds   float64         `json:"seconds,omitempty"`
	Status    string          `json:"status"` // pending, ok, failed
	Reason    string          `json:"reason,omitempty"`
	Generator *loadgen.Result `json:"generator,omitempty"`
	ServerLog string          `json:"server_log,omitempty"`
	// Resources are the server-side processes' resources when the load
	// started and when it ended (a leak shows as growth within the point).
	Resources map[string][2]ProcResources `json:"resources,omitempty"`
	// Engine is what the stack's daemon logged about its engine (nil: no
	// daemon, or it said nothing).
	Engine *EngineFacts `json:"engine,omitempty"`
}

func (r *runner) writeMeta() error {
	return analysis.WriteFileAtomic(filepath.Join(r.dir, "meta.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&r.meta)
	})
}

// updateLatest points results/<name>/latest at the run, atomically.
func updateLatest(root, name, runID string) {
	link := filepath.Join(root, name, "latest")
	tmp := link + ".tmp"
	os.Remove(tmp)
	if os.Symlink(runID, tmp) == nil {
		os.Rename(tmp, link)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}

func hostInfo() map[string]string {
	h := map[string]string{"cores": strconv.Itoa(runtime.NumCPU())}
	h["hostname"], _ = os.Hostname()
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		h["kernel"] = utsString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				h["cpu"] = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpuidle/current_driver"); err == nil {
		h["cpuidle_driver"] = strings.TrimSpace(string(b))
	}
	return h
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func toolVersions() map[string]string {
	t := map[string]string{"go": runtime.Version()}
	if out, err := exec.Command("pkg-config", "--modversion", "libdpdk").Output(); err == nil {
		t["dpdk"] = strings.TrimSpace(string(out))
	}
	return t
}
