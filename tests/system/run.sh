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
	if "$@" >"$work/out" 2>&1; then
		pass "$name"
	else
		fail "$name" "$(head -3 "$work/out" | tr '\n' ' ')"
	fi
}

make -s -C "$top/tools" vhdxsetup || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }
setup=$top/tools/vhdxsetup

# --- vhdxsetup list ---------------------------------------------------
check "list: in --help" bash -c "'$setup' --help | grep -q '^  list \[--json\]'"
check "list --help" "$setup" list --help
"$setup" list extra >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] && pass "list: extra argument is exit 2" || fail "list: extra argument" "exit $rc"
# Without root or dm_mod list fails with exit 2 and says why; with them it
# must print valid JSON.
if "$setup" list --json >"$work/list.json" 2>"$work/list.err"; then
	check "list --json is JSON" python3 -c 'import json, sys; assert isinstance(json.load(open(sys.argv[1])), list)' "$work/list.json"
else
	rc=$?
	[ "$rc" = 2 ] && grep -q "device-mapper" "$work/list.err" &&
		pass "list without device-mapper: exit 2 with a reason" ||
		fail "list without device-mapper" "exit $rc: $(head -1 "$work/list.err")"
fi

#@@MORE@@

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
