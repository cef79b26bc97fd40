// Command jrbench is the experiment runner: it validates and runs experiment
// files on a testbed, and manages the local testbed.
//
//	jrbench run experiments/rpc-latency.yaml
//	jrbench validate experiments/*.yaml
//	jrbench calibrate
//	jrbench peer-check [--rate 1000 --duration 5s --reps 3]
//	jrbench paper [--reuse]
//	jrbench analyze|plot RUN_DIR; jrbench compare RUN_A RUN_B
//	jrbench testbed up|down|status
//
// Exit status: 0 on success, 1 when a run fails, 2 for a bad experiment file or
// bad flags (nothing was started).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// usageError marks errors that exit with status 2.
type usageError struct{ error }

func main() {
	root := &cobra.Command{
		Use:           "jrbench",
		Short:         "Joyride bench: network stacks compared with numbers you can defend",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newValidateCmd(), newCalibrateCmd(), newPaperCmd(), newTestbedCmd(), newPeerCheckCmd())
	root.AddCommand(newAnalysisCmds()...)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "jrbench:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
