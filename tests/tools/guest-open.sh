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
# Moving blocks under the kernel's BAT would corrupt the device: refused.
expect_rc compact-mapped-refused 2 "$S" compact dyn.vhdx
grep -q 'mapped as the image of /dev/mapper/vd' /tmp/out && ok compact-mapped-message ||
	no compact-mapped-message "$(cat /tmp/out)"
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
expect_rc open-differencing-ro 0 "$S" open --read-only child.vhdx vd1
value diff-ro-md5 "$(dd if=/dev/mapper/vd1 bs=1048576 2>/dev/null | md5sum | cut -d' ' -f1)"
expect_rc close-differencing-ro 0 "$S" close vd1
expect_rc open-not-vhdx 1 "$S" open pattern.bin vx
expect_rc close-unknown 2 "$S" close nosuch
expect_rc status-unknown 2 "$S" status nosuch
dmsetup create plain --table "0 8 zero" >/dev/null 2>&1
expect_rc close-not-vhdx 2 "$S" close plain
dmsetup remove plain >/dev/null 2>&1
[ "$(loops)" = 0 ] && ok no-loop-left || no no-loop-left "$(loops) loop devices still attached"
ls /dev/mapper | grep -qv control && no no-mapping-left "$(ls /dev/mapper)" || ok no-mapping-left

# --- a chain of two parents: top.vhdx -> sub/mid.vhdx -> base.vhdx
ro_loops() {	# the loop devices of FILE...: how many are read-only
	n=0
	for f in /sys/block/loop*/loop/backing_file; do
		b=$(cat "$f" 2>/dev/null) || continue
		for want in "$@"; do
			[ "$b" = "$want" ] && [ "$(cat "${f%/loop/backing_file}/ro")" = 1 ] && n=$((n + 1))
		done
	done
	echo $n
}
value top-size-before "$(stat -c %s top.vhdx)"
expect_rc chain-open 0 "$S" open top.vhdx vc
value top-size-open "$(stat -c %s top.vhdx)"
[ "$(loops)" = 3 ] && ok chain-three-loops || no chain-three-loops "$(loops) loop devices attached"
[ "$(ro_loops /files/base.vhdx /files/sub/mid.vhdx)" = 2 ] && ok chain-parent-loops-ro ||
	no chain-parent-loops-ro "the parents' loop devices are not both read-only"
[ "$(ro_loops /files/top.vhdx)" = 0 ] && ok chain-child-loop-rw || no chain-child-loop-rw "the child's loop device is read-only"
"$S" status vc >/tmp/status 2>&1
if grep -q '^parents *2$' /tmp/status && grep -q '^parent 1 */files/sub/mid.vhdx (/dev/loop' /tmp/status &&
   grep -q '^parent 2 */files/base.vhdx (/dev/loop' /tmp/status; then
	ok chain-status
else
	no chain-status "$(tr '\n' ' ' </tmp/status)"
fi
expect_rc compact-parent-refused 2 "$S" compact base.vhdx
grep -q 'mapped as parent 2 of /dev/mapper/vc' /tmp/out && ok compact-parent-message ||
	no compact-parent-message "$(cat /tmp/out)"
value chain-md5 "$(dd if=/dev/mapper/vc bs=1048576 2>/dev/null | md5sum | cut -d' ' -f1)"
dd if=pattern.bin of=/dev/mapper/vc bs=4096 seek=$((WRITE_AT / 4096)) conv=fsync 2>/dev/null &&
	dd if=pattern.bin of=/dev/mapper/vc bs=4096 count=1 seek=$(((1048576 + 8192) / 4096)) conv=fsync 2>/dev/null &&
	ok chain-write || no chain-write "dd failed"
expect_rc chain-close 0 "$S" close vc
[ "$(loops)" = 0 ] && ok chain-close-loops-gone || no chain-close-loops-gone "$(loops) loop devices still attached"
value top-size-after "$(stat -c %s top.vhdx)"
expect_rc chain-open-ro 0 "$S" open --read-only top.vhdx vc
value chain-ro-md5 "$(dd if=/dev/mapper/vc bs=1048576 2>/dev/null | md5sum | cut -d' ' -f1)"
expect_rc chain-close-ro 0 "$S" close vc
# Moved away from its parents: the locator's absolute_win32_path, the
# host's path of /files, finds them.
if mkdir -p moved "$(dirname "$HOSTDIR")" && ln -s /files "$HOSTDIR" && cp top.vhdx moved/; then
	expect_rc chain-open-absolute 0 "$S" open --read-only moved/top.vhdx vc
else
	no chain-open-absolute "cannot link $HOSTDIR to /files"
fi
"$S" status vc >/tmp/status 2>&1
grep -q '^parent 1 */files/sub/mid.vhdx (' /tmp/status && grep -q '^parent 2 */files/base.vhdx (' /tmp/status &&
	ok chain-absolute-parents || no chain-absolute-parents "$(tr '\n' ' ' </tmp/status)"
expect_rc chain-close-absolute 0 "$S" close vc
rm -rf moved
# A parent written after the child was made; a parent that is gone.
expect_rc chain-stale-refused 1 "$S" open stale-child.vhdx vx
grep -q 'stale-child.vhdx: parent_linkage .* does not match DataWriteGuid .* of its parent /files/stale-base.vhdx' /tmp/out &&
	ok chain-stale-message || no chain-stale-message "$(cat /tmp/out)"
expect_rc chain-missing-refused 2 "$S" open --read-only lost-child.vhdx vx
grep -q 'lost-child.vhdx: parent not found: looked for /files/lost-base.vhdx' /tmp/out &&
	ok chain-missing-message || no chain-missing-message "$(cat /tmp/out)"
[ "$(loops)" = 0 ] && ok chain-no-loop-left || no chain-no-loop-left "$(loops) loop devices still attached"
ls /dev/mapper | grep -qv control && no chain-no-mapping-left "$(ls /dev/mapper)" || ok chain-no-mapping-left

tar -cf /dev/vda dyn.vhdx k4.vhdx ro.vhdx qfix.vhdx base.vhdx sub/mid.vhdx top.vhdx stale-child.vhdx &&
	ok pack || no pack "tar failed"
sync
exit 0
