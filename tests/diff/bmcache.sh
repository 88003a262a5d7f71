#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The sector bitmap cache (issue 9), one guest boot, also group bmcache of
# tests/diff/run.sh:
#
# - tiny: a 64 GiB child (16 chunks of 4 GiB) of a 64 GiB parent, mapped
#   with bitmap_cache_kb=16 (three 4 KiB pages, far less than the 16 MiB
#   of the child's bitmaps).  Scattered writes to the parent, then to the
#   child over every chunk, each also applied to a sparse raw mirror; then
#   O_DIRECT reads around every write and elsewhere in every chunk must
#   equal the mirror, while mapped read-write, after a flush (the cache
#   back within its budget), and again read-only with an empty cache.
# - memory: a 512 GiB child with a sector bitmap block in each of its 128
#   chunks (128 MiB of bitmaps): loading its table must not take 16 MiB
#   of memory (MemFree before and after), and its data reads back.
#
# Usage: tests/diff/bmcache.sh [--keep] [--seed N] [--kernel 6.1|6.12]
# Prints PASS/FAIL lines and "N passed, M failed"; exit 1 on a failure.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
keep=""
kline=6.12
seed=${DIFF_SEED:-20261202}
while [ $# -gt 0 ]; do
	case $1 in
	--keep) keep=1; shift ;;
	--seed) seed=${2:?}; shift 2 ;;
	--kernel) kline=${2:?}; shift 2 ;;
	*) echo "usage: $0 [--keep] [--seed N] [--kernel 6.1|6.12]" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-bmcache.XXXXXX")
if [ -n "$keep" ]; then
	echo "work directory: $work (kept)"
else
	trap 'rm -rf "$work"' EXIT
fi
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

setup=$top/tools/vhdxsetup
vm_run=$top/tests/guest/vm-run
gnu_dd=/usr/bin/dd
"$gnu_dd" --version 2>/dev/null | grep -q coreutils || { fail gnu-dd "$gnu_dd is not GNU dd"; finish; }
make -s -C "$top/tools" vhdxsetup >"$work/build.out" 2>&1 ||
	{ fail build-vhdxsetup "$(tail -3 "$work/build.out")"; finish; }
case $kline in 6.1) kglob='6.1.0-*' ;; 6.12) kglob='6.12.*' ;; debug) kglob='debug-*' ;; *) echo "--kernel 6.1|6.12|debug" >&2; exit 2 ;; esac
ko=$(ls "$top"/build/$kglob/dm-vhdx.ko 2>/dev/null | head -1)
[ -z "${DIFF_MODULE:-}" ] || ko=$DIFF_MODULE
[ -n "$ko" ] || { fail build-module "no build/$kglob/dm-vhdx.ko: make build-all"; finish; }

mkdir -p "$work/files"
# The images: their files get sparse room for what the guest allocates.
"$setup" create --block-size 1M "$work/p.vhdx" 64G >/dev/null &&
"$setup" create --block-size 1M --parent "$work/p.vhdx" "$work/c.vhdx" >/dev/null &&
"$setup" create --block-size 32M "$work/mp.vhdx" 512G >/dev/null &&
"$setup" create --block-size 32M --parent "$work/mp.vhdx" "$work/m.vhdx" >/dev/null ||
	{ fail create "vhdxsetup create failed"; finish; }
truncate -s +512M "$work/p.vhdx"
truncate -s +768M "$work/c.vhdx"
truncate -s +$((128 * 34))M "$work/m.vhdx"
head -c 4M /dev/urandom >"$work/files/pat"

# The plan: "p|c OFF LEN SRC" writes, "r OFF LEN" checks, in bytes.
python3 - "$seed" >"$work/files/plan" <<'EOF'
import random, sys
rng = random.Random(int(sys.argv[1]))
GiB, MiB, S = 1 << 30, 1 << 20, 512
VS = 64 * GiB
PAT = 4 * MiB
writes, reads = [], []
def w(kind, off, ln):
    off = max(0, min(off, VS - ln)) // S * S
    writes.append((kind, off, ln, rng.randrange((PAT - ln) // S) * S))
    lo = max(0, off - 64 * 1024)
    reads.append((lo, min(VS, off + ln + 64 * 1024) - lo))
for c in range(16):
    base = c * 4 * GiB
    for _ in range(3):
        w("p", base + rng.randrange(4 * GiB), rng.randint(1, 64) * S)
for c in range(16):
    base = c * 4 * GiB
    for _ in range(6):
        w("c", base + rng.randrange(4 * GiB), rng.randint(1, 128) * S)
    # Over a parent write, and across a 1 MiB block boundary.
    k, off, ln, src = writes[3 * c]
    w("c", off + rng.randint(-8, 8) * S, rng.randint(1, 16) * S)
    w("c", base + rng.randrange(4096) * MiB - rng.randint(1, 8) * S,
      rng.randint(9, 40) * S)
    # Across a 16 MiB boundary: two pages of the chunk's bitmap.
    w("c", base + rng.randrange(1, 256) * 16 * MiB - 4096, 8192)
    for _ in range(2):
        off = base + rng.randrange(4 * GiB - MiB) // S * S
        reads.append((off, 256 * 1024))
for x in writes:
    print("%s %d %d %d" % x)
for off, ln in reads:
    print("r %d %d" % (off, ln))
EOF

cat >"$work/guest.sh" <<'EOF'
#!/bin/sh
P=/dev/vda C=/dev/vdb MP=/dev/vdc M=/dev/vdd
GiB=1073741824
S64=$((64 * GiB / 512)) S512=$((512 * GiB / 512))
res() { echo "BMC: $*"; }
ok() { if [ "$2" = 0 ]; then res PASS "$1"; else res FAIL "$1: $3"; fi; }
put() {	# DEV OFF LEN SRC [direct]
	dd if=/files/pat of="$1" bs=64K iflag=skip_bytes,count_bytes \
		oflag=seek_bytes${5:+,direct} conv=notrunc skip="$4" seek="$2" \
		count="$3" status=none
}
sum() {	# DEV OFF LEN
	dd if="$1" bs=64K iflag=skip_bytes,count_bytes${4:+,direct} skip="$2" \
		count="$3" status=none | md5sum | cut -d' ' -f1
}
# Every check range of the plan, on $1 against the mirror.
compare() {
	bad=0 n=0 first=""
	while read -r k off len src; do
		[ "$k" = r ] || continue
		n=$((n + 1))
		a=$(sum "$1" "$off" "$len" direct)
		b=$(sum /mnt/mirror "$off" "$len")
		if [ "$a" != "$b" ]; then
			bad=$((bad + 1))
			[ -n "$first" ] || first="$off+$len"
		fi
	done </files/plan
	ok "$2" "$bad" "$bad of $n ranges differ from the mirror, first at $first"
}
field() { dmsetup status "$1" | awk -v f="$2" '{ print $f }'; }

mount -t tmpfs -o size=1200m tmpfs /mnt
dd if=/dev/null of=/mnt/mirror bs=1 seek=$((64 * GiB)) status=none
echo 16 >/sys/module/dm_vhdx/parameters/bitmap_cache_kb

# --- tiny budget ---------------------------------------------------------
dmsetup create p --table "0 $S64 vhdx $P" || { res FAIL p-create; echo BMC-DONE; exit 1; }
while read -r k off len src; do
	[ "$k" = p ] || continue
	put /dev/mapper/p "$off" "$len" "$src" direct
	put /mnt/mirror "$off" "$len" "$src"
done </files/plan
dmsetup remove p || res FAIL p-remove
# The parent's writes gave it a new DataWriteGuid: the child's linkage
# names the empty parent it was made of.
dmsetup create c --table "0 $S64 vhdx $C 3 parent $P no_linkage_check" ||
	{ res FAIL c-create; echo BMC-DONE; exit 1; }
st=$(dmsetup status c)
ok tiny-status-fields "$([ "$(field c 11)" = 0/16 ] && echo 0 || echo 1)" "status after open: $st"
wbad=0
while read -r k off len src; do
	[ "$k" = c ] || continue
	put /dev/mapper/c "$off" "$len" "$src" direct || wbad=$((wbad + 1))
	put /mnt/mirror "$off" "$len" "$src"
done </files/plan
ok tiny-writes "$wbad" "$wbad writes failed"
compare /dev/mapper/c tiny-rw-reads
# A flush commits and checkpoints: every page is clean again, and the
# cache shrinks back to its budget.
dd if=/dev/null of=/dev/mapper/c conv=fsync,notrunc status=none
compare /dev/mapper/c tiny-rw-reads-after-flush
st=$(dmsetup status c)
used=$(field c 11 | cut -d/ -f1) loads=$(field c 12)
ok tiny-within-budget "$([ -n "$used" ] && [ "$used" -le 16 ] && [ "$loads" -gt 100 ] && echo 0 || echo 1)" "status: $st"
res INFO "tiny rw status: $st"
dmsetup remove c || res FAIL c-remove
dmsetup create c --readonly --table "0 $S64 vhdx $C 3 parent $P no_linkage_check" ||
	{ res FAIL c-ro-create; echo BMC-DONE; exit 1; }
compare /dev/mapper/c tiny-ro-reads
st=$(dmsetup status c)
used=$(field c 11 | cut -d/ -f1)
ok tiny-ro-within-budget "$([ -n "$used" ] && [ "$used" -le 16 ] && echo 0 || echo 1)" "status: $st"
res INFO "tiny ro status: $st"
dmsetup remove c
dmesg | grep -i -E 'vhdx.*(error|fail)' | head -5

# --- memory: 128 chunks with bitmaps -------------------------------------
echo 16384 >/sys/module/dm_vhdx/parameters/bitmap_cache_kb
dmsetup create m --table "0 $S512 vhdx $M 2 parent $MP" || { res FAIL m-create; echo BMC-DONE; exit 1; }
c=0 wbad=0
while [ $c -lt 128 ]; do
	put /dev/mapper/m $((c * 4 * GiB + 12345 * 512)) 4096 $((c * 4096)) direct || wbad=$((wbad + 1))
	c=$((c + 1))
done
ok mem-writes "$wbad" "$wbad writes failed"
dmsetup remove m
sync
echo 3 >/proc/sys/vm/drop_caches
free1=$(awk '/^MemFree:/ { print $2 }' /proc/meminfo)
dmsetup create m --readonly --table "0 $S512 vhdx $M 2 parent $MP" ||
	{ res FAIL m-ro-create; echo BMC-DONE; exit 1; }
free2=$(awk '/^MemFree:/ { print $2 }' /proc/meminfo)
grow=$((free1 - free2))
ok mem-open-bounded "$([ "$grow" -lt 16384 ] && echo 0 || echo 1)" "MemFree fell by $grow KiB when the table was loaded"
res INFO "memory: table load took $grow KiB"
st=$(dmsetup status m)
ok mem-nothing-cached-at-open "$([ "$(field m 11)" = 0/16384 ] && [ "$(field m 12)" = 0 ] && echo 0 || echo 1)" "status: $st"
c=0 bad=0
while [ $c -lt 128 ]; do
	a=$(sum /dev/mapper/m $((c * 4 * GiB + 12345 * 512 - 512)) 5120 direct)
	b=$( (head -c 512 /dev/zero; dd if=/files/pat bs=4096 skip=$c count=1 status=none; head -c 512 /dev/zero) | md5sum | cut -d' ' -f1)
	[ "$a" = "$b" ] || bad=$((bad + 1))
	c=$((c + 1))
done
ok mem-reads "$bad" "$bad of 128 chunks read wrong"
st=$(dmsetup status m)
ok mem-loads "$([ "$(field m 12)" -ge 128 ] && echo 0 || echo 1)" "status: $st"
res INFO "memory status: $st"
dmsetup remove m
echo BMC-DONE
EOF

"$vm_run" --kernel "$kline" --module "$ko" --mem 2048 --timeout 900 --files "$work/files" \
	--bin "$gnu_dd" "$work/guest.sh" "$work/p.vhdx" "$work/c.vhdx" "$work/mp.vhdx" "$work/m.vhdx" \
	>"$work/console.log" 2>&1
rc=$?
grep -a '^BMC: INFO' "$work/console.log" | sed 's/^BMC: /  /'
while IFS= read -r line; do
	case $line in
	"BMC: PASS "*) pass "${line#BMC: PASS }" ;;
	"BMC: FAIL "*) line=${line#BMC: FAIL }; fail "${line%%: *}" "${line#*: }" ;;
	esac
done < <(grep -a '^BMC: \(PASS\|FAIL\)' "$work/console.log" | tr -d '\r')
if [ "$rc" = 0 ] && grep -q -a '^BMC-DONE' "$work/console.log"; then
	pass bmcache-guest
else
	fail bmcache-guest "vm-run exit $rc: $(grep -a -E 'vm-run|Oops|BUG|panic|WARNING' "$work/console.log" | tail -6 | tr '\n' ' ')"
fi
# The files checked by the host's own tool: logs empty, bitmaps sound.
for f in p c m; do
	out=$("$setup" check "$work/$f.vhdx" 2>&1) && pass "check-$f" ||
		fail "check-$f" "$(echo "$out" | tail -2 | tr '\n' ' ')"
done
finish
