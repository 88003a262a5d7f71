# SPDX-License-Identifier: GPL-2.0
#
# Guest half of tests/system/run.sh (busybox sh, run by tests/guest/vm-run):
# vhdxsetup list and open's refusal of a file that is already mapped.
# /files/env sets S (vhdxsetup, copied in with --bin).
. /files/env
cd /files || exit 1

ok() { echo "GUEST-PASS $1"; }
no() { echo "GUEST-FAIL $1: $2"; }
expect_rc() {	# NAME WANT-RC COMMAND...
	name=$1 want=$2
	shift 2
	"$@" >/tmp/out 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		ok "$name"
	else
		no "$name" "exit $rc, expected $want: $(tr '\n' ' ' </tmp/out)"
	fi
}

expect_rc list-empty 0 "$S" list
[ ! -s /tmp/out ] && ok list-empty-output || no list-empty-output "$(cat /tmp/out)"
expect_rc open-a 0 "$S" open a.vhdx va
expect_rc open-child-ro 0 "$S" open --read-only child.vhdx vc
"$S" list >/tmp/list 2>&1
grep -q '^va  *rw  *ok  */dev/loop[0-9]*  */files/a.vhdx$' /tmp/list && ok list-rw ||
	no list-rw "$(tr '\n' '|' </tmp/list)"
grep -q '^vc  *ro  *ok  */dev/loop[0-9]*  */files/child.vhdx < /files/base.vhdx$' /tmp/list && ok list-child ||
	no list-child "$(tr '\n' '|' </tmp/list)"
"$S" list --json >/tmp/list.json 2>&1 && ok list-json || no list-json "$(cat /tmp/list.json)"
sed 's/^/GUEST-JSON /' /tmp/list.json
# error, not zero: dm-zero is a module the guest does not load, and a
# device that was never made is trivially not listed.
expect_rc list-plain-created 0 dmsetup create plain --table "0 8 error"
"$S" list | grep -q '^plain' && no list-only-vhdx "lists an error target" || ok list-only-vhdx
dmsetup remove plain >/dev/null 2>&1
# The same file again, under any name: refused, naming the mapping.
expect_rc refuse-same-file 2 "$S" open a.vhdx vb
grep -q 'a.vhdx is already mapped as the image of /dev/mapper/va' /tmp/out && ok refuse-names-mapping ||
	no refuse-names-mapping "$(cat /tmp/out)"
ln a.vhdx hard.vhdx
expect_rc refuse-same-inode 2 "$S" open --read-only hard.vhdx vb
# A parent shared read-only is fine; written, or the child again, is not.
expect_rc shared-parent-ro 0 "$S" open --read-only child2.vhdx vc2
expect_rc refuse-parent-rw 2 "$S" open base.vhdx vb
grep -q 'already mapped as parent 1 of /dev/mapper/vc' /tmp/out && ok refuse-parent-message ||
	no refuse-parent-message "$(cat /tmp/out)"
expect_rc refuse-child-again 2 "$S" open --read-only child.vhdx vb
for n in va vc vc2; do
	expect_rc "close-$n" 0 "$S" close "$n"
done
expect_rc open-after-close 0 "$S" open a.vhdx vb
expect_rc close-vb 0 "$S" close vb
# open --all / close --all from a vhdxtab.
printf 'ta /files/a.vhdx commit_time=500\ntb /files/base.vhdx ro\ntn /files/none.vhdx nofail\n' >tab
expect_rc tab-open-all 0 "$S" open --all --tab tab
[ -b /dev/mapper/ta ] && [ -b /dev/mapper/tb ] && ok tab-devices || no tab-devices "$(ls /dev/mapper)"
dmsetup table ta | grep -q 'commit_time:500' && ok tab-commit-time || no tab-commit-time "$(dmsetup table ta)"
[ "$(blockdev --getro /dev/mapper/tb)" = 1 ] && ok tab-ro || no tab-ro "tb is writable"
expect_rc tab-open-all-again 0 "$S" open --all --tab tab
expect_rc tab-close-all 0 "$S" close --all --tab tab
ls /dev/mapper | grep -qv control && no tab-all-closed "$(ls /dev/mapper)" || ok tab-all-closed
exit 0
