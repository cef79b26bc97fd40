// Package all registers every stack: import it for its side effect wherever a
// stack is chosen by name (the runner, jrapp).
package all

import (
	_ "github.com/joyride-bench/joyride/stacks/afxdp"   // library OS: netstack in the app over AF_XDP
	_ "github.com/joyride-bench/joyride/stacks/joyride" // TCP/IP in the joyrided service, over shared memory
	_ "github.com/joyride-bench/joyride/stacks/kernel"  // Linux sockets
	_ "github.com/joyride-bench/joyride/stacks/null"    // DPDK reflector
)
