# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh disable=SC1091,SC2015
# (SC2015: ok and no always succeed, so A && ok || no is an if-else.)
#
# Guest half of the boot-path test of tests/system/run.sh (busybox sh, run
# by tests/guest/vm-run): /etc/vhdxtab -> vhdx-generator -> the generated
# units' ExecStart -> mount -a of /etc/fstab -> files read back -> shutdown
# (ExecStop, close --all); then the same tab through open --all.
#
# There is no systemd in the busybox guest, so this script plays its part,
# in the order the generated units impose (see tests/system/README):
#   1. units pulled in by local-fs.target (requires: must succeed; wants:
#      nofail, a failure is logged) with Before=local-fs-pre.target;
#   2. mount -a (fstab mounts are ordered after local-fs-pre.target);
#   3. units with RequiresMountsFor= a mount point that is now mounted,
#      then their own fstab mounts (noauto in the guest's fstab, as busybox
#      mount -a cannot wait for a device as systemd does).
# /files/env sets S (vhdxsetup, copied in with --bin) and UDEVADM (the
# host's, with --bin; empty: no udev checks); /files holds the images, the
# generator, the tab and fstab, the files to compare and udev/*.rules.
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
# The ExecStart=/ExecStop= command line of unit $1, % specifiers undone;
# the test's paths have no blanks, so word splitting is systemd's.
unit_cmd() {	# UNIT-FILE KEY; "false" where there is none, to fail
	c=$(sed -n "s/^$2=//p" "$1" 2>/dev/null | sed 's/%%/%/g')
	echo "${c:-false}"
}
# A file system on DIR, for the cmp checks: not files in an empty mount point.
on_mount() { grep -q " $1 " /proc/mounts; }
loops() { grep -l . /sys/block/loop*/loop/backing_file 2>/dev/null | wc -l; }
mapped() {	# the dm devices, "NAME NAME "
	for d in /dev/mapper/*; do
		[ "$d" = /dev/mapper/control ] || printf '%s ' "${d#/dev/mapper/}"
	done
}

mkdir -p /etc
cp /files/vhdxtab /etc/vhdxtab
cp /files/fstab /etc/fstab
mkdir -p /mnt/data /mnt/inner /mnt/gone /run/systemd/generator

# --- what systemd does at boot ----------------------------------------------
gen=/run/systemd/generator
expect_rc generator 0 env VHDXSETUP="$S" /files/vhdx-generator "$gen" /run/early /run/late
[ -f "$gen/local-fs.target.requires/vhdx@data.service" ] &&
	[ -f "$gen/local-fs.target.wants/vhdx@gone.service" ] &&
	[ -f "$gen/local-fs.target.wants/vhdx@inner.service" ] &&
	[ -f "$gen/vhdx@spare.service" ] && [ ! -e "$gen/local-fs.target.wants/vhdx@spare.service" ] &&
	ok generator-units || no generator-units "$(cd "$gen" && find . | tr '\n' ' ')"
grep -qx "RequiresMountsFor=/mnt/data" "$gen/vhdx@inner.service" &&
	ok generator-inner-after-its-mount || no generator-inner-after-its-mount "$(tr '\n' '|' <"$gen/vhdx@inner.service")"

# start_units ORDER-LINE: ExecStart of every unit local-fs.target pulls in
# whose unit file has the line ORDER-LINE; a required unit must succeed.
start_units() {
	for link in "$gen"/local-fs.target.requires/* "$gen"/local-fs.target.wants/*; do
		[ -e "$link" ] || continue
		grep -qx "$1" "$link" || continue
		unit=${link##*/}
		# shellcheck disable=SC2046 # the command line is words
		set -- "$1" $(unit_cmd "$link" ExecStart)
		ord=$1
		shift
		if "$@" >/tmp/unit.out 2>&1; then
			echo "started $unit"
		else
			case $link in
			*.requires/*) echo "FAILED $unit (required): $(tr '\n' ' ' </tmp/unit.out)" ;;
			*) echo "failed $unit (wanted, nofail)" ;;
			esac
		fi
		set -- "$ord"
	done
}
start_units "Before=local-fs-pre.target" >/tmp/phase1 2>&1
cat /tmp/phase1
grep -qx "started vhdx@data.service" /tmp/phase1 && [ -b /dev/mapper/data ] &&
	ok boot-data-opened || no boot-data-opened "$(tr '\n' ' ' </tmp/phase1)"
grep -qx "failed vhdx@gone.service (wanted, nofail)" /tmp/phase1 &&
	ok boot-nofail-missing-image-failed || no boot-nofail-missing-image-failed "$(tr '\n' ' ' </tmp/phase1)"
grep -q "FAILED" /tmp/phase1 && no boot-no-required-failure "$(grep FAILED /tmp/phase1)" || ok boot-no-required-failure
grep -q "vhdx@inner" /tmp/phase1 && no boot-inner-not-before-its-mount "started before local-fs-pre" ||
	ok boot-inner-not-before-its-mount
dmsetup table data | grep -q 'commit_time:700' && ok boot-commit-time || no boot-commit-time "$(dmsetup table data)"

# The missing image's fstab line has nofail too: mount -a goes on.
expect_rc boot-mount-a 0 mount -a
grep -q '^/dev/mapper/data /mnt/data ext4 rw' /proc/mounts && ok boot-data-mounted ||
	no boot-data-mounted "$(tr '\n' '|' </proc/mounts)"
on_mount /mnt/data && cmp /mnt/data/hello.bin /files/hello.bin && ok boot-file-read-back || no boot-file-read-back "differs"

start_units "RequiresMountsFor=/mnt/data" >/tmp/phase2 2>&1
cat /tmp/phase2
grep -qx "started vhdx@inner.service" /tmp/phase2 && [ -b /dev/mapper/inner ] &&
	ok boot-inner-opened-after-mount || no boot-inner-opened-after-mount "$(tr '\n' ' ' </tmp/phase2)"
[ "$(blockdev --getro /dev/mapper/inner)" = 1 ] && ok boot-inner-ro || no boot-inner-ro "writable"
expect_rc boot-inner-mount 0 mount /mnt/inner
on_mount /mnt/inner && cmp /mnt/inner/inner.bin /files/inner.bin && ok boot-inner-file-read-back || no boot-inner-file-read-back "differs"
expect_rc boot-spare-noauto-not-opened 1 test -e /dev/mapper/spare

# Something written now must be there after close and a new open.
on_mount /mnt/data && cp /files/hello.bin /mnt/data/written.bin && sync

# --- shutdown: the units stop in reverse order ------------------------------
# inner's image lives on /mnt/data, so it goes first (ExecStop of its unit,
# as systemd does: RequiresMountsFor orders its stop before the unmount);
# then data with close --all, which leaves what is not open alone.
expect_rc stop-inner-umount 0 umount /mnt/inner
# shellcheck disable=SC2046 # the command line is words
expect_rc stop-inner-execstop 0 $(unit_cmd "$gen/vhdx@inner.service" ExecStop)
expect_rc stop-data-umount 0 umount /mnt/data
expect_rc stop-close-all 0 "$S" close --all
[ -z "$(mapped)" ] && ok stop-all-closed || no stop-all-closed "$(mapped)"
[ "$(loops)" = 0 ] && ok stop-loops-detached || no stop-loops-detached "$(loops) loop devices"

# --- the same tab through open --all (no systemd) ---------------------------
# inner's image is not reachable while /mnt/data is not mounted: a nofail
# failure, as is gone.  A second open --all after mount -a maps inner too
# and leaves data alone.
expect_rc all-open 0 "$S" open --all
grep -q "inner failed (nofail)" /tmp/out && grep -q "gone failed (nofail)" /tmp/out &&
	ok all-nofail-reported || no all-nofail-reported "$(tr '\n' ' ' </tmp/out)"
[ "$(mapped)" = "data " ] && ok all-data-only || no all-data-only "$(mapped)"
expect_rc all-mount-a 0 mount -a
on_mount /mnt/data && cmp /mnt/data/written.bin /files/hello.bin && ok all-written-file-kept || no all-written-file-kept "differs"
expect_rc all-open-again 0 "$S" open --all
[ "$(mapped)" = "data inner " ] && ok all-again-inner-too || no all-again-inner-too "$(mapped)"
expect_rc all-inner-mount 0 mount /mnt/inner
on_mount /mnt/inner && cmp /mnt/inner/inner.bin /files/inner.bin && ok all-inner-file-read-back || no all-inner-file-read-back "differs"

# --- udev: the host's udevadm test on dmsetup's rules and ours ---------------
# The guest runs no udevd (DM_DISABLE_UDEV=1); udevadm test runs the rules
# for one event in-process, with the real parser: a rule it rejects is
# logged as "FILE:LINE reason".  "change" is the event a dm device gets
# when its table goes live; 55-dm.rules then sets DM_NAME and DM_UUID.
if [ -n "${UDEVADM:-}" ]; then
	mkdir -p /etc/udev/rules.d
	cp /files/udev/*.rules /etc/udev/rules.d/
	dm=
	for d in /sys/block/dm-*; do
		[ "$(cat "$d/dm/name")" = data ] && dm=${d##*/}
	done
	"$UDEVADM" test --action=change "/sys/block/$dm" >/tmp/udev.out 2>&1
	grep -q '^/etc/udev/rules.d/60-dm-vhdx.rules:' /tmp/udev.out &&
		no udev-rules-parse "$(grep '^/etc/udev/rules.d/60-dm-vhdx.rules:' /tmp/udev.out | tr '\n' '|')" ||
		ok udev-rules-parse
	grep -q '^Reading rules file: /etc/udev/rules.d/60-dm-vhdx.rules' /tmp/udev.out &&
		ok udev-rules-read || no udev-rules-read "$(grep 'rules file' /tmp/udev.out | tr '\n' '|')"
	grep -q '^DEVLINKS=.*/dev/disk/by-id/dm-vhdx-data\( \|$\)' /tmp/udev.out &&
		ok udev-dm-vhdx-link || no udev-dm-vhdx-link "$(grep -E '^(DEVLINKS|DM_)' /tmp/udev.out | tr '\n' '|')"
	grep -q '^DEVLINKS=.*/dev/disk/by-id/dm-uuid-VHDX-' /tmp/udev.out &&
		ok udev-dm-uuid-link || no udev-dm-uuid-link "$(grep '^DEVLINKS' /tmp/udev.out)"
	grep -qx 'ID_VHDX_NAME=data' /tmp/udev.out && ok udev-id-vhdx-name || no udev-id-vhdx-name "not set"
	loop=
	for d in /sys/block/loop*; do
		[ "$(cat "$d/loop/backing_file" 2>/dev/null)" = /files/data.vhdx ] && loop=${d##*/}
	done
	"$UDEVADM" test --action=add "/sys/block/$loop" >/tmp/udev.out 2>&1
	grep -qx 'UDISKS_IGNORE=1' /tmp/udev.out && grep -qx 'ID_VHDX_LOOP=1' /tmp/udev.out &&
		ok udev-loop-hidden || no udev-loop-hidden "$loop: $(grep -E '^(UDISKS|ID_VHDX)' /tmp/udev.out)"
	# Not every dm device, not every loop device.
	# error: built into dm-mod, unlike zero (a module the guest lacks).
	dmsetup create plain --table "0 8 error" && ok udev-plain-created || no udev-plain-created "dmsetup create failed"
	dm=
	for d in /sys/block/dm-*; do
		[ "$(cat "$d/dm/name")" = plain ] && dm=${d##*/}
	done
	"$UDEVADM" test --action=change "/sys/block/$dm" >/tmp/udev.out 2>&1
	grep -q '^DEVLINKS=.*/dev/mapper/plain' /tmp/udev.out && ! grep -qE '^(DEVLINKS=.*dm-vhdx|ID_VHDX)' /tmp/udev.out &&
		ok udev-other-dm-untouched || no udev-other-dm-untouched "$(grep -E '^(DEVLINKS|ID_VHDX)' /tmp/udev.out)"
	dmsetup remove plain
	head -c 1048576 /dev/zero >/tmp/plain.img
	loop=$(losetup -f --show /tmp/plain.img)
	"$UDEVADM" test --action=add "/sys/block/${loop#/dev/}" >/tmp/udev.out 2>&1
	grep -q 'UDISKS_IGNORE\|ID_VHDX' /tmp/udev.out && no udev-other-loop-untouched "$(grep -E '^(UDISKS|ID_VHDX)' /tmp/udev.out)" ||
		ok udev-other-loop-untouched
	losetup -d "$loop"
fi

umount /mnt/inner
# close --all goes bottom up: inner (on /mnt/data) before data, but data is
# still mounted, so it is busy and close --all fails; unmounted, it closes.
expect_rc all-close-busy 2 "$S" close --all
[ "$(mapped)" = "data " ] && ok all-close-busy-inner-closed || no all-close-busy-inner-closed "$(mapped)"
umount /mnt/data
expect_rc all-close 0 "$S" close --all
[ -z "$(mapped)" ] && [ "$(loops)" = 0 ] && ok all-closed || no all-closed "$(mapped); $(loops) loops"
exit 0
