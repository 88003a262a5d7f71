# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the online grow tests (busybox sh, run by tests/guest/vm-run
# from tests/tools/online-grow.sh).  /files/env sets S (vhdxsetup) and the
# sizes; the host made the images and the data files in /files.  Prints
# "GUEST-PASS name", "GUEST-FAIL name: why" and "GUEST-VALUE name value"
# lines; the images it leaves go back packed with tar onto /dev/vda and
# are checked on the host against qemu-img, e2fsck and debugfs.
. /files/env
cd /files || exit 1

ok() { echo "GUEST-PASS $1"; }
no() { echo "GUEST-FAIL $1: $2"; }
value() { echo "GUEST-VALUE $1 $2"; }
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
says() {	# NAME REGEX: the last command's output says it
	grep -Eq -- "$2" /tmp/out && ok "$1" || no "$1" "$(tr '\n' ' ' </tmp/out)"
}
mkdir -p /mnt

# --- a mapped image with a file system, grown while mounted -----------------
expect_rc grow-open 0 "$S" open grow.vhdx vg
expect_rc grow-mkfs 0 mkfs.ext4 -q -F -E nodiscard /dev/mapper/vg
expect_rc grow-mount 0 mount -t ext4 /dev/mapper/vg /mnt
cp data1.bin /mnt/ && sync && ok grow-write-before || no grow-write-before "cp failed"
value fs-before "$(df -k /mnt | awk 'NR == 2 { print $2 }')"

# Refused online: a shrink, or a smaller size without --shrink.
expect_rc grow-shrink-refused 2 "$S" resize --shrink grow.vhdx $((OLD / 2))
says grow-shrink-refused-says "online shrink is refused"
expect_rc grow-smaller-refused 2 "$S" resize grow.vhdx $((OLD / 2))
says grow-smaller-refused-says "online shrink is refused"
[ "$(blockdev --getsize64 /dev/mapper/vg)" = "$OLD" ] && ok grow-refusals-keep-size ||
	no grow-refusals-keep-size "$(blockdev --getsize64 /dev/mapper/vg) bytes"

expect_rc grow-online 0 "$S" resize grow.vhdx "$NEW"
value grow-out "$(tr '\n' ' ' </tmp/out)"
[ "$(blockdev --getsize64 /dev/mapper/vg)" = "$NEW" ] && ok grow-device-size ||
	no grow-device-size "$(blockdev --getsize64 /dev/mapper/vg) bytes, want $NEW"
dmsetup status vg >/tmp/out 2>&1
grep -q ' rw ok$' /tmp/out && ok grow-status || no grow-status "$(cat /tmp/out)"
dmsetup info vg | grep -q ACTIVE && ok grow-active || no grow-active "$(dmsetup info vg)"
expect_rc grow-resize2fs 0 resize2fs /dev/mapper/vg
value fs-after "$(df -k /mnt | awk 'NR == 2 { print $2 }')"
# More than the old size held: the new space is used.
cp data2.bin /mnt/ && sync && ok grow-write-after || no grow-write-after "cp failed"
md5sum /mnt/data1.bin /mnt/data2.bin >/tmp/sums1
expect_rc grow-umount 0 umount /mnt
expect_rc grow-close 0 "$S" close vg
# Mapped again: the file system and its files are there.
expect_rc grow-reopen 0 "$S" open grow.vhdx vg
[ "$(blockdev --getsize64 /dev/mapper/vg)" = "$NEW" ] && ok grow-reopen-size ||
	no grow-reopen-size "$(blockdev --getsize64 /dev/mapper/vg) bytes"
mount -t ext4 -o ro /dev/mapper/vg /mnt && md5sum /mnt/data1.bin /mnt/data2.bin >/tmp/sums2 &&
	umount /mnt
cmp -s /tmp/sums1 /tmp/sums2 && ok grow-reopen-content || no grow-reopen-content "$(cat /tmp/sums1 /tmp/sums2)"
expect_rc grow-close-again 0 "$S" close vg

# --- refusals: a parent of a mapping, a read-only mapping -------------------
expect_rc par-open 0 "$S" open child.vhdx vc
expect_rc grow-parent-refused 2 "$S" resize par.vhdx $((2 * PAR))
says grow-parent-refused-says "parent 1 of /dev/mapper/vc"
expect_rc par-close 0 "$S" close vc
expect_rc ro-open 0 "$S" open --read-only par.vhdx vr
expect_rc grow-ro-refused 2 "$S" resize par.vhdx $((2 * PAR))
says grow-ro-refused-says "read-only"
expect_rc ro-close 0 "$S" close vr
[ "$(md5sum <par.vhdx)" = "$(md5sum <par.orig)" ] && ok grow-refusals-write-nothing ||
	no grow-refusals-write-nothing "par.vhdx changed"

# --- the image changed while suspended: the old table does not resume -------
expect_rc stale-open 0 "$S" open stale.vhdx vs
dmesg -c >/dev/null
expect_rc stale-suspend 0 dmsetup suspend vs
# What an interrupted resize leaves: the image, changed, under the table.
dd if=stale-new.vhdx of=stale.vhdx conv=notrunc bs=1M 2>/dev/null && sync
if dmsetup resume vs >/tmp/out 2>&1; then
	no stale-resume-refused "the old table resumed over a changed image"
	# What the old code then does: its stale BAT allocates and commits.
	dd if=data1.bin of=/dev/mapper/vs bs=1M count=1 seek=2 conv=fsync 2>/dev/null
else
	ok stale-resume-refused
fi
dmesg | grep -q 'changed while the device was suspended' && ok stale-dmesg ||
	no stale-dmesg "$(dmesg | grep -i vhdx | tail -3 | tr '\n' ' ')"
dmsetup info vs | grep -q SUSPENDED && ok stale-stays-suspended || no stale-stays-suspended "$(dmsetup info vs)"
expect_rc stale-remove 0 dmsetup remove vs
sleep 1
[ "$(head -c "$(stat -c %s stale-new.vhdx)" stale.vhdx | md5sum)" = "$(md5sum <stale-new.vhdx)" ] &&
	ok stale-nothing-written || no stale-nothing-written "stale.vhdx was written after the change"
expect_rc stale-check 0 "$S" check stale.vhdx

tar -cf /dev/vda grow.vhdx stale.vhdx && ok pack || no pack "tar failed"
sync
exit 0
