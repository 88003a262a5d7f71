#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: fio inside one guest against three block devices that serve
# the same kind of image: dm-linear over a raw file, dm-vhdx over a VHDX
# file and qemu-nbd serving a copy of that VHDX file.  The files live on
# one ext4 file system in the guest, dm-linear and dm-vhdx reach theirs
# through loop devices with direct I/O, qemu-nbd opens its own with
# --cache=none --aio=native: what users run.  For each workload it prints
# the figures and the ratios dm-vhdx / dm-linear and dm-vhdx / qemu-nbd,
# and on the fsync workload the device flushes per user flush, counted
# by the block layer at the device under each one.
#
# A benchmark, not a test: it prints figures and fails only if it cannot
# run.  It uses KVM where /dev/kvm boots the guest and says which; under
# TCG the absolute figures are small and noisy, and the ratios compare
# targets under the same emulation, in the same boot.  So every workload
# runs --rounds times, the targets in a different order each round and
# the allocating ones on fresh images each round, and the report gives
# the median of each figure and the lowest and highest per-round ratio.
#
# Usage: scripts/bench.sh [--kernel 6.1|6.12] [--size MiB] [--runtime SEC]
#                         [--block-size SIZE] [--rounds N]
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$TOP/scripts/lib.sh"

KLINE=6.12
SIZE_MIB=256
RUNTIME=6
BLOCK_SIZE=""		# qemu-img's default for the size
ROUNDS=3

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) KLINE=${2:?}; shift 2 ;;
	--size) SIZE_MIB=${2:?}; shift 2 ;;
	--runtime) RUNTIME=${2:?}; shift 2 ;;
	--block-size) BLOCK_SIZE=${2:?}; shift 2 ;;
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	*) die "unknown argument $1" ;;
	esac
done

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/dm-vhdx-bench.XXXXXX")
[ -n "${BENCH_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
MiB=1048576
SECTORS=$((SIZE_MIB * MiB / 512))

make_disks() {
	local opt=() d=$WORK/store r f
	[ -z "$BLOCK_SIZE" ] || opt=(-o "block_size=$BLOCK_SIZE")
	mkdir -p "$d"
	truncate -s 16M "$WORK/res.img"
	truncate -s $((SIZE_MIB * MiB)) "$d/raw.img"
	# Never written: the partial-block writes into the chain's top fill
	# holes of its file, so dm-linear's side writes into holes too.
	truncate -s $((SIZE_MIB * MiB)) "$d/fresh2.img"
	# Fixed: every block allocated, for the in-place workloads.
	qemu-img create -q -f vhdx -o subformat=fixed "${opt[@]}" \
		"$d/fixed.vhdx" $((SIZE_MIB * MiB))
	cp --sparse=always "$d/fixed.vhdx" "$d/qfixed.vhdx"
	# The allocating workloads write into empty images, so each round
	# gets its own: a sparse raw file for dm-linear, dynamic images for
	# the others, and for the fsync workload images with 1 MiB blocks,
	# so that its writes allocate and commit.  Each side writes into its
	# own copy; dm-vhdx's get room for new blocks, as vhdxsetup open
	# gives them, where QEMU extends its files itself.
	qemu-img create -q -f vhdx "${opt[@]}" "$WORK/dyn.vhdx" $((SIZE_MIB * MiB))
	qemu-img create -q -f vhdx -o block_size=1M "$WORK/sync.vhdx" $((SIZE_MIB * MiB))
	for r in $(seq "$ROUNDS"); do
		truncate -s $((SIZE_MIB * MiB)) "$d/fresh-$r.img"
		for f in dyn sync; do
			cp --sparse=always "$WORK/$f.vhdx" "$d/q$f-$r.vhdx"
			cp --sparse=always "$WORK/$f.vhdx" "$d/$f-$r.vhdx"
			truncate -s +$((SIZE_MIB + 64))M "$d/$f-$r.vhdx"
		done
	done
	# A depth-2 chain: a full base, an empty middle, an empty top that
	# takes the partial-block writes (QEMU cannot open differencing VHDX).
	qemu-img create -q -f vhdx "${opt[@]}" "$d/base.vhdx" $((SIZE_MIB * MiB))
	qemu-io -f vhdx -c "write -P 0x5a 0 $((SIZE_MIB * MiB))" "$d/base.vhdx" > /dev/null
	"$TOP/tools/vhdxsetup" create --parent "$d/base.vhdx" "$d/mid.vhdx" > /dev/null
	"$TOP/tools/vhdxsetup" create --parent "$d/mid.vhdx" "$d/top.vhdx" > /dev/null
	# The reads get an empty top of their own: after the first round the
	# writes' top is a patchwork of its own sectors and the parent's.
	"$TOP/tools/vhdxsetup" create --parent "$d/mid.vhdx" "$d/rtop.vhdx" > /dev/null
	truncate -s +$((SIZE_MIB + 64))M "$d/top.vhdx"
	# One ext4 file system holds them all; mke2fs -d keeps holes.
	truncate -s $(((8 + 6 * ROUNDS) * SIZE_MIB + 1024))M "$WORK/store.img"
	mke2fs -q -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 -d "$d" "$WORK/store.img"
	rm -rf "$d"
}

# The guest: map everything, run each workload on each device, leave
# fio's JSON, the flush counts and the status lines on the results disk.
write_guest_script() {
	{
		echo "SECTORS=$SECTORS RUNTIME=$RUNTIME HALF=$((SIZE_MIB / 2))M ROUNDS=$ROUNDS"
		cat <<'GUEST'
set -u
mkdir -p /tmp/out /store /var/lock
die() { echo "bench guest: $*"; exit 1; }
mount -t ext4 /dev/vdb /store || die "mount the ext4 store"
insmod /files/nbd.ko nbds_max=4 || die "insmod nbd"
# loop NAME FILE [ro]: a loop device with direct I/O over /store/FILE.
loop() {
	l=$(/usr/sbin/losetup -f --show --direct-io=on ${3:+-r} "/store/$2") || die "losetup $2"
	eval "L_$1=$l"
}
# nbd N FILE: qemu-nbd serving /store/FILE as /dev/nbdN.
nbd() {
	qemu-nbd -f vhdx --cache=none --aio=native -c /dev/nbd$1 /store/$2 ||
		die "qemu-nbd $2"
}
loop raw raw.img; loop fresh2 fresh2.img; loop fix fixed.vhdx
loop top top.vhdx; loop rtop rtop.vhdx ro; loop mid mid.vhdx ro; loop base base.vhdx ro
dmsetup create lin --table "0 $SECTORS linear $L_raw 0" || die "dm-linear"
dmsetup create lin3 --table "0 $SECTORS linear $L_fresh2 0" || die "dm-linear 3"
dmsetup create vfix --table "0 $SECTORS vhdx $L_fix" || die "dm-vhdx fixed"
dmsetup create vdiff --table "0 $SECTORS vhdx $L_top 4 parent $L_mid parent $L_base" || die "dm-vhdx chain"
dmsetup create -r vread --table "0 $SECTORS vhdx $L_rtop 4 parent $L_mid parent $L_base" || die "dm-vhdx chain to read"
nbd 0 qfixed.vhdx
dmsetup mknodes
# The devices by the names the host's report uses.
dev() {
	case $1 in
	nfix) echo /dev/nbd0 ;;
	ndyn) echo /dev/nbd1 ;;
	nsync) echo /dev/nbd2 ;;
	*) echo /dev/mapper/$1 ;;
	esac
}
# Write every block of the in-place devices first (QEMU leaves some of a
# fixed image's BAT entries ZERO; ext4 would allocate on first write).
for t in lin vfix nfix; do
	dd if=/dev/zero of=$(dev $t) bs=1M oflag=direct 2>/dev/null
done
round=0
run() {	# NAME TARGET FIO-ARGS...
	job=$1 t=$2
	shift 2
	fio --name="$job" --filename=$(dev $t) --direct=1 \
		--ioengine=libaio --runtime=$RUNTIME --time_based \
		--output-format=json --output=/tmp/out/$job-$t-$round.json "$@" \
		> /tmp/fio.log 2>&1 || { echo "bench guest: fio $job on $t failed"; cat /tmp/fio.log; }
}
# rotate A B C: the targets in this round's order, so that no target
# always goes first (a warm cache) or last.
rotate() {
	n=$((round % $#))
	while [ $n -gt 0 ]; do
		first=$1
		shift
		set -- "$@" "$first"
		n=$((n - 1))
	done
	echo "$@"
}
# Field 16 of the block layer's stat: flush requests completed.
flushes() { awk '{ print $16 }' /sys/block/${1#/dev/}/stat; }
# This round's empty images for the allocating workloads.
map_fresh() {
	loop fresh fresh-$round.img; loop dyn dyn-$round.vhdx; loop sync sync-$round.vhdx
	dmsetup create lin2 --table "0 $SECTORS linear $L_fresh 0" || die "dm-linear 2"
	dmsetup create vdyn --table "0 $SECTORS vhdx $L_dyn" || die "dm-vhdx dynamic"
	dmsetup create vsync --table "0 $SECTORS vhdx $L_sync 1 commit_time:0" || die "dm-vhdx fsync"
	nbd 1 qdyn-$round.vhdx; nbd 2 qsync-$round.vhdx
	dmsetup mknodes
}
unmap_fresh() {
	for d in vdyn vsync; do dmsetup status $d > /tmp/out/status-$d-$round; done
	for d in vsync vdyn lin2; do dmsetup remove $d; done
	for n in 1 2; do qemu-nbd -d /dev/nbd$n > /dev/null; done
	for l in $L_fresh $L_dyn $L_sync; do /usr/sbin/losetup -d $l; done
}
while [ $round -lt $ROUNDS ]; do
	round=$((round + 1))
	echo "bench guest: round $round of $ROUNDS"
	map_fresh
	for t in $(rotate lin vfix nfix); do run seq-read $t --rw=read --bs=1M --iodepth=4; done
	for t in $(rotate lin vfix nfix); do run seq-write $t --rw=write --bs=1M --iodepth=4; done
	for t in $(rotate lin vfix nfix); do run rand-read $t --rw=randread --bs=4k --iodepth=32; done
	for t in $(rotate lin vfix nfix); do run rand-write $t --rw=randwrite --bs=4k --iodepth=32; done
	# Through the chain: reads reach the base through two empty layers;
	# 4 KiB writes make blocks of the top partially present.
	for t in $(rotate lin vread); do
		run diff-seq-read $t --rw=read --bs=1M --iodepth=4
		run diff-rand-read $t --rw=randread --bs=4k --iodepth=32
	done
	for t in $(rotate lin3 lin vdiff); do
		run diff-rand-write $t --rw=randwrite --bs=4k --iodepth=32
	done
	# Allocating: a sparse raw file for dm-linear, empty images for the
	# others.
	for t in $(rotate lin2 vdyn ndyn); do
		run alloc-seq-write $t --rw=write --bs=1M --iodepth=4 --time_based=0 --size=$HALF
	done
	for t in $(rotate lin2 vdyn ndyn); do
		run alloc-rand-write $t --rw=randwrite --bs=4k --iodepth=32 --offset=$HALF
	done
	# fsync after every 4 KiB write, on fresh blocks for the images: the
	# worst case.  Flushes are counted at the device under each target
	# (the loop device; for qemu-nbd, which opens its file itself, none)
	# and at the disk under the ext4 file system, which all three reach.
	for t in $(rotate lin vsync nsync); do
		case $t in
		lin) under=$L_raw ;;
		vsync) under=$L_sync ;;
		*) under="" ;;
		esac
		u=$( [ -z "$under" ] || flushes $under ) d=$(flushes vdb)
		run fsync-write $t --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --ioengine=psync
		[ -z "$under" ] || echo "$(( $(flushes $under) - u ))" > /tmp/out/flushes-under-$t-$round
		echo "$(( $(flushes vdb) - d ))" > /tmp/out/flushes-disk-$t-$round
	done
	unmap_fresh
done
for d in vfix vdiff vread; do dmsetup status $d > /tmp/out/status-$d; done
for d in vread vdiff vfix lin3 lin; do dmsetup remove $d; done
qemu-nbd -d /dev/nbd0 > /dev/null
/usr/sbin/losetup -D
umount /store
# Through a file: dd with conv=sync would pad each short read from a pipe.
(cd /tmp/out && tar cf /tmp/out.tar .) && dd if=/tmp/out.tar of=/dev/vda 2>/dev/null
sync
GUEST
	} > "$WORK/guest.sh"
}

report() {
	python3 - "$WORK/out" "$ROUNDS" <<'PY'
import json, os, statistics, sys
d, rounds = sys.argv[1], range(1, int(sys.argv[2]) + 1)
def job(name, target, r):
    try:
        with open(os.path.join(d, f"{name}-{target}-{r}.json")) as f:
            j = json.load(f)["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return j["read" if "read" in name else "write"]
def values(name, target, key):
    """The figure of each round, None where a round has none."""
    out = []
    for r in rounds:
        j = job(name, target, r) if target else None
        out.append(None if not j else j[key] / 1024 if key == "bw" else j[key])
    return out
def median(vs):
    vs = [v for v in vs if v is not None]
    return statistics.median(vs) if vs else None
def cell(v):
    return format(v, "9.1f") if v is not None else format("-", ">9")
def ratios(num, den):
    """Median of num / den over the rounds, and its lowest and highest round."""
    rs = [n / m for n, m in zip(num, den) if m and n is not None]
    if not rs:
        return "-"
    return f"{statistics.median(rs):.2f} ({min(rs):.2f}-{max(rs):.2f})"
# workload, fio field, unit, dm-linear's device, dm-vhdx's, qemu-nbd's
rows = [("seq-read", "bw", "MiB/s", "lin", "vfix", "nfix"),
        ("seq-write", "bw", "MiB/s", "lin", "vfix", "nfix"),
        ("rand-read", "iops", "IOPS", "lin", "vfix", "nfix"),
        ("rand-write", "iops", "IOPS", "lin", "vfix", "nfix"),
        ("alloc-seq-write", "bw", "MiB/s", "lin2", "vdyn", "ndyn"),
        ("alloc-rand-write", "iops", "IOPS", "lin2", "vdyn", "ndyn"),
        ("fsync-write", "iops", "IOPS", "lin", "vsync", "nsync"),
        ("diff-seq-read", "bw", "MiB/s", "lin", "vread", None),
        ("diff-rand-read", "iops", "IOPS", "lin", "vread", None),
        ("diff-rand-write", "iops", "IOPS", "lin3", "vdiff", None)]
print(f"medians of {len(rounds)} rounds; ratios: median (lowest-highest round)")
print(f"{'workload':<17} {'unit':<5} {'dm-linear':>9} {'dm-vhdx':>9} {'qemu-nbd':>9}"
      f" {'vhdx/linear':>16} {'vhdx/nbd':>16}")
for name, key, unit, lin, vhdx, nbd in rows:
    a, b, c = (values(name, t, key) for t in (lin, vhdx, nbd))
    print(f"{name:<17} {unit:<5} {cell(median(a))} {cell(median(b))} {cell(median(c))}"
          f" {ratios(b, a):>16} {ratios(b, c):>16}")
print("(-: qemu-nbd cannot open differencing VHDX images)")
# The top's new blocks are holes of its file, so diff-rand-write compares
# with dm-linear writing into holes, as the alloc rows do; against a file
# written all over, ext4's own allocation is left out of the baseline.
print("diff-rand-write against dm-linear on a written file: "
      + ratios(values("diff-rand-write", "vdiff", "iops"),
               values("diff-rand-write", "lin", "iops")))
def count(kind, t, r):
    try:
        return int(open(os.path.join(d, f"flushes-{kind}-{t}-{r}")).read())
    except (OSError, ValueError):
        return None
print("device flushes per user flush on fsync-write, all rounds:")
for t, label in (("lin", "dm-linear"), ("vsync", "dm-vhdx"), ("nsync", "qemu-nbd")):
    syncs, parts = 0, []
    under = disk = 0
    for r in rounds:
        j = job("fsync-write", t, r)
        if not j:
            continue
        syncs += max(j.get("sync", {}).get("total_ios") or j["total_ios"], 1)
        u, k = count("under", t, r), count("disk", t, r)
        under = None if u is None or under is None else under + u
        disk = None if k is None or disk is None else disk + k
    if not syncs:
        continue
    if under is not None:
        parts.append(f"{under / syncs:.2f} at its loop device")
    if disk is not None:
        parts.append(f"{disk / syncs:.2f} at the disk under ext4")
    print(f"  {label:<9} {', '.join(parts)} ({syncs} fsyncs)")
for f in sorted(os.listdir(d)):
    if f.startswith("status-"):
        print(f"{f}: {open(os.path.join(d, f)).read().strip()}")
PY
}

# The images as the run left them, out of the ext4 store: qemu-img check
# for what QEMU can open, vhdxsetup check for the chain's top.
check_images() {
	local d=$WORK/after f qemu=(fixed qfixed) r
	mkdir -p "$d"
	for r in $(seq "$ROUNDS"); do
		qemu+=("dyn-$r" "sync-$r" "qdyn-$r" "qsync-$r")
	done
	for f in "${qemu[@]}" top mid base; do
		debugfs -R "dump /$f.vhdx $d/$f.vhdx" "$WORK/store.img" 2> /dev/null
	done
	for f in "${qemu[@]}"; do
		qemu-img check -q "$d/$f.vhdx" || return 1
	done
	"$TOP/tools/vhdxsetup" check "$d/top.vhdx" > /dev/null
}

# nbd.ko of the guest kernel, into --files: the guests of the tests do not
# load it, and the kernel cache is shared with them.
guest_nbd_module() {
	local env=$VHDX_CACHE/kernels/$KLINE.env KVER MODDIR ko
	[ -f "$env" ] || "$TOP/scripts/kernels.sh" > /dev/null
	# shellcheck disable=SC1090
	. "$env"
	ko=$(find "$MODDIR/../root/lib/modules/$KVER" -name 'nbd.ko*' | head -n 1)
	[ -n "$ko" ] || die "no nbd module in the $KLINE kernel"
	mkdir -p "$WORK/files"
	case $ko in
	*.xz) xz -dc "$ko" > "$WORK/files/nbd.ko" ;;
	*.zst) zstd -qdc "$ko" > "$WORK/files/nbd.ko" ;;
	*) cp "$ko" "$WORK/files/nbd.ko" ;;
	esac
}

# Whether KVM boots the guest kernel: some machines have a /dev/kvm (a
# nested or paravirtual one) on which a stock kernel dies at once.
kvm_boots() {	# VM-RUN
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	echo true > "$WORK/probe.sh"
	VM_RUN_ACCEL=kvm "$1" --kernel "$KLINE" --module none \
		--timeout 120 "$WORK/probe.sh" > "$WORK/kvm-probe.log" 2>&1
}

main() {
	local vmrun=$TOP/tests/guest/vm-run t=$SECONDS accel=tcg
	command -v fio > /dev/null || die "fio missing: scripts/deps.sh"
	if kvm_boots "$vmrun"; then
		accel=kvm
	elif [ -e /dev/kvm ]; then
		log "/dev/kvm did not boot the guest ($(grep -m 1 -a -i 'error' "$WORK/kvm-probe.log" || echo "see vm-run")): TCG"
	fi
	make -s -C "$TOP/tools" vhdxsetup
	make_disks
	guest_nbd_module
	write_guest_script
	log "fio in a $KLINE guest under $accel: $SIZE_MIB MiB, ${RUNTIME}s per run, $ROUNDS rounds"
	# As a loop device over a file turns zeroing into fallocate, so do
	# QEMU's disks with discard=unmap: the store's holes stay holes.
	VM_RUN_ACCEL=$accel VM_RUN_DRIVE_OPTS=discard=unmap "$vmrun" --kernel "$KLINE" \
		--timeout $((900 + 900 * ROUNDS)) --mem 1536 --files "$WORK/files" \
		--bin /usr/bin/fio --bin /usr/bin/qemu-nbd --bin /usr/sbin/losetup \
		"$WORK/guest.sh" "$WORK/res.img" "$WORK/store.img" > "$WORK/console.log" 2>&1 ||
		{ tail -n 30 "$WORK/console.log"; die "guest run failed"; }
	mkdir -p "$WORK/out"
	tar xf "$WORK/res.img" -C "$WORK/out" 2>/dev/null || true
	grep -h 'bench guest' "$WORK/console.log" || true
	echo "accelerator: $accel; $(nproc) host CPUs; $(uname -r) host kernel"
	report
	if check_images; then
		log "images after the run: clean (qemu-img check, vhdxsetup check)"
	else
		log "images after the run: NOT clean"
	fi
	log "took $((SECONDS - t)) s"
}

main
