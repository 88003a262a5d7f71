#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Counts the device flushes an allocating 4 KiB write + fsync costs: N
# O_DIRECT writes, each into a new 1 MiB block and each followed by fsync,
# through dm-vhdx straight on a disk, read off the disk's
# /sys/block/<disk>/stat (flush ios, field 16) before and after.  Two
# disks: null_blk with a write cache and FUA (nullb0), and virtio-blk,
# which has a write cache but no FUA, so that the block layer emulates FUA
# with a flush after the write.
#
# Usage: tests/write/flush-count.sh [--kernel 6.1|6.12] [--module PATH.ko] [N]
# Prints one "COUNT <disk>: ..." line per disk.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
KLINE=6.12
MODULE=()
N=16
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) KLINE=${2:?}; shift 2 ;;
	--module) MODULE=(--module "${2:?}"); shift 2 ;;
	*) N=$1; shift ;;
	esac
done
env=$VHDX_CACHE/kernels/$KLINE.env
[ -f "$env" ] || "$ROOT/scripts/kernels.sh" "$KLINE"
# shellcheck disable=SC1090
. "$env"
W=$(mktemp -d /tmp/flush-count.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir "$W/files"
kmod=$VHDX_CACHE/kernels/$KVER/root/lib/modules/$KVER/kernel
for m in fs/configfs/configfs drivers/block/null_blk/null_blk; do
	if [ -f "$kmod/$m.ko.xz" ]; then
		xz -dc "$kmod/$m.ko.xz" > "$W/files/${m##*/}.ko"
	elif [ -f "$kmod/$m.ko" ]; then
		cp "$kmod/$m.ko" "$W/files/"
	fi
done
qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$W/img.vhdx" 64M
# Room for the new blocks past the end of the image.
truncate -s 80M "$W/img.vhdx"
cat > "$W/guest.sh" <<EOF
#!/bin/sh
N=$N
EOF
cat >> "$W/guest.sh" <<'EOF'
insmod /files/configfs.ko 2>/dev/null
insmod /files/null_blk.ko nr_devices=1 memory_backed=1 cache_size=32 gb=1 ||
	echo "no null_blk"
disks=vda
[ -b /dev/nullb0 ] && disks="nullb0 vda" &&
	dd if=/dev/vda of=/dev/nullb0 bs=1048576 count=80 oflag=direct 2>/dev/null
for d in $disks; do
	if ! dmsetup create v --noudevsync --table "0 131072 vhdx /dev/$d"; then
		echo "COUNT $d: dmsetup create failed"
		continue
	fi
	dmsetup mknodes v
	# The session's header updates, outside the count.
	dd if=/dev/zero of=/dev/mapper/v bs=4096 count=1 oflag=direct conv=fsync 2>/dev/null
	f0=$(awk '{ print $16 }' /sys/block/$d/stat)
	w0=$(awk '{ print $5 }' /sys/block/$d/stat)
	i=1
	while [ $i -le $N ]; do
		dd if=/dev/zero of=/dev/mapper/v bs=4096 count=1 seek=$((i * 256)) \
			oflag=direct conv=fsync 2>/dev/null || echo "COUNT $d: write $i failed"
		i=$((i + 1))
	done
	f1=$(awk '{ print $16 }' /sys/block/$d/stat)
	w1=$(awk '{ print $5 }' /sys/block/$d/stat)
	echo "COUNT $d (fua=$(cat /sys/block/$d/queue/fua)): $N allocating 4 KiB writes + fsync: $((f1 - f0)) flushes, $((w1 - w0)) writes; status $(dmsetup status v | cut -d' ' -f6-)"
	dmsetup remove --noudevsync v
done
EOF
"$ROOT/tests/guest/vm-run" --kernel "$KLINE" "${MODULE[@]}" --files "$W/files" \
	--bin /usr/bin/dd "$W/guest.sh" "$W/img.vhdx" > "$W/console.txt" 2>&1 ||
	{ tail -n 20 "$W/console.txt"; exit 1; }
grep -a '^COUNT' "$W/console.txt"
qemu-img check "$W/img.vhdx" | tail -n 1
