#!/usr/bin/env bash
# Prepare a CloudLab node (Ubuntu 22.04, ConnectX-5/6 100G) for joyride bench.
# Run it on each node as a user with sudo:
#
#   ./setup.sh [--hugepages N] [--dpdk-version 22.11.x] [--go-version 1.x.y]
#
# It installs build tools and rdma-core (the mlx5 PMD talks to the NIC
# through libibverbs), Go from the official tarball (the version in go.mod),
# and DPDK 22.11 built from source with meson: Ubuntu 22.04 ships DPDK 21.11,
# and the project builds against 22.11 (see nic/dpdk). It reserves hugepages
# and leaves the NIC bound to mlx5_core: mlx5 is a bifurcated driver, DPDK
# runs beside the kernel driver, so nothing is bound to vfio-pci.
# Running it twice is harmless: finished steps are skipped.
set -euo pipefail

HUGEPAGES=1024
DPDK_VERSION=22.11.11
GO_VERSION=""
PREFIX=/usr/local

usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--hugepages) HUGEPAGES="$2"; shift 2 ;;
	--dpdk-version) DPDK_VERSION="$2"; shift 2 ;;
	--go-version) GO_VERSION="$2"; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "setup.sh: unknown argument $1" >&2; usage 2 ;;
	esac
done

log() { printf '\n== %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

# The Go version: from go.mod when the repository is around, else the flag.
if [ -z "$GO_VERSION" ]; then
	here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
	gomod="$here/../../go.mod"
	if [ -f "$gomod" ]; then
		GO_VERSION="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
	fi
fi
if [ -z "$GO_VERSION" ]; then
	echo "setup.sh: cannot find go.mod; give --go-version" >&2
	exit 2
fi

log "packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q \
	build-essential pkg-config git curl ca-certificates \
	meson ninja-build python3-pyelftools \
	libnuma-dev libpcap-dev libelf-dev libbpf-dev libxdp-dev zlib1g-dev \
	rdma-core ibverbs-providers libibverbs-dev librdmacm-dev \
	ethtool pciutils iproute2 numactl chrony \
	openssh-client

log "Go $GO_VERSION"
if [ "$("$PREFIX/go/bin/go" env GOVERSION 2>/dev/null || true)" != "go$GO_VERSION" ]; then
	tmp="$(mktemp -d)"
	curl -fsSL -o "$tmp/go.tgz" "https://go.dev/dl/go${GO_VERSION}.linux-amd64.tar.gz"
	$SUDO rm -rf "$PREFIX/go"
	$SUDO tar -C "$PREFIX" -xzf "$tmp/go.tgz"
	rm -rf "$tmp"
fi
$SUDO ln -sf "$PREFIX/go/bin/go" "$PREFIX/go/bin/gofmt" /usr/local/bin/ 2>/dev/null || true

log "DPDK $DPDK_VERSION"
if [ "$(pkg-config --modversion libdpdk 2>/dev/null || true)" != "$DPDK_VERSION" ]; then
	if dpkg -s libdpdk-dev >/dev/null 2>&1; then
		echo "removing Ubuntu's DPDK 21.11 (libdpdk-dev): it would shadow $DPDK_VERSION"
		$SUDO apt-get remove -y -q libdpdk-dev
	fi
	tmp="$(mktemp -d)"
	curl -fsSL -o "$tmp/dpdk.tar.xz" "https://fast.dpdk.org/rel/dpdk-${DPDK_VERSION}.tar.xz"
	tar -C "$tmp" -xJf "$tmp/dpdk.tar.xz"
	src="$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'dpdk*' | head -n 1)"
	# Only the drivers the benchmarks use: mlx5 (100G), af_xdp, af_packet,
	# null and ring (tests). Building all of DPDK takes much longer.
	meson setup "$src/build" "$src" --prefix="$PREFIX" -Dplatform=generic \
		-Ddisable_apps='*' -Denable_apps=test-pmd \
		-Denable_drivers=net/mlx5,common/mlx5,bus/pci,bus/vdev,bus/auxiliary,net/af_xdp,net/af_packet,net/null,net/ring,mempool/ring \
		-Dtests=false
	ninja -C "$src/build"
	$SUDO ninja -C "$src/build" install
	$SUDO ldconfig
	rm -rf "$tmp"
fi
pkg-config --modversion libdpdk

log "hugepages: $HUGEPAGES x 2 MiB"
echo "$HUGEPAGES" | $SUDO tee /proc/sys/vm/nr_hugepages >/dev/null
echo "vm.nr_hugepages = $HUGEPAGES" | $SUDO tee /etc/sysctl.d/90-jrbench-hugepages.conf >/dev/null
grep -E '^HugePages_(Total|Free)' /proc/meminfo
if ! mountpoint -q /dev/hugepages; then
	$SUDO mkdir -p /dev/hugepages
	$SUDO mount -t hugetlbfs nodev /dev/hugepages
fi

log "NICs (mlx5 stays on mlx5_core; give the PCI address in testbed/cloudlab.yaml)"
for dev in /sys/bus/pci/devices/*; do
	[ -e "$dev/driver" ] || continue
	drv="$(basename "$(readlink "$dev/driver")")"
	if [ "$drv" = mlx5_core ]; then
		ifaces=""
		for n in "$dev"/net/*; do
			[ -e "$n" ] && ifaces="$ifaces$(basename "$n") "
		done
		echo "$(basename "$dev") $drv ${ifaces:-?}"
	fi
done

log "clock"
$SUDO systemctl enable --now chrony >/dev/null 2>&1 || true
chronyc -n tracking 2>/dev/null | grep -E '^(Leap status|System time)' || true

log "done: now run 'jrbench testbed check testbed/cloudlab.yaml' from your machine"
