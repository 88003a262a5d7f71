# SPDX-License-Identifier: GPL-2.0
#
# Image lifecycle tests (issue 11): sourced by tests/tools/run.sh, which
# provides pass, fail, $setup, $work and json_get and counts the results.

# --- create --no-sparse: the file owns all of its space ---------------------
lc_no_sparse() {	# NAME CREATE-OPTIONS...
	local name=$1 img=$work/lc-$1.vhdx size alloc vs; shift
	if ! "$setup" create --no-sparse --block-size 1M "$@" "$img" 16M 2>"$work/err"; then
		fail "lc-$name-create" "$(cat "$work/err")"; return
	fi
	size=$(stat -c %s "$img")
	alloc=$(( $(stat -c %b "$img") * $(stat -c %B "$img") ))
	if [ "$alloc" -ge "$size" ]; then
		pass "lc-$name-not-sparse"
	else
		fail "lc-$name-not-sparse" "$alloc bytes allocated of $size"
	fi
	if qemu-img check "$img" >"$work/err" 2>&1; then
		pass "lc-$name-qemu-check"
	else
		fail "lc-$name-qemu-check" "$(tail -1 "$work/err")"
	fi
	if "$setup" check "$img" >"$work/err" 2>&1; then
		pass "lc-$name-check"
	else
		fail "lc-$name-check" "$(tail -1 "$work/err")"
	fi
	vs=$(json_get <("$setup" info --json "$img") virtual-size)
	truncate -s "$vs" "$work/lc-zero.raw"
	if qemu-img convert -O raw "$img" "$work/lc-qemu.raw" 2>"$work/err" &&
	   cmp -s "$work/lc-qemu.raw" "$work/lc-zero.raw"; then
		pass "lc-$name-reads-zeros"
	else
		fail "lc-$name-reads-zeros" "$(tail -1 "$work/err")"
	fi
	rm -f "$img" "$work"/lc-*.raw
}
lc_no_sparse no-sparse-fixed --fixed
lc_no_sparse no-sparse-dynamic

lc_type() {	# NAME WANT-TYPE IMAGE
	local got
	got=$(json_get <("$setup" info --json "$3") type)
	if [ "$got" = "$2" ]; then
		pass "lc-type-$1"
	else
		fail "lc-type-$1" "info says '$got', want '$2'"
	fi
}

# --- info: the disk type as Hyper-V reports it ------------------------------
# Every block of a dynamic image written: still dynamic (no
# LeaveBlockAllocated); a fixed one is fixed; QEMU's fixed one sets the
# mark too.
"$setup" create --block-size 1M "$work/lc-full.vhdx" 4M &&
	qemu-io -f vhdx -c "write -P 0x11 0 4M" "$work/lc-full.vhdx" >/dev/null
lc_type all-present-dynamic dynamic "$work/lc-full.vhdx"
"$setup" create --fixed --block-size 1M "$work/lc-fixed.vhdx" 4M
lc_type fixed fixed "$work/lc-fixed.vhdx"
qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$work/lc-qfixed.vhdx" 4M
lc_type qemu-fixed fixed "$work/lc-qfixed.vhdx"
"$setup" create --parent "$work/lc-full.vhdx" "$work/lc-child.vhdx" 2>/dev/null
lc_type differencing differencing "$work/lc-child.vhdx"
rm -f "$work"/lc-*.vhdx

# --- refusals ---------------------------------------------------------------
lc_refuse() {	# NAME WANT-RC COMMAND...
	local name=$1 want=$2 rc; shift 2
	"$@" >/dev/null 2>"$work/err"; rc=$?
	if [ "$rc" = "$want" ] && [ -s "$work/err" ]; then
		pass "lc-refuse-$name"
	else
		fail "lc-refuse-$name" "exit $rc (want $want), stderr: $(head -1 "$work/err")"
	fi
}
lc_refuse no-sparse-no-size 2 "$setup" create --no-sparse "$work/lc-x.vhdx"
lc_refuse no-sparse-parent-fixed 2 "$setup" create --no-sparse --fixed --parent "$work/nonexistent" "$work/lc-x.vhdx"
