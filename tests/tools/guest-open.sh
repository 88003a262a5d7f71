# SPDX-License-Identifier: GPL-2.0
#
# Guest half of the vhdxsetup open/close/status tests (busybox sh, run by
# tests/guest/vm-run from tests/tools/run.sh).  The host made the images in
# /files; /files/env sets S (vhdxsetup, copied in with --bin) and the
# offsets to write.  Prints "GUEST-PASS name", "GUEST-FAIL name: why" and
# "GUEST-VALUE name value" lines for the host, which checks the images this
# leaves, packed with tar onto /dev/vda, against qemu-img and libvhdi.
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
loops() { grep -l . /sys/block/loop*/loop/backing_file 2>/dev/null | wc -l; }

# --- a writable open of a dynamic image: extend, write, status, close, trim
value dyn-size-before "$(stat -c %s dyn.vhdx)"
if dev=$("$S" open dyn.vhdx vd 2>/tmp/out); then
	ok open-rw
else
	no open-rw "$(cat /tmp/out)"
fi
[ "$dev" = /dev/mapper/vd ] && [ -b /dev/mapper/vd ] && ok open-rw-node ||
	no open-rw-node "open printed '$dev'"
value dyn-size-open "$(stat -c %s dyn.vhdx)"
value dyn-device-size "$(blockdev --getsize64 /dev/mapper/vd)"
[ "$(cat /sys/block/loop*/loop/backing_file 2>/dev/null)" = /files/dyn.vhdx ] &&
	ok open-rw-loop-backing || no open-rw-loop-backing "$(cat /sys/block/loop*/loop/backing_file)"
[ "$(cat /sys/block/loop*/loop/autoclear)" = 1 ] && ok open-rw-loop-autoclear ||
	no open-rw-loop-autoclear "autoclear is not set"
dd if=pattern.bin of=/dev/mapper/vd bs=4096 seek=$((WRITE_AT / 4096)) conv=fsync 2>/dev/null &&
	dd if=pattern.bin of=/dev/mapper/vd bs=4096 count=1 seek=$((VS / 4096 - 1)) conv=fsync 2>/dev/null &&
	ok write-rw || no write-rw "dd failed"
"$S" status vd >/tmp/status 2>&1 && ok status-rw || no status-rw "$(cat /tmp/status)"
sed 's/^/GUEST-STATUS vd /' /tmp/status
expect_rc close-rw 0 "$S" close vd
[ ! -e /dev/mapper/vd ] && ok close-rw-node-gone || no close-rw-node-gone "/dev/mapper/vd is still there"
[ "$(loops)" = 0 ] && ok close-rw-loop-gone || no close-rw-loop-gone "$(loops) loop devices still attached"
value dyn-size-after "$(stat -c %s dyn.vhdx)"

# --- read-only: the file does not change, writes fail
sum=$(md5sum ro.vhdx)
expect_rc open-ro 0 "$S" open --read-only ro.vhdx vr
[ "$(blockdev --getro /dev/mapper/vr)" = 1 ] && ok open-ro-device-ro || no open-ro-device-ro "the device is writable"
[ "$(cat /sys/block/loop*/loop/../ro 2>/dev/null)" = 1 ] && ok open-ro-loop-ro || no open-ro-loop-ro "the loop device is writable"
value ro-md5 "$(dd if=/dev/mapper/vr bs=1048576 2>/dev/null | md5sum | cut -d' ' -f1)"
if dd if=pattern.bin of=/dev/mapper/vr bs=4096 count=1 conv=fsync 2>/dev/null; then
	no write-ro-refused "a write to the read-only device succeeded"
else
	ok write-ro-refused
fi
"$S" status vr >/tmp/status 2>&1
grep -q '^mode *read-only' /tmp/status && ok status-ro || no status-ro "$(cat /tmp/status)"
expect_rc open-name-taken 2 "$S" open --read-only ro.vhdx vr
expect_rc close-ro 0 "$S" close vr
[ "$(md5sum ro.vhdx)" = "$sum" ] && ok ro-file-unchanged || no ro-file-unchanged "the image changed"

# --- 4096-byte logical sectors, writable
expect_rc open-4k 0 "$S" open k4.vhdx vk
[ "$(blockdev --getss /dev/mapper/vk)" = 4096 ] && ok open-4k-sector-size ||
	no open-4k-sector-size "logical block size $(blockdev --getss /dev/mapper/vk)"
dd if=pattern.bin of=/dev/mapper/vk bs=4096 seek=$((WRITE_AT / 4096)) conv=fsync 2>/dev/null &&
	ok write-4k || no write-4k "dd failed"
expect_rc close-4k 0 "$S" close vk

# --- a QEMU fixed image (ZERO blocks, LeaveBlockAllocated): room stays
value qfix-size-before "$(stat -c %s qfix.vhdx)"
expect_rc open-qemu-fixed 0 "$S" open qfix.vhdx vq
dd if=pattern.bin of=/dev/mapper/vq bs=4096 count=1 seek=$((WRITE_AT / 4096)) conv=fsync 2>/dev/null &&
	ok write-qemu-fixed || no write-qemu-fixed "dd failed"
expect_rc close-qemu-fixed 0 "$S" close vq
value qfix-size-after "$(stat -c %s qfix.vhdx)"

# --- busy devices and refusals
"$S" open dyn.vhdx vb >/dev/null 2>&1
exec 3</dev/mapper/vb
expect_rc close-busy 2 "$S" close vb
grep -q 'is it mounted or open' /tmp/out && ok close-busy-message || no close-busy-message "$(cat /tmp/out)"
exec 3<&-
expect_rc close-after-busy 0 "$S" close vb
expect_rc open-missing 2 "$S" open /files/none.vhdx vx
grep -q none.vhdx /tmp/out && ok open-missing-names-file || no open-missing-names-file "$(cat /tmp/out)"
expect_rc open-differencing 2 "$S" open child.vhdx vx
expect_rc open-not-vhdx 1 "$S" open pattern.bin vx
expect_rc close-unknown 2 "$S" close nosuch
expect_rc status-unknown 2 "$S" status nosuch
dmsetup create plain --table "0 8 zero" >/dev/null 2>&1
expect_rc close-not-vhdx 2 "$S" close plain
dmsetup remove plain >/dev/null 2>&1
[ "$(loops)" = 0 ] && ok no-loop-left || no no-loop-left "$(loops) loop devices still attached"
ls /dev/mapper | grep -qv control && no no-mapping-left "$(ls /dev/mapper)" || ok no-mapping-left

tar -cf /dev/vda dyn.vhdx k4.vhdx ro.vhdx qfix.vhdx && ok pack || no pack "tar failed"
sync
exit 0
