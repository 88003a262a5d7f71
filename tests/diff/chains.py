#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Plans, models and verdicts of the differencing-chain tests (run.sh).

    chains.py gen WORK SETUP SEED   plan the writes of every layer, build
                                    the raw models, the host-made images
                                    and the two guest scripts in WORK
    chains.py evaluate WORK SETUP   read what the guest left in WORK/res and
                                    print one PASS/FAIL line per check

Run with /usr/bin/python3: evaluate reads every chain through libvhdi
(pyvhdi, python3-libvhdi), the second oracle next to the raw models.

Chains (nearest layer last; layer 0 is the base, without a parent):

    a  512-byte sectors, depth 1: base made on the host (qemu-img convert of
       its model) and attached read-only, child made on the host
    b  512, depth 2, block sizes 2M, 8M, 1M, built in the guest
    c  512, depth 5, block sizes 1M, 2M, 8M, 1M, 2M, 1M, built in the guest
    d  4096-byte sectors, depth 2, block sizes 1M, 2M, 1M, built in the guest
    g  512, a child grown past its parent by vhdxsetup resize, both made on
       the host; the child is written in the guest
    x  the crash child: a child of a0 (2M blocks) made on the host, written
       in a first boot that ends in sysrq-b, replayed in the second

Every layer is written through dm-vhdx (but a0) in one session: O_DIRECT
writes at scattered sector offsets, straddling block boundaries (its own
and its parent's), the first and the last sector, whole blocks, over the
writes of the layers below and over its own, and buffered writes at byte
offsets.  Each child layer has partial-block writes, so its sector bitmap
block is present (libvhdi 20210425 misreads a chunk whose bitmap entry is
NOT_PRESENT, see tests/tools/run.sh).
"""
import hashlib
import json
import math
import os
import random
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import vhdxmangle as vm  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
PAT_SIZE = 9 * MiB
ODD_READ = {512: 7 * 512 * 37, 4096: 4096 * 33}  # divides no block size

CHAINS = {
    "a": dict(lss=512, vs=29 * MiB + 1536, bs=[1, 1]),
    "b": dict(lss=512, vs=30 * MiB + 12288, bs=[2, 8, 1]),
    "c": dict(lss=512, vs=27 * MiB + 2560, bs=[1, 2, 8, 1, 2, 1]),
    "d": dict(lss=4096, vs=25 * MiB + 12288, bs=[1, 2, 1]),
}
CRASH_BS = 2
# Chain g: a child grown past its parent; 1 MiB blocks, 512-byte sectors.
GROWN = dict(parent_vs=5 * MiB + 1536, child_vs=9 * MiB + 1024)
# Host-made children of a0 with one BAT entry damaged (no CRC covers it).
CORRUPT = ["bitmap-beyond-device", "bitmap-overlaps-bat", "payload-beyond-device",
           "partial-without-bitmap", "payload-on-bitmap"]
GUEST_DISKS = "bcdefghijklmnop"  # /dev/vda is the results disk


# ------------------------------------------------------------------ planning

class Planner:
    def __init__(self, rng, lss, vs):
        self.rng, self.lss, self.vs = rng, lss, vs

    def sect(self, lo, hi):
        return self.rng.randint(lo, hi) * self.lss

    def src(self, length, align=None):
        align = align or self.lss
        return self.rng.randrange(0, (PAT_SIZE - length) // align + 1) * align

    def clip(self, off, length):
        off = max(0, min(off // self.lss * self.lss, self.vs - self.lss))
        return off, max(self.lss, min(length, self.vs - off))

    def direct(self, off, length, why, align=None):
        off, length = self.clip(off, length)
        return dict(mode="direct", off=off, len=length, src=self.src(length, align), why=why)


def plan_layer(rng, lss, vs, bs, parent_bs, below, is_base, tail_block):
    """The writes of one layer session, in order."""
    p = Planner(rng, lss, vs)
    nblocks = -(-vs // bs)
    full = vs // bs  # blocks wholly inside the disk
    w = []
    if is_base or rng.random() < 0.5:
        w.append(p.direct(0, p.sect(1, 3), "first-sectors"))
    w.append(p.direct(vs - lss, lss, "last-sector"))
    for boundary_bs, why in ((bs, "straddle-own-block"), (parent_bs, "straddle-parent-block")):
        if boundary_bs and -(-vs // boundary_bs) > 1:
            b = rng.randint(1, -(-vs // boundary_bs) - 1)
            back = p.sect(1, 9)
            w.append(p.direct(b * boundary_bs - back, back + p.sect(1, 12), why))
    if nblocks > 2:
        j = rng.randrange(nblocks - 2)
        w.append(p.direct(j * bs + 5 * lss, min(bs, MiB) + 7 * lss, "two-blocks-partial"))
    for _ in range(6):
        w.append(p.direct(rng.randrange(vs // lss) * lss, p.sect(1, 24), "scattered"))
    for prev in rng.sample(below, min(3, len(below))):
        w.append(p.direct(prev["off"] + p.sect(-4, 4), p.sect(1, 12), "over-lower-layer"))
    prev = rng.choice(w)
    w.append(p.direct(prev["off"] + rng.randrange(prev["len"] // lss) * lss, p.sect(1, 8),
                      "over-same-layer"))
    if tail_block and vs % bs:
        w.append(p.direct(full * bs, vs - full * bs, "tail-block-whole", align=MiB))
    for _ in range(2):
        n = rng.randint(1, 3000)
        off = rng.randrange(0, vs - n)
        w.append(dict(mode="buffered", off=off, len=n, src=rng.randrange(PAT_SIZE - n),
                      why="buffered-bytes"))
    rng.shuffle(w)
    # A whole block, first in the session, in a block no other write of the
    # layer touches: one bio (1 MiB) may cover it, and it then reads as
    # FULLY_PRESENT.
    if full >= 1:
        touched = set()
        for x in w:
            touched.update(range(x["off"] // 4096 * 4096 // bs,
                                 (x["off"] + x["len"] + 4095) // 4096 * 4096 // bs + 1))
        free = [j for j in range(full) if j not in touched] or list(range(full))
        w.insert(0, p.direct(rng.choice(free) * bs, bs, "whole-block", align=MiB))
    for x in w:  # O_DIRECT transfer size: the largest that divides all three
        if x["mode"] == "direct":
            x["bs"] = math.gcd(x["off"], x["len"], x["src"], MiB)
    # Every few writes ask for a flush, so that commits happen mid-session.
    for i, x in enumerate(w):
        x["fsync"] = x["mode"] == "buffered" or i % 4 == 3
    return w


def apply(model, pat, writes):
    for x in writes:
        model[x["off"]:x["off"] + x["len"]] = pat[x["src"]:x["src"] + x["len"]]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def room(writes, bs, lss):
    """Bytes a session needs past the file's end: every block it touches,
    the sector bitmap block and a spare MiB."""
    blocks = set()
    for x in writes:
        lo = x["off"] // 4096 * 4096  # buffered writes go out in pages
        hi = min(-(-(x["off"] + x["len"]) // 4096) * 4096, 1 << 62)
        blocks.update(range(lo // bs, (hi - 1) // bs + 1))
    return len(blocks) * bs + 2 * MiB


# --------------------------------------------------------------- guest side

GUEST_LIB = r'''
set -o pipefail
DD=/usr/bin/dd  # GNU dd, copied in by vm-run --bin: real O_DIRECT
[ -x $DD ] || DD=dd
W=/tmp/w; O=$W/out; R=$O/res; PAT=/files/pat.bin
mkdir -p $O; : > $R; cd $W
res() { echo "$*" >> $R; echo "DIFF: $*"; }
# newloop FILE [-r]: attach, print the device
newloop() { l=$(losetup -f) && losetup $2 $l $1 && echo $l; }
dmsg() { dmesg | grep -iE 'vhdx|device-mapper' | while read -r line; do res $1 dmesg "$line"; done; }
# mapt NAME ro|rw SECTORS CHILD [FEATURE...]
mapt() {
	n=$1 m=$2 len=$3 child=$4; shift 4
	feat=""; [ $# -gt 0 ] && feat=" $# $*"
	ro=""; [ "$m" = ro ] && ro=--readonly
	dmesg -c > /dev/null
	dmsetup create $n $ro --noudevsync --table "0 $len vhdx $child$feat" > /tmp/o 2>&1
	rc=$?
	res $n create $rc
	dmsg $n
	if [ $rc = 0 ]; then
		dmsetup mknodes $n
		res $n status "$(dmsetup status $n 2>&1)"
		res $n table "$(dmsetup table $n 2>&1)"
		res $n ss "$(blockdev --getss /dev/mapper/$n 2>&1)"
		for d in /sys/block/dm-*; do
			[ "$(cat $d/dm/name)" = $n ] && res $n maxkb "$(cat $d/queue/max_sectors_kb)"
		done
	fi
	return $rc
}
unmap() {
	dmesg -c > /dev/null
	dmsetup remove --noudevsync $1 > /tmp/o 2>&1
	res $1 remove $? "$(tr '\n' ' ' < /tmp/o)"
	dmsg $1
}
# wd NAME OFF LEN SRC BS FSYNC: O_DIRECT write of the pattern file's bytes
wd() {
	c=conv=notrunc; [ $6 = 1 ] && c=conv=notrunc,fsync
	$DD if=$PAT of=/dev/mapper/$1 bs=$5 skip=$(($4 / $5)) seek=$(($2 / $5)) \
		count=$(($3 / $5)) oflag=direct $c > /tmp/o 2>&1 ||
		res $1 wfail "$2 $3 $(tr '\n' ' ' < /tmp/o)"
}
# wb NAME OFF LEN SRC: buffered write at a byte offset, then fsync
wb() {
	$DD if=$PAT of=/dev/mapper/$1 bs=$3 count=1 iflag=skip_bytes skip=$4 \
		oflag=seek_bytes seek=$2 conv=notrunc,fsync > /tmp/o 2>&1 ||
		res $1 wfail "$2 $3 $(tr '\n' ' ' < /tmp/o)"
}
# rsha NAME KEY BS WANT: read the whole device with O_DIRECT reads of BS
rsha() {
	got=$($DD if=/dev/mapper/$1 bs=$3 iflag=direct 2> /tmp/o | sha256sum | cut -d' ' -f1) ||
		got="read-error:$(tr '\n' ' ' < /tmp/o)"
	res $1 $2 $got
	[ "$got" = "$4" ] || dd if=/dev/mapper/$1 of=$O/bad-$1-$2.raw bs=1M iflag=direct 2> /dev/null
}
fsha() { res file-$2 $1 $(sha256sum $1 | cut -d' ' -f1); }
grow() { truncate -s $(($(stat -c %s $1) + $2)) $1; }
'''


def guest_writes(name, writes):
    out = []
    for x in writes:
        if x["mode"] == "direct":
            out.append("wd %s %d %d %d %d %d" % (name, x["off"], x["len"], x["src"], x["bs"],
                                                  x["fsync"]))
        else:
            out.append("wb %s %d %d %d" % (name, x["off"], x["len"], x["src"]))
    return out


def gen(work, setup, seed):
    rng = random.Random(seed)
    files = os.path.join(work, "files")
    models = os.path.join(work, "model")
    os.makedirs(files, exist_ok=True)
    os.makedirs(models, exist_ok=True)
    pat = random.Random(seed ^ 0x5a5a).randbytes(PAT_SIZE)
    with open(os.path.join(files, "pat.bin"), "wb") as f:
        f.write(pat)
    plan = {"seed": seed, "setup": setup, "chains": {}, "crash": {}, "corrupt": CORRUPT}

    # Each layer's writes and the model of the chain up to that layer.
    for cname, c in CHAINS.items():
        lss, vs = c["lss"], c["vs"]
        model = bytearray(vs)
        below, layers = [], []
        for k, bsm in enumerate(c["bs"]):
            bs = bsm * MiB
            parent_bs = c["bs"][k - 1] * MiB if k and c["bs"][k - 1] != bsm else None
            writes = plan_layer(rng, lss, vs, bs, parent_bs, below, k == 0,
                                tail_block=(cname, k) in (("c", 3), ("b", 2)))
            if cname == "a" and k == 0:
                for x in writes:  # qemu-img convert writes a0, not dm-vhdx
                    x.pop("bs", None)
            apply(model, pat, writes)
            path = os.path.join(models, "%s%d.raw" % (cname, k))
            with open(path, "wb") as f:
                f.write(model)
            layers.append(dict(bs=bs, writes=writes, sha=sha(model), model=path,
                               room=room(writes, bs, lss)))
            below += writes
        plan["chains"][cname] = dict(lss=lss, vs=vs, layers=layers)

    a = plan["chains"]["a"]
    a0, a1 = os.path.join(work, "a0.vhdx"), os.path.join(work, "a1.vhdx")
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", "-o",
        "subformat=dynamic,block_size=1M", a["layers"][0]["model"], a0)
    run(setup, "create", "--parent", a0, "--block-size", "1M", a1)
    os.truncate(a1, os.path.getsize(a1) + a["layers"][1]["room"])

    # The crash child: two flushed batches, then writes no flush covers.
    lss, vs = 512, a["vs"]
    p = Planner(rng, lss, vs)
    bs = CRASH_BS * MiB
    synced1 = [p.direct(3 * bs + 7 * lss, 5 * lss, "partial-new-block"),
               p.direct(bs, bs, "whole-block", align=MiB),
               p.direct(vs - 2 * lss, 2 * lss, "last-sectors"),
               p.direct(5 * bs - 3 * lss, 9 * lss, "straddle")]
    synced2 = [p.direct(3 * bs + 40 * lss, 3 * lss, "same-block-more-bits"),
               p.direct(7 * bs + 1234 * lss, 17 * lss, "another-block")]
    unsynced = [p.direct(9 * bs + 11 * lss, 6 * lss, "unsynced-new-block"),
                p.direct(3 * bs + 100 * lss, 4 * lss, "unsynced-new-bits"),
                p.direct(3 * bs + 6 * lss, 3 * lss, "unsynced-over-present")]
    for batch in (synced1, synced2, unsynced):
        for i, x in enumerate(batch):
            x["bs"] = math.gcd(x["off"], x["len"], x["src"], MiB)
            x["fsync"] = batch is not unsynced and i == len(batch) - 1
    base = bytearray(open(a["layers"][0]["model"], "rb").read())
    apply(base, pat, synced1 + synced2)
    crash_model = os.path.join(models, "x-synced.raw")
    with open(crash_model, "wb") as f:
        f.write(base)
    x = os.path.join(work, "x.vhdx")
    run(setup, "create", "--parent", a0, "--block-size", "%dM" % CRASH_BS, x)
    os.truncate(x, os.path.getsize(x) + room(synced1 + synced2 + unsynced, bs, lss))
    plan["crash"] = dict(synced=synced1 + synced2, unsynced=unsynced, model=crash_model,
                         vs=vs, lss=lss)

    # Chain g: a child grown past its parent (vhdxsetup resize), made on the
    # host.  The parent is pattern data all over, its last block half past
    # its end, with junk in the file past the end of that block's data:
    # the child must read zeros from the parent's end on, never the junk.
    gp_vs, gc_vs = GROWN["parent_vs"], GROWN["child_vs"]
    pmodel = bytearray(pat[:gp_vs])
    g0, g1 = os.path.join(work, "g0.vhdx"), os.path.join(work, "g1.vhdx")
    gmodel = os.path.join(models, "g0.raw")
    with open(gmodel, "wb") as f:
        f.write(pmodel)
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", "-o",
        "subformat=dynamic,block_size=1M", gmodel, g0)
    img = vm.Image(g0)
    last = img.bat[img.bat_index(gp_vs // MiB)]
    assert last & 7 == 6, "g0: the last block is not fully present"
    with open(g0, "r+b") as f:
        f.seek((last & ~0xFFFFF) + gp_vs % MiB)
        f.write(b"\xee" * (MiB - gp_vs % MiB))
    run(setup, "create", "--parent", g0, "--block-size", "1M", g1)
    run(setup, "resize", g1, str(gc_vs))
    p = Planner(rng, 512, gc_vs)
    gw = plan_layer(rng, 512, gc_vs, MiB, None, [], False, tail_block=True)
    gw += [p.direct(gp_vs - 1024, 4096, "straddle-parent-end"),
           p.direct(6 * MiB + 8 * 512, 3 * 512, "past-parent-end")]
    for x in gw[-2:]:
        x["bs"], x["fsync"] = math.gcd(x["off"], x["len"], x["src"], MiB), True
    grown = bytearray(pmodel) + bytearray(gc_vs - gp_vs)
    pre = sha(grown)
    apply(grown, pat, gw)
    gpath = os.path.join(models, "g1.raw")
    with open(gpath, "wb") as f:
        f.write(grown)
    os.truncate(g1, os.path.getsize(g1) + room(gw, MiB, 512))
    plan["grown"] = dict(vs=gc_vs, parent_vs=gp_vs, writes=gw, pre=pre, sha=sha(grown),
                         model=gpath)
    # stale.vhdx (b's size, no data of its own) over c0, which is smaller.
    c0 = bytearray(open(plan["chains"]["c"]["layers"][0]["model"], "rb").read())
    plan["grown"]["stale_over_c0"] = sha(c0 + bytearray(CHAINS["b"]["vs"] - len(c0)))

    # Damaged children of a0: one BAT entry each.
    for kind in CORRUPT:
        path = os.path.join(work, "k-%s.vhdx" % kind)
        run(setup, "create", "--parent", a0, "--block-size", "1M", path)
        corrupt(path, kind)

    with open(os.path.join(work, "plan.json"), "w") as f:
        json.dump(plan, f, indent=1)
    write_crash_script(work, plan)
    write_main_script(work, plan)


def corrupt(path, kind):
    img = vm.Image(path)
    size = os.path.getsize(path)
    assert size % MiB == 0 and img.block_size == MiB
    bitmap_index = img.chunk_ratio  # chunk 0's sector bitmap entry
    payload_index = 2
    here = size  # a valid place for one 1 MiB object: the file grows to it
    beyond = size + 64 * MiB
    entries = {
        "bitmap-beyond-device": {payload_index: here | 7, bitmap_index: beyond | 6},
        "bitmap-overlaps-bat": {payload_index: here | 7, bitmap_index: img.bat_offset | 6},
        "payload-beyond-device": {payload_index: beyond | 7, bitmap_index: here | 6},
        "partial-without-bitmap": {payload_index: here | 7},
        "payload-on-bitmap": {payload_index: here | 7, bitmap_index: here | 6},
    }[kind]
    os.truncate(path, size + MiB)
    with open(path, "r+b") as f:
        f.seek(here)
        f.write(b"\xff" * (128 * KiB))  # bits of the sectors of every block
        for idx, value in entries.items():
            f.seek(img.bat_offset + 8 * idx)
            f.write(struct.pack("<Q", value))


def chain_table_feats(parents):
    return " ".join("parent %s" % p for p in parents)


def write_crash_script(work, plan):
    c = plan["crash"]
    lines = [GUEST_LIB,
             "mapt x rw %d /dev/vda parent /dev/vdb commit_time:0 || exit 1" % (c["vs"] // 512)]
    n1 = 4
    lines += guest_writes("x", c["synced"][:n1])
    lines.append('echo "DIFF-CRASH-SYNCED-1"')
    lines += guest_writes("x", c["synced"][n1:])
    lines.append('echo "DIFF-CRASH-SYNCED-2"')
    lines += guest_writes("x", c["unsynced"])
    lines.append('res x status-before-crash "$(dmsetup status x)"')
    # The serial console drains slowly: give the lines above time to
    # reach the host before the reboot cuts them off.
    # The debug kernel has no sysrq: busybox's reboot -n -f does the same,
    # without a sync and without going through init.
    lines += ['echo "DIFF-CRASH-NOW"', "sleep 1", "echo 1 > /proc/sys/kernel/sysrq",
              "echo b > /proc/sysrq-trigger || reboot -n -f",
              "sleep 30", 'echo "DIFF-CRASH-SURVIVED"']
    with open(os.path.join(work, "guest-crash.sh"), "w") as f:
        f.write("\n".join(lines) + "\n")


def write_main_script(work, plan):
    """Disks: vda results, vdb crashed child (rw), vdc its copy (ro), vdd a0
    (ro), vde a1 (rw), vdf.. the damaged children (rw)."""
    L = [GUEST_LIB, "S=%s" % plan["setup"], "res all start 1"]
    cr = plan["crash"]
    sectors = cr["vs"] // 512

    # 1. The crashed child: read-only first (replayed in memory), then rw.
    L.append("mapt xro ro %d /dev/vdc parent /dev/vdd && "
             "{ dd if=/dev/mapper/xro of=$O/crash-ro.raw bs=1M 2>/dev/null; res xro copy $?; "
             "unmap xro; }" % sectors)
    L.append("mapt xrw rw %d /dev/vdb parent /dev/vdd && "
             "{ dd if=/dev/mapper/xrw of=$O/crash-rw.raw bs=1M 2>/dev/null; res xrw copy $?; "
             "unmap xrw; }" % sectors)

    # 2. Chain a: a1 on /dev/vde over a0 on /dev/vdd (attached read-only).
    a = plan["chains"]["a"]
    L.append("# chain a")
    L.append("mapt a1 rw %d /dev/vde parent /dev/vdd || res a1 skipped 1" % (a["vs"] // 512))
    L += guest_writes("a1", a["layers"][1]["writes"])
    L.append("rsha a1 session 1048576 %s" % a["layers"][1]["sha"])
    L.append('res a1 status-end "$(dmsetup status a1)"')
    L.append("unmap a1")
    L.append("blockdev --flushbufs /dev/vde /dev/vdd")

    # 3. Chains built in the guest, layer by layer, in tmpfs files on loops.
    for cname in "bcd":
        c = plan["chains"][cname]
        sectors = c["vs"] // 512
        L.append("# chain " + cname)
        for k, layer in enumerate(c["layers"]):
            img = "%s%d.vhdx" % (cname, k)
            name = "%s%d" % (cname, k)
            if k == 0:
                extra = " --logical-sector-size 4096" if c["lss"] == 4096 else ""
                L.append("$S create --block-size %d%s %s %d > /tmp/o 2>&1; res %s mkimg $? "
                         "\"$(cat /tmp/o)\"" % (layer["bs"], extra, img, c["vs"], name))
            else:
                L.append("$S create --parent %s%d.vhdx --block-size %d %s > /tmp/o 2>&1; "
                         "res %s mkimg $? \"$(cat /tmp/o)\"" % (cname, k - 1, layer["bs"], img,
                                                                name))
            if cname == "b" and k == 0:
                # A child of b0 as it is before b0 is written: its linkage goes
                # stale when dm-vhdx gives b0 a new DataWriteGuid.
                L.append("$S create --parent b0.vhdx stale.vhdx > /tmp/o 2>&1; "
                         "res stale mkimg $? \"$(cat /tmp/o)\"")
            L.append("grow %s %d" % (img, layer["room"]))
            L.append("rw_%s=$(newloop %s)" % (name, img))
            parents = " ".join("parent $ro_%s%d" % (cname, j) for j in range(k - 1, -1, -1))
            L.append("mapt %s rw %d $rw_%s %s || res %s skipped 1" % (name, sectors, name,
                                                                      parents, name))
            L += guest_writes(name, layer["writes"])
            L.append("rsha %s session 1048576 %s" % (name, layer["sha"]))
            L.append('res %s status-end "$(dmsetup status %s)"' % (name, name))
            L.append("unmap " + name)
            L.append("losetup -d $rw_%s" % name)
            L.append("fsha %s.vhdx after-session" % name)
            L.append("ro_%s=$(newloop %s -r)" % (name, img))

    # 4. The tops again, read-only, with reads that straddle everything.
    def top_feats(cname, upto):
        return " ".join("parent $ro_%s%d" % (cname, j) for j in range(upto - 1, -1, -1))
    for cname in "abd":
        c = plan["chains"][cname]
        k = len(c["layers"]) - 1
        name = "%stop" % cname
        if cname == "a":
            L.append("mapt atop ro %d /dev/vde parent /dev/vdd" % (c["vs"] // 512))
        else:
            L.append("mapt %s ro %d $ro_%s%d %s" % (name, c["vs"] // 512, cname, k,
                                                    top_feats(cname, k)))
        L.append("rsha %s odd %d %s" % (name, ODD_READ[c["lss"]], c["layers"][k]["sha"]))
        L.append("unmap " + name)

    # 5. Two mappings sharing parents at once: b1 and b2 over b0.
    b = plan["chains"]["b"]
    sectors = b["vs"] // 512
    L.append("mapt sh1 ro %d $ro_b1 parent $ro_b0" % sectors)
    L.append("mapt sh2 ro %d $ro_b2 parent $ro_b1 parent $ro_b0" % sectors)
    L.append("rsha sh1 shared 1048576 %s" % b["layers"][1]["sha"])
    L.append("rsha sh2 shared 1048576 %s" % b["layers"][2]["sha"])
    L.append("unmap sh1; unmap sh2")

    # 6. A read-only table over writable loops writes nothing.
    c = plan["chains"]["c"]
    top = len(c["layers"]) - 1
    for k in range(top + 1):
        L.append("fsha c%d.vhdx before-ro" % k)
        L.append("rwl_c%d=$(newloop c%d.vhdx)" % (k, k))
    L.append("mapt cro ro %d $rwl_c%d %s" % (
        c["vs"] // 512, top, " ".join("parent $rwl_c%d" % j for j in range(top - 1, -1, -1))))
    L.append("rsha cro odd %d %s" % (ODD_READ[512], c["layers"][top]["sha"]))
    L.append("dd if=$PAT of=/dev/mapper/cro bs=4096 count=1 oflag=direct conv=notrunc "
             "> /dev/null 2>&1; res cro write-rc $?")
    L.append("unmap cro")
    for k in range(top + 1):
        L.append("losetup -d $rwl_c%d" % k)
        L.append("fsha c%d.vhdx after-ro" % k)

    # 7. Refusals.  stale.vhdx is a child of b0 from before b0 was written.
    L.append("fsha stale.vhdx before-refusals")
    L.append("rw_stale=$(newloop stale.vhdx)")
    L.append("mapt stale rw %d $rw_stale parent $ro_b0 && unmap stale" % sectors)
    L.append("mapt staleforce ro %d $rw_stale parent $ro_b0 no_linkage_check && "
             "{ rsha staleforce read 1048576 %s; unmap staleforce; }" % (sectors,
                                                                        b["layers"][0]["sha"]))
    L.append("mapt noparent rw %d $rw_stale && unmap noparent" % sectors)
    # A parent smaller than the child maps: zeros past the parent's end.
    L.append("mapt wrongsize ro %d $rw_stale parent $ro_c0 no_linkage_check && "
             "{ rsha wrongsize read 1048576 %s; unmap wrongsize; }"
             % (sectors, plan["grown"]["stale_over_c0"]))
    # Same size as b0, 4096-byte sectors.
    L.append("$S create --logical-sector-size 4096 wrong4k.vhdx %d > /dev/null 2>&1; "
             "ro_w4k=$(newloop wrong4k.vhdx -r)" % b["vs"])
    L.append("mapt wrongsector ro %d $rw_stale parent $ro_w4k no_linkage_check && "
             "unmap wrongsector; losetup -d $ro_w4k" % sectors)
    L.append("rw_b0=$(newloop b0.vhdx)")
    L.append("mapt notdiff rw %d $rw_b0 parent $ro_c0 && unmap notdiff" % sectors)
    L.append("losetup -d $rw_b0; losetup -d $rw_stale")
    L.append("fsha stale.vhdx after-refusals")

    # 8. Damaged sector bitmap and payload entries, over a0.
    for i, kind in enumerate(plan["corrupt"]):
        name = "k%d" % i
        L.append("mapt %s rw %d /dev/vd%s parent /dev/vdd && { rsha %s read 1048576 none; "
                 "unmap %s; }" % (name, a["vs"] // 512, GUEST_DISKS[4 + i], name, name))

    # 9. Chain g: the grown child g1 (rw) over its smaller parent g0 (ro).
    g = plan["grown"]
    gdisk = "/dev/vd%s" % GUEST_DISKS[4 + len(plan["corrupt"]) + 1]
    pdisk = "/dev/vd%s" % GUEST_DISKS[4 + len(plan["corrupt"])]
    L.append("# chain g")
    L.append("mapt g1 rw %d %s parent %s || res g1 skipped 1" % (g["vs"] // 512, gdisk, pdisk))
    L.append("rsha g1 before 1048576 %s" % g["pre"])
    L += guest_writes("g1", g["writes"])
    L.append("rsha g1 session 1048576 %s" % g["sha"])
    L.append("unmap g1")
    L.append("mapt g1ro ro %d %s parent %s && { rsha g1ro odd %d %s; unmap g1ro; }"
             % (g["vs"] // 512, gdisk, pdisk, ODD_READ[512], g["sha"]))

    L.append("for l in %s; do losetup -d $l; done" % " ".join("$ro_%s%d" % (cn, k) for cn in "bcd"
                                         for k in range(len(plan["chains"][cn]["layers"]))))
    L.append("res all finished 1")
    L.append("sync; tar -cf /dev/vda -C $W . && echo DIFF-TAR-OK")
    with open(os.path.join(work, "guest-main.sh"), "w") as f:
        f.write("\n".join(L) + "\n")


# ------------------------------------------------------------------ verdicts

class Verdicts:
    def __init__(self):
        self.passed = self.failed = 0

    def ok(self, name, cond, why=""):
        if cond:
            print("PASS %s" % name)
            self.passed += 1
        else:
            print("FAIL %s: %s" % (name, why or "failed"))
            self.failed += 1
        sys.stdout.flush()
        return cond


def parse_res(path):
    res = {}
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 2:
                continue
            res.setdefault(parts[0], {}).setdefault(parts[1], []).append(
                parts[2] if len(parts) > 2 else "")
    return res


def one(res, name, key, default=None):
    v = res.get(name, {}).get(key)
    return v[-1] if v else default


def dmesg(res, name):
    return "\n".join(res.get(name, {}).get("dmesg", []))


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for buf in iter(lambda: f.read(4 * MiB), b""):
            h.update(buf)
    return h.hexdigest()


def first_diff(a, b, unit=512):
    for i in range(0, max(len(a), len(b)), MiB):
        if a[i:i + MiB] != b[i:i + MiB]:
            for j in range(i, i + MiB):
                if j >= len(a) or j >= len(b) or a[j] != b[j]:
                    return "first difference at byte %d (sector %d)%s" % (
                        j, j // unit, "" if len(a) == len(b) else
                        ", lengths %d and %d" % (len(a), len(b)))
    return "equal"


def libvhdi_read(chain_paths):
    """Read the top of chain_paths (nearest first) through libvhdi."""
    import pyvhdi
    files = [pyvhdi.file() for _ in chain_paths]
    for f, p in zip(files, chain_paths):
        f.open(p)
    for i in range(len(files) - 2, -1, -1):
        files[i].set_parent(files[i + 1])
    size = files[0].get_media_size()
    out = bytearray()
    off = 0
    while off < size:
        n = min(4 * MiB, size - off)
        out += files[0].read_buffer_at_offset(n, off)
        off += n
    for f in files:
        f.close()
    return bytes(out)


def setup_json(setup, path):
    p = subprocess.run([setup, "info", "--json", path], capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr.strip()}


def setup_check(setup, path):
    p = subprocess.run([setup, "check", path], capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip().replace("\n", " ")


def bat_states(path):
    """(lss, bs, vs, [payload entries], sector bitmap of chunk c -> bytes)"""
    img = vm.Image(path)
    lss, bs, vs = img.lss, img.block_size, img.virtual_size
    cr = img.chunk_ratio
    n = -(-vs // bs)
    chunks = -(-n // cr)
    with open(path, "rb") as f:
        f.seek(img.bat_offset)
        raw = f.read(chunks * (cr + 1) * 8)
        ent = struct.unpack("<%dQ" % (len(raw) // 8), raw)
        payload = [ent[p + p // cr] for p in range(n)]
        bitmaps = {}
        for c in range(chunks):
            e = ent[c * (cr + 1) + cr] if c * (cr + 1) + cr < len(ent) else 0
            if e & 7 == 6:
                f.seek(e & vm.BAT_OFFSET_MASK)
                bitmaps[c] = f.read(MiB)
    return lss, bs, vs, cr, payload, bitmaps


def sectors_of(writes, lss, vs, loose):
    """Sectors the writes cover; loose: buffered writes widened to pages."""
    s = set()
    for x in writes:
        lo, hi = x["off"], x["off"] + x["len"]
        if loose and x["mode"] == "buffered":
            lo, hi = lo // 4096 * 4096, min(-(-hi // 4096) * 4096, vs)
        s.update(range(lo // lss, -(-hi // lss)))
    return s


def bitmap_verdict(path, writes, differencing):
    """Every block's state and sector bits against the layer's writes:
    bits set for at least the written sectors and for nothing else (a
    buffered write may widen to its pages)."""
    lss, bs, vs, cr, payload, bitmaps = bat_states(path)
    low = sectors_of(writes, lss, vs, False)
    high = sectors_of(writes, lss, vs, True)
    spb = bs // lss
    errs, alloc = [], 0
    for p, e in enumerate(payload):
        state = e & 7
        blk = set(range(p * spb, min((p + 1) * spb, vs // lss)))
        lo, hi = low & blk, high & blk
        if state in (6, 7):
            alloc += 1
        if not hi:
            if state != 0:
                errs.append("block %d untouched but state %d" % (p, state))
            continue
        if not differencing:
            if state != 6:
                errs.append("block %d written but state %d" % (p, state))
        elif state == 6:
            if not blk <= hi:
                errs.append("block %d FULLY_PRESENT but %d of its sectors were not written"
                            % (p, len(blk - hi)))
        elif state == 7 and differencing:
            bm = bitmaps.get(p // cr)
            if bm is None:
                errs.append("block %d PARTIALLY_PRESENT, chunk bitmap not present" % p)
                continue
            first = (p % cr) * spb
            bits = {p * spb + i for i in range(spb)
                    if bm[(first + i) // 8] >> ((first + i) % 8) & 1}
            if not lo <= bits:
                errs.append("block %d: %d written sectors not marked present (first %d)"
                            % (p, len(lo - bits), min(lo - bits)))
            if not bits <= hi:
                errs.append("block %d: %d sectors marked present but never written (first %d)"
                            % (p, len(bits - hi), min(bits - hi)))
        else:
            errs.append("block %d written but state %d" % (p, state))
    return errs[:4] + (["..."] if len(errs) > 4 else []), alloc, len(payload)


STATUS_RE = re.compile(r"^0 (\d+) vhdx (\d+) (\d+) (\d+) (\d+)/(\d+) (\S+) (ro|rw) (\S+)")


def evaluate(work, setup):
    v = Verdicts()
    plan = json.load(open(os.path.join(work, "plan.json")))
    rdir = os.path.join(work, "res")
    res = parse_res(os.path.join(rdir, "out", "res")) if os.path.exists(
        os.path.join(rdir, "out", "res")) else {}
    before = json.load(open(os.path.join(work, "sha-before.json")))
    if not v.ok("guest-finished", one(res, "all", "finished") == "1",
                "the guest did not finish its script (see the console above)"):
        return v

    def model_of(cname, k):
        return open(plan["chains"][cname]["layers"][k]["model"], "rb").read()

    def diag(name, key, cname, k):
        bad = os.path.join(rdir, "out", "bad-%s-%s.raw" % (name, key))
        if os.path.exists(bad):
            return first_diff(open(bad, "rb").read(), model_of(cname, k),
                              plan["chains"][cname]["lss"])
        return "sha differs"

    def status_fields(name, key):
        m = STATUS_RE.match(one(res, name, key, "") or "")
        return m.groups() if m else None

    # --- the crash: the fsync'ed writes survive, replay is reported --------
    cr = plan["crash"]
    st = status_fields("xro", "status")
    v.ok("crash-ro-map", one(res, "xro", "create") == "0", dmesg(res, "xro"))
    v.ok("crash-ro-replayed-in-memory", st and st[6] == "replayed-in-memory" and st[7] == "ro",
         "status: %s" % one(res, "xro", "status"))
    st = status_fields("xrw", "status")
    v.ok("crash-rw-map", one(res, "xrw", "create") == "0", dmesg(res, "xrw"))
    v.ok("crash-rw-replayed", st and st[6] == "replayed", "status: %s" % one(res, "xrw", "status"))
    model = open(cr["model"], "rb").read()
    pat = open(os.path.join(work, "files", "pat.bin"), "rb").read()
    got = {}
    for kind in ("ro", "rw"):
        p = os.path.join(rdir, "out", "crash-%s.raw" % kind)
        got[kind] = open(p, "rb").read() if os.path.exists(p) else b""
        errs = []
        if len(got[kind]) != len(model):
            errs.append("read %d bytes of %d" % (len(got[kind]), len(model)))
        else:
            # Sectors of unflushed writes: old or new, sector by sector.
            new = bytearray(model)
            apply(new, pat, cr["unsynced"])
            loose = sectors_of(cr["unsynced"], 512, len(model), False)
            strict_a, strict_b = bytearray(got[kind]), bytearray(model)
            for s in loose:
                g = got[kind][s * 512:(s + 1) * 512]
                if g not in (model[s * 512:(s + 1) * 512], bytes(new[s * 512:(s + 1) * 512])):
                    errs.append("unflushed sector %d is neither the old nor the new data" % s)
                strict_a[s * 512:(s + 1) * 512] = b"\0" * 512
                strict_b[s * 512:(s + 1) * 512] = b"\0" * 512
            if strict_a != strict_b:
                errs.append("flushed data: " + first_diff(strict_a, strict_b))
        v.ok("crash-%s-content" % kind, not errs, "; ".join(errs[:3]))
    v.ok("crash-ro-equals-rw", got["ro"] == got["rw"] and got["rw"],
         first_diff(got["ro"], got["rw"]))
    x = os.path.join(work, "x.vhdx")
    v.ok("crash-ro-file-unchanged", file_sha(os.path.join(work, "xcopy.vhdx")) == before["xcopy"],
         "the read-only mapping changed the dirty image")
    rc, out = setup_check(setup, x)
    v.ok("crash-replayed-check", rc == 0, "vhdxsetup check exit %d: %s" % (rc, out))
    v.ok("crash-replayed-log-clean", setup_json(setup, x).get("log-state") == "clean",
         "log-state %s" % setup_json(setup, x).get("log-state"))
    try:
        lv = libvhdi_read([x, os.path.join(work, "a0.vhdx")])
        v.ok("crash-libvhdi", lv == got["rw"], first_diff(lv, got["rw"]))
    except Exception as e:  # noqa: BLE001
        v.ok("crash-libvhdi", False, "libvhdi: %s" % e)

    # --- every layer of every chain ---------------------------------------
    files = {"a0": os.path.join(work, "a0.vhdx"), "a1": os.path.join(work, "a1.vhdx")}
    for cname in "bcd":
        for k in range(len(plan["chains"][cname]["layers"])):
            files["%s%d" % (cname, k)] = os.path.join(rdir, "%s%d.vhdx" % (cname, k))
    for cname, c in plan["chains"].items():
        top = len(c["layers"]) - 1
        for k, layer in enumerate(c["layers"]):
            name = "%s%d" % (cname, k)
            path = files[name]
            if name != "a0":
                st = status_fields(name, "status")
                if not v.ok("%s-map" % name, one(res, name, "create") == "0" and st,
                            "create %s: %s" % (one(res, name, "create"), dmesg(res, name))):
                    continue
                v.ok("%s-geometry" % name,
                     int(st[0]) * 512 == c["vs"] and int(st[1]) == c["lss"] and
                     int(st[3]) * 512 == layer["bs"] and st[7] == "rw" and
                     one(res, name, "ss") == str(c["lss"]),
                     "status %s, device sector size %s" % (one(res, name, "status"),
                                                           one(res, name, "ss")))
                fails = res.get(name, {}).get("wfail", [])
                v.ok("%s-writes" % name, not fails, "; ".join(fails[:3]))
                v.ok("%s-read-in-session" % name, one(res, name, "session") == layer["sha"],
                     diag(name, "session", cname, k))
                rm = one(res, name, "remove", "")
                v.ok("%s-remove" % name, rm.startswith("0"), rm + " " + dmesg(res, name))
            if not os.path.exists(path):
                v.ok("%s-file" % name, False, "not in the guest's archive")
                continue
            errs, alloc, total = bitmap_verdict(path, layer["writes"], k > 0)
            if name != "a0":  # a0 is qemu-img's
                v.ok("%s-bat-and-bitmap" % name, not errs, "; ".join(errs))
            maxkb = one(res, name, "maxkb")
            whole = layer["writes"][0]
            if k and whole["why"] == "whole-block" and maxkb and \
                    whole["len"] <= min(int(maxkb) * KiB, MiB):
                st = bat_states(path)[4][whole["off"] // layer["bs"]] & 7
                v.ok("%s-whole-block-fully-present" % name, st == 6,
                     "block %d, written whole by one %d KiB O_DIRECT write into a "
                     "NOT_PRESENT block (max_sectors_kb %s), has state %d"
                     % (whole["off"] // layer["bs"], whole["len"] // KiB, maxkb, st))
            if name != "a0":
                st = status_fields(name, "status-end")
                v.ok("%s-status-allocated" % name,
                     st and (int(st[4]), int(st[5])) == (alloc, total) and st[8] == "ok",
                     "status %s; the file has %d of %d blocks"
                     % (one(res, name, "status-end"), alloc, total))
                rc, out = setup_check(setup, path)
                v.ok("%s-check" % name, rc == 0, "vhdxsetup check exit %d: %s" % (rc, out))
                info = setup_json(setup, path)
                v.ok("%s-log-empty-after-remove" % name, info.get("log-state") == "clean",
                     "log-state %s" % info.get("log-state"))
            chain = [files["%s%d" % (cname, j)] for j in range(k, -1, -1)]
            try:
                data = libvhdi_read(chain)
                v.ok("%s-libvhdi" % name, sha(data) == layer["sha"],
                     "libvhdi differs from the model: " +
                     first_diff(data, model_of(cname, k), c["lss"]))
            except Exception as e:  # noqa: BLE001
                v.ok("%s-libvhdi" % name, False, "libvhdi: %s" % e)
            # A parent never changes once its own session is over.
            if k < top or cname in "bcd":
                if name in ("a0",):
                    want = before["a0"]
                elif name == "a1":
                    want = None
                else:
                    want = one(res, "file-after-session", "%s.vhdx" % name)
                if want:
                    v.ok("%s-unchanged-%s" % (name, "as-parent" if k < top else "after-session"),
                         file_sha(path) == want, "the file changed after its own session")
        tname = "cro" if cname == "c" else "%stop" % cname
        v.ok("%s-top-read-only-odd-reads" % cname,
             one(res, tname, "odd") == c["layers"][top]["sha"],
             "create %s; %s" % (one(res, tname, "create"), diag(tname, "odd", cname, top)))

    # --- two mappings sharing parents; a read-only table -----------------
    for name, k in (("sh1", 1), ("sh2", 2)):
        v.ok("shared-parents-%s" % name,
             one(res, name, "shared") == plan["chains"]["b"]["layers"][k]["sha"],
             "create %s: %s %s" % (one(res, name, "create"), dmesg(res, name),
                                   diag(name, "shared", "b", k)))
    st = status_fields("cro", "status")
    v.ok("ro-chain-status", st and st[7] == "ro" and st[6] == "clean",
         "status %s" % one(res, "cro", "status"))
    v.ok("ro-chain-write-refused", one(res, "cro", "write-rc") not in (None, "0"),
         "a write to the read-only table succeeded")
    changed = [k for k in range(len(plan["chains"]["c"]["layers"]))
               if one(res, "file-before-ro", "c%d.vhdx" % k) !=
               one(res, "file-after-ro", "c%d.vhdx" % k) or
               not one(res, "file-after-ro", "c%d.vhdx" % k)]
    v.ok("ro-chain-files-unchanged", not changed, "changed: %s" % changed)

    # --- refusals ---------------------------------------------------------
    stale = os.path.join(rdir, "stale.vhdx")
    link = setup_json(setup, stale).get("parent-locator", {}).get("parent_linkage", "?")
    dwg = setup_json(setup, files["b0"]).get("data-write-guid", "?")
    link, dwg = link.strip("{}").lower(), dwg.lower()
    msg = dmesg(res, "stale").lower()
    v.ok("linkage-mismatch-refused",
         one(res, "stale", "create") not in (None, "0") and link in msg and dwg in msg
         and link != dwg,
         "create %s; want both %s and %s in: %s" % (one(res, "stale", "create"), link, dwg,
                                                    dmesg(res, "stale")))
    msg = dmesg(res, "staleforce")
    v.ok("linkage-override-maps",
         one(res, "staleforce", "create") == "0" and "no_linkage_check" in
         (one(res, "staleforce", "table") or "") and link in msg.lower(),
         "create %s, table %s: %s" % (one(res, "staleforce", "create"),
                                      one(res, "staleforce", "table"), msg))
    v.ok("linkage-override-reads-parent",
         one(res, "staleforce", "read") == plan["chains"]["b"]["layers"][0]["sha"],
         diag("staleforce", "read", "b", 0))
    v.ok("smaller-parent-maps-zeros-past-end",
         one(res, "wrongsize", "create") == "0" and
         one(res, "wrongsize", "read") == plan["grown"]["stale_over_c0"],
         "create %s, read %s: %s" % (one(res, "wrongsize", "create"),
                                     one(res, "wrongsize", "read"), dmesg(res, "wrongsize")))
    for name, check, words in (
            ("noparent", "differencing-without-parent-refused", "differencing"),
            ("wrongsector", "parent-sector-size-mismatch-refused", "does not match"),
            ("notdiff", "parent-of-non-differencing-refused", "no parent")):
        v.ok(check, one(res, name, "create") not in (None, "0") and words in dmesg(res, name),
             "create %s: %s" % (one(res, name, "create"), dmesg(res, name)))
    v.ok("refusals-write-nothing",
         one(res, "file-before-refusals", "stale.vhdx") ==
         one(res, "file-after-refusals", "stale.vhdx") == file_sha(stale),
         "stale.vhdx changed")

    # --- chain g: a child grown past its parent ---------------------------
    g = plan["grown"]
    gmodel = open(g["model"], "rb").read()
    v.ok("grown-map", one(res, "g1", "create") == "0", dmesg(res, "g1"))
    v.ok("grown-reads-parent-then-zeros", one(res, "g1", "before") == g["pre"],
         "read before the writes: sha differs (the parent's junk past its end?)")
    bad = os.path.join(rdir, "out", "bad-g1-session.raw")
    v.ok("grown-session", one(res, "g1", "session") == g["sha"],
         first_diff(open(bad, "rb").read(), gmodel) if os.path.exists(bad) else "sha differs")
    v.ok("grown-no-write-error", not res.get("g1", {}).get("wfail"),
         "; ".join(res.get("g1", {}).get("wfail", [])[:3]))
    v.ok("grown-ro-odd-reads", one(res, "g1ro", "odd") == g["sha"], "sha differs")
    g1 = os.path.join(work, "g1.vhdx")
    rc, out = setup_check(setup, g1)
    v.ok("grown-check", rc == 0, out)
    raw = os.path.join(work, "g1-ours.raw")
    if os.path.exists(raw):
        os.unlink(raw)
    r = subprocess.run([setup, "convert", "--to", "raw", g1, raw], capture_output=True, text=True)
    got = open(raw, "rb").read() if r.returncode == 0 else b""
    v.ok("grown-vhdxsetup-reads-same", got == gmodel,
         r.stderr.strip() or first_diff(got, gmodel) if got else r.stderr.strip())
    v.ok("grown-parent-unchanged", file_sha(os.path.join(work, "g0.vhdx")) == before.get("g0"),
         "g0.vhdx changed")

    # --- damaged BAT entries ---------------------------------------------
    for i, kind in enumerate(plan["corrupt"]):
        name = "k%d" % i
        path = os.path.join(work, "k-%s.vhdx" % kind)
        created = one(res, name, "create")
        refused = created not in (None, "0")
        readerr = (one(res, name, "read") or "").startswith("read-error")
        words = {"bitmap-beyond-device": "sector bitmap block 0 .* beyond the device",
                 "bitmap-overlaps-bat": "sector bitmap block 0 .* overlaps the BAT",
                 "payload-beyond-device": "payload block 2 .* beyond the device",
                 "partial-without-bitmap": "payload block 2 .*partially present.* bitmap",
                 "payload-on-bitmap": "sector bitmap block 0 .* overlaps payload block 2|"
                                      "payload block 2 .* overlaps sector bitmap"}[kind]
        v.ok("damaged-%s-refused" % kind,
             (refused and re.search(words, dmesg(res, name))) or
             (kind == "partial-without-bitmap" and readerr),
             "create %s, read %s: %s" % (created, one(res, name, "read"), dmesg(res, name)))
        v.ok("damaged-%s-file-unchanged" % kind, file_sha(path) == before["k-" + kind],
             "the damaged image was written")
    return v


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "gen":
        gen(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "evaluate":
        v = evaluate(sys.argv[2], sys.argv[3])
        print("EVAL %d %d" % (v.passed, v.failed))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
