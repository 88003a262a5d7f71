# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash
# Guest-side helpers of the dm-vhdx write-path tests (busybox sh).
#
# run.sh builds each boot's script from tests/e2e/guest-lib.sh (res, map,
# unmap, e2e_dmesg, e2e_flush, e2e_finish), this file, and the calls it
# adds.  Every helper records what happened as "ITEM KEY VALUE" results and
# carries on; the host decides what passed.  Write data comes from
# /files/pat.bin, at the offsets the ops files give (see wrtool.py).

# Coreutils dd when run.sh passed it (vm-run --bin /usr/bin/dd), for every
# O_DIRECT transfer: busybox dd allocates buffers under 4 KiB with malloc,
# and when O_DIRECT then fails with EINVAL it silently writes through the
# page cache instead.  A plain "dd" is busybox's (/bin comes first in PATH).
WR_DD="dd"
[ -x /usr/bin/dd ] && WR_DD=/usr/bin/dd

# wr_one DEV OFF LEN SRC MODE: one write of LEN bytes of the pattern at
# byte offset OFF, O_DIRECT or through the page cache.
wr_one() {
	local fl
	fl=seek_bytes
	[ "$5" = direct ] && fl=seek_bytes,direct
	$WR_DD if=/files/pat.bin of="$1" bs="$3" count=1 iflag=skip_bytes skip="$4" \
		oflag=$fl seek="$2" conv=notrunc > /tmp/wr-dd 2>&1
}

# wr_setup: after e2e_setup; says which dd writes.
wr_setup() {
	res all dd "$($WR_DD --version 2>&1 | head -n 1)"
}

# wr_err: the error line of the last dd (or its last line).
wr_err() {
	grep -m 1 -iE 'dd:|error|denied|no space' /tmp/wr-dd || tail -n 1 /tmp/wr-dd
}

# wr_ops ITEM OPSFILE DEV...: apply every write of OPSFILE, in order, to
# each DEV (the mapped VHDX and its raw mirror), then fsync each DEV.
# Results: ops (count), opsbad (failed writes and fsyncs), ddbad (failed
# writes), opfail (the first failures).
wr_ops() {
	local item ops n bad ddbad off len src mode step dev
	item=$1; ops=$2
	shift 2
	n=0; bad=0; ddbad=0
	while read -r off len src mode step; do
		n=$((n + 1))
		for dev in "$@"; do
			if ! wr_one "$dev" "$off" "$len" "$src" "$mode"; then
				bad=$((bad + 1))
				ddbad=$((ddbad + 1))
				[ "$bad" -le 4 ] && res "$item" opfail "op $n ($off+$len $mode) on $dev: $(wr_err)"
			fi
		done
	done < "$ops"
	for dev in "$@"; do
		if ! sync "$dev" > /tmp/wr-dd 2>&1; then
			bad=$((bad + 1))
			res "$item" opfail "fsync of $dev: $(wr_err)"
		fi
	done
	res "$item" ops "$n"
	res "$item" opsbad "$bad"
	res "$item" ddbad "$ddbad"
}

# wr_bg ITEM OPSFILE DEV: write OPSFILE over and over (20 times at most)
# until a write fails.  Results: okwrites, ddbad, passes, opfail.
wr_bg() {
	local pass nok nbad off len src mode step
	pass=0; nok=0; nbad=0
	while [ "$pass" -lt 20 ] && [ "$nbad" = 0 ]; do
		while read -r off len src mode step; do
			if wr_one "$3" "$off" "$len" "$src" "$mode"; then
				nok=$((nok + 1))
			else
				nbad=$((nbad + 1))
				res "$1" opfail "pass $pass ($off+$len $mode): $(wr_err)"
				break
			fi
		done < "$2"
		pass=$((pass + 1))
	done
	res "$1" okwrites "$nok"
	res "$1" ddbad "$nbad"
	res "$1" passes "$pass"
}

# wr_copy ITEM DEV OUT SEEK_MIB [SKIP_MIB COUNT_MIB]: O_DIRECT copy of DEV
# (or a window) to the output disk, so that reads go through the target
# and not the page cache.  Result key copy.
wr_copy() {
	local win rc
	win=""
	[ $# -ge 6 ] && win="skip=$5 count=$6"
	# shellcheck disable=SC2086
	$WR_DD if="$2" of="$3" bs=1048576 seek="$4" $win iflag=direct conv=notrunc > /tmp/wr-dd 2>&1
	rc=$?
	res "$1" copy "$rc"
	[ "$rc" = 0 ] || res "$1" copyout "$(wr_err)"
}

# wr_status ITEM [KEY]: dmsetup status of the mapping ITEM.
wr_status() {
	res "$1" "${2:-wstatus}" "$(dmsetup status "$1" 2>&1)"
}

# wr_steps ITEM OPSFILE DEV PROGRESS_DEV|- LOGWRITES|-: the step workload.
# After the writes of a step, fsync the device; then record the step as
# done: on the progress disk (one 512-byte sector per step, O_DIRECT and
# fsync) and/or as a dm-log-writes mark "stepN".  A line with MODE sleep
# waits LEN seconds instead (the commit timer may fire meanwhile).
wr_steps() {
	local item ops dev prog lw cur bad ndone off len src mode step
	item=$1; ops=$2; dev=$3; prog=$4; lw=$5
	cur=""; bad=0; ndone=0
	while read -r off len src mode step; do
		if [ -n "$cur" ] && [ "$step" != "$cur" ]; then
			wr_step_done "$cur" || bad=$((bad + 1))
		fi
		cur=$step
		if [ "$mode" = sleep ]; then
			sleep "$len"
			continue
		fi
		if ! wr_one "$dev" "$off" "$len" "$src" "$mode"; then
			bad=$((bad + 1))
			[ "$bad" -le 4 ] && res "$item" opfail "step $step ($off+$len $mode): $(wr_err)"
		fi
	done < "$ops"
	[ -n "$cur" ] && { wr_step_done "$cur" || bad=$((bad + 1)); }
	res "$item" opsbad "$bad"
	res "$item" steps "$ndone"
}

wr_step_done() {
	if ! sync "$dev" > /tmp/wr-dd 2>&1; then
		[ "$bad" -le 4 ] && res "$item" opfail "fsync after step $1: $(wr_err)"
		return 1
	fi
	if [ "$prog" != - ]; then
		wr_progress "$prog" "$1"
	fi
	[ "$lw" = - ] || dmsetup message "$lw" 0 mark "step$1" > /dev/null 2>&1
	ndone=$1
	return 0
}

# wr_reload NAME: suspend, load the same table again, resume (what a grown
# device needs).  Result keys reload, reloadout.
wr_reload() {
	local rc l
	dmsetup table "$1" > /tmp/wr-table 2>&1
	{ dmsetup suspend "$1" && dmsetup load "$1" < /tmp/wr-table && dmsetup resume "$1"; } \
		> /tmp/wr-dd 2>&1
	rc=$?
	res "$1" reload "$rc"
	[ "$rc" = 0 ] || while read -r l; do res "$1" reloadout "$l"; done < /tmp/wr-dd
	return $rc
}

# wr_sum ITEM KEY DEV: sha256 of DEV read with O_DIRECT.
wr_sum() {
	res "$1" "$2" "$($WR_DD if="$3" bs=1048576 iflag=direct 2> /dev/null | sha256sum | cut -d' ' -f1)"
}

# wr_lines ITEM KEY FILE: every line of FILE as a result (at most 20).
wr_lines() {
	local l
	head -n 20 "$3" | while read -r l; do res "$1" "$2" "$l"; done
}

# Note: tests/e2e/guest-lib.sh's map() sets the globals name, dev, mode,
# len, feat, ro and rc; a local of the same name in a caller of map()
# would be overwritten (ash scopes dynamically).

# wr_fs ITEM MKFS_OPTIONS: make an ext4 file system on /dev/mapper/ITEM,
# copy /files/tree into it, unmount, e2fsck -fn, mount again and check
# the files with sha256sum -c /files/tree.sha256.
wr_fs() {
	local d m rc
	d=/dev/mapper/$1; m=/mnt/$1
	mkdir -p "$m"
	# shellcheck disable=SC2086
	mkfs.ext4 -q -F -E nodiscard $2 "$d" > /tmp/wr-out 2>&1
	rc=$?; res "$1" mkfs "$rc"
	[ "$rc" = 0 ] || { wr_lines "$1" mkfsout /tmp/wr-out; return 1; }
	mount -t ext4 "$d" "$m" > /tmp/wr-out 2>&1
	rc=$?; res "$1" mount "$rc"
	[ "$rc" = 0 ] || { wr_lines "$1" mountout /tmp/wr-out; return 1; }
	cp -a /files/tree/. "$m/" > /tmp/wr-out 2>&1
	rc=$?; res "$1" cp "$rc"
	[ "$rc" = 0 ] || wr_lines "$1" cpout /tmp/wr-out
	sync
	umount "$m" > /tmp/wr-out 2>&1
	rc=$?; res "$1" umount "$rc"
	e2fsck -fn "$d" > /tmp/wr-out 2>&1
	rc=$?; res "$1" fsck "$rc"
	[ "$rc" = 0 ] || wr_lines "$1" fsckout /tmp/wr-out
	if mount -t ext4 -o ro "$d" "$m" > /tmp/wr-out 2>&1; then
		(cd "$m" && sha256sum -c /files/tree.sha256) > /tmp/wr-out 2>&1
		rc=$?; res "$1" sums "$rc"
		grep -v ': OK$' /tmp/wr-out > /tmp/wr-bad
		wr_lines "$1" sumsout /tmp/wr-bad
		res "$1" files "$(find "$m" -type f | wc -l)"
		umount "$m"
	else
		res "$1" sums mount-failed
		wr_lines "$1" sumsout /tmp/wr-out
	fi
}

# wr_enospc ITEM SECTORS GROW_TO SLOT: the ENOSPC and grow test.  The
# image /files/ITEM.vhdx goes to a file in the guest's tmpfs behind
# /dev/loop0; the writes of /files/ITEM.ops (one per block) run until the
# file is full; a write in place (/files/ITEM.inplace) must still work;
# the file is grown to GROW_TO bytes, the loop device and the table are
# reloaded, and the failed writes are done again.  The file is copied to
# the output disk at SLOT.
wr_enospc() {
	local n f rc i failed off len src mode
	n=$1; f=/tmp/$1.vhdx
	cp "/files/$1.vhdx" "$f"
	losetup /dev/loop0 "$f" > /tmp/wr-dd 2>&1
	rc=$?; res "$n" losetup "$rc"
	[ "$rc" = 0 ] || { res "$n" losetupout "$(wr_err)"; return 1; }
	map "$n" /dev/loop0 rw "$2" || { losetup -d /dev/loop0; return 1; }
	i=0; failed=""
	while read -r off len src mode; do
		i=$((i + 1))
		if wr_one "/dev/mapper/$n" "$off" "$len" "$src" direct; then
			res "$n" "w$i" ok
		else
			res "$n" "w$i" "$(wr_err)"
			failed="$failed $i"
		fi
	done < "/files/$n.ops"
	wr_status "$n" full
	e2e_dmesg "$n"
	read -r off len src mode < "/files/$n.inplace"
	wr_one "/dev/mapper/$n" "$off" "$len" "$src" direct
	rc=$?; res "$n" inplace "$rc"
	[ "$rc" = 0 ] || res "$n" inplaceout "$(wr_err)"
	sync "/dev/mapper/$n"; res "$n" fsyncfull $?
	truncate -s "$3" "$f"
	losetup -c /dev/loop0; res "$n" losetupc $?
	wr_reload "$n"
	wr_status "$n" grown
	i=0
	while read -r off len src mode; do
		i=$((i + 1))
		case " $failed " in *" $i "*) ;; *) continue ;; esac
		if wr_one "/dev/mapper/$n" "$off" "$len" "$src" direct; then
			res "$n" "r$i" ok
		else
			res "$n" "r$i" "$(wr_err)"
		fi
	done < "/files/$n.ops"
	sync "/dev/mapper/$n"; res "$n" fsyncgrown $?
	wr_status "$n" final
	e2e_dmesg "$n"
	unmap "$n"
	losetup -d /dev/loop0
	res "$n" filesize "$(stat -c %s "$f")"
	dd if="$f" of="$OUT" bs=1048576 seek="$4" conv=notrunc > /dev/null 2>&1
	res "$n" filecopy $?
	rm -f "$f"
}

# wr_swap NAME TABLE: replace the table of a (lower) device; it is resumed
# whatever happens, so that a failed load cannot leave I/O hanging.
wr_swap() {
	local rc
	dmsetup suspend "$1" || return 1
	dmsetup load "$1" --table "$2"
	rc=$?
	dmsetup resume "$1" || return 1
	return $rc
}

# wr_failing ITEM DEV SECTORS switch|midway READ_SLOT AGAIN_SLOT: dm-vhdx on
# a device-mapper device ITEM-lower over DEV.  The writes of
# /files/ITEM.a.ops are made and fsynced; then the lower device fails:
#   switch: dm-flakey with error_writes, between writes; the writes of
#           /files/ITEM.new.ops (new blocks) and ITEM.inplace.ops (in
#           place) follow, and the mapping is read (reads must go on);
#   midway: the error target, while ITEM.bg.ops are being written.
# Then the lower device works again, the mapping is removed and created
# again (ITEM-again), read, and written (/files/ITEM.post.ops).
wr_failing() {
	local n ldev sec lo sz pid
	n=$1; ldev=$2; sec=$3; lo=$1-lower
	sz=$(blockdev --getsz "$ldev")
	dmsetup create "$lo" --noudevsync --table "0 $sz linear $ldev 0" > /dev/null 2>&1
	res "$n" lower $?
	dmsetup mknodes "$lo" > /dev/null 2>&1
	map "$n" "/dev/mapper/$lo" rw "$sec" || return 1
	wr_ops "$n" "/files/$n.a.ops" "/dev/mapper/$n"
	dmesg -c > /dev/null
	if [ "$4" = switch ]; then
		wr_swap "$lo" "0 $sz flakey $ldev 0 0 1 1 error_writes" > /tmp/wr-dd 2>&1
		res "$n" tofail $?
		wr_ops "$n-new" "/files/$n.new.ops" "/dev/mapper/$n"
		wr_ops "$n-inplace" "/files/$n.inplace.ops" "/dev/mapper/$n"
		wr_status "$n" failstatus
		wr_copy "$n-read" "/dev/mapper/$n" "$OUT" "$5"
	else
		wr_bg "$n-bg" "/files/$n.bg.ops" "/dev/mapper/$n" &
		pid=$!
		sleep 0.5
		wr_swap "$lo" "0 $sz error" > /tmp/wr-dd 2>&1
		res "$n" tofail $?
		wait "$pid"
		wr_status "$n" failstatus
		$WR_DD if="/dev/mapper/$n" of=/dev/null bs=4096 count=1 iflag=direct > /dev/null 2>&1
		res "$n" readwhilefailed $?
	fi
	e2e_dmesg "$n"
	wr_swap "$lo" "0 $sz linear $ldev 0" > /tmp/wr-dd 2>&1
	res "$n" restore $?
	dmsetup remove --noudevsync "$n" > /tmp/wr-dd 2>&1
	res "$n" remove1 $?
	[ -e "/dev/mapper/$n" ] && res "$n" remove1out "$(wr_err)"
	if map "$n-again" "/dev/mapper/$lo" rw "$sec"; then
		wr_copy "$n-again" "/dev/mapper/$n-again" "$OUT" "$6"
		wr_ops "$n-again" "/files/$n.post.ops" "/dev/mapper/$n-again"
		wr_status "$n-again"
		e2e_dmesg "$n-again"
		unmap "$n-again"
	fi
	dmsetup remove --noudevsync "$lo" > /dev/null 2>&1
	e2e_flush
}

# wr_logwrites ITEM IMGDEV LOGDEV SECTORS [FEATURE]: dm-vhdx over
# dm-log-writes (ITEM-lw) over IMGDEV, logging to LOGDEV, running the step
# workload of /files/ITEM.ops with a mark "stepN" after each fsync.
wr_logwrites() {
	local n idev ldev sz
	n=$1; idev=$2; ldev=$3
	sz=$(blockdev --getsz "$idev")
	dmsetup create "$n-lw" --noudevsync --table "0 $sz log-writes $idev $ldev" > /tmp/wr-dd 2>&1
	res "$n" lwcreate $?
	dmsetup mknodes "$n-lw" > /dev/null 2>&1
	dmsetup message "$n-lw" 0 mark start
	# shellcheck disable=SC2086
	if map "$n" "/dev/mapper/$n-lw" rw "$4" $5; then
		wr_steps "$n" "/files/$n.ops" "/dev/mapper/$n" - "$n-lw"
		wr_status "$n"
		e2e_dmesg "$n"
		unmap "$n"
	fi
	dmsetup message "$n-lw" 0 mark removed
	res "$n" lwstatus "$(dmsetup status "$n-lw" 2>&1)"
	dmsetup remove --noudevsync "$n-lw" > /dev/null 2>&1
	res "$n" lwremove $?
}

# wr_points DEV SEG_SECTORS COUNT SECTORS: replayed images lie one after
# the other on DEV, SEG_SECTORS apart.  Map each (dm-linear, then vhdx
# read-write, so that a dirty log is replayed onto it) and record, as item
# pN, "ok LOGSTATE HEALTH SHA256" (the sha256 of what the mapping reads)
# or "fail MESSAGE" with the kernel's messages (key dmesg).  Lean on
# purpose: one boot maps a hundred images.
wr_points() {
	local i st sum
	i=0
	while [ "$i" -lt "$3" ]; do
		dmsetup create lp --noudevsync --table "0 $2 linear $1 $((i * $2))" > /dev/null 2>&1
		dmesg -c > /dev/null
		if dmsetup create pt --noudevsync --table "0 $4 vhdx /dev/mapper/lp" > /tmp/wr-dd 2>&1; then
			dmsetup mknodes pt > /dev/null 2>&1
			st=$(dmsetup status pt | cut -d' ' -f8,10)
			sum=$($WR_DD if=/dev/mapper/pt bs=1048576 iflag=direct 2> /dev/null | sha256sum | cut -c1-64)
			if dmsetup remove --noudevsync pt > /tmp/wr-dd 2>&1; then
				res "p$i" ok "$st $sum"
			else
				res "p$i" fail "remove: $(wr_err)"
			fi
		else
			res "p$i" fail "create: $(wr_err)"
			e2e_dmesg "p$i"
		fi
		dmsetup remove --noudevsync lp > /dev/null 2>&1
		i=$((i + 1))
	done
	e2e_flush
}

# wr_progress PROGDEV N: record "step N done" in sector N of the progress
# disk, O_DIRECT and fsync: what the host may rely on after a power cut.
wr_progress() {
	printf 'step %d done\n' "$2" | $WR_DD of="$1" bs=512 seek="$2" conv=sync,notrunc \
		oflag=direct > /dev/null 2>&1
	sync "$1"
}

# wr_powercut_raw ITEM DEV SECTORS PROGDEV [FEATURE]: the step workload,
# until QEMU is killed (vm-run --kill-after, clock started by POWERCUT-GO).
wr_powercut_raw() {
	# shellcheck disable=SC2086
	if map "$1" "$2" rw "$3" $5; then
		echo POWERCUT-GO
		wr_steps "$1" "/files/$1.ops" "/dev/mapper/$1" "$4" -
		res "$1" finished 1
	fi
}

# wr_powercut_fs ITEM DEV SECTORS PROGDEV: ext4 on the mapping; files
# f1, f2, ... of /files/ITEM.files ("N SRC LEN") are written, each followed
# by sync and a progress record, until QEMU is killed.
wr_powercut_fs() {
	local idx src len
	map "$1" "$2" rw "$3" || return 1
	mkdir -p "/mnt/$1"
	mkfs.ext4 -q -F -E nodiscard "/dev/mapper/$1" > /dev/null 2>&1 || { res "$1" mkfs failed; return 1; }
	mount -t ext4 "/dev/mapper/$1" "/mnt/$1" || { res "$1" mount failed; return 1; }
	echo POWERCUT-GO
	while read -r idx src len; do
		$WR_DD if=/files/pat.bin of="/mnt/$1/f$idx" bs="$len" count=1 iflag=skip_bytes \
			skip="$src" > /dev/null 2>&1
		sync
		wr_progress "$4" "$idx"
	done < "/files/$1.files"
	res "$1" finished 1
}

# wr_pc_verify_raw ITEM DEV SECTORS SLOT: map the image left by the power
# cut read-write (its log is replayed), copy it out, remove.
wr_pc_verify_raw() {
	if map "$1" "$2" rw "$3"; then
		wr_copy "$1" "/dev/mapper/$1" "$OUT" "$4"
		unmap "$1"
	fi
}

# wr_pc_verify_fs ITEM DEV SECTORS: map read-write, mount (ext4 replays
# its journal), record "sum NAME SHA256" of every file, unmount, e2fsck.
wr_pc_verify_fs() {
	local l
	map "$1" "$2" rw "$3" || return 1
	mkdir -p "/mnt/$1"
	if mount -t ext4 "/dev/mapper/$1" "/mnt/$1" > /tmp/wr-out 2>&1; then
		res "$1" mount 0
		(cd "/mnt/$1" && sha256sum f*) > /tmp/wr-out 2>&1
		while read -r l; do res "$1" sum "$l"; done < /tmp/wr-out
		umount "/mnt/$1"
	else
		res "$1" mount 1
		wr_lines "$1" mountout /tmp/wr-out
	fi
	e2fsck -fn "/dev/mapper/$1" > /tmp/wr-out 2>&1
	res "$1" fsck $?
	wr_lines "$1" fsckout /tmp/wr-out
	e2e_dmesg "$1"
	unmap "$1"
}

# wr_lower ITEM DEV START TARGET...: ITEM-lower over DEV, linear below
# sector START and TARGET (a device-mapper target line after its length,
# with DEV and START in it as the caller wrote them) from START on, where
# dm-vhdx puts new blocks.
wr_lower() {
	local n ldev start sz
	n=$1; ldev=$2; start=$3
	shift 3
	sz=$(blockdev --getsz "$ldev")
	printf '0 %s linear %s 0\n%s %s %s\n' "$start" "$ldev" "$start" $((sz - start)) "$*" |
		dmsetup create "$n-lower" --noudevsync > /tmp/wr-dd 2>&1
	res "$n" lower $?
	dmsetup mknodes "$n-lower" > /dev/null 2>&1
}

# wr_stale_fail ITEM DEV SECTORS START OFF LEN SLOT: every write to the
# sectors of DEV from START on fails while one whole block of LEN bytes is
# written at virtual OFF; once the device works again a read-only mapping
# copies that block to the output disk at SLOT (MiB).
wr_stale_fail() {
	local n ldev lo sz
	n=$1; ldev=$2; lo=$1-lower
	sz=$(blockdev --getsz "$ldev")
	wr_lower "$n" "$ldev" "$4" error
	map "$n" "/dev/mapper/$lo" rw "$3" || return 1
	wr_one "/dev/mapper/$n" "$5" "$6" 0 direct
	res "$n" write $?
	e2e_dmesg "$n"
	unmap "$n"
	wr_swap "$lo" "0 $sz linear $ldev 0" > /tmp/wr-dd 2>&1
	res "$n" restore $?
	if map "$n-ro" "/dev/mapper/$lo" ro "$3"; then
		wr_copy "$n-ro" "/dev/mapper/$n-ro" "$OUT" "$7" $(($5 / 1048576)) $(($6 / 1048576))
		unmap "$n-ro"
	fi
	dmsetup remove --noudevsync "$lo" > /dev/null 2>&1
}

# wr_stale_cut ITEM DEV SECTORS START OFF LEN: writes to the sectors of DEV
# from START on take 20 s (reads and flushes none) while one whole block
# of LEN bytes is written at virtual OFF; the host kills QEMU after the
# periodic commit and before that write lands.
wr_stale_cut() {
	wr_lower "$1" "$2" "$4" delay "$2" "$4" 0 "$2" "$4" 20000 "$2" "$4" 0
	map "$1" "/dev/mapper/$1-lower" rw "$3" || return 1
	wr_one "/dev/mapper/$1" "$5" "$6" 0 direct &
	sleep 0.3
	echo POWERCUT-GO
	sleep 60
}

# wr_short_discard ITEM SECTORS BLOCKOFF BLOCKLEN SLOT FILESLOT: the image
# /files/ITEM.vhdx in tmpfs behind /dev/loop0 (which passes discards on as
# hole punches), mapped read-write; the short last block, from virtual
# sector BLOCKOFF on, is discarded whole; then the first block (BLOCKLEN
# bytes) is copied to the output disk at SLOT and the file at FILESLOT.
wr_short_discard() {
	local n f
	n=$1; f=/tmp/$1.vhdx
	cp "/files/$n.vhdx" "$f"
	losetup /dev/loop0 "$f" > /tmp/wr-dd 2>&1
	res "$n" losetup $?
	map "$n" /dev/loop0 rw "$2" || { losetup -d /dev/loop0; return 1; }
	blkdiscard -o $(($3 * 512)) -l $((($2 - $3) * 512)) "/dev/mapper/$n" > /tmp/wr-dd 2>&1
	res "$n" discard $?
	sync "/dev/mapper/$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "$5" 0 $(($4 / 1048576))
	wr_status "$n"
	e2e_dmesg "$n"
	unmap "$n"
	losetup -d /dev/loop0
	dd if="$f" of="$OUT" bs=1048576 seek="$6" conv=notrunc > /dev/null 2>&1
	res "$n" filecopy $?
	res "$n" filesize "$(stat -c %s "$f")"
	rm -f "$f"
}

# wr_discard_reuse ITEM SECTORS SLOT FILESLOT: the image /files/ITEM.vhdx in
# tmpfs behind /dev/loop1, with room for each of its 1 MiB blocks exactly
# once.  Every block is written (block i from pattern MiB i % 16); while
# fio keeps 32 reads of the first half in flight from before the discard
# to the end, the second half is discarded and written again (block i from MiB (i + 5) %
# 16): only the discarded blocks' space can hold it.  Then a hole punch
# and a zeroout (write zeroes).  The disk is copied to the output disk at
# SLOT and the file at FILESLOT.
wr_discard_reuse() {
	local n f i bad fpid m=1048576
	n=$1; f=/tmp/$1.vhdx
	cp "/files/$n.vhdx" "$f"
	losetup /dev/loop1 "$f" > /tmp/wr-dd 2>&1
	res "$n" losetup $?
	map "$n" /dev/loop1 rw "$2" || { losetup -d /dev/loop1; return 1; }
	i=0; bad=0
	while [ $i -lt 64 ]; do
		wr_one "/dev/mapper/$n" $((i * m)) $m $((i % 16 * m)) direct || bad=$((bad + 1))
		i=$((i + 1))
	done
	res "$n" fill "$bad"
	wr_status "$n" full
	fio --name=steady --filename="/dev/mapper/$n" --direct=1 --thread --rw=randread \
		--bs=4k --ioengine=libaio --iodepth=32 --size=32m --time_based --runtime=600 \
		--output=/tmp/fio.out > /dev/null 2>&1 &
	fpid=$!
	sleep 2
	blkdiscard -o $((32 * m)) -l $((32 * m)) "/dev/mapper/$n" > /tmp/wr-dd 2>&1
	res "$n" discard $?
	wr_status "$n" discarded
	sleep 2
	i=32; bad=0
	while [ $i -lt 64 ]; do
		if ! wr_one "/dev/mapper/$n" $((i * m)) $m $(((i + 5) % 16 * m)) direct; then
			bad=$((bad + 1))
			[ "$bad" -le 3 ] && res "$n" refail "block $i: $(wr_err)"
		fi
		i=$((i + 1))
	done
	res "$n" refill "$bad"
	kill -0 "$fpid" 2> /dev/null
	res "$n" fiobusy $?
	# Its runtime is only a bound (the debug kernel is slow): stopped by
	# SIGINT, fio's status says nothing, its report says whether any
	# read failed.
	kill -INT "$fpid" 2> /dev/null
	wait "$fpid"
	grep -q 'err= 0' /tmp/fio.out && ! grep -q -i 'error' /tmp/fio.out
	res "$n" fio $?
	wr_lines "$n" fioout /tmp/fio.out
	sync "/dev/mapper/$n"
	wr_status "$n" refilled
	# A hole punch may unmap (block 9 whole, half of block 8); a zeroout
	# may not (block 20 stays allocated).  Both must read as zeros.
	/usr/bin/fallocate -p -o $((8 * m + m / 2)) -l $((m + m / 2)) "/dev/mapper/$n" > /tmp/wr-dd 2>&1
	res "$n" punch $?
	[ -s /tmp/wr-dd ] && res "$n" punchout "$(wr_err)"
	/usr/sbin/blkdiscard -z -o $((20 * m)) -l $m "/dev/mapper/$n" > /tmp/wr-dd 2>&1
	res "$n" zeroout $?
	sync "/dev/mapper/$n"
	wr_status "$n" zeroed
	e2e_dmesg "$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "$3"
	unmap "$n"
	losetup -d /dev/loop1
	dd if="$f" of="$OUT" bs=$m seek="$4" conv=notrunc > /dev/null 2>&1
	res "$n" filesize "$(stat -c %s "$f")"
	rm -f "$f"
}

# wr_diff_discard ITEM SECTORS PARENT SLOT FILESLOT: the differencing
# image /files/ITEM.vhdx (1 MiB blocks) over the read-only PARENT disk.
# Block 2 is written whole, 4 KiB of block 3, block 6 whole; then blocks
# 2-4 are discarded whole and half of block 6.  The disk goes to the output
# disk at SLOT, the file at FILESLOT.
wr_diff_discard() {
	local n f bad m=1048576
	n=$1; f=/tmp/$1.vhdx
	cp "/files/$n.vhdx" "$f"
	losetup /dev/loop1 "$f" > /tmp/wr-dd 2>&1
	res "$n" losetup $?
	map "$n" /dev/loop1 rw "$2" parent "$3" || { losetup -d /dev/loop1; return 1; }
	bad=0
	wr_one "/dev/mapper/$n" $((2 * m)) $m $((5 * m)) direct || bad=$((bad + 1))
	wr_one "/dev/mapper/$n" $((3 * m + 8192)) 4096 $((7 * m)) direct || bad=$((bad + 1))
	wr_one "/dev/mapper/$n" $((6 * m)) $m $((9 * m)) direct || bad=$((bad + 1))
	res "$n" fill "$bad"
	wr_status "$n" full
	/usr/sbin/blkdiscard -o $((2 * m)) -l $((3 * m)) "/dev/mapper/$n" > /tmp/wr-dd 2>&1 &&
		/usr/sbin/blkdiscard -o $((6 * m)) -l $((m / 2)) "/dev/mapper/$n" >> /tmp/wr-dd 2>&1
	res "$n" discard $?
	[ -s /tmp/wr-dd ] && res "$n" discardout "$(wr_err)"
	sync "/dev/mapper/$n"
	wr_status "$n" discarded
	e2e_dmesg "$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "$4"
	unmap "$n"
	losetup -d /dev/loop1
	dd if="$f" of="$OUT" bs=$m seek="$5" conv=notrunc > /dev/null 2>&1
	res "$n" filesize "$(stat -c %s "$f")"
	rm -f "$f"
}

# wr_az_table DEV linear|delay|hole [START]: a table over all of DEV:
# dm-linear (zeroing offloaded to DEV), dm-delay without delay (no
# REQ_OP_WRITE_ZEROES: zeroing is written), or dm-linear with writes to the
# 512 KiB from byte START + 512 KiB failing (an error target there, which
# also takes the offload away).
wr_az_table() {
	local dev=$1 sz e
	sz=$(blockdev --getsz "$dev")
	case $2 in
	linear) echo "0 $sz linear $dev 0" ;;
	delay) echo "0 $sz delay $dev 0 0" ;;
	hole)
		e=$(($3 / 512 + 1024))
		printf '0 %s linear %s 0\n%s 1024 error\n%s %s linear %s %s\n' \
			"$e" "$dev" "$e" $((e + 1024)) $((sz - e - 1024)) "$dev" $((e + 1024))
		;;
	esac
}

# wr_az_swap LOWER DEV MODE [START]: LOWER gets wr_az_table's table.
wr_az_swap() {
	local rc
	dmsetup suspend "$1" || return 1
	wr_az_table "$2" "$3" "${4:-0}" | dmsetup load "$1" > /tmp/wr-dd 2>&1
	rc=$?
	dmsetup resume "$1" || return 1
	return $rc
}

# wr_az_fail ITEM DEV SECTORS START early|late OFF1 LEN1 OFF2 LEN2 SLOT:
# dm-vhdx over ITEM-lower, which fails writes to the second half of the
# MiB at byte START of DEV, where the image's next block goes: from the
# start (early: no offload, so the zeroing of a new block is written and
# fails there), or only after the mapping was resumed (late: the space
# past the image was zeroed then, and a new block needs no zeroing; the
# data write fails there).  The write of LEN1 bytes at OFF1 must fail;
# then the lower device works again, LEN2 bytes are written at OFF2 (into
# the block the failed write left behind), and that block is copied to
# the output disk at SLOT.
wr_az_fail() {
	local n lo
	n=$1; lo=$1-lower
	if [ "$5" = early ]; then
		wr_az_table "$2" hole "$4"
	else
		wr_az_table "$2" linear
	fi | dmsetup create "$lo" --noudevsync > /tmp/wr-dd 2>&1
	res "$n" lower $?
	dmsetup mknodes "$lo" > /dev/null 2>&1
	map "$n" "/dev/mapper/$lo" rw "$3" || { dmsetup remove "$lo"; return 1; }
	if [ "$5" = late ]; then
		wr_az_swap "$lo" "$2" hole "$4"
		res "$n" swap1 $?
	fi
	wr_one "/dev/mapper/$n" "$6" "$7" 0 direct
	res "$n" write1 $?
	wr_status "$n" status1
	wr_az_swap "$lo" "$2" linear
	res "$n" swap2 $?
	wr_one "/dev/mapper/$n" "$8" "$9" 0 direct
	res "$n" write2 $?
	sync "/dev/mapper/$n"
	wr_status "$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "${10}" $(($8 / 1048576)) 1
	e2e_dmesg "$n"
	unmap "$n"
	dmsetup remove --noudevsync "$lo" > /dev/null 2>&1
}

# wr_az_gap ITEM DEV SECTORS SLOT: the image has no room past its end, a
# gap where a block was (its old data still there) and blocks 0 and 2;
# 4 KiB are written at 5 MiB + 256 KiB (into the gap), block 0 is
# discarded (the disk ignores discards: its data stays) and committed,
# 4 KiB are written at 6 MiB + 512 KiB (into block 0's old space); the
# whole disk is copied to the output disk at SLOT.
wr_az_gap() {
	local n m=1048576
	n=$1
	map "$n" "$2" rw "$3" || return 1
	wr_one "/dev/mapper/$n" $((5 * m + 262144)) 4096 0 direct
	res "$n" write1 $?
	wr_status "$n" status1
	/usr/sbin/blkdiscard -o 0 -l $m "/dev/mapper/$n" > /tmp/wr-dd 2>&1
	res "$n" discard $?
	sync "/dev/mapper/$n"
	wr_status "$n" status2
	wr_one "/dev/mapper/$n" $((6 * m + 524288)) 4096 8192 direct
	res "$n" write2 $?
	sync "/dev/mapper/$n"
	wr_status "$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "$4"
	e2e_dmesg "$n"
	unmap "$n"
}

# wr_az_tail ITEM DEV SECTORS linear|delay SLOT SLOT2 [PARENT]: the image,
# with old data past its end, over ITEM-lower (wr_az_table); 4 KiB written
# into the middle of block 2, at the start of block 5 and at the end of
# block 6 (1 MiB blocks); the whole disk copied to the output disk at
# SLOT, and again at SLOT2 through a new read-only mapping (ITEM-ro),
# which reads the sector bitmaps from the device.
wr_az_tail() {
	local n lo m=1048576
	n=$1; lo=$1-lower
	wr_az_table "$2" "$4" | dmsetup create "$lo" --noudevsync > /tmp/wr-dd 2>&1
	res "$n" lower $?
	dmsetup mknodes "$lo" > /dev/null 2>&1
	if [ -n "${7:-}" ]; then
		map "$n" "/dev/mapper/$lo" rw "$3" parent "$7"
	else
		map "$n" "/dev/mapper/$lo" rw "$3"
	fi || { dmsetup remove "$lo"; return 1; }
	wr_one "/dev/mapper/$n" $((2 * m + 524288)) 4096 0 direct
	res "$n" write1 $?
	wr_one "/dev/mapper/$n" $((5 * m)) 4096 4096 direct
	res "$n" write2 $?
	wr_one "/dev/mapper/$n" $((7 * m - 4096)) 4096 12288 direct
	res "$n" write3 $?
	sync "/dev/mapper/$n"
	wr_status "$n"
	wr_copy "$n" "/dev/mapper/$n" "$OUT" "$5"
	e2e_dmesg "$n"
	unmap "$n"
	if [ -n "${7:-}" ]; then
		map "$n-ro" "/dev/mapper/$lo" ro "$3" parent "$7"
	else
		map "$n-ro" "/dev/mapper/$lo" ro "$3"
	fi && {
		wr_copy "$n-ro" "/dev/mapper/$n-ro" "$OUT" "$6"
		unmap "$n-ro"
	}
	dmsetup remove --noudevsync "$lo" > /dev/null 2>&1
}
