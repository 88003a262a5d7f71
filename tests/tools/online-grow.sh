# SPDX-License-Identifier: GPL-2.0
#
# Online grow (issue 11): vhdxsetup resize of a mapped, mounted image, in
# a guest (tests/tools/guest-grow.sh), and a table resumed over an image
# changed while it was suspended.  Sourced by tests/tools/run.sh, which
# provides pass, fail, $setup, $work and $top; run alone (bash
# tests/tools/online-grow.sh) it sets those up itself and prints
# "N passed, M failed".  One guest boot (6.12), about a minute.
og_alone=
if ! declare -F pass >/dev/null; then
	og_alone=1
	set -uo pipefail
	top=${top:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	work=$(mktemp -d "${TMPDIR:-/tmp}/vhdxsetup-og.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	passed=0
	failed=0
	pass() { echo "PASS $1"; passed=$((passed + 1)); }
	fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
	make -s -C "$top/tools" vhdxsetup || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }
	setup=$top/tools/vhdxsetup
fi

og_tests() {
	local o=$work/og M=1048576 rc n line ko e2 old new par
	local vm_run=$top/tests/guest/vm-run
	ko=${OG_MODULE:-$(ls "$top"/build/6.12*/dm-vhdx.ko 2>/dev/null | head -1)}
	if [ -z "$ko" ]; then
		echo "SKIP online-grow: no build/6.12*/dm-vhdx.ko (make build-all)"; return
	fi
	for e2 in /sbin/mkfs.ext4 /sbin/resize2fs /sbin/debugfs /sbin/e2fsck /etc/mke2fs.conf; do
		[ -e "$e2" ] || { echo "SKIP online-grow: no $e2 (e2fsprogs)"; return; }
	done
	old=$((32 * M)) new=$((96 * M)) par=$((16 * M))
	rm -rf "$o"
	mkdir -p "$o/files" "$o/res"
	"$setup" create --block-size 1M "$o/files/grow.vhdx" $old >/dev/null
	head -c $((3 * M)) /dev/urandom >"$o/files/data1.bin"
	head -c $((40 * M)) /dev/urandom >"$o/files/data2.bin"
	"$setup" create --block-size 1M "$o/files/par.vhdx" $par >/dev/null
	qemu-io -f vhdx -c "write -P 0x21 0 1M" "$o/files/par.vhdx" >/dev/null
	"$setup" create --parent "$o/files/par.vhdx" "$o/files/child.vhdx" >/dev/null
	cp "$o/files/par.vhdx" "$o/files/par.orig"
	# stale-new.vhdx: stale.vhdx as a resize (here offline) leaves it.
	"$setup" create --block-size 1M "$o/files/stale.vhdx" $par >/dev/null
	qemu-io -f vhdx -c "write -P 0x31 0 3M" "$o/files/stale.vhdx" >/dev/null
	cp "$o/files/stale.vhdx" "$o/files/stale-new.vhdx"
	"$setup" resize "$o/files/stale-new.vhdx" $((2 * par)) >/dev/null
	cp "$o/files/stale-new.vhdx" "$o/stale-new.vhdx"
	printf 'S=%s\nOLD=%s\nNEW=%s\nPAR=%s\n' "$setup" $old $new $par >"$o/files/env"
	truncate -s 256M "$o/out.raw"
	"$vm_run" --kernel 6.12 --module "$ko" --mem 1536 --files "$o/files" --bin "$setup" \
		--bin /sbin/mkfs.ext4 --bin /sbin/resize2fs --bin /etc/mke2fs.conf --timeout 600 \
		"$top/tests/tools/guest-grow.sh" "$o/out.raw" >"$o/console" 2>&1
	rc=$?
	n=0
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		GUEST-PASS\ *) pass "og-${line#GUEST-PASS }"; n=$((n + 1)) ;;
		GUEST-FAIL\ *)
			line=${line#GUEST-FAIL }
			fail "og-${line%%:*}" "${line#*: }"; n=$((n + 1)) ;;
		esac
	done <"$o/console"
	if [ "$rc" != 0 ] || [ "$n" = 0 ]; then
		fail og-guest-run "vm-run exit $rc: $(grep -v '^GUEST' "$o/console" | tail -5 | tr '\n' ' ')"
		return
	fi
	pass og-guest-run
	if ! tar -xf "$o/out.raw" -C "$o/res" 2>"$work/err"; then
		fail og-unpack "$(cat "$work/err")"; return
	fi
	# The grown image, read by QEMU: clean, the new size, a clean file
	# system holding both files as they were written.
	if qemu-img check "$o/res/grow.vhdx" >"$work/err" 2>&1; then
		pass og-grow-qemu-check
	else
		fail og-grow-qemu-check "$(tail -1 "$work/err")"
	fi
	if "$setup" check "$o/res/grow.vhdx" >"$work/err" 2>&1; then
		pass og-grow-check
	else
		fail og-grow-check "$(tail -1 "$work/err")"
	fi
	rm -f "$o/grow.raw"
	qemu-img convert -f vhdx -O raw "$o/res/grow.vhdx" "$o/grow.raw"
	if [ "$(stat -c %s "$o/grow.raw" 2>/dev/null)" = "$new" ]; then
		pass og-grow-virtual-size
	else
		fail og-grow-virtual-size "qemu-img reads $(stat -c %s "$o/grow.raw" 2>/dev/null) bytes, want $new"
	fi
	if /sbin/e2fsck -fn "$o/grow.raw" >"$work/err" 2>&1; then
		pass og-grow-fsck
	else
		fail og-grow-fsck "$(tail -2 "$work/err" | tr '\n' ' ')"
	fi
	for f in data1.bin data2.bin; do
		rm -f "$o/got-$f"
		/sbin/debugfs -R "dump /$f $o/got-$f" "$o/grow.raw" >/dev/null 2>&1
		if cmp -s "$o/got-$f" "$o/files/$f"; then
			pass "og-grow-content-$f"
		else
			fail "og-grow-content-$f" "debugfs reads other data: $(cmp "$o/got-$f" "$o/files/$f" 2>&1 | head -1)"
		fi
	done
	# The refused resume left the changed image as it was, clean.
	if cmp -s -n "$(stat -c %s "$o/stale-new.vhdx")" "$o/res/stale.vhdx" "$o/stale-new.vhdx" &&
	   qemu-img check "$o/res/stale.vhdx" >"$work/err" 2>&1; then
		pass og-stale-image-clean
	else
		fail og-stale-image-clean "changed, or qemu-img check: $(tail -1 "$work/err")"
	fi
	[ -n "${OG_KEEP:-}" ] || rm -rf "$o"
}
og_tests

if [ -n "$og_alone" ]; then
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
fi
