#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host tests of the system integration: vhdxsetup list, /etc/vhdxtab and its
# systemd generator, udev rules, bash completion, make install.  No guest,
# no root needed; under a minute on 2 cores.  Prints PASS/FAIL lines and
# "N passed, M failed".
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-system-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
check() {	# NAME COMMAND...: pass if COMMAND succeeds
	local name=$1
	shift
	if "$@" >"$work/check.out" 2>&1; then
		pass "$name"
	else
		fail "$name" "$(head -3 "$work/check.out" | tr '\n' ' ')"
	fi
}

expect_rc() {	# NAME WANT-RC COMMAND...
	local name=$1 want=$2 rc
	shift 2
	"$@" >"$work/out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc, expected $want: $(head -3 "$work/out" | tr '\n' ' ')"
	fi
}
make -s -C "$top/tools" vhdxsetup || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }
setup=$top/tools/vhdxsetup

# --- vhdxsetup list ---------------------------------------------------
check "list: in --help" bash -c "'$setup' --help | grep -q '^  list \[--json\]'"
check "list --help" "$setup" list --help
expect_rc "list: extra argument is exit 2" 2 "$setup" list extra
# Without root or dm_mod list fails with exit 2 and says why; with them it
# must print valid JSON.
if "$setup" list --json >"$work/list.json" 2>"$work/list.err"; then
	check "list --json is JSON" python3 -c 'import json, sys; assert isinstance(json.load(open(sys.argv[1])), list)' "$work/list.json"
else
	rc=$?
	if [ "$rc" = 2 ] && grep -q "device-mapper" "$work/list.err"; then
		pass "list without device-mapper: exit 2 with a reason"
	else
		fail "list without device-mapper" "exit $rc: $(head -1 "$work/list.err")"
	fi
fi

# --- vhdxtab: open --all / close --all ---------------------------------
# No device-mapper is needed for what is checked: parsing, nofail, noauto
# and the exit statuses; open itself fails on a host without dm-vhdx.
"$setup" create "$work/a.vhdx" 8M >/dev/null
cat >"$work/tab" <<EOT
# comment, then a blank line with blanks

a  $work/a.vhdx   ro,nofail,commit_time=500
b $work/missing.vhdx nofail
c $work/missing.vhdx noauto
EOT
expect_rc "tab: nofail entries that fail: exit 0" 0 "$setup" open --all --tab "$work/tab"
check "tab: nofail failure is reported" grep -q "b failed (nofail)" "$work/out"
check "tab: noauto entry skipped" bash -c "! grep -q '^[^ ]* c ' '$work/out' && ! grep -q ': c failed' '$work/out'"
printf 'x %s defaults\n' "$work/missing.vhdx" >"$work/tab2"
expect_rc "tab: failing entry without nofail: exit 2" 2 "$setup" open --all --tab "$work/tab2"
printf 'ok %s ro\nx %s bogus\n' "$work/a.vhdx" "$work/a.vhdx" >"$work/tab3"
expect_rc "tab: unknown option: exit 2" 2 "$setup" open --all --tab "$work/tab3"
check "tab: unknown option names file and line" grep -q "tab3:2: unknown option 'bogus'" "$work/out"
check "tab: a bad line maps nothing" bash -c "! grep -q 'ok' '$work/out'"
printf 'x %s commit_time=abc\n' "$work/a.vhdx" >"$work/tab4"
expect_rc "tab: bad commit_time: exit 2" 2 "$setup" open --all --tab "$work/tab4"
printf 'x\n' >"$work/tab5"
expect_rc "tab: entry without image: exit 2" 2 "$setup" open --all --tab "$work/tab5"
expect_rc "tab: missing file: exit 2" 2 "$setup" open --all --tab "$work/nonexistent"
expect_rc "tab: close --all with nothing open: exit 0" 0 "$setup" close --all --tab "$work/tab"
expect_rc "tab: --all with arguments: exit 2" 2 "$setup" open --all --tab "$work/tab" extra
expect_rc "open --commit-time out of range: exit 2" 2 "$setup" open --commit-time 3600001 "$work/a.vhdx" z

#@@MORE@@

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
