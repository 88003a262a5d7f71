#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host tests of the vhdx/ format code built in userspace (tools/vhdx-dump):
# every image qemu-img can make, read through our parser, must equal
# `qemu-img convert -O raw` byte for byte.  They run in seconds and catch
# format bugs before a guest boots; the guest tests cover the kernel side.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-host.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

make -s -C "$top/tools" vhdx-dump vhdxsetup
dump=$top/tools/vhdx-dump
mangle=$top/tests/e2e/vhdxmangle.py

virtual_size() {
	qemu-img info --output=json "$1" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])'
}

# Data at the start, straddling a block boundary near the middle (the middle
# itself when the disk is one block), and in the last sector.
write_pattern() {
	local img=$1 vs bs=$2 mid
	vs=$(virtual_size "$img")
	mid=$(( (vs / bs + 1) / 2 * bs ))
	[ "$mid" -gt 0 ] && [ "$mid" -lt "$vs" ] || mid=$(( vs / 2 / 512 * 512 ))
	qemu-io -f vhdx -c "write -P 0x5a 0 4k" \
		-c "write -P 0x6b $((mid - 1536)) 3k" \
		-c "write -P 0x7c $((vs - 512)) 512" "$img" >/dev/null
}

compare_with_qemu() {
	local name=$1 img=$2
	local err
	if ! err=$("$dump" "$img" "$work/out.raw" 2>&1 >/dev/null); then
		fail "$name" "open refused: $err"
		return
	fi
	qemu-img convert -O raw "$img" "$work/ref.raw"
	if cmp "$work/out.raw" "$work/ref.raw" >"$work/cmp" 2>&1; then
		pass "$name"
	else
		fail "$name" "$(head -1 "$work/cmp")"
	fi
}

read_matrix() {
	local sub bs size log img name
	for sub in dynamic fixed; do
		for bs in 1M 2M 8M 32M 256M; do
			for size in 37M 300M; do
				for log in 1M 4M; do
					name=read-$sub-bs$bs-$size-log$log
					img=$work/$name.vhdx
					qemu-img create -q -f vhdx \
						-o subformat=$sub,block_size=$bs,log_size=$log \
						"$img" $size
					write_pattern "$img" $((${bs%M} * 1048576))
					compare_with_qemu "$name" "$img"
					rm -f "$img"
				done
			done
		done
	done
}

# QEMU leaves its log dirty when the in-place BAT write fails (blkdebug).
dirty_log() {
	local img=$work/dirty.vhdx copy=$work/dirty-copy.vhdx
	local bat_sector=$(( 2 * 1048576 / 512 ))
	qemu-img create -q -f vhdx "$img" 256M
	printf '[inject-error]\nevent = "pwritev"\nsector = "%d"\nerrno = "5"\nonce = "on"\n' \
		"$bat_sector" >"$work/bd.cfg"
	qemu-io -c 'write -P 0xab 0 1M' "blkdebug:$work/bd.cfg:$img" >/dev/null 2>&1 || true
	if qemu-img info "$img" >/dev/null 2>&1; then
		fail dirty-log "qemu-img did not leave a dirty log"
		return
	fi
	cp "$img" "$copy"
	qemu-img check -q -r all "$copy" >/dev/null 2>&1 || true
	qemu-img convert -O raw "$copy" "$work/ref.raw"
	local before
	before=$(sha256sum <"$img")
	if ! "$dump" "$img" "$work/out.raw" >"$work/info" 2>&1; then
		fail dirty-log-read-only "$(cat "$work/info")"
	elif ! grep -q "log replayed-in-memory" "$work/info"; then
		fail dirty-log-read-only "not replayed in memory: $(cat "$work/info")"
	elif [ "$(sha256sum <"$img")" != "$before" ]; then
		fail dirty-log-read-only "the image was modified"
	elif ! cmp -s "$work/out.raw" "$work/ref.raw"; then
		fail dirty-log-read-only "content differs from qemu's replay"
	else
		pass dirty-log-read-only
	fi
	if ! "$dump" --read-write "$img" "$work/out.raw" >"$work/info" 2>&1; then
		fail dirty-log-read-write "$(cat "$work/info")"
	elif ! grep -q "log replayed$" "$work/info"; then
		fail dirty-log-read-write "not replayed: $(cat "$work/info")"
	elif ! qemu-img check -q "$img" >"$work/check" 2>&1; then
		fail dirty-log-read-write "qemu-img check: $(cat "$work/check")"
	elif ! cmp -s "$work/out.raw" "$work/ref.raw"; then
		fail dirty-log-read-write "content differs from qemu's replay"
	else
		pass dirty-log-read-write
	fi
}

# A crafted 16 MiB log: a header at every 4 KiB claiming the whole ring,
# with a wrong checksum.  Validating each candidate by reading it whole
# made the search quadratic (16.7 M sector reads, minutes); it must now be
# refused at once.  HOSTILE_DUMP=path runs another vhdx-dump (an old one).
hostile_log() {
	local img=$work/hostile.vhdx guid=5f6e0d2a-8a31-4c57-9b1e-0c4b9e0a7d11 t rc
	qemu-img create -q -f vhdx -o log_size=16M "$img" 64M
	python3 "$mangle" header-set "$img" 1 log_guid "$guid"
	python3 "$mangle" header-set "$img" 2 log_guid "$guid"
	MANGLE_DIR=$(dirname "$mangle") python3 - "$img" "$guid" <<-'EOF2'
	import os, struct, sys, uuid
	sys.path.insert(0, os.environ["MANGLE_DIR"])
	import vhdxmangle as vm
	path, guid = sys.argv[1], uuid.UUID(sys.argv[2])
	img = vm.Image(path)
	h = img.headers[img.current_header()]
	off, length = h["log_offset"], h["log_length"]
	with open(path, "r+b") as f:
	    for pos in range(0, length, 4096):
	        hdr = struct.pack("<4sIIIQII16sQQ", b"loge", 0, length, 0, 1, 0, 0,
	                          guid.bytes_le, 0, 0)
	        f.seek(off + pos)
	        f.write(hdr.ljust(4096, b"\0"))
	EOF2
	t=$SECONDS
	rc=0
	timeout 60 "${HOSTILE_DUMP:-$dump}" "$img" > "$work/hostile.out" 2>&1 || rc=$?
	t=$((SECONDS - t))
	if [ "$rc" = 124 ]; then
		fail hostile-log "not refused within 60 s"
	elif [ "$rc" = 0 ] || ! grep -q "no valid log sequence" "$work/hostile.out"; then
		fail hostile-log "rc=$rc: $(head -c 300 "$work/hostile.out")"
	elif [ "$t" -gt 10 ]; then
		fail hostile-log "refused, but only after $t s"
	else
		pass hostile-log
	fi
}

# A 256 MiB log of 1-sector entries in sequence whose head names a Tail
# outside every run.  Following the run again from each of its 65535
# entries took 2 G steps (15 s of CPU); the search now remembers that none
# of them can start a valid run.  Judged by CPU time, not wall time.
chained_log() {
	local img=$work/chained.vhdx guid=5f6e0d2a-8a31-4c57-9b1e-0c4b9e0a7d11 cpu rc=0 i
	"$top/tools/vhdxsetup" create --log-size 256M "$img" 64M > /dev/null
	for i in 1 2; do
		python3 "$mangle" header-set "$img" "$i" log_guid "$guid"
	done
	MANGLE_DIR=$(dirname "$mangle") python3 "$top/tests/host/chain-log.py" "$img" "$guid"
	{ TIMEFORMAT=%U; time { timeout 120 "${HOSTILE_DUMP:-$dump}" "$img" > "$work/chained.out" 2>&1 ||
		echo $? > "$work/chained.rc"; }; } 2> "$work/chained.cpu"
	[ ! -f "$work/chained.rc" ] || rc=$(cat "$work/chained.rc")
	cpu=$(cat "$work/chained.cpu")
	if [ "$rc" = 124 ]; then
		fail chained-log "not refused within 120 s"
	elif [ "$rc" = 0 ] || ! grep -q "no valid log sequence" "$work/chained.out"; then
		fail chained-log "rc=$rc: $(head -c 300 "$work/chained.out")"
	elif ! grep -q "valid but not part of a valid sequence" "$work/chained.out"; then
		# Entries with bad checksums are refused at once: no test at all.
		fail chained-log "the crafted entries are not valid: $(head -c 300 "$work/chained.out")"
	elif [ "${cpu%.*}" -ge 5 ]; then
		fail chained-log "refused, but after $cpu s of CPU"
	else
		pass chained-log
	fi
	rm -f "$img"
}

read_matrix
dirty_log
hostile_log
chained_log
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
