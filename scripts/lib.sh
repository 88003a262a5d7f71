# SPDX-License-Identifier: GPL-2.0
# Shared helpers for scripts/*.sh and tests/guest/vm-run (sourced, not run).
# shellcheck shell=bash

VHDX_CACHE=${VHDX_CACHE:-/var/cache/dm-vhdx}
export DEBIAN_FRONTEND=noninteractive

log() { echo "==> $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# Prefix a command with sudo only when we are not root (CI runs as root).
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt-get update at most once per run, and only when there is no package
# list at all (fresh container) or when a caller saw apt fail.
_apt_updated=0
apt_update() {
	[ "$_apt_updated" = 1 ] && return 0
	log "apt-get update"
	as_root apt-get update -qq >&2
	_apt_updated=1
}
apt_lists_present() {
	compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null ||
		compgen -G '/var/lib/apt/lists/*_Packages.lz4' >/dev/null
}
apt_ready() { apt_lists_present || apt_update; }

# Install the packages that dpkg does not report as installed; a failure on
# stale lists (404 after an archive update) gets one update and a retry.
apt_install() {
	local pkg missing=()
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$pkg")
	done
	[ ${#missing[@]} = 0 ] && return 0
	apt_ready
	log "apt-get install ${missing[*]}"
	if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		[ "$_apt_updated" = 1 ] && die "apt-get install ${missing[*]} failed"
		apt_update
		as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
}

# Names of the linux-* packages apt knows, read once per process (each
# apt-cache call costs about a second: Debian images keep no pkgcache).
_apt_linux_names=""
apt_linux_names() { echo "$_apt_linux_names"; }

# newest_kver LINE: the newest cloud kernel version of LINE (6.1 or 6.12)
# for which apt has both the headers and the unsigned image.
newest_kver() {
	local line=$1 re kv
	case $line in
	6.1) re='6\.1\.0-[0-9]+-cloud-amd64' ;;
	6.12) re='6\.12\.[0-9]+\+deb12-cloud-amd64' ;;
	*) die "unknown kernel line $line (want 6.1 or 6.12)" ;;
	esac
	apt_ready
	# Fill the cache here: the process substitutions below are subshells.
	[ -n "$_apt_linux_names" ] || _apt_linux_names=$(apt-cache pkgnames linux- 2>/dev/null)
	# pkgnames also lists names apt only heard of; apt-cache show proves
	# that both packages can be downloaded.
	for kv in $(comm -12 \
		<(apt_linux_names | sed -nE "s/^linux-headers-(${re})\$/\\1/p" | sort) \
		<(apt_linux_names | sed -nE "s/^linux-image-(${re})-unsigned\$/\\1/p" | sort) |
		sort -rV); do
		if apt-cache show --no-all-versions "linux-headers-$kv" \
			"linux-image-$kv-unsigned" >/dev/null 2>&1; then
			echo "$kv"
			return 0
		fi
	done
	if [ "$_apt_updated" = 0 ]; then
		apt_update
		_apt_linux_names=""
		newest_kver "$line"
		return
	fi
	die "apt has no linux-headers/linux-image-*-unsigned cloud-amd64 pair of the $line line"
}
