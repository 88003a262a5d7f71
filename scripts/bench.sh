#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: fio inside one guest against dm-linear over a raw disk and
# dm-vhdx over an image on the same kind of disk, both files on the same
# host file system, and the ratio dm-vhdx / dm-linear for each workload.
# Also counts device flushes per user flush on the fsync workload, from
# the block layer's counters of the disk under each target.
#
# A benchmark, not a test: it prints figures and fails only if it cannot
# run.  Under TCG (no KVM) absolute figures are small and noisy; the ratios
# compare two targets under the same emulation, in the same boot.
#
# Usage: scripts/bench.sh [--kernel 6.1|6.12] [--size MiB] [--runtime SEC]
#                         [--block-size SIZE]
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$TOP/scripts/lib.sh"

KLINE=6.12
SIZE_MIB=256
RUNTIME=6
BLOCK_SIZE=""		# qemu-img's default for the size

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) KLINE=${2:?}; shift 2 ;;
	--size) SIZE_MIB=${2:?}; shift 2 ;;
	--runtime) RUNTIME=${2:?}; shift 2 ;;
	--block-size) BLOCK_SIZE=${2:?}; shift 2 ;;
	*) die "unknown argument $1" ;;
	esac
done

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/dm-vhdx-bench.XXXXXX")
[ -n "${BENCH_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
MiB=1048576
SECTORS=$((SIZE_MIB * MiB / 512))

make_disks() {
	local opt=()
	[ -z "$BLOCK_SIZE" ] || opt=(-o "block_size=$BLOCK_SIZE")
	truncate -s 1M "$WORK/res.img"
	truncate -s $((SIZE_MIB * MiB)) "$WORK/raw.img"
	# Never written: dm-linear's side of the allocating workloads, so that
	# both sides write into holes of a sparse host file.
	truncate -s $((SIZE_MIB * MiB)) "$WORK/fresh.img"
	# Fixed: every block allocated, for the in-place workloads.
	qemu-img create -q -f vhdx -o subformat=fixed "${opt[@]}" \
		"$WORK/fixed.vhdx" $((SIZE_MIB * MiB))
	# Dynamic and empty, with room for every block: allocating workloads.
	qemu-img create -q -f vhdx "${opt[@]}" "$WORK/dyn.vhdx" $((SIZE_MIB * MiB))
	truncate -s +$((SIZE_MIB + 64))M "$WORK/dyn.vhdx"
	# The fsync workload gets an empty image of its own, with 1 MiB
	# blocks, so that its writes allocate and commit.
	qemu-img create -q -f vhdx -o block_size=1M "$WORK/sync.vhdx" $((SIZE_MIB * MiB))
	truncate -s +$((SIZE_MIB + 64))M "$WORK/sync.vhdx"
	# A depth-2 chain: a full base, an empty middle, an empty top that
	# takes the partial-block writes.
	qemu-img create -q -f vhdx "${opt[@]}" "$WORK/base.vhdx" $((SIZE_MIB * MiB))
	qemu-io -f vhdx -c "write -P 0x5a 0 $((SIZE_MIB * MiB))" "$WORK/base.vhdx" > /dev/null
	"$TOP/tools/vhdxsetup" create --parent "$WORK/base.vhdx" "$WORK/mid.vhdx" > /dev/null
	"$TOP/tools/vhdxsetup" create --parent "$WORK/mid.vhdx" "$WORK/top.vhdx" > /dev/null
	truncate -s +$((SIZE_MIB + 64))M "$WORK/top.vhdx"
}

# One fio job; JSON to /tmp/out/<name>-<target>.json in the guest.
write_guest_script() {
	cat > "$WORK/guest.sh" <<GUEST
set -u
mkdir -p /tmp/out
die() { echo "bench guest: \$*"; exit 1; }
dmsetup create lin --table "0 $SECTORS linear /dev/vdb 0" || die "dm-linear"
dmsetup create vfix --table "0 $SECTORS vhdx /dev/vdc" || die "dm-vhdx fixed"
dmsetup create vdyn --table "0 $SECTORS vhdx /dev/vdd" || die "dm-vhdx dynamic"
dmsetup create vsync --table "0 $SECTORS vhdx /dev/vde 1 commit_time:0" || die "dm-vhdx fsync"
dmsetup create lin2 --table "0 $SECTORS linear /dev/vdi 0" || die "dm-linear 2"
dmsetup create vdiff --table "0 $SECTORS vhdx /dev/vdf 4 parent /dev/vdg parent /dev/vdh" || die "dm-vhdx chain"
dmsetup mknodes
# Allocate every block of the fixed image's BAT entries QEMU left ZERO,
# so the in-place runs measure in-place writes.
dd if=/dev/zero of=/dev/mapper/vfix bs=1M oflag=direct 2>/dev/null
dd if=/dev/zero of=/dev/mapper/lin bs=1M oflag=direct 2>/dev/null
run() {	# NAME TARGET FIO-ARGS...
	job=\$1 dev=\$2
	shift 2
	fio --name="\$job" --filename=/dev/mapper/\$dev --direct=1 \
		--ioengine=libaio --runtime=$RUNTIME --time_based \
		--output-format=json --output=/tmp/out/\$job-\$dev.json "\$@" \
		> /tmp/fio.log 2>&1 || { echo "bench guest: fio \$job on \$dev failed"; cat /tmp/fio.log; }
}
# Field 16 of the block layer's stat: flush requests completed.
flushes() { awk '{ print \$16 }' /sys/block/\$1/stat; }
for t in lin vfix; do
	run seq-read \$t --rw=read --bs=1M --iodepth=4
	run seq-write \$t --rw=write --bs=1M --iodepth=4
	run rand-read \$t --rw=randread --bs=4k --iodepth=32
	run rand-write \$t --rw=randwrite --bs=4k --iodepth=32
done
# Through the chain: reads reach the base through two empty layers;
# 4 KiB writes make blocks of the top partially present.
run diff-seq-read vdiff --rw=read --bs=1M --iodepth=4
run diff-rand-read vdiff --rw=randread --bs=4k --iodepth=32
run diff-rand-write lin --rw=randwrite --bs=4k --iodepth=32
run diff-rand-write vdiff --rw=randwrite --bs=4k --iodepth=32
# Allocating: the raw disk again for dm-linear, the empty image for dm-vhdx.
run alloc-seq-write lin2 --rw=write --bs=1M --iodepth=4 --time_based=0 --size=$((SIZE_MIB / 2))M
run alloc-seq-write vdyn --rw=write --bs=1M --iodepth=4 --time_based=0 --size=$((SIZE_MIB / 2))M
run alloc-rand-write lin2 --rw=randwrite --bs=4k --iodepth=32 --offset=$((SIZE_MIB / 2))M
run alloc-rand-write vdyn --rw=randwrite --bs=4k --iodepth=32 --offset=$((SIZE_MIB / 2))M
# fsync after every 4 KiB write, on fresh blocks for dm-vhdx: the worst case.
for pair in lin:vdb vsync:vde; do
	b=\$(flushes \${pair#*:})
	run fsync-write \${pair%:*} --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --ioengine=psync
	echo "\$(( \$(flushes \${pair#*:}) - b ))" > /tmp/out/flushes-\${pair%:*}
done
for d in vfix vdyn vsync vdiff; do dmsetup status \$d > /tmp/out/status-\$d; done
for d in vdiff vsync vdyn vfix lin lin2; do dmsetup remove \$d; done
# Through a file: dd with conv=sync would pad each short read from a pipe.
(cd /tmp/out && tar cf /tmp/out.tar .) && dd if=/tmp/out.tar of=/dev/vda 2>/dev/null
sync
GUEST
}

report() {
	python3 - "$WORK/out" <<'PY'
import json, os, sys
d = sys.argv[1]
def job(name, target):
    if target == "lin" and name in ("diff-seq-read", "diff-rand-read"):
        name = name[5:]
    try:
        with open(os.path.join(d, f"{name}-{target}.json")) as f:
            j = json.load(f)["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    side = "read" if "read" in name else "write"
    return j[side]
rows = [("seq-read", "bw", "MiB/s", "vfix"), ("seq-write", "bw", "MiB/s", "vfix"),
        ("rand-read", "iops", "IOPS", "vfix"), ("rand-write", "iops", "IOPS", "vfix"),
        ("alloc-seq-write", "bw", "MiB/s", "vdyn"), ("alloc-rand-write", "iops", "IOPS", "vdyn"),
        ("fsync-write", "iops", "IOPS", "vsync"),
        ("diff-seq-read", "bw", "MiB/s", "vdiff"), ("diff-rand-read", "iops", "IOPS", "vdiff"),
        ("diff-rand-write", "iops", "IOPS", "vdiff")]
print(f"{'workload':<18} {'unit':<6} {'dm-linear':>10} {'dm-vhdx':>10} {'ratio':>6}")
for name, key, unit, target in rows:
    a = job(name, "lin2" if name.startswith("alloc") else "lin")
    b = job(name, target)
    if not a or not b:
        print(f"{name:<18} missing result")
        continue
    va, vb = a[key], b[key]
    if key == "bw":
        va, vb = va / 1024, vb / 1024
    ratio = vb / va if va else 0
    print(f"{name:<18} {unit:<6} {va:>10.1f} {vb:>10.1f} {ratio:>6.2f}")
def flushes(t):
    try:
        return int(open(os.path.join(d, f"flushes-{t}")).read())
    except (OSError, ValueError):
        return None
for t, label in (("lin", "dm-linear"), ("vsync", "dm-vhdx")):
    j = job("fsync-write", t)
    n = flushes(t)
    if j and n is not None:
        syncs = j.get("sync", {}).get("total_ios") or j["total_ios"]
        print(f"device flushes per user flush, {label}: {n / max(syncs, 1):.2f} ({n} flushes, {syncs} fsyncs)")
for t in ("vfix", "vdyn", "vsync", "vdiff"):
    p = os.path.join(d, f"status-{t}")
    if os.path.exists(p):
        print(f"status {t}: {open(p).read().strip()}")
PY
}

main() {
	local vmrun=$TOP/tests/guest/vm-run t=$SECONDS
	command -v fio > /dev/null || die "fio missing: scripts/deps.sh"
	make -s -C "$TOP/tools" vhdxsetup
	make_disks
	write_guest_script
	log "fio in a $KLINE guest: $SIZE_MIB MiB, ${RUNTIME}s per run"
	# As a loop device over a file turns zeroing into fallocate, so do
	# QEMU's disks with discard=unmap: new blocks are zeroed cheaply.
	VM_RUN_DRIVE_OPTS=discard=unmap "$vmrun" --kernel "$KLINE" --timeout 1200 --mem 1536 --bin /usr/bin/fio \
		"$WORK/guest.sh" "$WORK/res.img" "$WORK/raw.img" "$WORK/fixed.vhdx" \
		"$WORK/dyn.vhdx" "$WORK/sync.vhdx" "$WORK/top.vhdx" "$WORK/mid.vhdx:ro" \
		"$WORK/base.vhdx:ro" "$WORK/fresh.img" > "$WORK/console.log" 2>&1 ||
		{ tail -n 30 "$WORK/console.log"; die "guest run failed"; }
	mkdir -p "$WORK/out"
	tar xf "$WORK/res.img" -C "$WORK/out" 2>/dev/null || true
	grep -h 'bench guest' "$WORK/console.log" || true
	report
	log "qemu-img check of the written images:"
	qemu-img check -q "$WORK/fixed.vhdx" && qemu-img check -q "$WORK/dyn.vhdx" &&
		qemu-img check -q "$WORK/sync.vhdx" && "$TOP/tools/vhdxsetup" check "$WORK/top.vhdx" &&
		echo "clean"
	log "took $((SECONDS - t)) s"
}

main
