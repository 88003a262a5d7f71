#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of vhdxsetup create/info/check against two independent peers:
# QEMU (qemu-img, qemu-io) and libvhdi (python3-libvhdi).  No guest needed;
# a few minutes on 2 cores.  Prints PASS/FAIL lines and "N passed, M failed".
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/vhdxsetup-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

make -s -C "$top/tools" vhdxsetup || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }
setup=$top/tools/vhdxsetup
mangle="python3 $top/tests/e2e/vhdxmangle.py"
vhdi="/usr/bin/python3 $top/tests/tools/vhdi-read.py"

json_get() {	# FILE KEY
	python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# Data at the start, straddling a block boundary near the middle, and in
# the last sector; the same bytes go into an expected raw file.
write_pattern() {
	local img=$1 vs=$2 bs=$3 mid
	mid=$(( (vs / bs + 1) / 2 * bs ))
	[ "$mid" -gt 1536 ] && [ "$mid" -lt "$vs" ] || mid=$(( vs / 2 / 512 * 512 ))
	qemu-io -f vhdx -c "write -P 0x5a 0 4k" \
		-c "write -P 0x6b $((mid - 1536)) 3k" \
		-c "write -P 0x7c $((vs - 512)) 512" "$img" >/dev/null || return 1
	python3 - "$work/expect.raw" "$vs" "$mid" <<'EOF'
import sys
path, vs, mid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "wb") as f:
    f.truncate(vs)
    for off, byte, n in ((0, 0x5a, 4096), (mid - 1536, 0x6b, 3072), (vs - 512, 0x7c, 512)):
        f.seek(off)
        f.write(bytes([byte]) * n)
EOF
}

# vhdxsetup info --json against qemu-img info --output=json.
compare_info() {
	local name=$1 img=$2 q s
	q=$work/qemu.json s=$work/ours.json
	if ! qemu-img info --output=json "$img" >"$q" 2>"$work/err"; then
		fail "$name" "qemu-img info: $(head -1 "$work/err")"; return
	fi
	if ! "$setup" info --json "$img" >"$s" 2>"$work/err"; then
		fail "$name" "vhdxsetup info: $(head -1 "$work/err")"; return
	fi
	if [ "$(json_get "$q" virtual-size)" != "$(json_get "$s" virtual-size)" ]; then
		fail "$name" "virtual-size: qemu $(json_get "$q" virtual-size), ours $(json_get "$s" virtual-size)"
	elif [ "$(json_get "$q" cluster-size)" != "$(json_get "$s" block-size)" ]; then
		fail "$name" "qemu cluster-size $(json_get "$q" cluster-size), our block-size $(json_get "$s" block-size)"
	elif [ -n "$(json_get "$q" format-specific)" ]; then
		# QEMU 7.2 reports none for vhdx; fail loudly if a newer one does.
		fail "$name" "qemu-img reports format-specific data: compare it"
	else
		pass "$name"
	fi
}

expect_check() {	# NAME WANT-RC IMAGE [OPTIONS]
	local name=$1 want=$2 img=$3 rc
	shift 3
	"$setup" check "$@" "$img" >"$work/check.out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc, expected $want: $(tr '\n' ' ' <"$work/check.out")"
	fi
}

# --- create, then QEMU and libvhdi read what QEMU wrote ---------------------
interop() {
	local sub=$1 bs=$2 size=$3 img name vs opt=
	[ "$sub" = fixed ] && opt=--fixed
	name=$sub-bs$bs-$size
	img=$work/$name.vhdx
	if ! "$setup" create $opt --block-size "$bs" "$img" "$size" 2>"$work/err"; then
		fail "create-$name" "$(cat "$work/err")"; return
	fi
	vs=$(json_get <("$setup" info --json "$img") virtual-size)
	local want_type=dynamic; [ "$sub" = fixed ] && want_type=fixed
	if [ "$(json_get <("$setup" info --json "$img") type)" = "$want_type" ]; then
		pass "create-$name-type"
	else
		fail "create-$name-type" "info does not say $want_type"
	fi
	if qemu-img check "$img" >"$work/err" 2>&1; then
		pass "qemu-check-new-$name"
	else
		fail "qemu-check-new-$name" "$(tail -1 "$work/err")"
	fi
	compare_info "info-vs-qemu-$name" "$img"
	expect_check "check-new-$name" 0 "$img"
	if ! write_pattern "$img" "$vs" "$(numfmt --from=iec "$bs")"; then
		fail "qemu-io-write-$name" "qemu-io failed"; return
	fi
	qemu-img convert -O raw "$img" "$work/qemu.raw"
	if cmp -s "$work/qemu.raw" "$work/expect.raw"; then
		pass "qemu-readback-$name"
	else
		fail "qemu-readback-$name" "$(cmp "$work/qemu.raw" "$work/expect.raw" 2>&1 | head -1)"
	fi
	if $vhdi "$img" "$work/vhdi.raw" >"$work/err" 2>&1 &&
	   cmp -s "$work/vhdi.raw" "$work/expect.raw"; then
		pass "libvhdi-readback-$name"
	else
		fail "libvhdi-readback-$name" "$(tail -1 "$work/err") $(cmp "$work/vhdi.raw" "$work/expect.raw" 2>&1 | head -1)"
	fi
	if qemu-img check "$img" >"$work/err" 2>&1; then
		pass "qemu-check-written-$name"
	else
		fail "qemu-check-written-$name" "$(tail -1 "$work/err")"
	fi
	compare_info "info-vs-qemu-written-$name" "$img"
	expect_check "check-written-$name" 0 "$img"
	rm -f "$img" "$work"/*.raw
}

# 37 MiB + 512 is a multiple of none of the block sizes.
for sub in dynamic fixed; do
	for bs in 1M 2M 32M 256M; do
		for size in 38797824 64M; do
			interop "$sub" "$bs" "$size"
		done
	done
done

# --- 4096-byte logical sectors: only libvhdi reads them ---------------------
sector4k() {
	local sub=$1 bs=$2 pss=$3 img name opt= out off bsb
	[ "$sub" = fixed ] && opt=--fixed
	name=4k-$sub-bs$bs-pss$pss
	img=$work/$name.vhdx
	if ! "$setup" create $opt --block-size "$bs" --logical-sector-size 4096 \
	     --physical-sector-size "$pss" "$img" 100M 2>"$work/err"; then
		fail "$name" "create: $(cat "$work/err")"; return
	fi
	out=$($vhdi "$img" 2>&1)
	if [ "$out" != "media_size 104857600 bytes_per_sector 4096" ]; then
		fail "$name" "libvhdi: $out"; return
	fi
	if [ "$(json_get <("$setup" info --json "$img") physical-sector-size)" != "$pss" ] ||
	   [ "$(json_get <("$setup" info --json "$img") logical-sector-size)" != 4096 ]; then
		fail "$name" "info: wrong sector sizes"; return
	fi
	bsb=$(numfmt --from=iec "$bs")
	python3 -c 'import sys; open(sys.argv[1], "wb").truncate(104857600)' "$work/expect.raw"
	if [ "$sub" = fixed ]; then
		# Put data straight into payload block 1 and find it at its
		# virtual offset: the BAT and the geometry agree.
		off=$($mangle bat-get --payload "$img" 1)
		off=$(( off & ~0xfffff ))
		printf 'vhdx-4k-block-1' | dd of="$img" bs=1 seek="$off" conv=notrunc status=none
		printf 'vhdx-4k-block-1' | dd of="$work/expect.raw" bs=1 seek="$bsb" conv=notrunc status=none
	fi
	if $vhdi "$img" "$work/vhdi.raw" >/dev/null 2>&1 &&
	   cmp -s "$work/vhdi.raw" "$work/expect.raw"; then
		pass "$name"
	else
		fail "$name" "libvhdi content: $(cmp "$work/vhdi.raw" "$work/expect.raw" 2>&1 | head -1)"
	fi
	expect_check "check-$name" 0 "$img"
	rm -f "$img" "$work"/*.raw
}

for sub in dynamic fixed; do
	sector4k "$sub" 1M 4096
	sector4k "$sub" 32M 512
done

# --- qemu-img made images: info agrees, check passes ------------------------
for sub in dynamic fixed; do
	for bs in 1M 8M 256M; do
		for size in 37M 300M; do
			name=qemu-$sub-bs$bs-$size
			img=$work/$name.vhdx
			qemu-img create -q -f vhdx -o subformat=$sub,block_size=$bs "$img" "$size"
			compare_info "info-vs-qemu-$name" "$img"
			expect_check "check-$name" 0 "$img"
			qemu-io -f vhdx -c "write -P 0x11 0 3M" "$img" >/dev/null
			compare_info "info-vs-qemu-written-$name" "$img"
			expect_check "check-written-$name" 0 "$img"
			rm -f "$img"
		done
	done
done

# --- damaged images: check exits 1 -----------------------------------------
damaged() {	# NAME MANGLE-ARGS... (IMAGE is inserted after the subcommand)
	local name=$1 cmd=$2 img=$work/damaged.vhdx
	shift 2
	cp "$work/base.vhdx" "$img"
	if ! $mangle "$cmd" "$img" "$@" >"$work/err" 2>&1; then
		fail "check-damaged-$name" "vhdxmangle: $(tail -1 "$work/err")"; return
	fi
	expect_check "check-damaged-$name" 1 "$img"
}

"$setup" create --block-size 1M "$work/base.vhdx" 64M
qemu-io -f vhdx -c "write -P 0x22 0 2M" -c "write -P 0x33 10M 1M" "$work/base.vhdx" >/dev/null
damaged header1-crc header-flip 1
damaged header2-crc header-flip 2
damaged header2-version header-set 2 version 2
damaged header2-log-offset header-set 2 log_offset 1234567
damaged header2-log-version header-set 2 log_version 1
damaged region1-crc region-flip 1
damaged region2-crc region-flip 2
damaged region-bat-offset region-set bat file_offset 1234567
damaged region-unknown-required region-add 11111111-2222-3333-4444-555555555555 67108864 1048576 1
damaged metadata-signature metadata-sig
damaged bat-beyond-end bat-beyond-end
damaged bat-dup bat-dup --use-allocated
damaged bat-overlap-metadata bat-overlap metadata
damaged bat-overlap-bat bat-overlap bat
damaged bat-overlap-log bat-overlap log
damaged bat-overlap-header bat-overlap header
damaged bat-reserved-state bat-set --payload 5 4
damaged sector-size set-sector-size 1000 4096
damaged block-size set-block-size 3145728

# Both headers bad.
cp "$work/base.vhdx" "$work/damaged.vhdx"
$mangle header-flip "$work/damaged.vhdx" 1 >/dev/null
$mangle header-flip "$work/damaged.vhdx" 2 >/dev/null
expect_check check-damaged-both-headers 1 "$work/damaged.vhdx"

# A damaged non-current header is repaired from the current one.
cp "$work/base.vhdx" "$work/damaged.vhdx"
$mangle header-flip "$work/damaged.vhdx" 1 >/dev/null
expect_check check-repair-header1 0 "$work/damaged.vhdx" --repair
expect_check check-after-repair-header1 0 "$work/damaged.vhdx"

truncate -s 512K "$work/damaged.vhdx"
expect_check check-truncated 1 "$work/damaged.vhdx"
printf 'not a vhdx image' >"$work/damaged.vhdx"
truncate -s 2M "$work/damaged.vhdx"
expect_check check-not-vhdx 1 "$work/damaged.vhdx"
expect_check check-missing-file 2 "$work/does-not-exist.vhdx"

# --- a dirty log written by QEMU (testing-kernel-code.md recipe) ------------
dirty=$work/dirty.vhdx
qemu-img create -q -f vhdx "$dirty" 256M
bat_sector=$(( $($mangle info "$dirty" | python3 -c 'import json, sys; print(json.load(sys.stdin)["bat_offset"])') / 512 ))
printf '[inject-error]\nevent = "pwritev"\nsector = "%s"\nerrno = "5"\nonce = "on"\n' \
	"$bat_sector" >"$work/bd.cfg"
qemu-io -c 'write -P 0xab 0 1M' "blkdebug:$work/bd.cfg:$dirty" >/dev/null 2>&1
if qemu-img info "$dirty" >/dev/null 2>&1; then
	fail "dirty-log-made" "qemu-img opens the image: no dirty log was left"
else
	pass "dirty-log-made"
fi
expect_check check-dirty-log 1 "$dirty"
if grep -q 'log: not empty' "$work/check.out"; then
	pass "check-dirty-log-message"
else
	fail "check-dirty-log-message" "$(cat "$work/check.out")"
fi
if [ "$(json_get <("$setup" info --json "$dirty") log-state)" = dirty ]; then
	pass "info-dirty-log"
else
	fail "info-dirty-log" "info does not say dirty"
fi
expect_check check-repair-dirty-log 0 "$dirty" --repair
if grep -q 'log replayed' "$work/check.out"; then
	pass "check-repair-says-replayed"
else
	fail "check-repair-says-replayed" "$(cat "$work/check.out")"
fi
expect_check check-after-repair 0 "$dirty"
if qemu-img info "$dirty" >/dev/null 2>"$work/err"; then
	pass "qemu-opens-after-repair"
else
	fail "qemu-opens-after-repair" "$(head -1 "$work/err")"
fi
if qemu-img check "$dirty" >/dev/null 2>&1 &&
   qemu-io -f vhdx -c 'read -P 0xab 0 1M' "$dirty" | grep -q 'read 1048576/1048576'; then
	pass "repaired-data-reads-back"
else
	fail "repaired-data-reads-back" "the first MiB does not read 0xab"
fi

# --- create's argument handling ---------------------------------------------
expect_create() {	# NAME WANT-RC ARGS...
	local name=$1 want=$2 rc
	shift 2
	"$setup" create "$@" >"$work/out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "exit $rc, expected $want: $(cat "$work/out")"
	fi
}
expect_create create-parent-refused 2 --parent "$work/base.vhdx" "$work/c.vhdx"
grep -q 'differencing' "$work/out" && pass create-parent-message || fail create-parent-message "$(cat "$work/out")"
expect_create create-exists 2 "$work/base.vhdx" 64M
expect_create create-bad-size 2 "$work/c.vhdx" 1000
expect_create create-bad-suffix 2 "$work/c.vhdx" 10X
expect_create create-bad-block-size 2 --block-size 3M "$work/c.vhdx" 64M
expect_create create-block-size-too-big 2 --block-size 512M "$work/c.vhdx" 64M
expect_create create-bad-lss 2 --logical-sector-size 1024 "$work/c.vhdx" 64M
expect_create create-bad-log-size 2 --log-size 1536K "$work/c.vhdx" 64M
expect_create create-too-big 2 "$work/c.vhdx" 65T
[ ! -e "$work/c.vhdx" ] && pass create-failure-leaves-no-file || fail create-failure-leaves-no-file "c.vhdx exists"
expect_create create-log-size 0 --log-size 4M "$work/c.vhdx" 1G
if [ "$(json_get <("$setup" info --json "$work/c.vhdx") log-length)" = 4194304 ] &&
   qemu-img check "$work/c.vhdx" >/dev/null 2>&1; then
	pass create-log-size-applied
else
	fail create-log-size-applied "log-length is not 4 MiB or qemu-img check fails"
fi
# The spec's Required bit on both regions, both table copies (LP 1749016).
if $mangle info "$work/c.vhdx" | python3 -c '
import json, sys
i = json.load(sys.stdin)
ok = all(e["required"] == 1 for t in i["region_tables"] for e in t["entries"])
ok = ok and len(i["region_tables"]) == 2 and all(t["valid"] for t in i["region_tables"])
ok = ok and all(h["valid"] for h in i["headers"])
sys.exit(0 if ok else 1)'; then
	pass create-required-bits-both-copies
else
	fail create-required-bits-both-copies "see vhdxmangle.py info"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
