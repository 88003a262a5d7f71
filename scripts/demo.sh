#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A walk through dm-vhdx: make an ext4 file system on the host, convert it
# to a dynamic VHDX with qemu-img, boot the 6.12 guest, map the VHDX with
# the vhdx target (read-only), mount it, read a file, show dmsetup status
# and table, tear down, and check on the host that the image is intact.
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

make_image() {
	say "host: an ext4 file system with a few files, converted to a dynamic VHDX"
	mkdir -p "$WORK/src/docs"
	echo "Hello from a VHDX image, read by dm-vhdx." > "$WORK/src/hello.txt"
	seq 1 2000 > "$WORK/src/docs/numbers.txt"
	head -c 300000 /dev/urandom > "$WORK/src/random.bin"
	(cd "$WORK/src" && sha256sum hello.txt docs/numbers.txt random.bin) > "$WORK/src/SHA256SUMS"
	truncate -s 64M "$WORK/fs.raw"
	mkfs.ext4 -q -F -L vhdx-demo -d "$WORK/src" "$WORK/fs.raw"
	qemu-img convert -f raw -O vhdx -o subformat=dynamic "$WORK/fs.raw" "$WORK/demo.vhdx"
	qemu-img info "$WORK/demo.vhdx"
	SECTORS=$(($(qemu-img info --output=json "$WORK/demo.vhdx" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])') / 512))
	SHA_BEFORE=$(sha256sum < "$WORK/demo.vhdx")
}

# The guest side; each command is echoed before it runs, and the first
# failure ends the script with its status.
write_guest_script() {
	cat > "$WORK/guest.sh" <<GUEST
set -e
run() { echo "guest# \$*"; "\$@"; }
run dmsetup targets
run dmsetup create --readonly vd --table "0 $SECTORS vhdx /dev/vda"
run dmsetup mknodes
run blockdev --getsize64 /dev/mapper/vd
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

main() {
	make_image
	write_guest_script
	say "guest: boot Debian's 6.12 kernel under QEMU, map, mount, read"
	"$TOP/tests/guest/vm-run" --kernel 6.12 --timeout 300 "$WORK/guest.sh" "$WORK/demo.vhdx"
	say "host: qemu-img check, and the image is unchanged"
	qemu-img check "$WORK/demo.vhdx"
	if [ "$(sha256sum < "$WORK/demo.vhdx")" = "$SHA_BEFORE" ]; then
		echo "image unchanged (sha256)"
	else
		echo "the image file changed during a read-only mapping" >&2
		exit 1
	fi
	say "demo OK"
}

main "$@"
