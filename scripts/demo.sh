#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A walk through dm-vhdx: create an empty dynamic VHDX on the host with
# qemu-img, boot the 6.12 guest, map it read-write with the vhdx target,
# make an ext4 file system on it, copy files in, unmount and remove the
# mapping (which commits and empties the log); map it again read-only and
# verify the files; then on the host check the image with qemu-img check
# and read the files back through qemu-img convert and e2fsprogs.
#
# Usage: scripts/demo.sh        (after make build-all or make demo's build)
# Environment: KEEP=1 keeps the work directory.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-demo.XXXXXX")
cleanup() {
	if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { echo; echo "### $*"; }
SIZE=$((256 * 1024 * 1024))
SECTORS=$((SIZE / 512))

make_image() {
	say "host: an empty dynamic VHDX, and the files to put on it"
	qemu-img create -f vhdx "$WORK/demo.vhdx" $SIZE
	# A device does not grow: room for every block the guest may
	# allocate.  The file stays sparse.
	truncate -s +$SIZE "$WORK/demo.vhdx"
	mkdir -p "$WORK/files/docs"
	echo "Hello from a VHDX image, written by dm-vhdx." > "$WORK/files/hello.txt"
	seq 1 20000 > "$WORK/files/docs/numbers.txt"
	head -c 3000000 /dev/urandom > "$WORK/files/random.bin"
	(cd "$WORK/files" && sha256sum hello.txt docs/numbers.txt random.bin) > "$WORK/SHA256SUMS"
	cp "$WORK/SHA256SUMS" "$WORK/files/"
}

# The guest side; each command is echoed before it runs, and the first
# failure ends the script with its status.
write_guest_script() {
	cat > "$WORK/guest.sh" <<GUEST
set -e
run() { echo "guest# \$*"; "\$@"; }
run dmsetup create vd --table "0 $SECTORS vhdx /dev/vda"
run dmsetup mknodes
run dmsetup status vd
run mkfs.ext4 -q -L vhdx-demo /dev/mapper/vd
run mount -t ext4 /dev/mapper/vd /mnt
run cp -r /files/. /mnt/
run sync
run dmsetup status vd
run umount /mnt
run e2fsck -fn /dev/mapper/vd
run dmsetup remove vd
run dmsetup create --readonly vd --table "0 $SECTORS vhdx /dev/vda"
run dmsetup mknodes
run mount -t ext4 -o ro /dev/mapper/vd /mnt
run ls -lR /mnt
run cat /mnt/hello.txt
echo "guest# (cd /mnt && sha256sum -c SHA256SUMS)"
(cd /mnt && sha256sum -c SHA256SUMS)
run dmsetup status vd
run dmsetup table vd
run umount /mnt
run dmsetup remove vd
dmesg | grep -i vhdx | grep -v taint || true
GUEST
}

check_on_host() {
	say "host: qemu-img check, then the files through qemu-img convert and e2fsprogs"
	qemu-img check "$WORK/demo.vhdx"
	qemu-img info "$WORK/demo.vhdx"
	qemu-img convert -f vhdx -O raw "$WORK/demo.vhdx" "$WORK/demo.raw"
	e2fsck -fn "$WORK/demo.raw"
	mkdir -p "$WORK/out/docs"
	for f in hello.txt docs/numbers.txt random.bin; do
		debugfs -R "dump /$f $WORK/out/$f" "$WORK/demo.raw" 2> /dev/null
	done
	(cd "$WORK/out" && sha256sum -c "$WORK/SHA256SUMS")
}

main() {
	make_image
	write_guest_script
	say "guest: boot Debian's 6.12 kernel under QEMU, map, mkfs, write, verify"
	"$TOP/tests/guest/vm-run" --kernel 6.12 --timeout 600 --files "$WORK/files" \
		--bin /sbin/mkfs.ext4 --bin /sbin/e2fsck --bin /etc/mke2fs.conf \
		"$WORK/guest.sh" "$WORK/demo.vhdx"
	check_on_host
	say "demo OK"
}

main "$@"
