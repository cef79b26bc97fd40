//go:build dpdk && cgo

package experiments

// BinDir lets the external tests (package experiments_test) find the
// binaries the way the package's own integration tests do.
var BinDir = binDir
