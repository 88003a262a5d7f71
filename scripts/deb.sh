#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make deb: the dm-vhdx-dkms and vhdxsetup packages from the committed and
# working tree, built in a copy so that the tree stays clean.  The .debs
# land in build/deb/.  Needs debhelper, dh-dkms, libdevmapper-dev and
# python3-docutils (scripts/deps.sh).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/deb
work=$(mktemp -d "${TMPDIR:-/tmp}/dm-vhdx-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

for tool in dpkg-buildpackage dh dh_dkms; do
	command -v "$tool" >/dev/null || {
		echo "deb: $tool not found (apt-get install dpkg-dev debhelper dh-dkms)" >&2
		exit 1
	}
done
mkdir -p "$work/src" "$out"
# What git knows (tracked and new, not ignored): no build products.
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	grep -zv '^tests/' | xargs -0 cp --parents -t "$work/src")
(cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/log" 2>&1 || {
	tail -30 "$work/log" >&2
	echo "deb: dpkg-buildpackage failed" >&2
	exit 1
}
rm -f "$out"/*.deb
mv "$work"/*.deb "$out"/
ls "$out"/*.deb
