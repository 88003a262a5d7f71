#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Differencing chains through dm-vhdx (issue 5): chains of depth 1, 2 and 5
# with 512 and 4096-byte sectors and mixed block sizes, written layer by
# layer through dm-vhdx and read back through the whole chain, against a
# raw model built here and against libvhdi; the parents never change;
# linkage, geometry and damaged-BAT refusals; a read-only chain; a crash in
# the middle of a child's write session, replayed.  Two guest boots (6.12):
# the crash, then everything else.  Group logwrites, two more boots: a
# child's sector bitmap updates recorded on dm-log-writes, replayed up to
# every flush and mark (and torn), each state mapped read-only and
# read-write.  tests/diff/README.md has the details.
#
# Group bmcache (tests/diff/bmcache.sh, one more boot): the sector bitmap
# cache with a budget far below the child's bitmaps, and the memory a
# table of an image with 128 MiB of bitmaps takes.
#
# Usage: tests/diff/run.sh [--keep] [--seed N] [--kernel 6.1|6.12|debug]
#                          [--only chains|logwrites|bmcache]
# Prints PASS/FAIL lines and "N passed, M failed"; exit 1 on a failure.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
keep=""
kline=6.12
only="chains logwrites bmcache"
seed=${DIFF_SEED:-20261125}
while [ $# -gt 0 ]; do
	case $1 in
	--keep) keep=1; shift ;;
	--seed) seed=${2:?}; shift 2 ;;
	--kernel) kline=${2:?}; shift 2 ;;
	--only) only=${2:?}; shift 2 ;;
	*) echo "usage: $0 [--keep] [--seed N] [--kernel 6.1|6.12|debug] [--only chains|logwrites|bmcache]" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-diff.XXXXXX")
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

py=/usr/bin/python3	# the Debian python: pyvhdi lives there
export PYTHONDONTWRITEBYTECODE=1
chains=$top/tests/diff/chains.py
vm_run=$top/tests/guest/vm-run
setup=$top/tools/vhdxsetup
# GNU dd in the guest: busybox's oflag=direct still goes through the page
# cache, which widens a write to the block device's block size.
gnu_dd=/usr/bin/dd
"$gnu_dd" --version 2>/dev/null | grep -q coreutils || { fail gnu-dd "$gnu_dd is not GNU dd (coreutils)"; finish; }
# As tests/guest/vm-run: UBSAN's reports carry no BUG:, kmemleak's come
# from /init on the debug kernel.
oops_re='\[ *[0-9]+\.[0-9]+\] .*(Oops|BUG:|Kernel panic|WARNING:|Call Trace|UBSAN:)|^VHDX-KMEMLEAK:'

make -s -C "$top/tools" vhdxsetup >"$work/build.out" 2>&1 ||
	{ fail build-vhdxsetup "$(tail -3 "$work/build.out")"; finish; }
case $kline in 6.1) kglob='6.1.0-*' ;; 6.12) kglob='6.12.*' ;; debug) kglob='debug-*' ;; *) echo "--kernel 6.1|6.12|debug" >&2; exit 2 ;; esac
ko=$(ls "$top"/build/$kglob/dm-vhdx.ko 2>/dev/null | head -1)
if [ -z "$ko" ]; then
	"$top/scripts/build-all.sh" >"$work/build.out" 2>&1
	ko=$(ls "$top"/build/$kglob/dm-vhdx.ko 2>/dev/null | head -1)
	[ -n "$ko" ] || { fail build-module "$(tail -3 "$work/build.out")"; finish; }
fi
[ -z "${DIFF_MODULE:-}" ] || ko=$DIFF_MODULE	# another dm-vhdx.ko, e.g. a broken one
$py -c 'import pyvhdi' 2>/dev/null || { fail libvhdi "python3-libvhdi (pyvhdi) missing"; finish; }

echo "seed $seed, kernel $kline"
# eval_lines CMD...: turn a python verdict stream into pass/fail calls.
eval_lines() {
	local line evaluated=""
	while IFS= read -r line; do
		case $line in
		PASS\ *) pass "${line#PASS }" ;;
		FAIL\ *) line=${line#FAIL }; fail "${line%%: *}" "${line#*: }" ;;
		EVAL\ *) evaluated=1 ;;
		*) echo "$line" ;;
		esac
	done < <("$@" 2>&1)
	[ -n "$evaluated" ] || fail evaluate "$(basename "$2") $3 died (see above)"
}

# --- group logwrites: sector bitmap updates on dm-log-writes -------------
# Two boots: the workload on dm-log-writes, then every replayed point.
group_logwrites() {
	local lw=$top/tests/diff/logwrites.py d=$work/lw rc psha start=$SECONDS out
	if ! $py "$lw" gen "$work" "$setup" "$seed" >"$work/lw-gen.out" 2>&1; then
		fail lw-plan "$(tail -5 "$work/lw-gen.out")"; return
	fi
	psha=$(sha256sum <"$d/base.vhdx" | cut -d' ' -f1)
	truncate -s 64M "$d/log.img"
	"$vm_run" --kernel "$kline" --module "$ko" --timeout 300 --files "$d/files" --bin "$gnu_dd" \
		"$d/guest-record.sh" "$d/child.vhdx" "$d/log.img" "$d/base.vhdx:ro" \
		>"$d/record-console.log" 2>&1
	rc=$?
	if [ "$rc" != 0 ] || ! grep -q -a '^DIFF-LW-RECORDED' "$d/record-console.log"; then
		fail lw-record-boot "vm-run exit $rc: $(grep -a -E 'DIFF|vm-run|Oops|BUG' "$d/record-console.log" | tail -6 | tr '\n' ' ')"
		return
	fi
	eval_lines $py "$lw" record-eval "$work" "$setup"
	if ! out=$($py "$lw" points "$work" "${DIFF_LW_MAX_POINTS:-0}" "${DIFF_LW_MAX_TORN:-30}" 2>&1); then
		fail lw-replay "$(echo "$out" | tail -3 | tr '\n' ' ')"; return
	fi
	echo "lw: $out" | tr '\n' ' '; echo
	[ -n "$keep" ] || rm -f "$d/log.img"
	truncate -s 0 "$d/out.raw"
	truncate -s 600M "$d/out.raw"
	"$vm_run" --kernel "$kline" --module "$ko" --mem 1536 --timeout 600 --files "$d/files" \
		--bin "$setup" --bin "$gnu_dd" "$d/guest-verify.sh" \
		"$d/out.raw" "$d/container.img:ro" "$d/base.vhdx:ro" >"$d/verify-console.log" 2>&1
	rc=$?
	if [ "$rc" = 0 ] && grep -q -a '^DIFF-TAR-OK' "$d/verify-console.log"; then
		pass lw-verify-boot
	else
		fail lw-verify-boot "vm-run exit $rc: $(grep -a -E 'vm-run|Oops|BUG|panic' "$d/verify-console.log" | tail -6 | tr '\n' ' ')"
		return
	fi
	mkdir -p "$d/res"
	tar -xf "$d/out.raw" -C "$d/res" 2>"$d/tar.err" || { fail lw-guest-archive "$(head -2 "$d/tar.err")"; return; }
	[ -n "$keep" ] || rm -f "$d/out.raw" "$d/container.img"
	[ "$(sha256sum <"$d/base.vhdx" | cut -d' ' -f1)" = "$psha" ] &&
		pass lw-parent-unchanged || fail lw-parent-unchanged "base.vhdx changed"
	eval_lines $py "$lw" evaluate "$work" "$setup"
	echo "lw: group took $((SECONDS - start)) s"
}
case " $only " in *" logwrites "*) group_logwrites ;; esac
# --- group bmcache: its own script, its verdicts counted here ------------
group_bmcache() {
	local line
	while IFS= read -r line; do
		case $line in
		PASS\ *) pass "bmcache-${line#PASS }" ;;
		FAIL\ *) line=${line#FAIL }; fail "bmcache-${line%%: *}" "${line#*: }" ;;
		*\ passed,\ *\ failed) ;;
		*) echo "$line" ;;
		esac
	done < <(DIFF_MODULE=$ko "$top/tests/diff/bmcache.sh" --seed "$seed" --kernel "$kline" ${keep:+--keep} 2>&1)
}
case " $only " in *" bmcache "*) group_bmcache ;; esac
case " $only " in *" chains "*) ;; *) finish ;; esac
if ! $py "$chains" gen "$work" "$setup" "$seed" >"$work/gen.out" 2>&1; then
	fail plan "$(tail -5 "$work/gen.out")"; finish
fi
corrupt=$($py -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["corrupt"]))' "$work/plan.json")
declare -A before
before[a0]=$(sha256sum <"$work/a0.vhdx" | cut -d' ' -f1)
for k in $corrupt; do
	before[k-$k]=$(sha256sum <"$work/k-$k.vhdx" | cut -d' ' -f1)
done
before[g0]=$(sha256sum <"$work/g0.vhdx" | cut -d' ' -f1)

# --- boot 1: a child's write session ends in sysrq-b (reboot -n -f) ------
# x.vhdx (child of a0) on /dev/vda, a0 on /dev/vdb read-only.  The guest
# never reaches its exit code; vm-run says 1.
"$vm_run" --kernel "$kline" --module "$ko" --timeout 300 --files "$work/files" --bin "$gnu_dd" \
	"$work/guest-crash.sh" \
	"$work/x.vhdx" "$work/a0.vhdx:ro" >"$work/crash-console.log" 2>&1
rc=$?
con=$work/crash-console.log
# vm-run keeps its work directory when the guest does not exit: here it never does.
kept=$(sed -n 's/^vm-run: .*kept in \(\/.*\)$/\1/p' "$con" | tail -1)
[ -n "$keep" ] || [ -z "$kept" ] || [ ! -d "$kept" ] || rm -rf "$kept"
if grep -q -a '^DIFF-CRASH-NOW' "$con" && ! grep -q -a 'DIFF-CRASH-SURVIVED' "$con" &&
   ! grep -q -a -E "$oops_re" "$con" && ! grep -q -a 'DIFF: x wfail' "$con" &&
   grep -q -a '^DIFF: x create 0' "$con"; then
	pass crash-session
else
	fail crash-session "vm-run exit $rc: $(grep -a -E 'DIFF|vm-run|Oops|BUG' "$con" | tail -8 | tr '\n' ' ')"
fi
state=$("$setup" info --json "$work/x.vhdx" 2>&1 | sed -n 's/.*"log-state": "\(.*\)".*/\1/p')
[ "$state" = dirty ] && pass crash-log-left-dirty ||
	fail crash-log-left-dirty "log-state after the crash: '$state'"
[ "$(sha256sum <"$work/a0.vhdx" | cut -d' ' -f1)" = "${before[a0]}" ] &&
	pass crash-parent-unchanged || fail crash-parent-unchanged "a0.vhdx changed in the crash boot"
cp "$work/x.vhdx" "$work/xcopy.vhdx"
before[xcopy]=$(sha256sum <"$work/xcopy.vhdx" | cut -d' ' -f1)
{
	printf '{'
	for k in "${!before[@]}"; do printf '"%s": "%s", ' "$k" "${before[$k]}"; done
	printf '"-": ""}\n'
} >"$work/sha-before.json"

# --- boot 2: everything else ---------------------------------------------
disks=("$work/out.raw" "$work/x.vhdx" "$work/xcopy.vhdx:ro" "$work/a0.vhdx:ro" "$work/a1.vhdx")
for k in $corrupt; do disks+=("$work/k-$k.vhdx"); done
disks+=("$work/g0.vhdx:ro" "$work/g1.vhdx")	# chain g: a child grown past its parent
truncate -s 1200M "$work/out.raw"
start=$SECONDS
"$vm_run" --kernel "$kline" --module "$ko" --mem 2048 --timeout 900 --files "$work/files" \
	--bin "$setup" --bin "$gnu_dd" "$work/guest-main.sh" "${disks[@]}" >"$work/main-console.log" 2>&1
rc=$?
con=$work/main-console.log
if [ "$rc" = 0 ] && grep -q -a '^DIFF-TAR-OK' "$con"; then
	pass guest-run
else
	fail guest-run "vm-run exit $rc after $((SECONDS - start)) s: $(grep -a -E 'vm-run|Oops|BUG|panic' "$con" | tail -8 | tr '\n' ' ')"
fi
mkdir -p "$work/res"
tar -xf "$work/out.raw" -C "$work/res" 2>"$work/tar.err" || fail guest-archive "$(head -2 "$work/tar.err")"
[ -n "$keep" ] || rm -f "$work/out.raw"

eval_lines $py "$chains" evaluate "$work" "$setup"
finish
