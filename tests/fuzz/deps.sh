#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# What tests/fuzz needs on a fresh Debian machine: clang 14 with libFuzzer
# and the sanitizer runtimes, and qemu-img/qemu-io plus python3 to make the
# seed corpora.
set -euo pipefail

pkgs=(clang clang-14 libclang-rt-14-dev qemu-utils python3)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
