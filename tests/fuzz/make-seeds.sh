#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Seed corpora for the fuzz targets, made at run time from real images so
# no large binaries live in git: qemu-img images (dynamic and fixed, several
# block sizes, with data written by qemu-io), QEMU dirty logs (a blkdebug
# rule fails the in-place BAT write, leaving the log un-replayed), and
# vhdxsetup images when tools/vhdxsetup has been built.  Each image is cut
# into the pieces every target expects by cut-seeds.py.
#
# Usage: make-seeds.sh OUTDIR    writes OUTDIR/<target>/*; reuses OUTDIR
#                                if it is newer than this script
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:?usage: make-seeds.sh OUTDIR}

if [ -f "$out/.stamp" ] && [ "$out/.stamp" -nt "$0" ] &&
   [ "$out/.stamp" -nt "$here/cut-seeds.py" ]; then
	exit 0
fi
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null ||
   ! command -v python3 >/dev/null; then
	echo "make-seeds: qemu-img, qemu-io or python3 missing: no seeds (tests/fuzz/deps.sh installs them)" >&2
	exit 0
fi

img=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-seeds.XXXXXX")
trap 'rm -rf "$img"' EXIT
q() { "$@" >/dev/null 2>&1; }

q qemu-img create -f vhdx "$img/dyn-default.vhdx" 256M
q qemu-img create -f vhdx -o block_size=1M "$img/dyn-1m.vhdx" 64M
q qemu-io -f vhdx -c 'write -P 0x5a 0 4k' -c 'write -P 0x6b 5M 512' \
	-c 'write -P 0x7c 63M 4k' "$img/dyn-1m.vhdx"
q qemu-img create -f vhdx -o block_size=8M "$img/dyn-8m.vhdx" 40M
q qemu-io -f vhdx -c 'write -P 0x11 8M 4k' "$img/dyn-8m.vhdx"
q qemu-img create -f vhdx -o block_size=256M "$img/dyn-256m.vhdx" 64G
q qemu-img create -f vhdx -o block_size=1M,log_size=4M "$img/dyn-log4m.vhdx" 8M
q qemu-img create -f vhdx -o subformat=fixed,block_size=1M "$img/fixed-1m.vhdx" 3M
q qemu-img create -f vhdx -o subformat=fixed,block_size=1M,block_state_zero=off \
	"$img/fixed-nozero.vhdx" 2M
# Several writes: the clean log keeps a run of entries from this session.
q qemu-img create -f vhdx -o block_size=1M "$img/dyn-many.vhdx" 16M
q qemu-io -f vhdx -c 'write 0 4k' -c 'write 1M 4k' -c 'write 2M 4k' \
	-c 'write 7M 4k' -c 'write 15M 4k' "$img/dyn-many.vhdx"

# Dirty logs: blkdebug fails the in-place write of the BAT sector that
# holds the new entry.  Only an entry that starts a 4 KiB BAT sector leaves
# a dirty log (block 0, or block 512 at 1 MiB blocks).  BAT at 2 MiB.
dirty() {
	local name=$1 size=$2 sector=$3 offset=$4
	q qemu-img create -f vhdx -o block_size=1M "$img/$name.vhdx" "$size"
	printf '[inject-error]\nevent = "pwritev"\nsector = "%s"\nerrno = "5"\nonce = "on"\n' \
		"$sector" > "$img/bd.cfg"
	q qemu-io -c "write -P 0xab $offset 4k" "blkdebug:$img/bd.cfg:$img/$name.vhdx" || true
	rm -f "$img/bd.cfg"
}
dirty dirty-block0 64M 4096 0
dirty dirty-block512 1G 4104 512M

vhdxsetup=$top/tools/vhdxsetup
if [ -x "$vhdxsetup" ]; then
	q "$vhdxsetup" create "$img/vs-dyn.vhdx" 64M || true
	q "$vhdxsetup" create --block-size 1M --logical-sector-size 4096 \
		--physical-sector-size 4096 "$img/vs-4k.vhdx" 64M || true
	q "$vhdxsetup" create --fixed --block-size 1M "$img/vs-fixed.vhdx" 2M || true
	if [ -f "$img/vs-dyn.vhdx" ]; then
		q "$vhdxsetup" create --parent "$img/vs-dyn.vhdx" "$img/vs-diff.vhdx" || true
	fi
fi

rm -rf "$out"
mkdir -p "$out"
python3 "$here/cut-seeds.py" "$out" "$img"/*.vhdx
touch "$out/.stamp"
