# SPDX-License-Identifier: GPL-2.0
# Guest-side helpers for the dm-vhdx end-to-end tests (busybox sh).
#
# run.sh prepends this file to the per-boot script it generates.  Results
# go to /tmp/e2e-res as "ITEM KEY VALUE..." lines and, at the end, onto the
# results disk (the first virtio disk), because the console can interleave
# kernel messages with our own lines.  Every step records its outcome and
# carries on: one broken image must not hide the results of the others.

RES=/tmp/e2e-res
RESDEV=/dev/vda

e2e_setup() {
	mkdir -p /tmp /mnt /proc /sys /dev
	[ -e /proc/self ] || mount -t proc proc /proc
	[ -d /sys/block ] || mount -t sysfs sysfs /sys
	[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
	: > "$RES"
	echo "E2E-GUEST-START"
	res all targets "$(dmsetup targets 2>&1 | grep vhdx)"
}

# res ITEM KEY VALUE...
res() {
	echo "$*" >> "$RES"
	echo "E2E: $*"
}

# Record the kernel messages a step produced (dm/vhdx lines only).
e2e_dmesg() {
	dmesg | grep -iE 'vhdx|device-mapper|dm-[0-9]' | while read -r line; do
		res "$1" dmesg "$line"
	done
}

# map NAME DEV ro|rw LEN [FEATURE...]: create a vhdx mapping of LEN
# sectors; ro uses dmsetup --readonly.
map() {
	name=$1; dev=$2; mode=$3; len=$4
	shift 4
	feat=""
	if [ $# -gt 0 ]; then
		feat=" $# $*"
	fi
	ro=""
	[ "$mode" = ro ] && ro="--readonly"
	dmesg -c > /dev/null
	dmsetup create "$name" $ro --noudevsync --table "0 $len vhdx $dev$feat" \
		> /tmp/e2e-out 2>&1
	rc=$?
	res "$name" create "$rc"
	while read -r line; do res "$name" createout "$line"; done < /tmp/e2e-out
	e2e_dmesg "$name"
	if [ "$rc" = 0 ]; then
		dmsetup mknodes "$name" > /dev/null 2>&1
		res "$name" size "$(blockdev --getsize64 /dev/mapper/$name 2>&1)"
		res "$name" ss "$(blockdev --getss /dev/mapper/$name 2>&1)"
		res "$name" status "$(dmsetup status "$name" 2>&1)"
		res "$name" table "$(dmsetup table "$name" 2>&1)"
		res "$name" devnum "$(cat /sys/block/${dev#/dev/}/dev 2>&1)"
	fi
	return $rc
}

# copyout NAME OUTDEV SEEK_MIB [SKIP_MIB COUNT_MIB]: copy the mapped device
# (or a window of it) onto the output disk at SEEK_MIB.
copyout() {
	name=$1; out=$2; seek=$3
	win=""
	[ $# -ge 5 ] && win="skip=$4 count=$5"
	dmesg -c > /dev/null
	dd if=/dev/mapper/$name of="$out" bs=1048576 seek="$seek" $win \
		conv=notrunc > /tmp/e2e-out 2>&1
	rc=$?
	res "$name" copy "$rc"
	[ "$rc" = 0 ] || while read -r line; do res "$name" copyout "$line"; done < /tmp/e2e-out
	e2e_dmesg "$name"
	return $rc
}

# Save the results so far, so a later crash still leaves them readable.
e2e_flush() {
	dd if="$RES" of="$RESDEV" conv=notrunc,fsync > /dev/null 2>&1
}

# copyout_direct NAME OUTDEV SEEK_MIB BS: copy the whole device with
# O_DIRECT reads of BS bytes, a size that does not divide the block size,
# so that reads straddle block boundaries in every way.  Result key dcopy.
copyout_direct() {
	name=$1; out=$2; seek=$3; bs=$4
	dmesg -c > /dev/null
	# coreutils dd (vm-run --bin): busybox dd may quietly drop O_DIRECT.
	/usr/bin/dd if=/dev/mapper/$name of="$out" bs="$bs" iflag=direct \
		oflag=seek_bytes seek=$((seek * 1048576)) conv=notrunc > /tmp/e2e-out 2>&1
	rc=$?
	res "$name" dcopy "$rc"
	[ "$rc" = 0 ] || while read -r line; do res "$name" dcopyout "$line"; done < /tmp/e2e-out
	e2e_dmesg "$name"
	return $rc
}

unmap() {
	sync
	dmsetup remove --noudevsync "$1" > /tmp/e2e-out 2>&1
	rc=$?
	res "$1" remove "$rc"
	[ "$rc" = 0 ] || while read -r line; do res "$1" removeout "$line"; done < /tmp/e2e-out
	e2e_flush
}

e2e_finish() {
	sync
	res all finished 1
	dd if="$RES" of="$RESDEV" conv=notrunc,fsync > /dev/null 2>&1 ||
		echo "E2E: cannot write the results disk"
	sync
	echo "E2E-GUEST-END"
	exit 0
}
