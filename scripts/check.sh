#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Every test, as CI runs it: dependencies, kernels, the W=1/sparse build
# against 6.1 and 6.12 (one test per kernel), then the test runners that
# exist (tests/kunit, tests/host, tests/e2e, tests/write, tests/tools,
# tests/fuzz, tests/diff), each of which ends its output with "N passed,
# M failed".
# The last line printed is the sum, in the same form; the exit status is
# non-zero if anything failed.
#
# After them, a subset of the guest tests runs again on the debug kernel
# (scripts/debug-kernel.sh: KASAN, KFENCE, UBSAN, lockdep, kmemleak; 22
# minutes of CPU time to build, then cached): allocation, discard,
# failing devices, hostile images, dirty logs, the huge image and the
# differencing chains.  All of them, with the crash groups, would not fit
# CI's 90 minutes from a cold machine.
#
# Usage: scripts/check.sh [--debug]
#   --debug: only the debug kernel, with every group that exercises the
#   write path, discards, differencing chains and hostile images.
# Environment: DEBUG_GROUPS, the tests/write groups of --debug;
#   VHDX_CHECK_DEBUG=0 leaves the debug kernel out of a plain run.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNNERS=(tests/kunit/run.sh tests/host/run.sh tests/e2e/run.sh tests/write/run.sh
	tests/tools/run.sh tests/system/run.sh tests/fuzz/run.sh tests/diff/run.sh)
DEBUG_GROUPS=${DEBUG_GROUPS:-mirror,failing,stale,alloczero,discard,diffdiscard,logwrites,powercut}
DEBUG_RUNNERS=("tests/write/run.sh --kernel debug --only $DEBUG_GROUPS"
	"tests/e2e/run.sh --kernel debug --only damaged,dirty-log,huge"
	"tests/diff/run.sh --kernel debug --only chains"
	"tests/diff/run.sh --kernel debug --only bmcache")
CI_DEBUG_RUNNERS=("tests/write/run.sh --kernel debug --only failing,stale,alloczero,discard,diffdiscard"
	"tests/e2e/run.sh --kernel debug --only damaged,dirty-log,huge"
	"tests/diff/run.sh --kernel debug --only chains"
	"tests/diff/run.sh --kernel debug --only bmcache")

PASSED=0
FAILED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

summary() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}

stage() { echo; echo "=== $* ($(date +%T), ${SECONDS}s)"; }

# Without dependencies or kernels nothing else can run.
setup() {
	stage "scripts/deps.sh"
	"$TOP/scripts/deps.sh" || { FAILED=$((FAILED + 1)); summary; exit 1; }
	stage "scripts/kernels.sh"
	"$TOP/scripts/kernels.sh" || { FAILED=$((FAILED + 1)); summary; exit 1; }
}

build() {
	stage "build-all (W=1, sparse)"
	"$TOP/scripts/build-all.sh" 2>&1 | tee "$WORK/build.out" || true
	PASSED=$((PASSED + $(grep -c '^PASS build-' "$WORK/build.out" || true)))
	FAILED=$((FAILED + $(grep -c '^FAIL build-' "$WORK/build.out" || true)))
}

# Run one runner (with its arguments) and add its "N passed, M failed"
# line.  A runner that fails without saying so, or dies before its
# summary, counts one failure.
run_runner() {
	local runner=$1 rc out=$WORK/runner.out last p f
	local -a args
	read -r -a args <<< "$runner"
	stage "$runner"
	set +e
	# bash, not exec: a missing execute bit must not fail CI.
	bash "$TOP/${args[0]}" "${args[@]:1}" < /dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	last=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)
	if [ -z "$last" ]; then
		echo "check: $runner printed no 'N passed, M failed' line (rc=$rc)"
		FAILED=$((FAILED + 1))
		return
	fi
	read -r p _ f _ <<< "$last"
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "check: $runner exited $rc"
		FAILED=$((FAILED + 1))
	fi
	echo "check: $runner: $last (rc=$rc)"
}

# The debug kernel and the module built against it; false if either
# failed, which counts.
debug_setup() {
	stage "scripts/debug-kernel.sh"
	if ! "$TOP/scripts/debug-kernel.sh"; then
		echo "check: the debug kernel did not build"
		FAILED=$((FAILED + 1))
		return 1
	fi
	stage "build-all debug"
	"$TOP/scripts/build-all.sh" debug 2>&1 | tee "$WORK/build.out" || true
	PASSED=$((PASSED + $(grep -c '^PASS build-' "$WORK/build.out" || true)))
	FAILED=$((FAILED + $(grep -c '^FAIL build-' "$WORK/build.out" || true)))
	grep -q '^PASS build-debug' "$WORK/build.out"
}

# Runs the debug runners named in the arguments.
run_debug() {
	local r
	debug_setup || return 0
	# TCG and KASAN together: a guest takes several times as long.
	export BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
	for r in "$@"; do
		run_runner "$r"
	done
}

check_debug() {
	stage "scripts/deps.sh"
	"$TOP/scripts/deps.sh"
	run_debug "${DEBUG_RUNNERS[@]}"
	stage "done"
	summary
}

main() {
	local r
	if [ "${1:-}" = --debug ]; then
		check_debug
		return
	fi
	setup
	build
	for r in "${RUNNERS[@]}"; do
		if [ -f "$TOP/$r" ]; then
			run_runner "$r"
		else
			echo "check: $r absent, skipped"
		fi
	done
	[ "${VHDX_CHECK_DEBUG:-1}" = 0 ] || run_debug "${CI_DEBUG_RUNNERS[@]}"
	stage "done"
	summary
}

main "$@"
