# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The prelude the test runners share: a work directory removed on exit,
# PASS/FAIL lines with counters, and the "N passed, M failed" end.  Safe
# under set -euo pipefail: the commands under test run guarded.
#
#   . "$top/tests/lib.sh"
#   test_init vhdx-system             # $work, counters, cleanup on exit
#   check NAME COMMAND...             # pass if COMMAND succeeds
#   expect_rc NAME RC COMMAND...      # pass if COMMAND exits RC
#   pass NAME / fail NAME WHY
#   test_finish                       # prints the counts; exit 1 if any failed
#
# expect_rc leaves COMMAND's output in $work/out, for checks after it
# (check NAME grep ... "$work/out"); check's own goes to $work/check.out.

# test_init PREFIX: $work under TMPDIR, removed on exit.  A runner that
# set -e stops before test_finish still ends with a FAIL and the counts,
# and a non-zero status.
test_init() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1-test.XXXXXX")
	passed=0
	failed=0
	_test_finished=
	trap _test_exit EXIT
}

_test_exit() {
	local rc=$?
	# test_keep=1: a runner found something rm -rf must not go through.
	[ -n "${test_keep:-}" ] || rm -rf "$work"
	if [ -z "$_test_finished" ]; then
		echo "FAIL runner: stopped early (exit $rc)"
		echo "$passed passed, $((failed + 1)) failed"
		exit 1
	fi
}

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

check() {	# NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		pass "$name"
	else
		fail "$name" "$(head -3 "$work/check.out" | tr '\n' ' ')"
	fi
}

expect_rc() {	# NAME WANT-RC COMMAND...
	local name=$1 want=$2 rc=0
	shift 2
	"$@" >"$work/out" 2>&1 || rc=$?
	if [ "$rc" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc, expected $want: $(head -3 "$work/out" | tr '\n' ' ')"
	fi
}

# The last line a runner prints; its status is the runner's.
test_finish() {
	_test_finished=1
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
