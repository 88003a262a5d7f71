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
expect_create create-parent-dirty-log 2 --parent "$dirty" "$work/c.vhdx"
grep -q 'log is not empty' "$work/out" && pass create-parent-dirty-log-message ||
	fail create-parent-dirty-log-message "$(cat "$work/out")"
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
expect_create create-parent-fixed 2 --fixed --parent "$work/base.vhdx" "$work/c.vhdx"
expect_create create-parent-missing 2 --parent "$work/none.vhdx" "$work/c.vhdx"
grep -q "none.vhdx" "$work/out" && pass create-parent-missing-names-file ||
	fail create-parent-missing-names-file "$(cat "$work/out")"
expect_create create-parent-other-size 2 --parent "$work/base.vhdx" "$work/c.vhdx" 128M
expect_create create-parent-other-lss 2 --logical-sector-size 4096 --parent "$work/base.vhdx" "$work/c.vhdx"
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

# --- the man page (Documentation/vhdxsetup.rst) and --help agree -----------
if python3 - "$top/Documentation/vhdxsetup.rst" <("$setup" --help) <<'PY'
import re, sys
rst = open(sys.argv[1]).read()
synopsis = set()
for line in rst.split("\n"):
    m = re.match(r"\| ``vhdxsetup ([\w-]+)`` ?(.*)$", line)
    if m and m.group(1) != "--help":
        synopsis.add((m.group(1), re.sub(r"[`*]", "", m.group(2)).replace("\\", "")))
helped = set()
for line in open(sys.argv[2]):
    m = re.match(r"  ([\w-]+) (.*)$", line.rstrip("\n"))
    if m:
        helped.add((m.group(1), m.group(2)))
missing = synopsis ^ helped
sections = {c for c, _ in helped if not re.search("^%s\n-+$" % c, rst, re.M)}
if missing or sections:
    sys.exit("differ: %s; no section for %s" % (sorted(missing), sorted(sections)))
PY
then
	pass doc-synopsis-matches-help
else
	fail doc-synopsis-matches-help "see above"
fi
rst2man=$(command -v rst2man || command -v rst2man.py || true)
if [ -n "$rst2man" ]; then
	if "$rst2man" --strict "$top/Documentation/vhdxsetup.rst" >"$work/vhdxsetup.8" 2>"$work/err"; then
		pass doc-man-page-builds
	else
		fail doc-man-page-builds "$(head -3 "$work/err")"
	fi
else
	echo "SKIP doc-man-page-builds: no rst2man (python3-docutils)"
fi

# --- differencing images: libvhdi reads them through their parent ----------
# libvhdi is the oracle here: it checks each parent_linkage against the
# parent's DataWriteGuid in set_parent.  Its 20210425 release (Debian 12)
# reads the sector bitmap of a payload block from the FileOffsetMB of the
# chunk's bitmap entry even when that entry is SB_BLOCK_NOT_PRESENT (the
# field is reserved then, MS-VHDX 2.5.1.2), that is from file offset 0: the
# "vhdxfile" signature's bits then make it take a few sectors of the first
# block of each chunk from the child.  So contents are compared from the
# second block on, and the parent's data is written there.
diff=$work/diff
mkdir -p "$diff/sub"
vhdxdiff="python3 $top/tests/tools/vhdxdiff.py"

vhdi_diff() {	# IMAGE PARENT... : libvhdi output of IMAGE through its chain
	local img=$1 p args=()
	shift
	for p in "$@"; do args+=(--parent "$p"); done
	$vhdi "${args[@]}" "$img" "$diff/vhdi.raw" 2>&1
}

# The locator, as vhdxdiff.py reads it, against the parent file.
locator_verdict() {	# INFO-JSON CHILD PARENT
	python3 - "$@" <<'PY'
import json, os, sys
i = json.loads(sys.argv[1])
child, parent = sys.argv[2], sys.argv[3]
loc = i.get("locator")
pairs = {p["key"]: p["value"] for p in loc["pairs"]} if loc else {}
errs = []
if not i["file_flags"] & 2:
    errs.append("HasParent is clear")
if not loc or loc["type"] != "B04AEFB7-D19E-4A81-B789-25B8E9445913":
    errs.append("no VHDX parent locator")
elif loc["flags"] != 4:
    errs.append("locator flags %d, not IsRequired only" % loc["flags"])
if i["bat_length"] < i["bat_length_needed"]:
    errs.append("BAT region %d < %d for the differencing formula" %
                (i["bat_length"], i["bat_length_needed"]))
if i["bat_nonzero"]:
    errs.append("%d BAT entries are not NOT_PRESENT" % i["bat_nonzero"])
rel = pairs.get("relative_path", "")
if not rel or not os.path.samefile(os.path.join(os.path.dirname(child),
                                                rel.replace("\\", "/")), parent):
    errs.append("relative_path %r does not lead to the parent" % rel)
absp = pairs.get("absolute_win32_path", "")
if not absp.startswith("\\\\?\\Z:\\") or not os.path.samefile(
        absp[6:].replace("\\", "/"), parent):
    errs.append("absolute_win32_path %r is not the parent" % absp)
print("; ".join(errs) or "ok")
PY
}

check_locator() {	# NAME CHILD PARENT
	local name=$1 child=$2 parent=$3 info verdict
	info=$($vhdxdiff info "$child")
	verdict=$(locator_verdict "$info" "$child" "$parent")
	if [ "$verdict" = ok ]; then
		pass "$name-locator"
	else
		fail "$name-locator" "$verdict"
	fi
	# vhdxsetup info shows the same pairs.
	if "$setup" info --json "$child" | python3 -c '
import json, sys
ours = json.load(sys.stdin)["parent-locator"]
theirs = {p["key"]: p["value"] for p in json.loads(sys.argv[1])["locator"]["pairs"]}
sys.exit(ours != theirs)' "$info"; then
		pass "$name-info-locator"
	else
		fail "$name-info-locator" "info --json parent-locator differs from the file"
	fi
}

# NAME PARENT CHILD EXPECT-RAW LSS [GRANDPARENT]: geometry and contents.
check_child() {
	local name=$1 parent=$2 child=$3 expect=$4 lss=$5 out vs line2
	shift 5
	vs=$(json_get <("$setup" info --json "$parent") virtual-size)
	if ! out=$(vhdi_diff "$child" "$parent" "$@"); then
		fail "$name-libvhdi" "$out"; return
	fi
	line2=$(sed -n 2p <<<"$out")
	if [ "$(head -1 <<<"$out")" != "media_size $vs bytes_per_sector $lss" ]; then
		fail "$name-libvhdi-geometry" "$(head -1 <<<"$out"), expected size $vs, sector $lss"
	elif ! python3 -c 'import sys; w = sys.argv[1].split(); sys.exit(not (w[1] == "4" and w[3] == w[5]))' "$line2"; then
		fail "$name-libvhdi-geometry" "not differencing or linkage differs: $line2"
	else
		pass "$name-libvhdi-geometry"
	fi
	if [ "$(json_get <("$setup" info --json "$child") type)" = differencing ] &&
	   [ "$(json_get <("$setup" info --json "$child") logical-sector-size)" = "$lss" ]; then
		pass "$name-info-type"
	else
		fail "$name-info-type" "info does not say differencing with $lss byte sectors"
	fi
	if cmp -s -i 1048576:1048576 "$diff/vhdi.raw" "$expect"; then
		pass "$name-libvhdi-content"
	else
		fail "$name-libvhdi-content" "$(cmp -i 1048576:1048576 "$diff/vhdi.raw" "$expect" 2>&1 | head -1)"
	fi
	expect_check "$name-check" 0 "$child"
}

# 512-byte sectors: QEMU writes the parent and converts it to the expected
# raw image; the child is in a subdirectory, so relative_path has "..".
p512=$diff/parent.vhdx
"$setup" create --block-size 1M "$p512" 64M
qemu-io -f vhdx -c "write -P 0x5a 1M 4k" -c "write -P 0x6b $((5 * 1048576 - 1536)) 3k" \
	-c "write -P 0x7c $((64 * 1048576 - 512)) 512" "$p512" >/dev/null
qemu-img convert -O raw "$p512" "$diff/parent.raw"
if "$setup" create --parent "$p512" "$diff/sub/child.vhdx" >"$work/out" 2>&1; then
	pass diff-create
	check_locator diff "$diff/sub/child.vhdx" "$p512"
	check_child diff "$p512" "$diff/sub/child.vhdx" "$diff/parent.raw" 512
	# A fork keeps the virtual disk's items (MS-VHDX 2.6.1.2, IsVirtualDisk).
	if [ "$(json_get <("$setup" info --json "$p512") virtual-disk-id)" = \
	     "$(json_get <("$setup" info --json "$diff/sub/child.vhdx") virtual-disk-id)" ]; then
		pass diff-virtual-disk-id
	else
		fail diff-virtual-disk-id "the child's VirtualDiskId differs from the parent's"
	fi
	# A grandchild, read through a chain of two.
	if "$setup" create --parent "$diff/sub/child.vhdx" "$diff/grandchild.vhdx" >"$work/out" 2>&1; then
		check_locator diff-grandchild "$diff/grandchild.vhdx" "$diff/sub/child.vhdx"
		check_child diff-grandchild "$diff/sub/child.vhdx" "$diff/grandchild.vhdx" \
			"$diff/parent.raw" 512 "$p512"
	else
		fail diff-grandchild-create "$(cat "$work/out")"
	fi
	# A write to the parent changes its DataWriteGuid: the link breaks.
	qemu-io -f vhdx -c "write -P 0x11 2M 4k" "$p512" >/dev/null
	if vhdi_diff "$diff/sub/child.vhdx" "$p512" >/dev/null; then
		fail diff-stale-linkage "libvhdi accepted a parent written after the fork"
	else
		pass diff-stale-linkage
	fi
else
	fail diff-create "$(cat "$work/out")"
fi

# 4096-byte logical sectors: QEMU cannot write them, so the data goes
# straight into payload blocks of a fixed parent (found through its BAT by
# vhdxmangle.py) and into the expected raw image at their virtual offsets.
p4k=$diff/parent4k.vhdx
"$setup" create --fixed --block-size 1M --logical-sector-size 4096 "$p4k" 100M
python3 -c 'import sys; open(sys.argv[1], "wb").truncate(100 << 20)' "$diff/parent4k.raw"
for block in 1 57 99; do
	off=$(( $($mangle bat-get --payload "$p4k" "$block") & ~0xfffff ))
	printf 'vhdx-4k-diff-block-%s' "$block" |
		dd of="$p4k" bs=1 seek=$((off + 4096 * 3)) conv=notrunc status=none
	printf 'vhdx-4k-diff-block-%s' "$block" |
		dd of="$diff/parent4k.raw" bs=1 seek=$((block * 1048576 + 4096 * 3)) conv=notrunc status=none
done
if "$setup" create --parent "$p4k" "$diff/child4k.vhdx" >"$work/out" 2>&1; then
	pass diff-4k-create
	check_locator diff-4k "$diff/child4k.vhdx" "$p4k"
	check_child diff-4k "$p4k" "$diff/child4k.vhdx" "$diff/parent4k.raw" 4096
else
	fail diff-4k-create "$(cat "$work/out")"
fi

# The BAT size formula: 123361 blocks of 256 MiB (30 TiB) need 131071
# entries, one 1 MiB BAT, without a parent, and 7711 chunks of 17 entries,
# 131087, more than 1 MiB, with one.  vhdxdiff.py computes both from the
# spec; the last sector reads through the child.
big=$diff/big.vhdx
qemu-img create -q -f vhdx -o block_size=256M "$big" $((123361 * 256))M
qemu-io -f vhdx -c "write -P 0x3c $((123361 * 256 * 1048576 - 4096)) 4k" "$big" >/dev/null
if "$setup" create --parent "$big" "$diff/bigchild.vhdx" >"$work/out" 2>&1; then
	pbat=$($vhdxdiff info "$big" | python3 -c 'import json, sys; print(json.load(sys.stdin)["bat_length_needed"])')
	cbat=$($vhdxdiff info "$diff/bigchild.vhdx" | python3 -c 'import json, sys; i = json.load(sys.stdin); print(i["bat_length"], i["bat_length_needed"], i["bat_nonzero"])')
	if [ "$pbat" = 1048576 ] && [ "$cbat" = "2097152 2097152 0" ]; then
		pass diff-bat-formula
	else
		fail diff-bat-formula "parent needs $pbat; child BAT length, needed, non-zero: $cbat"
	fi
	if /usr/bin/python3 - "$diff/bigchild.vhdx" "$big" <<'PY'
import sys, pyvhdi
c, p = pyvhdi.file(), pyvhdi.file()
c.open(sys.argv[1]); p.open(sys.argv[2]); c.set_parent(p)
size = c.get_media_size()
sys.exit(c.read_buffer_at_offset(4096, size - 4096) != b"\x3c" * 4096)
PY
	then
		pass diff-bat-last-block
	else
		fail diff-bat-last-block "libvhdi does not read the parent's last 4 KiB through the child"
	fi
	expect_check diff-bat-check 0 "$diff/bigchild.vhdx"
else
	fail diff-bat-create "$(cat "$work/out")"
fi

# Damaged parent locators: info and check refuse them, naming the file.
if [ -f "$diff/child4k.vhdx" ]; then
	for kind in $($vhdxdiff kinds); do
		cp "$diff/child4k.vhdx" "$diff/damaged.vhdx"
		$vhdxdiff damage "$diff/damaged.vhdx" "$kind"
		"$setup" info "$diff/damaged.vhdx" >/dev/null 2>"$work/err"
		rc=$?
		if [ "$rc" = 1 ] && grep -q "damaged.vhdx: metadata: .*\(parent locator\|HasParent\)" "$work/err"; then
			pass "diff-damaged-locator-$kind"
		else
			fail "diff-damaged-locator-$kind" "info exit $rc: $(cat "$work/err")"
		fi
		expect_check "diff-damaged-locator-$kind-check" 1 "$diff/damaged.vhdx"
	done
fi
rm -rf "$diff"

# --- open, close, status: in a guest (the host kernel cannot load modules) ---
# tests/tools/guest-open.sh runs in the guest with vhdxsetup copied in by
# vm-run --bin; what it leaves is checked here against qemu-img and libvhdi.

# The 1 MiB aligned end of the last object an image uses, from
# vhdxmangle.py's parse: header section, log, regions, allocated blocks.
object_end() {
	python3 - "$1" "$top/tests/e2e" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import vhdxmangle as vm
img = vm.Image(sys.argv[1])
h = img.headers[img.current_header()]
end = max(1 << 20, h["log_offset"] + h["log_length"],
          img.bat_offset + img.bat_length,
          img.metadata_offset + img.metadata_length)
for e in img.payload_states():
    if e & 7 in (6, 7):
        end = max(end, (e & vm.BAT_OFFSET_MASK) + img.block_size)
print(-(-end // (1 << 20)) * (1 << 20), img.payload_blocks,
      len(img.allocated()), img.block_size)
PY
}

guest_value() { sed -n "s/^GUEST-VALUE $1 //p" "$g/console" | tr -d '\r' | tail -1; }

guest_tests() {
	local vm_run=$top/tests/guest/vm-run vs=$((64 << 20)) write_at=$((5 << 19))
	local rc line n ko
	g=$work/guest
	if ! grep -q -- '--bin' "$vm_run"; then
		echo "SKIP guest: tests/guest/vm-run has no --bin"; return
	fi
	ko=$(ls "$top"/build/6.12*/dm-vhdx.ko 2>/dev/null | head -1)
	if [ -z "$ko" ]; then
		echo "SKIP guest: no build/6.12*/dm-vhdx.ko (make build-all)"; return
	fi
	mkdir -p "$g/files" "$g/res"
	"$setup" create --block-size 1M "$g/files/dyn.vhdx" 64M
	qemu-io -f vhdx -c "write -P 0x11 10M 1M" "$g/files/dyn.vhdx" >/dev/null
	"$setup" create --block-size 1M "$g/files/ro.vhdx" 64M
	qemu-io -f vhdx -c "write -P 0x22 0 2M" "$g/files/ro.vhdx" >/dev/null
	"$setup" create --block-size 1M --logical-sector-size 4096 "$g/files/k4.vhdx" 64M
	"$setup" create --parent "$g/files/ro.vhdx" "$g/files/child.vhdx"
	qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$g/files/qfix.vhdx" 8M
	cp "$g/files/qfix.vhdx" "$g/qfix.orig"
	head -c $((384 * 4096)) /dev/urandom >"$g/files/pattern.bin"
	# A chain of two parents for guest-open.sh: top.vhdx -> sub/mid.vhdx
	# (relative_path sub\mid.vhdx) -> base.vhdx (..\base.vhdx).  QEMU
	# writes the base; block 3 of the middle image is put in place by
	# hand, a new block at the end of the file and its BAT entry (no
	# header change: the top's linkage holds).  chain.raw is the model.
	local mid=$g/files/sub/mid.vhdx mid_off
	mkdir -p "$g/files/sub"
	"$setup" create --block-size 1M "$g/files/base.vhdx" 64M
	qemu-io -f vhdx -c "write -P 0x61 1M 1M" -c "write -P 0x62 5M 64k" \
		-c "write -P 0x63 $((vs - 4096)) 4k" "$g/files/base.vhdx" >/dev/null
	"$setup" create --parent "$g/files/base.vhdx" "$mid"
	mid_off=$(( ($(stat -c %s "$mid") + 1048575) / 1048576 * 1048576 ))
	head -c 1M /dev/zero | tr '\0' 'm' |
		dd of="$mid" bs=1M seek=$((mid_off >> 20)) conv=notrunc status=none
	$mangle bat-set --payload "$mid" 3 $((mid_off | 6))
	"$setup" create --parent "$mid" "$g/files/top.vhdx"
	qemu-img convert -O raw "$g/files/base.vhdx" "$g/chain.raw"
	head -c 1M /dev/zero | tr '\0' 'm' |
		dd of="$g/chain.raw" bs=1M seek=3 conv=notrunc status=none
	# A parent written after its child was made; a parent that is gone.
	"$setup" create --block-size 1M "$g/files/stale-base.vhdx" 8M
	"$setup" create --parent "$g/files/stale-base.vhdx" "$g/files/stale-child.vhdx"
	qemu-io -f vhdx -c "write -P 0x44 0 4k" "$g/files/stale-base.vhdx" >/dev/null
	"$setup" create --block-size 1M "$g/files/lost-base.vhdx" 8M
	"$setup" create --parent "$g/files/lost-base.vhdx" "$g/files/lost-child.vhdx"
	rm "$g/files/lost-base.vhdx"
	mkdir -p "$g/orig/sub"
	for f in base.vhdx sub/mid.vhdx top.vhdx stale-child.vhdx; do
		cp "$g/files/$f" "$g/orig/$f"
	done
	printf 'S=%s\nVS=%s\nWRITE_AT=%s\nHOSTDIR=%s\n' "$setup" "$vs" "$write_at" \
		"$g/files" >"$g/files/env"
	cp "$g/files/dyn.vhdx" "$g/dyn.orig"
	cp "$g/files/ro.vhdx" "$g/ro.orig"
	truncate -s 512M "$g/out.raw"
	"$vm_run" --kernel 6.12 --files "$g/files" --bin "$setup" --timeout 600 \
		"$top/tests/tools/guest-open.sh" "$g/out.raw" >"$g/console" 2>&1
	rc=$?
	n=0
	while IFS= read -r line; do
		line=${line%$'\r'}
		case $line in
		GUEST-PASS\ *) pass "guest-${line#GUEST-PASS }"; n=$((n + 1)) ;;
		GUEST-FAIL\ *)
			line=${line#GUEST-FAIL }
			fail "guest-${line%%:*}" "${line#*: }"; n=$((n + 1)) ;;
		esac
	done <"$g/console"
	if [ "$rc" != 0 ] || [ "$n" = 0 ]; then
		fail guest-run "vm-run exit $rc: $(grep -v '^GUEST' "$g/console" | tail -5 | tr '\n' ' ')"
		return
	fi
	pass guest-run
	if ! tar -xf "$g/out.raw" -C "$g/res" 2>"$work/err"; then
		fail guest-unpack "$(cat "$work/err")"; return
	fi

	# The writable open: the device has the virtual size, the file grew
	# so that every unallocated block fits, and shrank back at close to
	# the end of its last object.
	local before open after dev end_before blocks alloc bs end_after
	before=$(guest_value dyn-size-before)
	open=$(guest_value dyn-size-open)
	after=$(guest_value dyn-size-after)
	dev=$(guest_value dyn-device-size)
	read -r end_before blocks alloc bs < <(object_end "$g/dyn.orig")
	[ "$dev" = "$(json_get <(qemu-img info --output=json "$g/dyn.orig") virtual-size)" ] &&
		pass guest-device-size || fail guest-device-size "$dev bytes"
	if [ -n "$open" ] && [ "$open" -ge $((end_before + (blocks - alloc) * bs)) ]; then
		pass guest-open-extends
	else
		fail guest-open-extends "$before -> $open bytes, less than $end_before + room for $((blocks - alloc)) blocks"
	fi
	read -r end_after _ alloc _ < <(object_end "$g/res/dyn.vhdx")
	if [ "$after" = "$end_after" ] && [ "$(stat -c %s "$g/res/dyn.vhdx")" = "$after" ]; then
		pass guest-close-trims
	else
		fail guest-close-trims "$after bytes after close, the last object ends at $end_after"
	fi
	if grep -q "^GUEST-STATUS vd blocks *$alloc of $blocks allocated" "$g/console" &&
	   grep -q "^GUEST-STATUS vd mode *read-write" "$g/console" &&
	   grep -q "^GUEST-STATUS vd image */files/dyn.vhdx" "$g/console"; then
		pass guest-status-words
	else
		fail guest-status-words "$(grep '^GUEST-STATUS' "$g/console" | tr '\n' ' '), expected $alloc of $blocks blocks"
	fi
	# What the guest wrote, as QEMU and libvhdi read it.
	qemu-img convert -O raw "$g/dyn.orig" "$g/expect.raw"
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 seek=$((write_at / 4096)) conv=notrunc status=none
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 count=1 seek=$((vs / 4096 - 1)) conv=notrunc status=none
	qemu-img check "$g/res/dyn.vhdx" >"$work/err" 2>&1 && pass guest-rw-qemu-check ||
		fail guest-rw-qemu-check "$(tail -1 "$work/err")"
	qemu-img convert -O raw "$g/res/dyn.vhdx" "$g/got.raw"
	cmp -s "$g/got.raw" "$g/expect.raw" && pass guest-rw-qemu-content ||
		fail guest-rw-qemu-content "$(cmp "$g/got.raw" "$g/expect.raw" 2>&1 | head -1)"
	$vhdi "$g/res/dyn.vhdx" "$g/got.raw" >/dev/null 2>&1 && cmp -s "$g/got.raw" "$g/expect.raw" &&
		pass guest-rw-libvhdi-content || fail guest-rw-libvhdi-content "libvhdi reads other data"
	expect_check guest-rw-check 0 "$g/res/dyn.vhdx"

	# Read-only: what the device showed is QEMU's view; the file is as it was.
	qemu-img convert -O raw "$g/ro.orig" "$g/expect.raw"
	[ "$(guest_value ro-md5)" = "$(md5sum <"$g/expect.raw" | cut -d' ' -f1)" ] &&
		pass guest-ro-content || fail guest-ro-content "the device's md5 differs from qemu-img convert's"
	cmp -s "$g/ro.orig" "$g/res/ro.vhdx" && pass guest-ro-file-unchanged ||
		fail guest-ro-file-unchanged "the file changed"
	[ "$(guest_value diff-ro-md5)" = "$(md5sum <"$g/expect.raw" | cut -d' ' -f1)" ] &&
		pass guest-diff-ro-content || fail guest-diff-ro-content "the child of ro.vhdx reads other data than its parent"

	# QEMU's fixed image keeps room for all of its blocks (ZERO state,
	# LeaveBlockAllocated): never shorter than before.
	before=$(guest_value qfix-size-before)
	after=$(guest_value qfix-size-after)
	if [ -n "$after" ] && [ "$after" -ge "$before" ] &&
	   [ "$(stat -c %s "$g/res/qfix.vhdx")" = "$after" ]; then
		pass guest-fixed-keeps-room
	else
		fail guest-fixed-keeps-room "$before bytes before open, $after after close"
	fi
	qemu-img convert -O raw "$g/qfix.orig" "$g/expect.raw"
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 count=1 seek=$((write_at / 4096)) conv=notrunc status=none
	qemu-img check "$g/res/qfix.vhdx" >"$work/err" 2>&1 &&
		qemu-img convert -O raw "$g/res/qfix.vhdx" "$g/got.raw" && cmp -s "$g/got.raw" "$g/expect.raw" &&
		pass guest-fixed-qemu-content || fail guest-fixed-qemu-content "$(tail -1 "$work/err")"

	# 4096-byte sectors: libvhdi finds the data.
	python3 -c 'import sys; open(sys.argv[1], "wb").truncate(int(sys.argv[2]))' "$g/expect.raw" "$vs"
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 seek=$((write_at / 4096)) conv=notrunc status=none
	$vhdi "$g/res/k4.vhdx" "$g/got.raw" >/dev/null 2>&1 && cmp -s "$g/got.raw" "$g/expect.raw" &&
		pass guest-4k-libvhdi-content || fail guest-4k-libvhdi-content "libvhdi reads other data"
	expect_check guest-4k-check 0 "$g/res/k4.vhdx"

	# The chain: the guest read the model, which libvhdi reads too (from
	# the second block on: see vhdi_diff above); after the guest's writes,
	# the model with them, through the kernel and libvhdi; the parents
	# are untouched, the child is valid and trimmed.
	local res=$g/res
	[ "$(guest_value chain-md5)" = "$(md5sum <"$g/chain.raw" | cut -d' ' -f1)" ] &&
		pass guest-chain-content || fail guest-chain-content "the mapped chain reads other data than the model"
	$vhdi --parent "$g/orig/sub/mid.vhdx" --parent "$g/orig/base.vhdx" "$g/orig/top.vhdx" \
		"$g/got.raw" >"$work/err" 2>&1 && cmp -s -i 1048576:1048576 "$g/got.raw" "$g/chain.raw" &&
		pass guest-chain-model-libvhdi || fail guest-chain-model-libvhdi "libvhdi reads other data than the model: $(tail -1 "$work/err")"
	cp "$g/chain.raw" "$g/expect.raw"
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 seek=$((write_at / 4096)) conv=notrunc status=none
	dd if="$g/files/pattern.bin" of="$g/expect.raw" bs=4096 count=1 seek=$(((1048576 + 8192) / 4096)) conv=notrunc status=none
	[ "$(guest_value chain-ro-md5)" = "$(md5sum <"$g/expect.raw" | cut -d' ' -f1)" ] &&
		pass guest-chain-written-content || fail guest-chain-written-content "reopened, the chain reads other data than written"
	$vhdi --parent "$res/sub/mid.vhdx" --parent "$res/base.vhdx" "$res/top.vhdx" \
		"$g/got.raw" >"$work/err" 2>&1 && cmp -s -i 1048576:1048576 "$g/got.raw" "$g/expect.raw" &&
		pass guest-chain-written-libvhdi || fail guest-chain-written-libvhdi "libvhdi reads other data: $(tail -1 "$work/err")"
	local f ok=1
	for f in base.vhdx sub/mid.vhdx stale-child.vhdx; do
		[ "$(sha256sum <"$g/orig/$f")" = "$(sha256sum <"$res/$f")" ] || ok=0
	done
	[ $ok = 1 ] && pass guest-chain-parents-unchanged ||
		fail guest-chain-parents-unchanged "a parent or the refused child changed"
	expect_check guest-chain-check 0 "$res/top.vhdx"
	open=$(guest_value top-size-open)
	after=$(guest_value top-size-after)
	read -r end_before blocks alloc bs < <(object_end "$g/orig/top.vhdx")
	# Room for every block and for the chunk's sector bitmap block.
	if [ -n "$open" ] && [ "$open" -ge $((end_before + (blocks - alloc) * bs + 1048576)) ]; then
		pass guest-chain-open-extends
	else
		fail guest-chain-open-extends "$open bytes open, less than $end_before + room for $((blocks - alloc)) blocks and a bitmap"
	fi
	read -r end_after _ < <(object_end "$res/top.vhdx")
	if [ "$after" = "$end_after" ] && [ "$(stat -c %s "$res/top.vhdx")" = "$after" ]; then
		pass guest-chain-close-trims
	else
		fail guest-chain-close-trims "$after bytes after close, the last object ends at $end_after"
	fi
	rm -rf "$g"
}
guest_tests

. "$top/tests/tools/lifecycle.sh"
. "$top/tests/tools/online-grow.sh"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
