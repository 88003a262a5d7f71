#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing dm-vhdx need, from Debian's archive:
# the toolchain, QEMU and the guest userspace, the oracles (qemu-img,
# libvhdi), the kernel source for KUnit and the headers of the newest 6.1
# and 6.12 cloud kernels.  Idempotent; a second run only asks dpkg and apt-cache.
#
# Usage: scripts/deps.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
	make gcc libc6-dev python3 kmod xz-utils cpio   # module and tools build
	sparse                                          # make build-all (C=1)
	flex bison bc linux-source-6.12                 # KUnit's UML kernel
	qemu-system-x86 qemu-utils busybox-static dmsetup  # guest runs
	e2fsprogs fio python3-libvhdi libvhdi-utils     # images and oracles
	libdevmapper-dev python3-docutils               # vhdxsetup, its man page
	clang-14 libclang-rt-14-dev                     # tests/fuzz (libFuzzer)
	dpkg-dev debhelper dh-dkms dkms pkg-config      # make deb, tests/system
	mmdebstrap udev                                 # tests/system: clean bookworm, udevadm test
)

main() {
	apt_install "${PACKAGES[@]}"
	# Headers are named after the kernel ABI; pick the same ones as kernels.sh.
	apt_install "linux-headers-$(newest_kver 6.1)" "linux-headers-$(newest_kver 6.12)"
}

main "$@"
