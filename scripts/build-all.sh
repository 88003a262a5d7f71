#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build dm-vhdx.ko against the cached Debian kernels with W=1 and sparse
# (C=1) into build/<kver>/, and fail on any compiler, sparse or modpost
# warning.  Kbuild builds in the source directory, so each kernel gets its
# own copy of the sources; the copy is rebuilt from scratch every time
# because an incremental build would not repeat the warnings of files it
# skips.
#
# Usage: scripts/build-all.sh [LINE...]     (default: 6.1 6.12)
# Prints "PASS build-<line>: ..." or "FAIL build-<line>: ..." per kernel.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Kbuild and the C sources and headers of the module, paths relative to TOP.
module_sources() {
	(cd "$TOP" && find . \( -path ./build -o -path ./.git -o -path ./tests \
		-o -path ./tools -o -path ./scripts -o -path ./Documentation \) -prune \
		-o -type f \( -name Kbuild -o -name '*.[ch]' \) -print) | sed 's|^\./||'
}

build_one() {
	local line=$1 env=$VHDX_CACHE/kernels/$1.env final out f log
	[ -f "$env" ] || "$TOP/scripts/kernels.sh" "$line"
	# shellcheck disable=SC1090
	. "$env"
	# Built beside the old tree and swapped in at the end: guest tests
	# running meanwhile keep finding build/<kver>/dm-vhdx.ko.
	final=$TOP/build/$KVER
	out=$TOP/build/.new-$KVER
	log=$final.log
	rm -rf "$out"
	mkdir -p "$out"
	for f in $(module_sources); do
		install -D -m 644 "$TOP/$f" "$out/$f"
	done
	if ! make -C "$KDIR" M="$out" W=1 C=1 -j"$(nproc)" modules > "$log" 2>&1; then
		echo "FAIL build-$line: the build against $KVER failed (log: ${log#"$TOP"/}):"
		grep -a -iE 'error|warning' "$log" | sed "s|$out/||" | head -n 50 || tail -n 30 "$log"
		# No stale module for the guest tests to pick up instead.
		rm -rf "$final"
		return 1
	fi
	# Compiler and sparse say "warning:"/"error:", modpost "WARNING:".
	# A module built with warnings is still the current code: the guest
	# tests get it, and the build counts as failed.
	if grep -a -qiE 'warning:|error:' "$log"; then
		echo "FAIL build-$line: warnings with $KVER (log: build/$KVER/build.log):"
		# Paths as in the checkout, not in the build copy.
		grep -a -iE 'warning:|error:' "$log" | sed "s|$out/||" | head -n 50
		swap_in "$out" "$final" "$log"
		return 1
	fi
	swap_in "$out" "$final" "$log"
	echo "PASS build-$line: build/$KVER/dm-vhdx.ko"
}

# Replace build/<kver> by the new tree with two renames, not a slow rm.
swap_in() {
	local new=$1 final=$2 log=$3
	mv "$log" "$new/build.log"
	rm -rf "$final.old"
	[ ! -e "$final" ] || mv "$final" "$final.old"
	mv "$new" "$final"
	rm -rf "$final.old"
}

main() {
	local line rc=0 lines=("$@")
	[ $# -gt 0 ] || lines=(6.1 6.12)
	for line in "${lines[@]}"; do
		build_one "$line" || rc=1
	done
	return "$rc"
}

main "$@"
