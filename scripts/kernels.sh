#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch the guest kernels the tests boot: the newest Debian cloud kernel of
# the 6.1 and 6.12 lines.  For each it installs the headers (to build the
# module against), unpacks the unsigned image into the cache (no install:
# the host never boots it), decompresses the modules a guest needs and
# writes ${VHDX_CACHE}/kernels/<line>.env with KVER, KDIR, VMLINUZ, MODDIR.
#
# Usage: scripts/kernels.sh [LINE...]      (default: 6.1 6.12)
# Environment: VHDX_CACHE (default /var/cache/dm-vhdx),
#              GUEST_MODULES (the modules to load in the guest, see below).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What a test guest loads, before dm-vhdx; their dependencies come along
# from modules.dep, and the built-in ones (per modules.builtin) are skipped.
# libcrc32c provides crc32c() to dm-vhdx; crc32c itself is built in.
GUEST_MODULES=${GUEST_MODULES:-virtio_pci virtio_blk dm_mod dm_bufio dm_log_writes dm_flakey dm_delay dm_zero loop libcrc32c ext4}

# Download and unpack the image once; .complete marks a finished unpack so
# an interrupted run starts over instead of using half a tree.
fetch_image() {
	local kver=$1 dir=$2 tmp deb
	[ -f "$dir/.complete" ] && return 0
	log "downloading linux-image-$kver-unsigned"
	rm -rf "$dir"
	mkdir -p "$dir"
	tmp=$(mktemp -d "$VHDX_CACHE/kernels/.dl.XXXXXX")
	# apt-get download drops privileges to _apt, which must write here.
	chmod 755 "$tmp"
	chown _apt "$tmp" 2>/dev/null || true
	(cd "$tmp" && apt-get download -qq "linux-image-$kver-unsigned" >&2) || {
		apt_update
		(cd "$tmp" && apt-get download -qq "linux-image-$kver-unsigned" >&2)
	}
	deb=$(echo "$tmp"/*.deb)
	[ -f "$deb" ] || die "apt-get download gave no .deb for $kver"
	dpkg -x "$deb" "$dir/root"
	rm -rf "$tmp"
	# The package ships no modules.dep (its postinst runs depmod).
	depmod -b "$dir/root" "$kver"
	touch "$dir/.complete"
}

# name of a module file: kernel/drivers/md/dm-mod.ko.xz -> dm_mod
modname() {
	local b=${1##*/}
	b=${b%%.ko*}
	echo "${b//-/_}"
}

# Resolve the wanted modules against modules.dep, deepest dependency first,
# and decompress them into MODDIR with a load-order file (one .ko a line).
prepare_modules() {
	local kver=$1 dir=$2 mdir=$2/root/lib/modules/$1 out=$2/modules
	local stamp="$GUEST_MODULES"
	if [ -f "$out/load-order" ] && [ "$(cat "$out/.wanted" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	[ -f "$mdir/modules.dep" ] || die "$mdir/modules.dep missing"
	local -A path=() builtin=() seen=()
	local line p n
	while IFS= read -r line; do
		p=${line%%:*}
		path[$(modname "$p")]=$p
	done < "$mdir/modules.dep"
	while IFS= read -r p; do
		builtin[$(modname "$p")]=1
	done < "$mdir/modules.builtin"

	local order=()
	visit() {
		local m=$1 d deps
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		if [ -n "${builtin[$m]:-}" ]; then
			return 0
		fi
		[ -n "${path[$m]:-}" ] || die "module $m is neither in modules.dep nor built into $kver"
		deps=$(grep -m1 "^${path[$m]}:" "$mdir/modules.dep" | cut -d: -f2)
		for d in $deps; do
			visit "$(modname "$d")"
		done
		order+=("${path[$m]}")
	}
	for n in $GUEST_MODULES; do
		visit "${n//-/_}"
	done

	rm -rf "$out.tmp.$$"
	mkdir -p "$out.tmp.$$"
	local ko
	for p in "${order[@]}"; do
		ko=${p##*/}
		case $ko in
		*.xz) xz -dc "$mdir/$p" > "$out.tmp.$$/${ko%.xz}"; ko=${ko%.xz} ;;
		*.zst) zstd -qdc "$mdir/$p" > "$out.tmp.$$/${ko%.zst}"; ko=${ko%.zst} ;;
		*) cp "$mdir/$p" "$out.tmp.$$/$ko" ;;
		esac
		echo "$ko" >> "$out.tmp.$$/load-order"
	done
	echo "$stamp" > "$out.tmp.$$/.wanted"
	rm -rf "$out"
	mv "$out.tmp.$$" "$out"
}

write_env() {
	local line=$1 kver=$2 dir=$3 kdir env=$VHDX_CACHE/kernels/$1.env
	kdir=/lib/modules/$kver/build
	[ -d "$kdir" ] || kdir=/usr/src/linux-headers-$kver
	[ -f "$kdir/Makefile" ] || die "headers of $kver not found in $kdir"
	[ -f "$dir/root/boot/vmlinuz-$kver" ] || die "no vmlinuz in $dir/root/boot"
	{
		echo "# written by scripts/kernels.sh"
		printf 'KVER=%q\n' "$kver"
		printf 'KDIR=%q\n' "$kdir"
		printf 'VMLINUZ=%q\n' "$dir/root/boot/vmlinuz-$kver"
		printf 'MODDIR=%q\n' "$dir/modules"
	} > "$env.tmp.$$"
	mv "$env.tmp.$$" "$env"
}

setup_line() {
	local line=$1 kver dir
	kver=$(newest_kver "$line")
	dir=$VHDX_CACHE/kernels/$kver
	apt_install "linux-headers-$kver"
	fetch_image "$kver" "$dir"
	prepare_modules "$kver" "$dir"
	write_env "$line" "$kver" "$dir"
	log "kernel $line: $kver ($(wc -l < "$dir/modules/load-order") guest modules: $(tr '\n' ' ' < "$dir/modules/load-order"))"
}

main() {
	mkdir -p "$VHDX_CACHE/kernels"
	local line lines=("$@")
	[ $# -gt 0 ] || lines=(6.1 6.12)
	for line in "${lines[@]}"; do
		setup_line "$line"
	done
	prune_old
}

# Drop the trees of kernels that no <line>.env names any more (superseded
# by a newer Debian upload).
prune_old() {
	local d keep
	keep=$(cat "$VHDX_CACHE"/kernels/*.env 2>/dev/null | sed -n 's/^KVER=//p')
	for d in "$VHDX_CACHE"/kernels/*/; do
		d=${d%/}
		grep -qxF "$(printf '%q' "${d##*/}")" <<< "$keep" && continue
		log "removing superseded kernel ${d##*/}"
		rm -rf "$d"
	done
}

main "$@"
