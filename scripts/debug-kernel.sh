#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the debug guest kernel: Debian's linux-source-6.12 configured from
# allnoconfig plus tests/guest/debug.config (KASAN, KFENCE, UBSAN, lockdep,
# DEBUG_ATOMIC_SLEEP, kmemleak; all drivers the guest needs built in), and
# write ${VHDX_CACHE}/kernels/debug.env like scripts/kernels.sh does for
# the Debian kernels, so that `scripts/build-all.sh debug` builds the
# module against it and `tests/guest/vm-run --kernel debug` boots it.
# The tree and the build live in the cache, outside the checkout, and are
# rebuilt only when the config fragment or the source package changes.
#
# Usage: scripts/debug-kernel.sh
# Environment: VHDX_CACHE (default /var/cache/dm-vhdx),
#              VHDX_DEBUG_JOBS (make jobs, default: number of CPUs).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FRAGMENT=$TOP/tests/guest/debug.config
TARBALL=/usr/src/linux-source-6.12.tar.xz
DIR=$VHDX_CACHE/debug
KSRC=$DIR/linux-source-6.12
BUILD=$DIR/build
JOBS=${VHDX_DEBUG_JOBS:-$(nproc)}

unpack() {
	local tmp
	[ -f "$DIR/.unpacked" ] && return 0
	[ -f "$TARBALL" ] || apt_install linux-source-6.12
	log "unpacking $TARBALL into $DIR"
	rm -rf "$KSRC"
	mkdir -p "$DIR"
	tmp=$(mktemp -d "$DIR/.unpack.XXXXXX")
	tar -xf "$TARBALL" -C "$tmp"
	mv "$tmp/linux-source-6.12" "$KSRC"
	rmdir "$tmp"
	touch "$DIR/.unpacked"
}

# Every option of the fragment must survive olddefconfig: a dependency
# that is missing would silently drop a checker.
configure() {
	local opt missing=()
	mkdir -p "$BUILD"
	make -C "$KSRC" O="$BUILD" -s allnoconfig
	"$KSRC/scripts/kconfig/merge_config.sh" -m -O "$BUILD" \
		"$BUILD/.config" "$FRAGMENT" > /dev/null
	make -C "$KSRC" O="$BUILD" -s olddefconfig
	while read -r opt; do
		grep -qxF "$opt" "$BUILD/.config" || missing+=("$opt")
	done < <(grep '^CONFIG_' "$FRAGMENT")
	[ ${#missing[@]} = 0 ] || die "debug config lost: ${missing[*]}"
}

# The stamp names what the build was made from.
stamp() {
	{ sha256sum "$FRAGMENT" "$TARBALL" "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16
}

build() {
	local kver want
	want=$(stamp)
	if [ -f "$DIR/.built" ] && [ "$(cat "$DIR/.built")" = "$want" ] &&
	   [ -f "$VHDX_CACHE/kernels/debug.env" ]; then
		log "debug kernel up to date"
		return 0
	fi
	unpack
	configure
	log "building the debug kernel ($JOBS jobs)"
	nice make -C "$KSRC" O="$BUILD" -j"$JOBS" -s bzImage modules
	kver=$(make -C "$KSRC" O="$BUILD" -s kernelrelease)
	# Everything is built in: the guest loads nothing but dm-vhdx.
	mkdir -p "$DIR/modules" "$VHDX_CACHE/kernels"
	: > "$DIR/modules/load-order"
	# KVER names build/<KVER>/: not 6.12.*, which means a Debian kernel
	# to the runners.
	cat > "$VHDX_CACHE/kernels/debug.env" <<EOT
# written by scripts/debug-kernel.sh
KVER=debug-$kver
KDIR=$BUILD
VMLINUZ=$BUILD/arch/x86/boot/bzImage
MODDIR=$DIR/modules
EOT
	echo "$want" > "$DIR/.built"
	log "debug kernel $kver ready"
}

main() {
	apt_install build-essential bc bison flex libelf-dev libssl-dev
	build
}

main "$@"
