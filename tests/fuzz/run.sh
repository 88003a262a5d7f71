#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the libFuzzer targets, makes the seed corpora, replays every
# regression input in regressions/<target>/, then fuzzes each target for a
# bounded time.  One line per target:
#   PASS fuzz_x (EXECS execs, cov: C, ft: F)   or   FAIL fuzz_x: why
# and as the last line "N passed, M failed"; non-zero exit on any failure.
# Crash inputs are kept in $FUZZ_WORK/crashes/<target>/.
#
# Usage: run.sh [--quick | --seconds N] [--jobs J] [TARGET...]
#   --quick       10 seconds per target, the default (make check)
#   --seconds N   N seconds per target (make fuzz: FUZZ_SECONDS, 60)
#   --jobs J      targets fuzzed at once (default: the CPU count)
# Environment: FUZZ_WORK (default tests/fuzz/work) keeps seeds, the growing
# corpus and crashes between runs; FUZZ_STRICT_IO=1 makes a read beyond the
# device abort (see fuzz-common.h).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ALL_TARGETS=(fuzz_header fuzz_region fuzz_metadata fuzz_bat fuzz_log fuzz_open)
seconds=10
jobs=$(nproc 2>/dev/null || echo 1)
targets=()

while [ $# -gt 0 ]; do
	case $1 in
	--quick) seconds=10 ;;
	--seconds) seconds=${2:?}; shift ;;
	--jobs) jobs=${2:?}; shift ;;
	-h|--help) sed -n '3,/^set /{/^set /d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	fuzz_*) targets+=("$1") ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

work=${FUZZ_WORK:-$here/work}
mkdir -p "$work"
work=$(cd "$work" && pwd)
passed=0
failed=0

summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}

# The longest input each target reads; see the top of each fuzz_*.c.
max_len() {
	case $1 in
	fuzz_header) echo 12296 ;;
	fuzz_region) echo 65544 ;;
	fuzz_metadata) echo 1048576 ;;
	fuzz_bat) echo 300000 ;;
	fuzz_log) echo 1048596 ;;
	fuzz_open) echo 16777216 ;;
	esac
}

if ! make -s -C "$here" >"$work/build.log" 2>&1; then
	if ! command -v clang-14 >/dev/null && ! command -v clang >/dev/null; then
		echo "SKIP fuzz: no clang with libFuzzer (run tests/fuzz/deps.sh)"
		summary
		exit 0
	fi
	cat "$work/build.log"
	echo "FAIL fuzz-build"
	failed=$((failed + 1))
	summary
	exit 1
fi
"$here/make-seeds.sh" "$work/seeds" || echo "run.sh: seed generation failed; fuzzing without seeds" >&2

# Regression inputs first: each must run clean on its own.
run_regressions() {
	local t=$1 dir=$here/regressions/$1 log=$work/$1.regress.log
	local files=()

	[ -d "$dir" ] && mapfile -t files < <(find "$dir" -type f ! -name '*.md' | sort)
	[ ${#files[@]} -gt 0 ] || return 0
	"$here/out/$t" -rss_limit_mb=4096 -timeout=60 "${files[@]}" >"$log" 2>&1
}

fuzz_one() {
	local t=$1 log=$work/$1.log
	local corpus=$work/corpus/$t seeds=$work/seeds/$t regress=$here/regressions/$t
	local dirs=("$corpus")

	# Whole images make fuzz_open's corpus grow fast: start it afresh
	# from the seeds once it passes 256 MiB.
	if [ -d "$corpus" ] && [ "$(du -sm "$corpus" | cut -f1)" -gt 256 ]; then
		rm -rf "$corpus"
	fi
	mkdir -p "$corpus" "$work/crashes/$t"
	[ -d "$seeds" ] && dirs+=("$seeds")
	[ -d "$regress" ] && dirs+=("$regress")
	"$here/out/$t" -max_total_time="$seconds" -print_final_stats=1 \
		-max_len="$(max_len "$t")" -rss_limit_mb=4096 -timeout=60 \
		-artifact_prefix="$work/crashes/$t/" "${dirs[@]}" >"$log" 2>&1
	echo $? >"$work/$t.rc"
}

report() {
	local t=$1 log=$work/$1.log rc execs cov ft why
	rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -aEo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
	ft=${cov##*ft: }
	cov=${cov#cov: }
	cov=${cov%% *}
	if [ "$rc" = 0 ]; then
		echo "PASS $t (${execs:-0} execs, cov: ${cov:-0}, ft: ${ft:-0})"
		passed=$((passed + 1))
		return
	fi
	why=$(grep -aE '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*runtime error)' "$log" | head -n 3 | tr '\n' ' ')
	echo "FAIL $t: exit $rc: ${why:-see $log}; crash input in $work/crashes/$t/"
	failed=$((failed + 1))
}

for t in "${targets[@]}"; do
	if ! run_regressions "$t"; then
		why=$(grep -aE '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*runtime error|Running: )' \
			"$work/$t.regress.log" | tail -n 4 | tr '\n' ' ')
		echo "FAIL $t-regressions: $why"
		failed=$((failed + 1))
	fi
done

running=0
for t in "${targets[@]}"; do
	rm -f "$work/$t.rc"
	fuzz_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
for t in "${targets[@]}"; do
	report "$t"
done
summary
