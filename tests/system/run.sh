#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of the system integration: vhdxsetup list, /etc/vhdxtab and its
# systemd generator, udev rules, bash completion, make install, the
# packages; in guests (vm-run) list, open --all and the boot path from
# /etc/vhdxtab to a mounted file system.  tests/system/README says what is
# checked where.  Prints PASS/FAIL lines and "N passed, M failed".
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/lib.sh
. "$top/tests/lib.sh"
test_init vhdx-system
make -s -C "$top/tools" vhdxsetup || { fail build "make tools/vhdxsetup"; test_finish || exit 1; }
setup=$top/tools/vhdxsetup

# --- vhdxsetup list ---------------------------------------------------
check "list: in --help" bash -c "'$setup' --help | grep -q '^  list \[--json\]'"
check "list --help" "$setup" list --help
expect_rc "list: extra argument is exit 2" 2 "$setup" list extra
# Without root or dm_mod list fails with exit 2 and says why; with them it
# must print valid JSON.
if "$setup" list --json >"$work/list.json" 2>"$work/list.err"; then
	check "list --json is JSON" python3 -c 'import json, sys; assert isinstance(json.load(open(sys.argv[1])), list)' "$work/list.json"
else
	rc=$?
	if [ "$rc" = 2 ] && grep -q "device-mapper" "$work/list.err"; then
		pass "list without device-mapper: exit 2 with a reason"
	else
		fail "list without device-mapper" "exit $rc: $(head -1 "$work/list.err")"
	fi
fi

# --- vhdxtab: open --all / close --all ---------------------------------
# No device-mapper is needed for what is checked: parsing, nofail, noauto
# and the exit statuses; open itself fails on a host without dm-vhdx.
"$setup" create "$work/a.vhdx" 8M >/dev/null
cat >"$work/tab" <<EOT
# comment, then a blank line with blanks

a  $work/a.vhdx   ro,nofail,commit_time=500
b $work/missing.vhdx nofail
c $work/missing.vhdx noauto
EOT
expect_rc "tab: nofail entries that fail: exit 0" 0 "$setup" open --all --tab "$work/tab"
check "tab: nofail failure is reported" grep -q "b failed (nofail)" "$work/out"
check "tab: noauto entry skipped" bash -c "! grep -q '^[^ ]* c ' '$work/out' && ! grep -q ': c failed' '$work/out'"
printf 'x %s defaults\n' "$work/missing.vhdx" >"$work/tab2"
expect_rc "tab: failing entry without nofail: exit 2" 2 "$setup" open --all --tab "$work/tab2"
printf 'ok %s ro\nx %s bogus\n' "$work/a.vhdx" "$work/a.vhdx" >"$work/tab3"
expect_rc "tab: unknown option: exit 2" 2 "$setup" open --all --tab "$work/tab3"
check "tab: unknown option names file and line" grep -q "tab3:2: unknown option 'bogus'" "$work/out"
check "tab: a bad line maps nothing" bash -c "! grep -q 'ok' '$work/out'"
printf 'x %s commit_time=abc\n' "$work/a.vhdx" >"$work/tab4"
expect_rc "tab: bad commit_time: exit 2" 2 "$setup" open --all --tab "$work/tab4"
printf 'x\n' >"$work/tab5"
expect_rc "tab: entry without image: exit 2" 2 "$setup" open --all --tab "$work/tab5"
expect_rc "tab: missing file: exit 2" 2 "$setup" open --all --tab "$work/nonexistent"
expect_rc "tab: close --all with nothing open: exit 0" 0 "$setup" close --all --tab "$work/tab"
expect_rc "tab: --all with arguments: exit 2" 2 "$setup" open --all --tab "$work/tab" extra
expect_rc "open --commit-time out of range: exit 2" 2 "$setup" open --commit-time 3600001 "$work/a.vhdx" z
expect_rc "open --commit-time past 2^32 does not wrap: exit 2" 2 "$setup" open --commit-time 4294967796 "$work/a.vhdx" z
check "open --commit-time past 2^32: a usage error" grep -q "bad --commit-time '4294967796'" "$work/out"

# --- the systemd generator -------------------------------------------
gen=$top/tools/systemd/vhdx-generator
g=$work/gen
mkdir -p "$g/normal" "$g/early" "$g/late"
cat >"$g/vhdxtab" <<EOT
# NAME IMAGE OPTIONS
data   /srv/images/data.vhdx  commit_time=1000
golden /var/lib/golden.vhdx   ro,nofail
my-dev /dev/sdb1              noauto
bad    /x.vhdx                bogus
rel    images/x.vhdx
EOT
printf '/dev/sda1 / ext4 defaults 0 1\n/dev/sdc1 /srv ext4 defaults 0 2\n' >"$g/fstab"
gen_run() {
	VHDXTAB=$g/vhdxtab FSTAB=$g/fstab VHDXSETUP=$setup "$gen" "$g/normal" "$g/early" "$g/late"
}
expect_rc "generator: exit 0 despite bad lines" 0 gen_run
check "generator: bad option logged with its line" grep -q "vhdxtab:5: unknown option 'bogus': skipped" "$work/out"
check "generator: relative image logged" grep -q "vhdxtab:6: 'images/x.vhdx' is not an absolute path" "$work/out"
units=$(cd "$g/normal" && find . \( -type f -o -type l \) | sort | tr '\n' ' ')
want="./local-fs.target.requires/vhdx@data.service ./local-fs.target.wants/vhdx@golden.service ./vhdx@data.service ./vhdx@golden.service ./vhdx@my\\x2ddev.service "
if [ "$units" = "$want" ]; then
	pass "generator: units and links"
else
	fail "generator: units and links" "got '$units'"
fi
u=$g/normal/vhdx@data.service
check "generator: oneshot, RemainAfterExit" grep -qx "Type=oneshot" "$u"
check "generator: RemainAfterExit" grep -qx "RemainAfterExit=yes" "$u"
check "generator: ExecStart with commit_time" grep -qx "ExecStart=$setup open --commit-time=1000 /srv/images/data.vhdx data" "$u"
check "generator: ExecStop" grep -qx "ExecStop=$setup close data" "$u"
check "generator: image on a mount: RequiresMountsFor" grep -qx "RequiresMountsFor=/srv/images" "$u"
check "generator: image on a mount: not before local-fs-pre" bash -c "! grep -q local-fs-pre '$u' && grep -qx 'Before=local-fs.target' '$u'"
u=$g/normal/vhdx@golden.service
check "generator: ro" grep -qx "ExecStart=$setup open --read-only /var/lib/golden.vhdx golden" "$u"
check "generator: image on /: before local-fs-pre" grep -qx "Before=local-fs-pre.target" "$u"
check "generator: ro image on /: no remount-fs wait" bash -c "! grep -q remount-fs '$u'"
u=$g/normal/vhdx@my\\x2ddev.service
check "generator: block device: BindsTo its device" grep -qx "BindsTo=dev-sdb1.device" "$u"
check "generator: escaped name, plain in ExecStart" grep -qx "ExecStop=$setup close my-dev" "$u"
if command -v systemd-analyze >/dev/null; then
	# SourcePath must be absolute, which the test's is.
	check "generator: systemd-analyze verify" bash -c "cd '$g/normal' && systemd-analyze verify --man=no ./vhdx@*.service 2>&1 | { ! grep .; }"
else
	echo "SKIP generator: no systemd-analyze"
fi
rm -rf "$g/normal"; mkdir -p "$g/normal"
expect_rc "generator: no vhdxtab: exit 0" 0 env VHDXTAB="$g/none" "$gen" "$g/normal"
check "generator: no vhdxtab: no units" bash -c "[ -z \"\$(ls -A '$g/normal')\" ]"
check "generator: shell syntax" bash -n "$gen"
if command -v shellcheck >/dev/null; then
	check "generator: shellcheck" shellcheck "$gen"
fi

# --- udev rules: static checks ------------------------------------------
# udevadm test needs the rules installed system-wide and a real device; on
# the host we check what can be checked without: every GOTO has its LABEL,
# each line is KEY op "value" pairs, and the keys we rely on are there.
rules=$top/tools/udev/60-dm-vhdx.rules
check "udev: GOTOs have LABELs" python3 - "$rules" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
gotos = set(re.findall(r'GOTO="([^"]+)"', text))
labels = set(re.findall(r'LABEL="([^"]+)"', text))
assert gotos <= labels, gotos - labels
pair = re.compile(r'\s*[A-Z_]+(\{[^}]+\})?\s*(==|!=|=|\+=|-=|:=)\s*"[^"]*"\s*')
for n, line in enumerate(text.splitlines(), 1):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    for part in line.split('",'):
        part = part if part.endswith('"') else part + '"'
        assert pair.fullmatch(part), f"line {n}: {part!r}"
PY
check "udev: by-id link for VHDX- uuids" grep -q 'ENV{DM_UUID}!="VHDX-?\*"' "$rules"
# shellcheck disable=SC2016 # a literal udev $env{}
check "udev: dm-vhdx-NAME link" grep -q 'SYMLINK+="disk/by-id/dm-vhdx-$env{DM_NAME}"' "$rules"
check "udev: UDISKS_IGNORE on vhdx loops" grep -q 'ATTR{loop/backing_file}=="\*.vhdx.*ENV{UDISKS_IGNORE}="1"' "$rules"

# --- bash completion ------------------------------------------------------
comp=$top/tools/completion/vhdxsetup
check "completion: bash -n" bash -n "$comp"
if command -v shellcheck >/dev/null; then
	check "completion: shellcheck" shellcheck -s bash "$comp"
fi
mkdir -p "$work/comp/dir"
touch "$work/comp/a.vhdx" "$work/comp/b.AVHDX" "$work/comp/c.txt"
complete_words() {	# WORD...: prints COMPREPLY for the last word
	(cd "$work/comp" && PATH=$top/tools:$PATH bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_vhdxsetup; [ ${#COMPREPLY[@]} = 0 ] ||
		printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$comp" "$@")
}
expect_completion() {	# NAME WANT WORD...
	local name=$1 want=$2 got
	shift 2
	got=$(complete_words "$@") || got="(completion failed)"
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "got '$got', expected '$want'"
	fi
}
expect_completion "completion: commands" "list " vhdxsetup li
expect_completion "completion: every command of --help" \
	"$({ echo --help; "$setup" --help | sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p'; } | sort | tr '\n' ' ')" vhdxsetup ''
expect_completion "completion: open's options" "--all --commit-time --help --read-only --tab " vhdxsetup open --
expect_completion "completion: list --json" "--json " vhdxsetup list --j
expect_completion "completion: images and directories" "a.vhdx b.AVHDX dir/ " vhdxsetup info ''
expect_completion "completion: open NAME is free text" "" vhdxsetup open a.vhdx ''
expect_completion "completion: --tab takes any file" "a.vhdx b.AVHDX c.txt dir " vhdxsetup open --all --tab ''

# --- make install -----------------------------------------------------------
inst=$work/inst
if make -s -C "$top/tools" install DESTDIR="$inst" PREFIX=/usr >"$work/out" 2>&1; then
	files=$(cd "$inst" && find . -type f | sort | tr '\n' ' ')
	want="./usr/lib/systemd/system-generators/vhdx-generator ./usr/lib/udev/rules.d/60-dm-vhdx.rules ./usr/sbin/vhdxsetup ./usr/share/bash-completion/completions/vhdxsetup "
	command -v rst2man >/dev/null || command -v rst2man.py >/dev/null &&
		want="${want% }"" ./usr/share/man/man5/vhdxtab.5 ./usr/share/man/man8/vhdxsetup.8 "
	want=$(tr ' ' '\n' <<<"$want" | sort | grep . | tr '\n' ' ')
	if [ "$files" = "$want" ]; then
		pass "install: DESTDIR, PREFIX=/usr file list"
	else
		fail "install: file list" "got '$files', expected '$want'"
	fi
	# shellcheck disable=SC2016 # the generator's own ${}
	check "install: generator names the installed vhdxsetup" \
		grep -qx 'setup=${VHDXSETUP:-/usr/sbin/vhdxsetup}' "$inst/usr/lib/systemd/system-generators/vhdx-generator"
	check "install: generator executable" test -x "$inst/usr/lib/systemd/system-generators/vhdx-generator"
else
	fail "install" "$(tail -3 "$work/out" | tr '\n' ' ')"
fi
if make -s -C "$top/tools" install DESTDIR="$inst/local" >"$work/out" 2>&1; then
	check "install: default PREFIX /usr/local, udev rules in /etc" test -f "$inst/local/usr/local/sbin/vhdxsetup" -a \
		-f "$inst/local/etc/udev/rules.d/60-dm-vhdx.rules" -a \
		-f "$inst/local/usr/local/lib/systemd/system-generators/vhdx-generator"
else
	fail "install: PREFIX /usr/local" "$(tail -3 "$work/out" | tr '\n' ' ')"
fi

# --- libvhdx: install, build the example through pkg-config, compare -------
lib=$work/lib
if make -s -C "$top/tools" install-lib DESTDIR="$lib" PREFIX=/usr >"$work/out" 2>&1; then
	pass "libvhdx: make install-lib"
	pc() { PKG_CONFIG_SYSROOT_DIR=$lib PKG_CONFIG_LIBDIR=$lib/usr/lib/pkgconfig pkg-config "$@" vhdx; }
	check "libvhdx: pkg-config finds vhdx" pc --exists
	# shellcheck disable=SC2046 # pkg-config's flags are words
	if cc -Wall -Werror -o "$work/vhdx-cat" "$top/tools/examples/vhdx-cat.c" $(pc --cflags --libs) >"$work/out" 2>&1; then
		pass "libvhdx: vhdx-cat builds against the installed library"
		i=0
		for spec in "dynamic:-o block_size=1M:20M" "fixed:-o subformat=fixed:8M" "small-log:-o log_size=1M:12M" "empty::5M"; do
			i=$((i + 1))
			IFS=: read -r what opts size <<<"$spec"
			# shellcheck disable=SC2086 # opts are words
			qemu-img create -q -f vhdx $opts "$work/cat$i.vhdx" "$size"
			[ "$what" = empty ] || qemu-io -f vhdx -c "write -P 0x3$i 1M 2M" -c "write -P 0x4$i $(( ${size%M} * 1048576 - 4096 )) 4k" "$work/cat$i.vhdx" >/dev/null
			qemu-img convert -O raw "$work/cat$i.vhdx" "$work/cat$i.qemu"
			if "$work/vhdx-cat" "$work/cat$i.vhdx" >"$work/cat$i.raw" 2>"$work/cat$i.err" &&
			   cmp -s "$work/cat$i.raw" "$work/cat$i.qemu" &&
			   grep -qx "virtual size $(( ${size%M} * 1048576 ))" "$work/cat$i.err"; then
				pass "libvhdx: vhdx-cat = qemu-img convert ($what)"
			else
				fail "libvhdx: vhdx-cat ($what)" "$(head -2 "$work/cat$i.err" | tr '\n' ' ') $(cmp "$work/cat$i.raw" "$work/cat$i.qemu" 2>&1)"
			fi
		done
	else
		fail "libvhdx: vhdx-cat builds" "$(head -3 "$work/out" | tr '\n' ' ')"
	fi
else
	fail "libvhdx: make install-lib" "$(tail -3 "$work/out" | tr '\n' ' ')"
fi

# --- packages: make deb, their contents, a dkms build against 6.12 ---------
if ! command -v dh_dkms >/dev/null || ! command -v dpkg-buildpackage >/dev/null; then
	echo "SKIP deb: no debhelper/dh-dkms (scripts/deps.sh)"
elif make -s -C "$top" deb >"$work/out" 2>&1; then
	pass "deb: make deb"
	deb=$top/build/deb
	dkms_deb=$(find "$deb" -name 'dm-vhdx-dkms_*_all.deb' | head -1)
	tool_deb=$(find "$deb" -name 'vhdxsetup_*.deb' | head -1)
	if [ -n "$dkms_deb" ] && [ -n "$tool_deb" ]; then
		dpkg-deb -c "$dkms_deb" | awk '{ print $6 }' >"$work/dkms.list"
		dpkg-deb -c "$tool_deb" | awk '{ print $6 }' >"$work/tool.list"
		check "deb: dkms package has dkms.conf, Kbuild, the target and vhdx/" \
			bash -c "for f in dkms.conf Kbuild Makefile dm-vhdx.h dm-vhdx-target.c vhdx/vhdx.h vhdx/image.c; do grep -q \"^./usr/src/dm-vhdx-[0-9.]*/\$f\$\" '$work/dkms.list' || { echo \"no \$f\"; exit 1; }; done"
		check "deb: dkms package depends on dkms, runs it" \
			bash -c "dpkg-deb -f '$dkms_deb' Depends | grep -q dkms && dpkg-deb -I '$dkms_deb' postinst | grep -q dkms"
		check "deb: vhdxsetup package file list" bash -c "for f in usr/sbin/vhdxsetup usr/lib/systemd/system-generators/vhdx-generator usr/lib/udev/rules.d/60-dm-vhdx.rules usr/share/bash-completion/completions/vhdxsetup usr/share/man/man8/vhdxsetup.8.gz usr/share/man/man5/vhdxtab.5.gz; do grep -qx \"./\$f\" '$work/tool.list' || { echo \"no \$f\"; exit 1; }; done"
		check "deb: vhdxsetup depends on libdevmapper" bash -c "dpkg-deb -f '$tool_deb' Depends | grep -q libdevmapper"
		# A dkms build from the package's sources, in a private tree.
		env612=${VHDX_CACHE:-/var/cache/dm-vhdx}/kernels/6.12.env
		if command -v dkms >/dev/null && [ -f "$env612" ]; then
			kver=$(sed -n 's/^KVER=//p' "$env612")
			mkdir -p "$work/dkms/x" "$work/dkms/tree"
			dpkg-deb -x "$dkms_deb" "$work/dkms/x"
			ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
			if timeout 600 dkms build -m dm-vhdx -v "$ver" -k "$kver" \
				--sourcetree "$work/dkms/x/usr/src" --dkmstree "$work/dkms/tree" >"$work/out" 2>&1 &&
			   find "$work/dkms/tree" -name 'dm-vhdx.ko*' | grep -q .; then
				pass "deb: dkms build against $kver"
			else
				fail "deb: dkms build against $kver" "$(tail -5 "$work/out" | tr '\n' ' ')"
			fi
		else
			echo "SKIP deb: dkms build (no dkms, or no $env612)"
		fi
	else
		fail "deb: packages" "$(ls "$deb")"
	fi
else
	fail "deb: make deb" "$(tail -5 "$work/out" | tr '\n' ' ')"
fi

# --- the packages installed into a clean Debian 12 --------------------------
# mmdebstrap makes a bookworm root with apt and installs the two .debs in
# it, their Depends resolved from the archive, as "apt install ./x.deb"
# does for a user.  About 3 minutes, mostly downloads (dkms pulls in gcc);
# needs root and the Debian mirror.  The dkms build itself is the "deb: dkms
# build" check above (the packaged sources, the 6.12 headers): repeating it
# here would add linux-headers and its toolchain to the download.
# VHDX_SYSTEM_CHROOT=0 skips this; VHDX_DEBIAN_MIRROR picks the mirror.
if [ -z "${dkms_deb:-}" ] || [ -z "${tool_deb:-}" ]; then
	echo "SKIP chroot: no packages (make deb failed or was skipped)"
elif [ "${VHDX_SYSTEM_CHROOT:-1}" = 0 ]; then
	echo "SKIP chroot: VHDX_SYSTEM_CHROOT=0"
elif ! command -v mmdebstrap >/dev/null; then
	echo "SKIP chroot: no mmdebstrap (scripts/deps.sh)"
elif [ "$(id -u)" != 0 ]; then
	echo "SKIP chroot: needs root (mmdebstrap, chroot)"
else
	c=$work/chroot
	debs=$work/debs
	mkdir -p "$debs"
	cp "$dkms_deb" "$tool_deb" "$debs/"
	inc=()
	for d in "$debs"/*.deb; do
		inc+=(--include="$d")
	done
	start=$SECONDS
	# --include takes local .deb files at the same path inside the
	# chroot: the setup hooks put them there.
	if timeout 900 mmdebstrap --variant=apt --setup-hook="mkdir -p \"\$1$debs\"" \
		--setup-hook="copy-in $debs/$(basename "$dkms_deb") $debs/$(basename "$tool_deb") $debs" \
		"${inc[@]}" bookworm "$c" "${VHDX_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/mm.log" 2>&1; then
		pass "chroot: mmdebstrap bookworm with the two packages ($((SECONDS - start)) s)"
		pver=$(dpkg-deb -f "$dkms_deb" Version)
		check "chroot: files in place" bash -c "cd '$c' && for f in usr/sbin/vhdxsetup \
			usr/share/man/man8/vhdxsetup.8.gz usr/share/man/man5/vhdxtab.5.gz \
			usr/lib/udev/rules.d/60-dm-vhdx.rules usr/lib/systemd/system-generators/vhdx-generator \
			usr/share/bash-completion/completions/vhdxsetup \
			usr/src/dm-vhdx-$pver/dkms.conf usr/src/dm-vhdx-$pver/Kbuild \
			usr/src/dm-vhdx-$pver/dm-vhdx-target.c usr/src/dm-vhdx-$pver/vhdx/image.c; do
			test -f \"\$f\" || { echo \"no \$f\"; exit 1; }; done"
		# dpkg --verify exits 0 whatever it finds: its output must be empty.
		check "chroot: dpkg --verify (files as packaged)" bash -c "out=\$(chroot '$c' dpkg --verify vhdxsetup dm-vhdx-dkms 2>&1) &&
			[ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
		check "chroot: vhdxsetup --help runs (its libraries are installed)" \
			bash -c "chroot '$c' /usr/sbin/vhdxsetup --help | grep -q '^  open '"
		check "chroot: man pages are roff" bash -c "zcat '$c/usr/share/man/man8/vhdxsetup.8.gz' | grep -q '^\.TH' &&
			zcat '$c/usr/share/man/man5/vhdxtab.5.gz' | grep -q '^\.TH'"
		check "chroot: completion loads" chroot "$c" bash -c \
			'. /usr/share/bash-completion/completions/vhdxsetup && complete -p vhdxsetup | grep -q _vhdxsetup'
		# The generator as installed: its units name the installed vhdxsetup.
		check "chroot: generator runs, ExecStart is the installed vhdxsetup" chroot "$c" bash -c '
			printf "d /srv/x.vhdx ro\n" >/tmp/tab && mkdir -p /tmp/gen &&
			VHDXTAB=/tmp/tab /usr/lib/systemd/system-generators/vhdx-generator /tmp/gen &&
			grep -qx "ExecStart=/usr/sbin/vhdxsetup open --read-only /srv/x.vhdx d" /tmp/gen/vhdx@d.service'
		# The postinst gave the sources to dkms (no headers here to build).
		check "chroot: dkms has dm-vhdx/$pver" bash -c "chroot '$c' dkms status -m dm-vhdx | grep -q '^dm-vhdx/$pver'"
	else
		fail "chroot: mmdebstrap" "exit $?: $(grep -E '^E:|error' "$work/mm.log" | head -3 | tr '\n' ' ')"
	fi
	# A killed mmdebstrap can leave /dev or /proc mounted in the root;
	# rm -rf would then delete through them (here and in the exit trap).
	if grep -q " $c/" /proc/self/mounts; then
		fail "chroot: clean up" "mounts left under $c; $work not removed"
		test_keep=1
	else
		rm -rf "$c"
	fi
fi

# guest_results PREFIX VM-RUN-RC CONSOLE: a check per GUEST-PASS/GUEST-FAIL
# line of CONSOLE; false, with a failure, if vm-run failed or printed none.
guest_results() {
	local prefix=$1 rc=$2 console=$3 line n=0
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		GUEST-PASS\ *) pass "$prefix-${line#GUEST-PASS }"; n=$((n + 1)) ;;
		GUEST-FAIL\ *)
			line=${line#GUEST-FAIL }
			fail "$prefix-${line%%:*}" "${line#*: }"; n=$((n + 1)) ;;
		esac
	done <"$console"
	if [ "$rc" != 0 ] || [ "$n" = 0 ]; then
		fail "$prefix-run" "vm-run exit $rc: $(grep -v '^GUEST' "$console" | tail -5 | tr '\n' ' ')"
		return 1
	fi
}

# --- in a guest: list, open's refusal, open/close --all -------------------
ko=$(find "$top"/build -path '*/6.12*/dm-vhdx.ko' 2>/dev/null | head -1)
if [ -z "$ko" ] || [ "${VHDX_SYSTEM_GUEST:-1}" = 0 ]; then
	echo "SKIP guest: no build/6.12*/dm-vhdx.ko (make build-all)"
else
	g=$work/guest
	mkdir -p "$g/files"
	"$setup" create --block-size 1M "$g/files/a.vhdx" 16M >/dev/null
	"$setup" create --block-size 1M "$g/files/base.vhdx" 16M >/dev/null
	"$setup" create --parent "$g/files/base.vhdx" "$g/files/child.vhdx" >/dev/null
	"$setup" create --parent "$g/files/base.vhdx" "$g/files/child2.vhdx" >/dev/null
	printf 'S=%s\n' "$setup" >"$g/files/env"
	rc=0
	"$top/tests/guest/vm-run" --kernel 6.12 --module "$ko" --files "$g/files" --bin "$setup" \
		--timeout 300 "$top/tests/system/guest-list.sh" >"$g/console" 2>&1 || rc=$?
	if guest_results guest "$rc" "$g/console"; then
		sed -n 's/^GUEST-JSON //p' "$g/console" | tr -d '\r' >"$g/list.json"
		check "guest: list --json parses, two devices" python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
assert [d["name"] for d in l] == ["va", "vc"], l
assert l[1]["parents"][0]["image"] == "/files/base.vhdx", l
assert l[0]["uuid"].startswith("VHDX-") and l[0]["uuid"].endswith("-va"), l
' "$g/list.json"
	fi
fi

# --- in a guest: the boot path, /etc/vhdxtab to a mounted file system -------
# What systemd would do with the generator's units, played by
# guest-boot.sh in the units' order (see its header and tests/system/README).
if [ -z "$ko" ] || [ "${VHDX_SYSTEM_GUEST:-1}" = 0 ]; then
	echo "SKIP boot: no build/6.12*/dm-vhdx.ko (make build-all)"
elif ! command -v mke2fs >/dev/null; then
	echo "SKIP boot: no mke2fs (scripts/deps.sh)"
else
	b=$work/boot
	mkdir -p "$b/files" "$b/inner" "$b/data"
	# Files of several blocks (1 MiB by default), not a multiple of 4 KiB.
	head -c 3000001 /dev/urandom >"$b/files/hello.bin"
	head -c 1500007 /dev/urandom >"$b/files/inner.bin"
	cp "$b/files/inner.bin" "$b/inner/"
	# An image on a file system in another image: the generator orders its
	# unit after that mount (RequiresMountsFor).
	# (mke2fs -d says "Creating regular file" even with -q.)
	if { mke2fs -q -F -t ext4 -d "$b/inner" "$b/inner.raw" 8M &&
	     "$setup" convert --quiet --to vhdx "$b/inner.raw" "$b/data/inner.vhdx" &&
	     cp "$b/files/hello.bin" "$b/data/" &&
	     mke2fs -q -F -t ext4 -d "$b/data" "$b/data.raw" 32M &&
	     "$setup" convert --quiet --to vhdx "$b/data.raw" "$b/files/data.vhdx"; } >"$work/out" 2>&1; then
		rm -f "$b/inner.raw" "$b/data.raw"
		cat >"$b/files/vhdxtab" <<-EOT
			# NAME IMAGE OPTIONS
			data  /files/data.vhdx      commit_time=700
			gone  /files/missing.vhdx   nofail
			inner /mnt/data/inner.vhdx  ro,nofail
			spare /files/data.vhdx      noauto
		EOT
		cat >"$b/files/fstab" <<-EOT
			/dev/mapper/data  /mnt/data  ext4 defaults  0 2
			/dev/mapper/gone  /mnt/gone  ext4 nofail    0 2
			/dev/mapper/inner /mnt/inner ext4 ro,noauto 0 0
		EOT
		install -m 755 "$gen" "$b/files/vhdx-generator"
		# bash for the generator; udevadm and dmsetup's rules, which ours
		# follow, for the udev checks.
		bins=(--bin "$setup" --bin /bin/bash)
		udevadm=$(command -v udevadm || true)
		if [ -n "$udevadm" ] && [ -f /usr/lib/udev/rules.d/55-dm.rules ]; then
			mkdir -p "$b/files/udev"
			cp /usr/lib/udev/rules.d/55-dm.rules "$rules" "$b/files/udev/"
			bins+=(--bin "$udevadm")
		else
			udevadm=
			echo "SKIP boot: udev checks (no udevadm or no 55-dm.rules: scripts/deps.sh)"
		fi
		printf 'S=%s\nUDEVADM=%s\n' "$setup" "$udevadm" >"$b/files/env"
		start=$SECONDS
		rc=0
		"$top/tests/guest/vm-run" --kernel 6.12 --module "$ko" --files "$b/files" "${bins[@]}" \
			--timeout 300 "$top/tests/system/guest-boot.sh" >"$b/console" 2>&1 || rc=$?
		guest_results guest "$rc" "$b/console" || true
		echo "boot: guest run $((SECONDS - start)) s"
	else
		fail "boot: images" "$(tail -3 "$work/out" | tr '\n' ' ')"
	fi
fi

#@@MORE@@

test_finish
