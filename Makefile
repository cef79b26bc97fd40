# Joyride bench. The two commands a user needs:
#   make experiment EXP=rpc-latency   run experiments/rpc-latency.yaml on the local testbed
#                                     (TESTBED=testbed/cloudlab.yaml: on that file's nodes, over SSH)
#   make test                         the whole test suite (root: namespaces, DPDK, XDP)
# Both install what they need (deps) and build (build) first.

SHELL := /bin/bash
GO ?= go
EXP ?= smoke
BIN := bin
# The real DPDK layer builds only with this tag; without it nic/dpdk reports
# ErrUnavailable instead of failing to link (see nic/dpdk/doc.go).
TAGS := dpdk
# Test packages run one at a time: the integration tests pin roles to the
# machine's two cores and would measure each other otherwise.
TESTFLAGS ?= -count=1 -p 1 -timeout 20m
# Fuzz for a number of inputs, not a time: with a time, Go's fuzzer can fail a
# clean run with "context deadline exceeded" when the time runs out mid-input
# (go.dev/issue/75804, fixed in Go 1.27; this machine has 1.26).
FUZZTIME ?= 200000x

# Debian packages the project needs: DPDK 22.11 and its vdev PMDs, libxdp/libbpf
# for af_xdp, iproute2 for namespaces, util-linux for taskset, gcc for cgo, curl
# as a Linux HTTP client, ethtool for the AF_XDP tests' veths and sockperf as
# the peer the generator is checked against (jrbench peer-check), memcached as
# an unmodified application under test (experiments/memcached.yaml), sshd for
# the SSH tests' stand-in nodes, shellcheck and python3 for the CloudLab files'
# checks; redis-server, redis-tools and nginx as further unmodified
# applications the preload shim (shim/) is tested with, wrk as a client of nginx.
DEB_PACKAGES := libdpdk-dev dpdk librte-net-af-xdp23 librte-net-af-packet23 librte-net-memif23 \
	libxdp-dev libbpf-dev pkg-config iproute2 util-linux gcc libc6-dev git curl ethtool sockperf \
	memcached openssh-server shellcheck python3 redis-server redis-tools nginx wrk

.PHONY: all deps build test experiment paper clean check-root check-go

all: build

check-go:
	@command -v $(GO) >/dev/null || { echo "Go is not installed (need the version in go.mod; see README)"; exit 1; }

# deps installs only what is missing, so it is cheap to run every time.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "deps: run as root to install$$missing"; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: deps check-go $(BIN)/libjoyride-preload.so
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/...

# The LD_PRELOAD shim that puts unmodified programs' AF_INET sockets on Joyride
# (shim/, docs/JOYRIDE.md "The preload shim"): plain C, libc only.
SHIM_SRC := $(wildcard shim/*.c shim/*.h)
$(BIN)/libjoyride-preload.so: $(SHIM_SRC)
	@mkdir -p $(BIN)
	gcc -std=gnu11 -O2 -g -fPIC -shared -fvisibility=hidden -Wall -Wextra -Werror -pthread \
		-o $@ $(filter %.c,$(SHIM_SRC)) -ldl

check-root:
	@[ "$$(id -u)" = 0 ] || { echo "this target needs root (network namespaces, DPDK, PM QoS)"; exit 1; }

test: build check-root
	$(GO) vet -tags $(TAGS) ./...
	# nic/dpdk without DPDK: every entry point must give the clear error.
	$(GO) test -count=1 ./nic/dpdk
	JRBENCH_BIN=$(CURDIR)/$(BIN) $(GO) test -tags $(TAGS) $(TESTFLAGS) ./...
	# Hostile input, fuzzed for a bounded time: what an application writes into
	# its shared region and sends on its control socket, what arrives on the wire at the generator (frames, and
	# memcached, redis and HTTP servers' replies), the reflector and the user-space stack.
	$(GO) test -run '^$$' -fuzz '^FuzzServiceRecv$$' -fuzztime $(FUZZTIME) ./stacks/joyride/channel
	$(GO) test -run '^$$' -fuzz '^FuzzControlRequest$$' -fuzztime $(FUZZTIME) ./stacks/joyride/service
	$(GO) test -run '^$$' -fuzz '^FuzzParseReply$$' -fuzztime $(FUZZTIME) ./loadgen
	$(GO) test -run '^$$' -fuzz '^FuzzMemcachedReader$$' -fuzztime $(FUZZTIME) ./loadgen
	$(GO) test -run '^$$' -fuzz '^FuzzRedisReader$$' -fuzztime $(FUZZTIME) ./loadgen
	$(GO) test -run '^$$' -fuzz '^FuzzHTTPReader$$' -fuzztime $(FUZZTIME) ./loadgen
	$(GO) test -run '^$$' -fuzz '^FuzzSwapUDP$$' -fuzztime $(FUZZTIME) ./stacks/null
	$(GO) test -run '^$$' -fuzz '^FuzzEndpointDeliver$$' -fuzztime $(FUZZTIME) ./nic/netstack

# TESTBED=FILE runs the roles on that testbed file's nodes over SSH
# (docs/CLOUDLAB.md) instead of the local namespaces.
experiment: build check-root
	$(BIN)/jrbench run $(EXP)$(if $(TESTBED), --testbed $(TESTBED))

# The papers' figures and claims (paper/manifest.yaml): runs their experiments
# (about 20 minutes here), writes paper/figures/ and paper/RESULTS.md.
# PAPERFLAGS=--reuse takes each experiment's latest results instead.
paper: build check-root
	$(BIN)/jrbench paper $(PAPERFLAGS)

# Benchmarks of the packet paths (ns/packet, allocs): see docs/PERFORMANCE.md.
bench: build check-root
	$(GO) test -tags $(TAGS) -count=1 -p 1 -run '^$$' -bench . -benchtime 200000x ./nic/dpdk ./nic/afxdp ./nic/netstack ./loadgen ./stacks/null ./stacks/joyride/channel

clean:
	-[ -x $(BIN)/jrbench ] && $(BIN)/jrbench testbed down --all
	rm -rf $(BIN)
