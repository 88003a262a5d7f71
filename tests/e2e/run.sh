#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# dm-vhdx end-to-end tests of the read path, in a guest kernel under QEMU.
#
# Every test compares what the guest reads through the vhdx target, byte for
# byte, with an independent oracle computed on the host (qemu-img convert -O
# raw; libvhdi as a second opinion).  The guest copies the mapped device onto
# an output disk; each group of images shares one guest boot because a boot
# under TCG costs seconds.
#
# Usage: tests/e2e/run.sh [--kernel 6.1|6.12|debug|both] [--only GROUP[,GROUP...]]
#                         [--keep] [--list]
# Groups: host, read-qemu-images, libvhdi-oracle, ext4-readonly, dirty-log, damaged,
#         status-and-table, huge.  --kernel picks the kernels of read-qemu-images
#         (default both); the other guest groups run on 6.12 unless --kernel
#         names 6.1 only.
# Environment: VM_RUN (default tests/guest/vm-run), TMPDIR, PYTHON,
# E2E_MODULE_6_1 / E2E_MODULE_6_12 (a dm-vhdx.ko to use instead of
# build/<kver>/dm-vhdx.ko), E2E_NO_MODULE_CHECK=1 (boot without checking).
# Output: one "PASS name" / "FAIL name: reason" line per check, then
# "N passed, M failed" as the last line; the exit status is 1 if any failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VM_RUN=${VM_RUN:-$ROOT/tests/guest/vm-run}
PYTHON=${PYTHON:-python3}
MANGLE=("$PYTHON" "$HERE/vhdxmangle.py")
MiB=1048576

KERNEL=both
ONLY=""
KEEP=0
ALL_GROUPS="host read-qemu-images libvhdi-oracle ext4-readonly dirty-log damaged status-and-table huge"

usage() {
	sed -n '/^# Usage:/,/^# Output:/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) KERNEL=${2:?}; shift 2 ;;
	--kernel=*) KERNEL=${1#*=}; shift ;;
	--only) ONLY=${2:?}; shift 2 ;;
	--only=*) ONLY=${1#*=}; shift ;;
	--keep) KEEP=1; shift ;;
	--list) echo "$ALL_GROUPS"; exit 0 ;;
	-h|--help) usage ;;
	*) echo "unknown argument: $1" >&2; usage ;;
	esac
done
case $KERNEL in
6.1) MAIN_KERNELS="6.1"; OTHER_KERNEL=6.1 ;;
6.12) MAIN_KERNELS="6.12"; OTHER_KERNEL=6.12 ;;
both) MAIN_KERNELS="6.1 6.12"; OTHER_KERNEL=6.12 ;;
debug) MAIN_KERNELS="debug"; OTHER_KERNEL=debug ;;
*) echo "--kernel must be 6.1, 6.12, debug or both" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-e2e.XXXXXX")
cleanup() {
	if [ "$KEEP" = 1 ]; then
		echo "# kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() {
	echo "FAIL $1: $2"
	FAILED=$((FAILED + 1))
}
note() { echo "# $*"; }

want() {
	[ -z "$ONLY" ] && return 0
	case ",$ONLY," in *",$1,"*) return 0 ;; esac
	return 1
}

T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }

# ------------------------------------------------------------ host helpers

sha() { sha256sum "$1" | cut -d' ' -f1; }

q() { "$@" > "$WORK/last-cmd.log" 2>&1 || { cat "$WORK/last-cmd.log" >&2; return 1; }; }

mangle() { "${MANGLE[@]}" "$@"; }

vsize() { mangle info "$1" virtual_size; }

# qio IMG CMD...: run qemu-io commands on a vhdx image, fail loudly.
qio() {
	local img=$1 c args=()
	shift
	for c in "$@"; do args+=(-c "$c"); done
	q qemu-io -f vhdx "${args[@]}" "$img"
}

# expect_raw IMG RAW: the qemu-img oracle.
expect_raw() { q qemu-img convert -f vhdx -O raw "$1" "$2"; }

# cmp_region EXPECTED EXP_OFF ACTUAL ACT_OFF LEN -> empty on match, else
# a reason naming the first differing virtual offset.
cmp_region() {
	local exp=$1 eoff=$2 act=$3 aoff=$4 len=$5 out n off eb ab
	if out=$(cmp -i "$eoff:$aoff" -n "$len" "$exp" "$act" 2>&1); then
		return 0
	fi
	n=$(printf '%s\n' "$out" | sed -n 's/.*byte \([0-9]*\).*/\1/p' | head -1)
	if [ -z "$n" ]; then
		echo "cmp: $out"
		return 0
	fi
	case $out in *EOF*) echo "output ends at virtual offset $((eoff + n))"; return 0 ;; esac
	off=$((eoff + n - 1))
	eb=$(od -An -tx1 -j "$off" -N 1 "$exp" | tr -d ' ')
	ab=$(od -An -tx1 -j "$((aoff + n - 1))" -N 1 "$act" | tr -d ' ')
	printf 'first difference at virtual offset %d (0x%x): expected 0x%s, read 0x%s' \
		"$off" "$off" "$eb" "$ab"
}

# ------------------------------------------------------------ boot plans
#
# A plan is: disk 0 = results disk, disk 1 = output disk, then images.  The
# guest script is guest-lib.sh + the lines added with gs.

BOOT_DIR=""
BOOT_DISKS=()
OUT_MIB=0
LAST_DEV=""

devname() {
	local i=$1 l=abcdefghijklmnopqrstuvwxyz
	if [ "$i" -lt 26 ]; then
		echo "/dev/vd${l:$i:1}"
	else
		echo "/dev/vd${l:$((i / 26 - 1)):1}${l:$((i % 26)):1}"
	fi
}

plan_init() {
	BOOT_DIR=$WORK/$1
	mkdir -p "$BOOT_DIR/files"
	BOOT_DISKS=("$BOOT_DIR/res.img" "$BOOT_DIR/out.img")
	OUT_MIB=0
	{
		cat "$HERE/guest-lib.sh"
		echo
		echo 'e2e_setup'
		echo "OUT=$(devname 1)"
	} > "$BOOT_DIR/guest.sh"
}

gs() { printf '%s\n' "$*" >> "$BOOT_DIR/guest.sh"; }

# add_disk PATH [ro] -> LAST_DEV
add_disk() {
	local spec=$1
	[ "${2:-}" = ro ] && spec=$spec:ro
	LAST_DEV=$(devname ${#BOOT_DISKS[@]})
	BOOT_DISKS+=("$spec")
}

# slot BYTES -> SLOT (MiB offset on the output disk)
slot() {
	SLOT=$OUT_MIB
	OUT_MIB=$((OUT_MIB + ($1 + MiB - 1) / MiB + 1))
}

# boot KVER TAG: run the plan; sets BOOT_RC, BOOT_LOG, BOOT_RES, BOOT_ERR.
boot() {
	local kver=$1 tag=$2 t=$SECONDS ko
	BOOT_LOG=$BOOT_DIR/console-$tag.log
	BOOT_RES=$BOOT_DIR/res-$tag.txt
	BOOT_OUT=$BOOT_DIR/out-$tag.img
	BOOT_ERR=""
	BOOT_RC=0
	rm -f "$BOOT_DIR/res.img" "$BOOT_DIR/out.img"
	truncate -s $MiB "$BOOT_DIR/res.img"
	truncate -s $(((OUT_MIB + 1) * MiB)) "$BOOT_DIR/out.img"
	if [ ! -x "$VM_RUN" ]; then
		BOOT_ERR="VM runner $VM_RUN missing"
		: > "$BOOT_RES"
		return 0
	fi
	local modarg=()
	case $kver in
	6.1) ko=${E2E_MODULE_6_1:-$(ls "$ROOT"/build/6.1.0-*/dm-vhdx.ko 2>/dev/null | head -1 || true)} ;;
	debug) ko=$(ls "$ROOT"/build/debug-*/dm-vhdx.ko 2>/dev/null | head -1 || true) ;;
	*) ko=${E2E_MODULE_6_12:-$(ls "$ROOT"/build/6.12.*/dm-vhdx.ko 2>/dev/null | head -1 || true)} ;;
	esac
	case $kver in
	6.1) [ -n "${E2E_MODULE_6_1:-}" ] && modarg=(--module "$E2E_MODULE_6_1") ;;
	debug) ;;
	*) [ -n "${E2E_MODULE_6_12:-}" ] && modarg=(--module "$E2E_MODULE_6_12") ;;
	esac
	[ -n "${E2E_NO_MODULE_CHECK:-}" ] && ko=none
	if [ -z "$ko" ]; then
		BOOT_ERR="no module built for $kver (make build-all)"
		: > "$BOOT_RES"
		return 0
	fi
	gs 'e2e_finish'
	# GNU dd: busybox's iflag=direct does not open with O_DIRECT.
	"$VM_RUN" --kernel "$kver" "${modarg[@]}" --files "$BOOT_DIR/files" --timeout 900 \
		--mem "${BOOT_MEM:-1024}" --bin /usr/bin/dd \
		"$BOOT_DIR/guest.sh" "${BOOT_DISKS[@]}" > "$BOOT_LOG" 2>&1 || BOOT_RC=$?
	# The script may be booted again (second kernel): drop the finish line.
	sed -i '$d' "$BOOT_DIR/guest.sh"
	tr -d '\0' < "$BOOT_DIR/res.img" > "$BOOT_RES"
	mv "$BOOT_DIR/out.img" "$BOOT_OUT"
	note "boot $tag on $kver: rc=$BOOT_RC, $((SECONDS - t)) s"
	if [ "$BOOT_RC" != 0 ]; then
		BOOT_ERR="guest run failed (vm-run rc=$BOOT_RC): $({ grep -m4 -E 'BUG|Oops|WARNING|RIP:|panic|Call Trace|timed out|vm-run:' "$BOOT_LOG" || tail -n 3 "$BOOT_LOG"; } | tr '\n' '|' | cut -c1-400)"
		note "console of the failed boot ($BOOT_LOG), last lines:"
		tail -n 40 "$BOOT_LOG" | sed 's/^/#   /'
	elif ! grep -q '^all finished 1' "$BOOT_RES"; then
		BOOT_ERR="guest script did not finish (no results); see console"
		tail -n 40 "$BOOT_LOG" | sed 's/^/#   /'
	elif [ -z "$(rget all targets)" ]; then
		BOOT_ERR="the vhdx target is not registered in the guest (dmsetup targets); module not loaded?"
	fi
}

# Result lookup in the current boot's results.
rget() { awk -v i="$1" -v k="$2" '$1 == i && $2 == k { $1 = ""; $2 = ""; sub(/^  /, ""); print; exit }' "$BOOT_RES"; }
rall() { awk -v i="$1" -v k="$2" '$1 == i && $2 == k { $1 = ""; $2 = ""; sub(/^  /, ""); print }' "$BOOT_RES"; }
dmesg_of() { rall "$1" dmesg | tr '\n' '|' | cut -c1-500; }

# check_opened ITEM EXP_SIZE -> empty or reason
check_opened() {
	local item=$1 size=$2 rc got
	rc=$(rget "$item" create)
	if [ "$rc" != 0 ]; then
		echo "table load failed (rc=${rc:-none}): $(rall "$item" createout | tr '\n' ' ') dmesg: $(dmesg_of "$item")"
		return 0
	fi
	got=$(rget "$item" size)
	if [ "$got" != "$size" ]; then
		echo "mapped device is $got bytes, expected $size"
		return 0
	fi
}

# check_copy ITEM EXPECTED_RAW SLOT [WINDOW_OFF_MIB WINDOW_MIB...] -> reason
check_copy() {
	local item=$1 exp=$2 sl=$3 size rc r
	shift 3
	rc=$(rget "$item" copy)
	if [ "$rc" != 0 ]; then
		echo "guest copy failed (rc=${rc:-none}): $(rall "$item" copyout | tr '\n' ' ') dmesg: $(dmesg_of "$item")"
		return 0
	fi
	size=$(stat -c %s "$exp")
	if [ $# -eq 0 ]; then
		cmp_region "$exp" 0 "$BOOT_OUT" $((sl * MiB)) "$size"
		return 0
	fi
	while [ $# -gt 0 ]; do
		local woff=$(($1 * MiB)) wlen=$(($2 * MiB))
		[ $((woff + wlen)) -gt "$size" ] && wlen=$((size - woff))
		r=$(cmp_region "$exp" "$woff" "$BOOT_OUT" $((sl * MiB)) "$wlen")
		if [ -n "$r" ]; then
			echo "$r"
			return 0
		fi
		sl=$((sl + $2 + 1))	# as slot() allocates: one spare MiB
		shift 2
	done
}

# Emit guest lines copying ITEM (whole, or windows "OFF_MIB LEN_MIB ...")
# to consecutive output slots; sets SLOT to the first one.
gs_copy() {
	local item=$1 size=$2 first
	shift 2
	if [ $# -eq 0 ]; then
		slot "$size"
		gs "copyout $item \$OUT $SLOT"
		return 0
	fi
	first=$OUT_MIB
	while [ $# -gt 0 ]; do
		slot $(($2 * MiB))
		gs "copyout $item \$OUT $SLOT $1 $2"
		shift 2
	done
	SLOT=$first
}

has_word() { printf ' %s ' "$1" | tr '\t/=,:()' '       ' | grep -qiw -- "$2"; }

# ------------------------------------------------------------ group: host

group_host() {
	local d=$WORK/host img
	mkdir -p "$d"
	img=$d/crc.vhdx
	q qemu-img create -f vhdx -o block_size=$MiB "$img" 8M
	qio "$img" 'write -P 0x5a 1M 64k'
	if out=$(mangle selftest "$img" 2>&1); then
		pass "host/vhdxmangle-crc32c"
	else
		fail "host/vhdxmangle-crc32c" "$(echo "$out" | tr '\n' ' ')"
	fi
	if [ "$(mangle info "$img" bat_offset)" = $((2 * MiB)) ] &&
	   [ "$(mangle info "$img" allocated_blocks)" = 1 ] &&
	   [ "$(mangle info "$img" block_size)" = $MiB ]; then
		pass "host/vhdxmangle-parse"
	else
		fail "host/vhdxmangle-parse" "unexpected BAT offset/allocation/block size"
	fi
}

# ------------------------------------------------------------ group: read-qemu-images

# Write patterns at scattered offsets: block starts, straddled block
# boundaries, mid-block, a multi-block run, the last sector; some blocks
# stay unallocated.  Issued in reverse so the file layout is not in
# virtual order.
q_writes() {
	local img=$1 bs=$2 size=$3 w=() p=16 i
	w+=("write -P 0x$((p + 1)) 0 4096")
	[ "$size" -gt $((bs + 8192)) ] && w+=("write -P 0x$((p + 2)) $((bs - 3072)) 8192")
	[ "$size" -gt $((3 * bs)) ] && w+=("write -P 0x$((p + 3)) $((2 * bs + bs / 2)) 65536")
	[ "$size" -gt $((6 * bs)) ] && w+=("write -P 0x$((p + 4)) $((4 * bs - 512)) $((bs + 1024))")
	[ "$size" -gt $((3 * MiB)) ] && [ "$size" -lt $((2 * bs)) ] &&
		w+=("write -P 0x$((p + 5)) $((size / 2 / 512 * 512)) 1048576")
	w+=("write -P 0x$((p + 6)) $((size - 512)) 512")
	w+=("write -P 0x$((p + 7)) $((size - 3 * 4096)) 4096")
	for ((i = ${#w[@]} - 1; i >= 0; i--)); do
		qio "$img" "${w[$i]}"
	done
}

Q_ITEMS=()
declare -A Q_SIZE Q_WIN Q_MODE Q_SLOT Q_SHA Q_IMG Q_SS Q_RAWDONE Q_DIRECT Q_DSLOT

# q_image NAME "create opts" SIZE ro|rw [WINDOWS...]
q_image() {
	local name=$1 opts=$2 size=$3 mode=$4 img raw
	shift 4
	img=$BOOT_DIR/$name.vhdx
	raw=$BOOT_DIR/$name.raw
	q qemu-img create -f vhdx -o "$opts" "$img" "$size"
	size=$(vsize "$img")
	if [ $# -eq 0 ]; then
		q_writes "$img" "$(mangle info "$img" block_size)" "$size"
	fi
	Q_ITEMS+=("$name")
	Q_SIZE[$name]=$size
	Q_WIN[$name]="$*"
	Q_MODE[$name]=$mode
	Q_IMG[$name]=$img
	Q_SS[$name]=512
}

group_read_qemu_images() {
	local n img raw k r sec G=$((1024 * MiB))
	plan_init read-qemu-images
	q_image dyn-bs1M-log1M-37M+512 subformat=dynamic,block_size=1M,log_size=1M 38797824 rw
	q_image dyn-bs2M-log4M-25M+1536 subformat=dynamic,block_size=2M,log_size=4M 26215936 rw
	q_image dyn-bs8M-41M subformat=dynamic,block_size=8M 42991616 rw
	q_image dyn-bs32M-log4M-70M+512 subformat=dynamic,block_size=32M,log_size=4M 73400832 rw
	q_image dyn-bs256M-37M+512 subformat=dynamic,block_size=256M 38797824 ro
	q_image dyn-bs2M-notpresent-12M subformat=dynamic,block_size=2M,block_state_zero=off 12582912 ro
	q_image fixed-bs1M-zerostate-20M+512 subformat=fixed,block_size=1M 20972032 ro
	q_image fixed-bs8M-30M+3584 subformat=fixed,block_size=8M,block_state_zero=off 31460864 ro
	q_image fixed-bs256M-log4M-33M subformat=fixed,block_size=256M,log_size=4M,block_state_zero=off 34603008 ro
	q_image fixed-bs2M-16M subformat=fixed,block_size=2M,block_state_zero=off 16777216 ro
	# Past 4 GiB the BAT interleaves sector-bitmap entries (chunk ratio):
	# straddle the chunk boundaries and read windows around them.
	n=dyn-bs1M-8G+2M+512
	q_image $n subformat=dynamic,block_size=1M $((8 * G + 2 * MiB + 512)) ro 0 2 $((4096 - 2)) 5 $((8192 - 2)) 5
	img=${Q_IMG[$n]}
	qio "$img" 'write -P 0x71 0 4096' "write -P 0x72 $((4 * G - 3072)) 8192" \
		"write -P 0x73 $((4 * G + MiB + 512)) 4096" "write -P 0x74 $((8 * G - 2048)) 4096" \
		"write -P 0x75 $((8 * G + MiB)) 4096" "write -P 0x76 $((8 * G + 2 * MiB)) 512"
	n=dyn-bs32M-4G+64M
	q_image $n subformat=dynamic,block_size=32M $((4 * G + 64 * MiB)) ro 0 1 $((4096 - 33)) 97
	img=${Q_IMG[$n]}
	qio "$img" "write -P 0x81 $((4 * G + 40 * MiB)) 4096" "write -P 0x82 $((4 * G - 3072)) 8192" \
		"write -P 0x83 $((4 * G - 33 * MiB)) 4096" "write -P 0x84 $((4 * G + 64 * MiB - 512)) 512" \
		'write -P 0x85 512 1024'

	# 4096-byte logical sectors: QEMU cannot make them, so rewrite the
	# sector size items of a QEMU image.  With no sector bitmap entry in
	# the BAT (under 32 GiB) the layout and content stay the same; the
	# expected content is QEMU's reading of the image before the change.
	n=dyn-bs2M-4Ksector-24M
	q_image $n subformat=dynamic,block_size=2M 25165824 ro
	expect_raw "${Q_IMG[$n]}" "$BOOT_DIR/$n.raw"
	mangle set-sector-size "${Q_IMG[$n]}" 4096 4096
	Q_SS[$n]=4096
	Q_RAWDONE[$n]=1
	# O_DIRECT reads of odd sizes, straddling block boundaries.
	Q_DIRECT[$n]=12288
	Q_DIRECT[dyn-bs1M-log1M-37M+512]=7680
	Q_DIRECT[fixed-bs1M-zerostate-20M+512]=3584

	for n in "${Q_ITEMS[@]}"; do
		img=${Q_IMG[$n]}
		[ -n "${Q_RAWDONE[$n]:-}" ] || expect_raw "$img" "$BOOT_DIR/$n.raw"
		add_disk "$img" "${Q_MODE[$n]}"
		Q_SHA[$n]=$(sha "$img")
		sec=$((Q_SIZE[$n] / 512))
		gs "if map $n $LAST_DEV ${Q_MODE[$n]} $sec; then"
		# shellcheck disable=SC2086
		gs_copy "$n" "${Q_SIZE[$n]}" ${Q_WIN[$n]}
		Q_SLOT[$n]=$SLOT
		if [ -n "${Q_DIRECT[$n]:-}" ]; then
			slot "${Q_SIZE[$n]}"
			Q_DSLOT[$n]=$SLOT
			gs "  copyout_direct $n \$OUT $SLOT ${Q_DIRECT[$n]}"
		fi
		gs "  unmap $n"
		gs "fi"
	done
	for k in $MAIN_KERNELS; do
		boot "$k" "$k"
		for n in "${Q_ITEMS[@]}"; do
			local t="read-qemu-images[$k]/$n"
			if [ -n "$BOOT_ERR" ]; then fail "$t" "$BOOT_ERR"; continue; fi
			r=$(check_opened "$n" "${Q_SIZE[$n]}")
			[ -z "$r" ] && [ "$(rget "$n" ss)" != "${Q_SS[$n]}" ] &&
				r="logical block size $(rget "$n" ss), expected ${Q_SS[$n]}"
			# shellcheck disable=SC2086
			[ -z "$r" ] && r=$(check_copy "$n" "$BOOT_DIR/$n.raw" "${Q_SLOT[$n]}" ${Q_WIN[$n]})
			if [ -z "$r" ] && [ "${Q_MODE[$n]}" = ro ] && [ "$(sha "${Q_IMG[$n]}")" != "${Q_SHA[$n]}" ]; then
				r="image file changed by a read-only mapping"
			fi
			if [ -z "$r" ] && [ "${Q_MODE[$n]}" = rw ] &&
			   ! qemu-img check -q "${Q_IMG[$n]}" > "$WORK/chk.log" 2>&1; then
				r="qemu-img check fails after a read-write mapping: $(tr '\n' ' ' < "$WORK/chk.log")"
			fi
			if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
			[ -n "${Q_DIRECT[$n]:-}" ] || continue
			t="read-qemu-images[$k]/$n/direct-reads-of-${Q_DIRECT[$n]}"
			r=$(check_opened "$n" "${Q_SIZE[$n]}")
			if [ -z "$r" ] && [ "$(rget "$n" dcopy)" != 0 ]; then
				r="O_DIRECT copy failed: $(rall "$n" dcopyout | tr '\n' ' ') dmesg: $(dmesg_of "$n")"
			fi
			[ -z "$r" ] && r=$(cmp_region "$BOOT_DIR/$n.raw" 0 "$BOOT_OUT" $((Q_DSLOT[$n] * MiB)) "${Q_SIZE[$n]}")
			if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
		done
		[ "$KEEP" = 1 ] || rm -f "$BOOT_OUT"
	done
}

# libvhdi as a second oracle: it must agree with qemu-img on every image.
group_libvhdi_oracle() {
	local n py=/usr/bin/python3 r
	"$py" -c 'import pyvhdi' 2> /dev/null || py=$PYTHON
	if ! "$py" -c 'import pyvhdi' 2> /dev/null; then
		fail "libvhdi-oracle" "pyvhdi not importable (install python3-libvhdi)"
		return 0
	fi
	for n in "${Q_ITEMS[@]}"; do
		# shellcheck disable=SC2086
		r=$("$py" - "${Q_IMG[$n]}" "$BOOT_DIR/$n.raw" ${Q_WIN[$n]} <<'EOF' 2>&1 || true
import sys, pyvhdi
img, raw = sys.argv[1], sys.argv[2]
win = [int(x) * 1048576 for x in sys.argv[3:]]
f = pyvhdi.file()
f.open(img)
size = f.get_media_size()
rf = open(raw, "rb")
rf.seek(0, 2)
if rf.tell() != size:
    print("libvhdi media size %d, qemu raw %d" % (size, rf.tell()))
    sys.exit(0)
wins = list(zip(win[0::2], win[1::2])) or [(0, size)]
for off, ln in wins:
    ln = min(ln, size - off)
    pos = off
    while pos < off + ln:
        n = min(8 << 20, off + ln - pos)
        a = f.read_buffer_at_offset(n, pos)
        rf.seek(pos)
        b = rf.read(n)
        if a != b:
            i = next(i for i in range(min(len(a), len(b))) if a[i] != b[i]) if len(a) == len(b) else min(len(a), len(b))
            print("libvhdi and qemu-img differ at offset %d" % (pos + i))
            sys.exit(0)
        pos += n
EOF
)
		if [ -z "$r" ]; then pass "libvhdi-oracle/$n"; else fail "libvhdi-oracle/$n" "$r"; fi
	done
}

# ------------------------------------------------------------ group: ext4-readonly

group_ext4_readonly() {
	local d src raw n k=$OTHER_KERNEL r i size t mnt
	declare -A ESHA ESLOT
	plan_init ext4-readonly
	d=$BOOT_DIR
	src=$d/tree
	mkdir -p "$src/sub/deeper"
	head -c 1000 /dev/urandom > "$src/small.bin"
	head -c 131072 /dev/urandom > "$src/sub/128k.bin"
	head -c 3500000 /dev/urandom > "$src/sub/deeper/3.3M.bin"
	head -c 9437184 /dev/urandom > "$src/9M-over-8M-block.bin"
	: > "$src/empty"
	printf 'hello from the host\n' > "$src/hello.txt"
	for i in 1 2 3 4 5; do head -c $((i * 7777)) /dev/urandom > "$src/sub/f$i"; done
	raw=$d/fs.raw
	truncate -s 48M "$raw"
	q mkfs.ext4 -q -F -b 4096 -d "$src" "$raw"
	(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$d/files/ext4.sha256"
	wc -l < "$d/files/ext4.sha256" | tr -d ' ' > "$d/files/ext4.count"
	size=$(stat -c %s "$raw")
	gs 'mkdir -p /mnt/e'
	for n in ext4-dynamic ext4-fixed ext4-dynamic-bs1M; do
		case $n in
		ext4-dynamic) q qemu-img convert -O vhdx "$raw" "$d/$n.vhdx" ;;
		ext4-fixed) q qemu-img convert -O vhdx -o subformat=fixed "$raw" "$d/$n.vhdx" ;;
		ext4-dynamic-bs1M) q qemu-img convert -O vhdx -o block_size=1M "$raw" "$d/$n.vhdx" ;;
		esac
		add_disk "$d/$n.vhdx"
		ESHA[$n]=$(sha "$d/$n.vhdx")
		mnt=/mnt/e/$n
		gs "if map $n $LAST_DEV ro $((size / 512)); then"
		gs_copy "$n" "$size"
		ESLOT[$n]=$SLOT
		gs "  mkdir -p $mnt"
		gs "  if mount -t ext4 -o ro,noload /dev/mapper/$n $mnt > /tmp/e2e-out 2>&1; then"
		gs "    res $n mount 0"
		gs "    res $n sumcheck \$(cd $mnt && sha256sum -c /files/ext4.sha256 > /tmp/e2e-sum 2>&1; echo \$?)"
		gs "    grep -v ': OK\$' /tmp/e2e-sum | while read -r l; do res $n sumout \"\$l\"; done"
		gs "    res $n count \$(find $mnt -type f | wc -l)"
		gs "    umount $mnt"
		gs "  else res $n mount 1; while read -r l; do res $n mountout \"\$l\"; done < /tmp/e2e-out; e2e_dmesg $n; fi"
		gs "  unmap $n"
		gs "fi"
	done
	boot "$k" "$k"
	for n in ext4-dynamic ext4-fixed ext4-dynamic-bs1M; do
		t="ext4-readonly[$k]/$n"
		if [ -n "$BOOT_ERR" ]; then fail "$t" "$BOOT_ERR"; continue; fi
		r=$(check_opened "$n" "$size")
		[ -z "$r" ] && [ "$(rget $n mount)" != 0 ] &&
			r="mount -o ro,noload failed: $(rall $n mountout | tr '\n' ' ') $(dmesg_of $n)"
		[ -z "$r" ] && [ "$(rget $n sumcheck)" != 0 ] &&
			r="sha256sum -c failed: $(rall $n sumout | tr '\n' ' ' | cut -c1-300)"
		[ -z "$r" ] && [ "$(rget $n count)" != "$(cat "$d/files/ext4.count")" ] &&
			r="guest sees $(rget $n count) files, expected $(cat "$d/files/ext4.count")"
		[ -z "$r" ] && r=$(check_copy "$n" "$raw" "${ESLOT[$n]}")
		[ -z "$r" ] && [ "$(sha "$d/$n.vhdx")" != "${ESHA[$n]}" ] &&
			r="image file changed by a read-only mapping"
		if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
	done
	[ "$KEEP" = 1 ] || rm -f "$BOOT_OUT"
}

# ------------------------------------------------------------ group: dirty-log

D_ITEMS=()
declare -A D_EXP D_SIZE D_WIN D_MODE D_SHA D_SLOT D_IMG D_ATTACH

# mk_dirty NAME "create opts" SIZE BLOCK "clean writes;..." "dirty write"
#
# QEMU logs each BAT update and then writes the BAT sector in place; a
# blkdebug rule failing that in-place write leaves the log un-replayed.  The
# rule must hit only the replay write: QEMU first reads the BAT sector to
# merge the 8-byte update, so only entries starting a 4 KiB BAT sector (BAT
# index multiple of 512) can be targeted.
mk_dirty() {
	local name=$1 opts=$2 size=$3 block=$4 clean=$5 dirty=$6 img bat idx cfg fixed c
	local err=$BOOT_DIR/$name.err
	img=$BOOT_DIR/$name.vhdx
	q qemu-img create -f vhdx -o "$opts" "$img" "$size" 2> "$err" || return 1
	IFS=';' read -ra c <<< "$clean"
	if [ ${#c[@]} -gt 0 ]; then qio "$img" "${c[@]}" 2> "$err" || return 1; fi
	bat=$(mangle info "$img" bat_offset) || return 1
	idx=$((block + block / $(mangle info "$img" chunk_ratio)))
	cfg=$BOOT_DIR/$name.blkdebug
	printf '[inject-error]\nevent = "pwritev"\nsector = "%d"\nerrno = "5"\nonce = "on"\n' \
		$(((bat + 8 * idx) / 512)) > "$cfg"
	if qemu-io -c "$dirty" "blkdebug:$cfg:$img" > "$err" 2>&1; then
		echo "qemu-io did not fail: $(cat "$err")" > "$err"
		return 1
	fi
	if qemu-img info "$img" > "$err" 2>&1 || ! grep -q 'needs to be replayed' "$err"; then
		echo "recipe did not leave a dirty log: $(cat "$err")" > "$err"
		return 1
	fi
	fixed=$BOOT_DIR/$name.repaired.vhdx
	cp --sparse=always "$img" "$fixed"
	qemu-img check -r all "$fixed" > /dev/null 2>&1 || true
	if ! qemu-io -f vhdx -c "$(echo "$dirty" | sed 's/^write /read /')" "$fixed" > "$err" 2>&1 ||
	   grep -q 'Pattern verification failed' "$err"; then
		echo "repaired image lacks the logged write: $(cat "$err")" > "$err"
		return 1
	fi
	expect_raw "$fixed" "$BOOT_DIR/$name.raw" 2> "$err" || return 1
	rm -f "$fixed"
	D_EXP[$name]=$BOOT_DIR/$name.raw
	D_SIZE[$name]=$(stat -c %s "$BOOT_DIR/$name.raw")
	D_IMG[$name]=$img
}

group_dirty_log() {
	local n k=$OTHER_KERNEL t r st err
	plan_init dirty-log
	# name opts size block clean dirty mode attach windows
	while IFS='|' read -r n opts size block clean dirty mode attach win; do
		[ -z "$n" ] && continue
		if mk_dirty "$n" "$opts" "$size" "$block" "$clean" "$dirty"; then
			D_ITEMS+=("$n")
		else
			fail "dirty-log[$k]/$n" "setup: $(tr '\n' ' ' < "$BOOT_DIR/$n.err")"
			continue
		fi
		D_MODE[$n]=$mode
		D_WIN[$n]=$win
		D_ATTACH[$n]=$attach
		D_SHA[$n]=$(sha "${D_IMG[$n]}")
	done <<-EOF
	ro-disk-ro-map-bs2M-log4M|block_size=2M,log_size=4M|40M|0|write -P 0x21 5M 3M;write -P 0x22 40959k 512|write -P 0xab 4096 1M|ro|ro|
	rw-disk-ro-map-bs1M|block_size=1M|24M|0|write -P 0x31 3M 1k;write -P 0x32 17M 2M|write -P 0xcd 512 100k|ro|rw|
	rw-disk-ro-map-bat-sector2-520M|block_size=1M|520M|512|write -P 0x41 1M 4k;write -P 0x42 519M 1M|write -P 0xef 512M 64k|ro|rw|0 4 510 10
	rw-map-bs1M|block_size=1M|32M|0|write -P 0x51 7M 2M;write -P 0x52 31M 1M|write -P 0x5a 0 1M|rw|rw|
	rw-map-default-64M|log_size=4M|64M|0|write -P 0x61 20M 1M|write -P 0x6b 1536 8k|rw|rw|
	EOF
	for n in "${D_ITEMS[@]}"; do
		add_disk "${D_IMG[$n]}" "${D_ATTACH[$n]}"
		gs "if map $n $LAST_DEV ${D_MODE[$n]} $((D_SIZE[$n] / 512)); then"
		# shellcheck disable=SC2086
		gs_copy "$n" "${D_SIZE[$n]}" ${D_WIN[$n]}
		D_SLOT[$n]=$SLOT
		gs "  unmap $n"
		gs "fi"
	done
	[ ${#D_ITEMS[@]} -eq 0 ] && return 0
	boot "$k" "$k"
	for n in "${D_ITEMS[@]}"; do
		t="dirty-log[$k]/$n"
		if [ -n "$BOOT_ERR" ]; then fail "$t" "$BOOT_ERR"; continue; fi
		r=$(check_opened "$n" "${D_SIZE[$n]}")
		# shellcheck disable=SC2086
		[ -z "$r" ] && r=$(check_copy "$n" "${D_EXP[$n]}" "${D_SLOT[$n]}" ${D_WIN[$n]})
		st=$(rget "$n" status)
		if [ -z "$r" ] && [ "${D_MODE[$n]}" = ro ]; then
			has_word "$st" replayed-in-memory || r="status does not say replayed-in-memory: '$st'"
			[ -z "$r" ] && ! has_word "$st" ro && r="status does not say ro: '$st'"
			[ -z "$r" ] && [ "$(sha "${D_IMG[$n]}")" != "${D_SHA[$n]}" ] &&
				r="image file changed by a read-only mapping (attached ${D_ATTACH[$n]})"
		fi
		if [ -z "$r" ] && [ "${D_MODE[$n]}" = rw ]; then
			has_word "$st" replayed || r="status does not say replayed: '$st'"
			[ -z "$r" ] && has_word "$st" replayed-in-memory && r="rw mapping replayed only in memory: '$st'"
			[ -z "$r" ] && ! has_word "$st" rw && r="status does not say rw: '$st'"
			if [ -z "$r" ] && ! qemu-img check "${D_IMG[$n]}" > "$WORK/chk.log" 2>&1; then
				r="qemu-img check after replay: $(tr '\n' ' ' < "$WORK/chk.log")"
			fi
			if [ -z "$r" ] && ! qemu-img info "${D_IMG[$n]}" > "$WORK/chk.log" 2>&1; then
				r="qemu-img info after replay: $(tr '\n' ' ' < "$WORK/chk.log")"
			fi
			if [ -z "$r" ]; then
				expect_raw "${D_IMG[$n]}" "$BOOT_DIR/$n.after.raw"
				r=$(cmp_region "${D_EXP[$n]}" 0 "$BOOT_DIR/$n.after.raw" 0 "${D_SIZE[$n]}")
				[ -n "$r" ] && r="qemu-img reads the replayed file differently: $r"
				rm -f "$BOOT_DIR/$n.after.raw"
			fi
		fi
		if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
	done
	[ "$KEEP" = 1 ] || rm -f "$BOOT_OUT"
}

# ------------------------------------------------------------ group: damaged

group_damaged() {
	local d base raw size sec k=$OTHER_KERNEL n t r how dm
	plan_init damaged
	d=$BOOT_DIR
	base=$d/base.vhdx
	q qemu-img create -f vhdx -o block_size=1M "$base" 24M
	qio "$base" 'write -P 0x91 0 8k' "write -P 0x92 $((2 * MiB + MiB - 4096)) 8192" \
		"write -P 0x93 $((9 * MiB)) 1M" "write -P 0x94 $((20 * MiB + 512)) 4096" \
		"write -P 0x95 $((24 * MiB - 512)) 512"
	raw=$d/base.raw
	expect_raw "$base" "$raw"
	size=$(stat -c %s "$raw")
	sec=$((size / 512))
	declare -A EXPECT KEY SLOTS
	# name | expect (open/refuse) | keyword regex for the refusal | mangling
	while IFS='|' read -r n how kw cmd; do
		[ -z "$n" ] && continue
		cp "$base" "$d/$n.vhdx"
		if ! (set -e; eval "$cmd") > "$d/$n.mangle" 2>&1; then
			fail "damaged[$k]/$n" "setup: $(cat "$d/$n.mangle")"
			continue
		fi
		EXPECT[$n]=$how
		KEY[$n]=${kw//,/|}
		add_disk "$d/$n.vhdx" ro
		gs "if map $n $LAST_DEV ro $sec; then"
		gs_copy "$n" "$size"
		SLOTS[$n]=$SLOT
		gs "  unmap $n"
		gs "fi"
	done <<-EOF
	header1-bad-crc|open||mangle header-flip "\$d/\$n.vhdx" 1
	header2-bad-crc|open||mangle header-flip "\$d/\$n.vhdx" 2
	both-headers-bad-crc|refuse|header|mangle header-flip "\$d/\$n.vhdx" 1; mangle header-flip "\$d/\$n.vhdx" 2
	both-headers-version2|refuse|header|mangle header-set "\$d/\$n.vhdx" 1 version 2; mangle header-set "\$d/\$n.vhdx" 2 version 2
	region-table1-bad-crc|open||mangle region-flip "\$d/\$n.vhdx" 1
	both-region-tables-bad-crc|refuse|region|mangle region-flip "\$d/\$n.vhdx" 1; mangle region-flip "\$d/\$n.vhdx" 2
	region-unknown-required|refuse|region|mangle region-add "\$d/\$n.vhdx" 01234567-89ab-cdef-0123-456789abcdef 0x500000 0x100000 1
	region-bat-misaligned|refuse|region,BAT|mangle region-set "\$d/\$n.vhdx" bat file_offset 0x201000
	headers-same-sequence|refuse|header|mangle header-set "\$d/\$n.vhdx" 1 sequence "\$(mangle info "\$d/\$n.vhdx" headers.1.sequence)"
	header-log-beyond-device|refuse|header,log|mangle header-set "\$d/\$n.vhdx" 1 log_offset 0x40000000; mangle header-set "\$d/\$n.vhdx" 2 log_offset 0x40000000
	log-guid-without-entries|refuse|log|mangle header-set "\$d/\$n.vhdx" 1 log_guid 5d2b8d7e-1111-4222-8333-944455556666; mangle header-set "\$d/\$n.vhdx" 2 log_guid 5d2b8d7e-1111-4222-8333-944455556666
	metadata-block-size-3M|refuse|metadata,block size|mangle set-block-size "\$d/\$n.vhdx" 0x300000
	bat-reserved-state-4|refuse|bat,state|mangle bat-set "\$d/\$n.vhdx" 7 4 --payload
	metadata-signature|refuse|metadata|mangle metadata-sig "\$d/\$n.vhdx"
	bat-beyond-device-end|refuse|bat|mangle bat-beyond-end "\$d/\$n.vhdx"
	bat-duplicate-offset|refuse||mangle bat-dup "\$d/\$n.vhdx"
	bat-overlaps-metadata|refuse||mangle bat-overlap "\$d/\$n.vhdx" metadata --block 5
	file-identifier-signature|refuse|signature,identifier,vhdxfile,file type|mangle flip "\$d/\$n.vhdx" 3
	EOF
	# PARTIALLY_PRESENT is only valid with a parent: reads of that block
	# fail, the other blocks still read.
	cp "$base" "$d/partial.vhdx"
	mangle bat-set "$d/partial.vhdx" 9 "$(($(mangle bat-get "$d/partial.vhdx" 9 --payload) | 7))" --payload
	add_disk "$d/partial.vhdx" ro
	gs "if map partial $LAST_DEV ro $sec; then"
	gs "  dd if=/dev/mapper/partial of=/dev/null bs=1048576 skip=9 count=1 > /dev/null 2>&1; res partial read9 \$?"
	gs "  dd if=/dev/mapper/partial of=/dev/null bs=1048576 count=1 > /dev/null 2>&1; res partial read0 \$?"
	gs "  e2e_dmesg partial"
	gs "  unmap partial"
	gs "fi"
	# Table-level errors, on an intact copy.
	add_disk "$base" ro
	local intact=$LAST_DEV
	gs "map len-plus-one $intact ro $((sec + 1)) && unmap len-plus-one"
	gs "map len-minus-8 $intact ro $((sec - 8)) && unmap len-minus-8"
	gs "map unknown-feature $intact ro $sec frobnicate_feature && unmap unknown-feature"
	local base_sha
	base_sha=$(sha "$base")
	boot "$k" "$k"
	for n in $(printf '%s\n' "${!EXPECT[@]}" | sort); do
		t="damaged[$k]/$n"
		if [ -n "$BOOT_ERR" ]; then fail "$t" "$BOOT_ERR"; continue; fi
		dm=$(dmesg_of "$n")
		r=""
		if [ "${EXPECT[$n]}" = open ]; then
			r=$(check_opened "$n" "$size")
			[ -z "$r" ] && r=$(check_copy "$n" "$raw" "${SLOTS[$n]}")
		else
			if [ "$(rget "$n" create)" = 0 ]; then
				r="table load succeeded on a damaged image (status: $(rget "$n" status))"
			elif ! printf '%s' "$dm" | grep -qi 'vhdx'; then
				r="refused, but no vhdx message in dmesg: '$dm'"
			elif [ -n "${KEY[$n]}" ] && ! printf '%s' "$dm" | grep -qiE "${KEY[$n]}"; then
				r="refused, but the message does not mention '${KEY[$n]}': '$dm'"
			fi
		fi
		if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
	done
	t="damaged[$k]/bat-partially-present-reads-eio"
	if [ -n "$BOOT_ERR" ]; then
		fail "$t" "$BOOT_ERR"
	elif [ "$(rget partial create)" != 0 ]; then
		pass "$t"
		note "bat-partially-present: refused at load: $(dmesg_of partial)"
	elif [ "$(rget partial read9)" = 0 ]; then
		fail "$t" "reading a PARTIALLY_PRESENT block of a dynamic image succeeded"
	elif [ "$(rget partial read0)" != 0 ]; then
		fail "$t" "reading an intact block failed too"
	else
		pass "$t"
	fi
	for n in len-plus-one len-minus-8 unknown-feature; do
		t="damaged[$k]/$n"
		if [ -n "$BOOT_ERR" ]; then fail "$t" "$BOOT_ERR"; continue; fi
		dm=$(dmesg_of "$n")
		r=""
		if [ "$(rget "$n" create)" = 0 ]; then
			r="table load succeeded"
		elif [ $n = unknown-feature ]; then
			printf '%s' "$dm" | grep -q frobnicate_feature ||
				r="refused, but the message does not name the argument: '$dm'"
		else
			printf '%s' "$dm" | grep -qw "$sec" ||
				r="refused, but the message does not state the right length $sec: '$dm'"
		fi
		if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
	done
	if [ -z "$BOOT_ERR" ]; then
		if [ "$(sha "$base")" = "$base_sha" ]; then
			pass "damaged[$k]/intact-image-unchanged"
		else
			fail "damaged[$k]/intact-image-unchanged" "image changed"
		fi
	fi
	[ "$KEEP" = 1 ] || rm -f "$BOOT_OUT"
}

# ------------------------------------------------------------ group: status-and-table

group_status_and_table() {
	local d img img2 k=$OTHER_KERNEL t r st tb dev2 size=$((64 * MiB)) sec n
	plan_init status-and-table
	d=$BOOT_DIR
	img=$d/s.vhdx
	q qemu-img create -f vhdx -o block_size=1M "$img" 64M
	qio "$img" 'write -P 1 0 4k' "write -P 2 $((3 * MiB)) 1M" "write -P 3 $((17 * MiB + 4096)) 4k" \
		"write -P 4 $((40 * MiB)) 4k" "write -P 5 $((64 * MiB - 512)) 512"
	img2=$d/s-rw.vhdx
	cp "$img" "$img2"
	# Room for new blocks: a device does not grow as a file does.
	truncate -s +8M "$img2"
	expect_raw "$img" "$d/s.raw"
	sec=$((size / 512))
	[ "$(mangle info "$img" allocated_blocks)" = 5 ] || fail "status-and-table[$k]/setup" "expected 5 allocated blocks"
	add_disk "$img" ro
	gs "map sro $LAST_DEV ro $sec"
	gs "res sro pbsz \$(blockdev --getpbsz /dev/mapper/sro 2>&1)"
	gs "dmsetup table sro > /tmp/e2e-table; dmsetup create sro2 --readonly --noudevsync < /tmp/e2e-table > /tmp/e2e-out 2>&1; res sro2 create \$?"
	gs "while read -r l; do res sro2 createout \"\$l\"; done < /tmp/e2e-out; e2e_dmesg sro2"
	gs "res sro2 table \$(dmsetup table sro2 2>&1)"
	gs "dmsetup remove --noudevsync sro2 > /dev/null 2>&1"
	gs_copy sro "$size"
	local sro_slot=$SLOT
	gs "unmap sro"
	add_disk "$img2"
	dev2=$LAST_DEV
	gs "if map srw $dev2 rw $sec; then"
	gs "  dmesg -c > /dev/null"
	# In place (block 0 is allocated) and into a new block (10 MiB).
	head -c 4096 /dev/urandom > "$BOOT_DIR/files/pat"
	gs "  { dd if=/files/pat of=/dev/mapper/srw bs=4096 count=1 seek=100 oflag=direct conv=notrunc &&"
	gs "    dd if=/files/pat of=/dev/mapper/srw bs=4096 count=1 seek=2561 oflag=direct conv=notrunc; } > /tmp/e2e-out 2>&1; res srw write \$?"
	gs "  while read -r l; do res srw writeout \"\$l\"; done < /tmp/e2e-out"
	gs "  e2e_dmesg srw"
	gs "  dd if=/dev/mapper/srw of=/dev/null bs=4096 count=1 iflag=direct > /dev/null 2>&1; res srw readback \$?"
	gs "  unmap srw"
	gs "fi"
	boot "$k" "$k"
	if [ -n "$BOOT_ERR" ]; then
		fail "status-and-table[$k]" "$BOOT_ERR"
		return 0
	fi
	t="status-and-table[$k]/read-only-mapping"
	r=$(check_opened sro "$size")
	[ -z "$r" ] && r=$(check_copy sro "$d/s.raw" "$sro_slot")
	if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi

	t="status-and-table[$k]/table"
	tb=$(rget sro table)
	r=""
	case $tb in
	"0 $sec vhdx $(rget sro devnum)"|"0 $sec vhdx $(rget sro devnum) 0") ;;
	*) r="dmsetup table gave '$tb', expected '0 $sec vhdx $(rget sro devnum)' (optionally + ' 0')" ;;
	esac
	[ -z "$r" ] && [ "$(rget sro2 create)" != 0 ] &&
		r="the table printed by dmsetup table does not load back: $(rall sro2 createout | tr '\n' ' ') $(dmesg_of sro2)"
	[ -z "$r" ] && [ "$(rget sro2 table)" != "$tb" ] && r="reloaded table prints '$(rget sro2 table)', not '$tb'"
	if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi

	t="status-and-table[$k]/status"
	st=$(rget sro status)
	r=""
	case $st in "0 $sec vhdx "*) ;; *) r="status line does not start with '0 $sec vhdx': '$st'" ;; esac
	for w in 512 clean ro; do
		[ -z "$r" ] && ! has_word "$st" $w && r="status lacks '$w': '$st'"
	done
	if [ -z "$r" ] && ! has_word "$st" 1048576 && ! has_word "$st" 2048 && ! has_word "$st" 1M; then
		r="status lacks the block size (1048576 bytes or 2048 sectors): '$st'"
	fi
	if [ -z "$r" ] && ! printf '%s' "$st" | grep -qE '(^|[^0-9])5[^0-9]+64([^0-9]|$)'; then
		r="status lacks allocated/total blocks 5 and 64: '$st'"
	fi
	if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi

	t="status-and-table[$k]/logical-block-size"
	if [ "$(rget sro ss)" = 512 ]; then pass "$t"; else fail "$t" "blockdev --getss gave '$(rget sro ss)'"; fi

	t="status-and-table[$k]/read-write-mapping-writes"
	r=$(check_opened srw "$size")
	st=$(rget srw status)
	[ -z "$r" ] && ! has_word "$st" rw && r="status of the read-write mapping lacks 'rw': '$st'"
	[ -z "$r" ] && [ "$(rget srw write)" != 0 ] &&
		r="writes failed: $(rall srw writeout | tr '\n' ' ') $(dmesg_of srw)"
	[ -z "$r" ] && [ "$(rget srw readback)" != 0 ] && r="reads fail after the writes"
	if [ -z "$r" ] && ! qemu-img check -f vhdx "$img2" > "$WORK/chk.log" 2>&1; then
		r="qemu-img check after the writes: $(tr '\n' ' ' < "$WORK/chk.log")"
	fi
	if [ -z "$r" ]; then
		dd if="$BOOT_DIR/files/pat" of="$d/s.raw" bs=4096 seek=100 conv=notrunc status=none
		dd if="$BOOT_DIR/files/pat" of="$d/s.raw" bs=4096 seek=2561 conv=notrunc status=none
		expect_raw "$img2" "$d/s-rw.raw"
		r=$(cmp_region "$d/s.raw" 0 "$d/s-rw.raw" 0 "$size")
	fi
	if [ -z "$r" ]; then pass "$t"; else fail "$t" "$r"; fi
	note "status line: $(rget sro status) | rw: $st"
	[ "$KEEP" = 1 ] || rm -f "$BOOT_OUT"
}

# ------------------------------------------------------------ main

for tool in qemu-img qemu-io mkfs.ext4 cmp "$PYTHON"; do
	command -v "$tool" > /dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
[ -x "$VM_RUN" ] || note "warning: $VM_RUN not found; guest tests will fail"

# ------------------------------------------------------------ group: huge
# Fills the BAT of a VHDX as qemu-img created it: every payload block of
# the disk present, one after the other from DATA_MIB on.
fill_bat() {
	"$PYTHON" - "$1" "$2" "$3" <<'EOF'
import array, sys
path, bat_off, data_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MiB, FULLY_PRESENT, RATIO, BLOCKS = 1 << 20, 6, 4096, 1 << 26
with open(path, "r+b") as f:
    f.seek(bat_off)
    for first in range(0, BLOCKS, RATIO):
        start = (data_mib + first) * MiB | FULLY_PRESENT
        chunk = array.array("Q", range(start, start + RATIO * MiB, MiB))
        if first + RATIO < BLOCKS:
            chunk.append(0)     # the chunk's sector bitmap entry
        f.write(chunk.tobytes())
EOF
}

bat_offset() {
	"$PYTHON" - "$1" "$HERE" <<'EOF'
import sys
sys.path.insert(0, sys.argv[2])
import vhdxmangle as m
with open(sys.argv[1], "rb") as f:
    rt = m.parse_region_table(m.read_at(f, m.REGION_OFFSETS[0], m.REGION_SIZE))
    print(m.find_region(rt, m.GUID_BAT)["file_offset"])
EOF
}

# The largest disk the format allows, 64 TiB in 1 MiB blocks, all of them
# allocated: a 512 MiB BAT.  The device is the image's first MiBs followed
# by dm-zero up to where the last block ends.  It must open in a 2 GiB
# guest: the BAT check needs one bit per MiB of the device (8 MiB), not
# the 2 GiB that one record per block took.
group_huge() {
	local d img k=$OTHER_KERNEL t r data_mib head_sec vsec
	plan_init huge
	d=$BOOT_DIR
	img=$d/huge.vhdx
	q qemu-img create -f vhdx -o block_size=1M,log_size=1M "$img" 64T
	data_mib=$((($(stat -c %s "$img") + MiB - 1) / MiB))
	fill_bat "$img" "$(bat_offset "$img")" "$data_mib"
	head_sec=$((data_mib * MiB / 512))
	vsec=$(((64 << 40) / 512))
	add_disk "$img" ro
	gs "echo '0 $head_sec linear $LAST_DEV 0' > /tmp/big-table"
	gs "echo '$head_sec $vsec zero' >> /tmp/big-table"
	gs "dmsetup create big --readonly --noudevsync < /tmp/big-table > /tmp/e2e-out 2>&1; res big create \$?"
	gs "while read -r l; do res big createout \"\$l\"; done < /tmp/e2e-out"
	gs "dmsetup mknodes big > /dev/null 2>&1"
	gs "t0=\$(date +%s)"
	gs "if map huge /dev/mapper/big ro $vsec; then"
	gs "  res huge opensec \$((\$(date +%s) - t0))"
	gs "  res huge tail \$(dd if=/dev/mapper/huge bs=4096 skip=$(((64 << 40) / 4096 - 1)) count=1 2> /dev/null | od -An -v -tx1 | tr -s ' ' '\n' | sort -u | tr -d '\n')"
	gs "  unmap huge"
	gs "fi"
	gs "dmsetup remove --noudevsync big > /dev/null 2>&1"
	BOOT_MEM=2048 boot "$k" "$k"
	rm -f "$img"
	if [ -n "$BOOT_ERR" ]; then
		fail "huge[$k]" "$BOOT_ERR"
		return 0
	fi
	t="huge[$k]/64TiB-fully-allocated-opens"
	if [ "$(rget big create)" != 0 ]; then
		r="could not build the device: $(rall big createout | tr '\n' ' ')"
	else
		r=$(check_opened huge $((64 << 40)))
	fi
	if [ -z "$r" ]; then
		pass "$t"
		note "64 TiB image opened in $(rget huge opensec) s"
	else
		fail "$t" "$r"
	fi
	t="huge[$k]/last-block-reads-zeros"
	r=$(rget huge tail)
	if [ "$r" = 00 ]; then pass "$t"; else fail "$t" "last 4 KiB read as '$r', not zeros"; fi
}

run_group() {
	local g=$1 fn=$2 t=$SECONDS
	want "$g" || return 0
	note "group $g (at $(elapsed) s)"
	"$fn"
	note "group $g took $((SECONDS - t)) s"
}

run_group host group_host
if want read-qemu-images || want libvhdi-oracle; then
	if want read-qemu-images; then
		run_group read-qemu-images group_read_qemu_images
	else
		MAIN_KERNELS="" run_group libvhdi-oracle group_read_qemu_images
	fi
	run_group libvhdi-oracle group_libvhdi_oracle
fi
run_group ext4-readonly group_ext4_readonly
run_group dirty-log group_dirty_log
run_group damaged group_damaged
run_group status-and-table group_status_and_table
run_group huge group_huge

note "total $(elapsed) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
