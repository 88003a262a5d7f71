#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side oracles of the dm-vhdx write-path tests (tests/write/run.sh).

Nothing here trusts dm-vhdx: the expected virtual disk is computed from the
list of writes the guest was told to make, layouts are checked against the
MS-VHDX rules with the independent parser of tests/e2e/vhdxmangle.py, and
the dm-log-writes replayer follows the log format of the kernel's
drivers/md/dm-log-writes.c.

Write lists ("ops" files) have one write a line, all numbers in bytes:
    OFF LEN SRC MODE [STEP]
the data is LEN bytes of the pattern file from SRC, MODE is direct or
buffered, STEP groups writes that one fsync acknowledges.

Commands (see --help of each): pattern, gen, steps, apply, cmp, vhdi,
info, layout, lw-list, lw-replay, history, selftest.
"""

import argparse
import json
import os
import random
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import vhdxmangle as vm  # noqa: E402

MiB = 1 << 20
SECTOR = 512

# ------------------------------------------------------------------ ops


def read_ops(path):
    ops = []
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w or w[0].startswith("#") or (len(w) > 3 and w[3] == "sleep"):
                continue
            ops.append({"off": int(w[0]), "len": int(w[1]), "src": int(w[2]),
                        "mode": w[3], "step": int(w[4]) if len(w) > 4 else 0})
    return ops


def write_ops(path, ops):
    with open(path, "w") as f:
        for o in ops:
            if o.get("step"):
                f.write("%d %d %d %s %d\n" % (o["off"], o["len"], o["src"], o["mode"], o["step"]))
            else:
                f.write("%d %d %d %s\n" % (o["off"], o["len"], o["src"], o["mode"]))


def blocks_of(off, ln, bs):
    return range(off // bs, (off + ln - 1) // bs + 1)


def cmd_pattern(a):
    """Random data the guest writes from (the same bytes for a given seed)."""
    rng = random.Random(a.seed)
    with open(a.out, "wb") as f:
        left = a.size
        while left:
            n = min(left, MiB)
            f.write(rng.randbytes(n))
            left -= n


class OpGen:
    def __init__(self, vsize, bs, lss, pat_size, rng):
        self.vsize, self.bs, self.lss, self.pat_size, self.rng = vsize, bs, lss, pat_size, rng
        self.ops = []

    def add(self, off, ln, mode="direct", step=0):
        lss = self.lss
        off = off // lss * lss
        if off < 0 or off >= self.vsize or ln <= 0:
            return False
        ln = min(ln, self.vsize - off)
        ln = max(lss, ln // lss * lss)
        if ln > self.pat_size:
            return False
        src = self.rng.randrange(0, (self.pat_size - ln) // SECTOR + 1) * SECTOR
        self.ops.append({"off": off, "len": ln, "src": src, "mode": mode, "step": step})
        return True

    def used_blocks(self):
        s = set()
        for o in self.ops:
            s.update(blocks_of(o["off"], o["len"], self.bs))
        return s


def cmd_gen(a):
    """Generate the mirror test's writes for an image; print a JSON summary."""
    img = vm.Image(a.image)
    bs, vsize, lss = img.block_size, img.virtual_size, img.lss
    nblocks = img.payload_blocks
    prealloc = set(img.allocated())
    rng = random.Random(a.seed)
    g = OpGen(vsize, bs, lss, a.pat_size, rng)
    S = lss
    if a.explicit:
        for spec in a.explicit.split(","):
            off, ln = spec.split(":")
            g.add(int(off, 0), int(ln, 0))
    else:
        # Phase 1: new blocks, every shape of write.
        g.add(0, 4096)                                  # aligned 4 KiB at block 0
        g.add(bs + 3 * S, S)                            # one unaligned sector, new block 1
        g.add(2 * bs - 3 * S, 8 * S)                    # straddles 1|2 (allocated|new)
        g.add(4 * bs - 2 * S, 4 * S)                    # straddles 3|4, both new
        g.add(vsize - S, S)                             # the last sector
        g.add(vsize - bs // 2 - 5 * S, 3 * S)           # inside the last (partial) block
        if nblocks > 7 and bs <= 8 * MiB:
            g.add(6 * bs, bs)                           # a whole block
        if nblocks > 10 and bs <= 8 * MiB:
            g.add(8 * bs + bs // 2, bs + 64 * 1024)      # a run over three blocks
        for p in sorted(prealloc)[:2]:                  # into blocks QEMU allocated
            g.add(p * bs + bs // 3, 12 * S)
        # Keep up to two blocks never written (reads must stay zero).
        free = [b for b in range(nblocks) if b not in g.used_blocks() and b not in prealloc]
        keep = set(free[:1] + free[-1:]) if len(free) > 2 else set()
        cand = [b for b in range(nblocks) if b not in keep]
        # Random small writes anywhere but the kept blocks.
        for _ in range(a.random):
            b = rng.choice(cand)
            start = b * bs
            end = min(vsize, start + bs)
            ln = rng.choice([1, 1, 2, 3, 7, 8, 16, 64]) * S
            off = start + rng.randrange(0, max(1, (end - start) // S)) * S
            g.add(off, ln)
        # Phase 2: in place, into blocks written above.
        g.add(bs + 3 * S, 2 * S)
        g.add(bs // 2 - 7 * S, 16 * S)
        # Phase 3: through the page cache (4 KiB read-modify-write).
        g.add(bs + 5 * S, S, "buffered")
        g.add(4 * bs + 3 * S, 3 * S, "buffered")
        g.add(vsize - 2 * S, S, "buffered")
    ops = g.ops
    write_ops(a.out, ops)
    used = g.used_blocks()
    fixed = all(vm.STATE_FULLY_PRESENT == (e & 7) for e in img.payload_states())
    expect = set(range(nblocks)) if fixed else (prealloc | used)
    print(json.dumps({
        "ops": len(ops), "bytes": sum(o["len"] for o in ops),
        "expect_blocks": sorted(expect), "expect_allocated": len(expect),
        "new_blocks": sorted(expect - prealloc),
        "unwritten": sorted(set(range(nblocks)) - used - prealloc),
        "blocks": nblocks, "block_size": bs,
    }))


def cmd_steps(a):
    """Writes grouped in steps (each acknowledged by an fsync): --steps N.
    A "sleep" line (OFF 0, LEN seconds) makes the guest wait before the
    step's fsync, so that the commit timer runs on its own."""
    rng = random.Random(a.seed)
    g = OpGen(a.vsize, a.bs, SECTOR, a.pat_size, rng)
    nblocks = (a.vsize + a.bs - 1) // a.bs
    for step in range(1, a.steps + 1):
        for _ in range(rng.choice([1, 1, 2, 3])):
            kind = rng.random()
            b = rng.randrange(nblocks)
            mode = "buffered" if rng.random() < a.buffered else "direct"
            if kind < 0.15 and b + 1 < nblocks:         # straddle a block boundary
                g.add((b + 1) * a.bs - rng.randrange(1, 16) * SECTOR,
                      rng.randrange(2, 64) * SECTOR, mode, step)
            elif kind < 0.2:                            # a large run
                g.add(b * a.bs + rng.randrange(0, a.bs // SECTOR) * SECTOR,
                      rng.randrange(256, 2048) * SECTOR, mode, step)
            else:
                g.add(b * a.bs + rng.randrange(0, a.bs // SECTOR) * SECTOR,
                      rng.choice([1, 1, 2, 8, 8, 16, 128]) * SECTOR, mode, step)
        if a.sleep_every and step % a.sleep_every == 0:
            g.ops.append({"off": 0, "len": a.sleep, "src": 0, "mode": "sleep", "step": step})
    with open(a.out, "w") as f:
        for o in g.ops:
            f.write("%d %s %d %s %d\n" % (o["off"], o["len"], o["src"], o["mode"], o["step"]))
    print(json.dumps({"ops": len(g.ops), "steps": a.steps}))


def apply_ops(ops, pat, target):
    with open(pat, "rb") as p, open(target, "r+b") as t:
        for o in ops:
            p.seek(o["src"])
            data = p.read(o["len"])
            if len(data) != o["len"]:
                raise SystemExit("pattern file too short for %r" % o)
            t.seek(o["off"])
            t.write(data)


def cmd_apply(a):
    """Apply ops [FIRST, LAST) (or steps up to --upto-step) to TARGET."""
    ops = read_ops(a.ops)
    if a.upto_step is not None:
        ops = [o for o in ops if o["step"] <= a.upto_step]
    ops = ops[a.first:a.last]
    apply_ops(ops, a.pattern, a.target)

# ------------------------------------------------------------------ comparing


def parse_regions(specs, size_a, size_b):
    """'AOFF:BOFF:LEN' triples; none means the whole of both (sizes equal)."""
    out = []
    for s in specs or []:
        x, y, n = (int(v, 0) for v in s.split(":"))
        out.append((x, y, n))
    if not out:
        out = [(0, 0, min(size_a, size_b))]
    return out


def first_diff(fa, fb, aoff, boff, ln, chunk=MiB):
    """Offset (relative) of the first difference and the count of differing
    512-byte sectors, or (None, 0)."""
    first, nsec, pos = None, 0, 0
    while pos < ln:
        n = min(chunk, ln - pos)
        fa.seek(aoff + pos)
        fb.seek(boff + pos)
        x, y = fa.read(n), fb.read(n)
        if len(x) != n or len(y) != n:
            return (pos + min(len(x), len(y)), -1)
        if x != y:
            for s in range(0, n, SECTOR):
                if x[s:s + SECTOR] != y[s:s + SECTOR]:
                    nsec += 1
                    if first is None:
                        i = next(i for i in range(s, min(n, s + SECTOR)) if x[i] != y[i])
                        first = pos + i
        pos += n
    return (first, nsec)


def describe(off, ops, bs):
    if not ops:
        return ""
    last = None
    for i, o in enumerate(ops):
        if o["off"] <= off < o["off"] + o["len"]:
            last = i
    blk = " (block %d)" % (off // bs) if bs else ""
    if last is None:
        return "%s; no write covers it (must read as before/zero)" % blk
    o = ops[last]
    return "%s; last written by op %d (%d+%d %s)" % (blk, last + 1, o["off"], o["len"], o["mode"])


def cmd_cmp(a):
    """Compare EXPECTED with ACTUAL (regions EOFF:AOFF:LEN); print the first
    difference, or nothing when equal.  Exit 0 either way, 2 on error."""
    ops = read_ops(a.ops) if a.ops else []
    with open(a.expected, "rb") as fe, open(a.actual, "rb") as fa:
        fe.seek(0, 2)
        fa.seek(0, 2)
        for eoff, aoff, ln in parse_regions(a.region, fe.tell(), fa.tell()):
            first, nsec = first_diff(fe, fa, eoff, aoff, ln)
            if first is None:
                continue
            if nsec < 0:
                print("%s ends before virtual offset %d" % (a.what, eoff + first))
                return
            v = eoff + first
            fe.seek(eoff + first)
            fa.seek(aoff + first)
            print("%s: first difference at virtual offset %d (0x%x): expected 0x%02x, read 0x%02x%s;"
                  " %d sector(s) of 512 bytes differ" % (
                      a.what, v, v, fe.read(1)[0], fa.read(1)[0], describe(v, ops, a.bs), nsec))
            return


def cmd_vhdi(a):
    """libvhdi (an independent VHDX reader) against a raw file."""
    try:
        import pyvhdi
    except ImportError:
        print("pyvhdi not importable (python3-libvhdi); run with /usr/bin/python3")
        return
    f = pyvhdi.file()
    try:
        f.open(a.image)
    except Exception as e:  # noqa: BLE001 - libvhdi raises IOError variants
        print("libvhdi cannot open the image: %s" % e)
        return
    size = f.get_media_size()
    with open(a.raw, "rb") as r:
        r.seek(0, 2)
        rsize = r.tell()
        if not a.region and rsize != size:
            print("libvhdi media size %d, raw %d" % (size, rsize))
            return
        for voff, roff, ln in parse_regions(a.region, size, rsize):
            pos = 0
            while pos < ln:
                n = min(4 * MiB, ln - pos)
                x = f.read_buffer_at_offset(n, voff + pos)
                r.seek(roff + pos)
                y = r.read(n)
                if x != y:
                    i = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]),
                             min(len(x), len(y)))
                    print("libvhdi reads differently at virtual offset %d (0x%x)" % (
                        voff + pos + i, voff + pos + i))
                    return
                pos += n
    f.close()

# ------------------------------------------------------------------ layout


def header_guids(path):
    out = []
    with open(path, "rb") as f:
        for off in vm.HEADER_OFFSETS:
            f.seek(off)
            b = f.read(80)
            out.append({
                "sequence": struct.unpack_from("<Q", b, 8)[0],
                "file_write_guid": str(vm.guid_from_bytes(b[16:32])),
                "data_write_guid": str(vm.guid_from_bytes(b[32:48])),
                "log_guid": str(vm.guid_from_bytes(b[48:64])),
            })
    return out


def snapshot(path):
    """The layout facts the checks need, as JSON-able data.  Extents of
    payload blocks stop at the virtual size (QEMU's fixed images end the
    file there); blocks in other states that still carry a file offset
    (QEMU's ZERO blocks of fixed images) reserve that space."""
    img = vm.Image(path)
    cur = img.current_header()
    blocks, reserved = {}, {}
    for p, e in enumerate(img.payload_states()):
        off = e & vm.BAT_OFFSET_MASK
        ext = min(img.block_size, img.virtual_size - p * img.block_size)
        if e & 7 == vm.STATE_FULLY_PRESENT:
            blocks[str(p)] = [off, ext]
        elif off:
            reserved[str(p)] = [off, ext]
    hdr = img.headers[cur] if cur is not None else {}
    objects = [("headers", 0, MiB),
               ("log", hdr.get("log_offset", 0), hdr.get("log_length", 0)),
               ("bat", img.bat_offset, img.bat_length),
               ("metadata", img.metadata_offset, img.metadata_length)]
    used_end = max(o + n for _, o, n in objects)
    for off, ext in list(blocks.values()) + list(reserved.values()):
        used_end = max(used_end, off + ext)
    return {
        "file_size": img.file_size, "block_size": img.block_size,
        "virtual_size": img.virtual_size, "lss": img.lss,
        "current_header": cur, "headers_valid": [h["valid"] for h in img.headers],
        "regions_valid": [r["valid"] for r in img.regions],
        "guids": header_guids(path), "objects": objects,
        "blocks": blocks, "reserved": reserved,
        "used_end": used_end,
    }


def cmd_info(a):
    print(json.dumps(snapshot(a.image)))


def cmd_layout(a):
    """Check the image after dm-vhdx wrote to it against its state before:
    headers and log clean, allocated blocks inside the device, aligned, not
    overlapping anything, old blocks not moved, new blocks past the space
    used before, the expected set of blocks allocated, DataWriteGuid new."""
    with open(a.before) as f:
        before = json.load(f)
    problems = []
    try:
        now = snapshot(a.image)
    except SystemExit as e:
        print("cannot parse the image: %s" % e)
        return
    if not all(now["headers_valid"]):
        problems.append("header validity %s" % now["headers_valid"])
    if not all(now["regions_valid"]):
        problems.append("region table validity %s" % now["regions_valid"])
    cur = now["current_header"]
    if cur is None:
        problems.append("no valid header")
    else:
        g = now["guids"][cur]
        if g["log_guid"] != "00000000-0000-0000-0000-000000000000":
            problems.append("LogGuid of the current header is %s, not zero (log not emptied)" % g["log_guid"])
        if a.expect_data_change:
            old = before["guids"][before["current_header"]]["data_write_guid"]
            if g["data_write_guid"] == old:
                problems.append("DataWriteGuid unchanged (%s) although user data was written" % old)
    dev = a.device_size or now["file_size"]
    spans = [(name, off, off + n) for name, off, n in now["objects"] if n]
    # New blocks may go anywhere the image held nothing before: past its end
    # or in a gap between its objects (QEMU leaves slack after the metadata).
    before_spans = [(name, off, n) for name, off, n in before["objects"] if n]
    before_spans += [("block %s" % b, off, ext) for b, (off, ext) in before["blocks"].items()]
    for p, (off, ext) in now["blocks"].items():
        p = int(p)
        if off % MiB:
            problems.append("block %d at %d is not 1 MiB aligned" % (p, off))
        if off < MiB:
            problems.append("block %d at %d lies in the header section" % (p, off))
        if off + ext > dev:
            problems.append("block %d at %d..%d ends beyond the device (%d)" % (p, off, off + ext, dev))
        old = before["blocks"].get(str(p))
        was = before.get("reserved", {}).get(str(p))
        if old is not None and old[0] != off:
            problems.append("block %d moved from %d to %d" % (p, old[0], off))
        if old is None and not (was and was[0] == off):
            for name, o, n in before_spans:
                if off < o + n and o < off + ext:
                    problems.append("new block %d at %d..%d overlaps %s (%d..%d) of the image before" % (
                        p, off, off + ext, name, o, o + n))
        spans.append(("block %d" % p, off, off + ext))
    for p, (off, ext) in now["reserved"].items():
        spans.append(("space reserved for block %s" % p, off, off + ext))
    spans.sort(key=lambda s: s[1])
    for x, y in zip(spans, spans[1:]):
        if y[1] < x[2]:
            problems.append("%s (%d..%d) overlaps %s (%d..%d)" % (x[0], x[1], x[2], y[0], y[1], y[2]))
    if a.expect_blocks is not None:
        want = set(int(b) for b in a.expect_blocks.split(",") if b)
        have = set(int(b) for b in now["blocks"])
        if want != have:
            problems.append("allocated blocks differ from the blocks written: missing %s, extra %s" % (
                sorted(want - have)[:10], sorted(have - want)[:10]))
    if problems:
        print("; ".join(problems[:6]))

# ------------------------------------------------------------------ dm-log-writes

LW_MAGIC = 0x6a736677736872
LW_FLUSH, LW_FUA, LW_DISCARD, LW_MARK, LW_META = 1, 2, 4, 8, 16


def lw_parse(path):
    """The entries of a dm-log-writes log (Documentation/admin-guide/
    device-mapper/log-writes.rst): a super block at sector 0, then per
    entry one sector of header and nr_sectors of data."""
    entries = []
    with open(path, "rb") as f:
        sup = f.read(32)
        magic, version, nr, ss = struct.unpack_from("<QQQI", sup)
        if magic != LW_MAGIC:
            raise SystemExit("%s: not a dm-log-writes log (magic 0x%x)" % (path, magic))
        if version != 1:
            raise SystemExit("%s: log version %d" % (path, version))
        pos = ss
        for i in range(nr):
            f.seek(pos)
            h = f.read(ss)
            if len(h) < 32:
                raise SystemExit("%s: log ends in entry %d" % (path, i))
            sector, nsec, flags, dlen = struct.unpack_from("<QQQQ", h)
            e = {"index": i, "sector": sector, "nr_sectors": nsec, "flags": flags,
                 "data": pos + ss, "mark": None}
            if flags & LW_MARK:
                e["mark"] = h[32:32 + dlen].split(b"\0")[0].decode(errors="replace")
            pos += ss
            if not flags & LW_DISCARD:
                pos += nsec * ss
            entries.append(e)
    return entries, ss


def lw_flagstr(fl):
    return "".join(c for b, c in ((LW_FLUSH, "F"), (LW_FUA, "U"), (LW_DISCARD, "D"),
                                  (LW_MARK, "M"), (LW_META, "m")) if fl & b) or "-"


def cmd_lw_list(a):
    entries, ss = lw_parse(a.log)
    for e in entries:
        print("%d %s sector=%d n=%d%s" % (e["index"], lw_flagstr(e["flags"]), e["sector"],
                                         e["nr_sectors"], " mark=%s" % e["mark"] if e["mark"] else ""))


def cmd_lw_replay(a):
    """Replay the log onto copies of BASE, one image per replay point: every
    flush, FUA and mark entry, plus evenly spaced plain writes up to --max
    points in all.  With --torn N, also up to N "torn" images: at a flush
    whose epoch (the writes since the flush before it, which the disk may
    still lose in any subset) holds both metadata writes (header section,
    log, BAT, metadata region of BASE) and payload writes, the state where
    only the metadata writes of that epoch reached the disk.  Writes
    OUTDIR/points.json describing each point."""
    entries, ss = lw_parse(a.log)
    sync_pts = [e["index"] for e in entries if e["flags"] & (LW_FLUSH | LW_FUA | LW_MARK)]
    other = [e["index"] for e in entries if not e["flags"] & (LW_FLUSH | LW_FUA | LW_MARK)]
    pts = set(sync_pts)
    room = max(0, a.max - len(pts))
    if other and room:
        stride = max(1, len(other) // room)
        pts.update(other[::stride][:room])
    if a.max and len(pts) > a.max:
        # Too many flushes: keep the marks, then an even sample of the rest.
        marks = [e["index"] for e in entries if e["flags"] & LW_MARK]
        rest = sorted(pts - set(marks))
        keep = max(0, a.max - len(marks))
        stride = max(1, -(-len(rest) // keep)) if keep else len(rest) + 1
        pts = set(marks) | set(rest[::stride][:keep])
    pts = sorted(pts)
    meta = [(o, o + n) for _, o, n in snapshot(a.base)["objects"] if n] if a.torn else []

    def is_meta(off, ln):
        return any(off < e and b < off + ln for b, e in meta)

    os.makedirs(a.outdir, exist_ok=True)
    work = os.path.join(a.outdir, "work.img")
    shutil.copyfile(a.base, work)
    described = []
    last_mark = None
    step = 0
    n_sync = 0
    undo, epoch_meta, n_torn = [], False, 0
    with open(a.log, "rb") as lf, open(work, "r+b") as w:
        j = 0
        for e in entries:
            if not e["flags"] & LW_DISCARD and e["nr_sectors"]:
                off, ln = e["sector"] * ss, e["nr_sectors"] * ss
                if is_meta(off, ln):
                    epoch_meta = True
                elif a.torn:
                    w.seek(off)
                    undo.append((off, w.read(ln)))
                lf.seek(e["data"])
                w.seek(off)
                w.write(lf.read(ln))
            if e["mark"]:
                last_mark = e["mark"]
                if e["mark"].startswith("step"):
                    step = int(e["mark"][4:])
            if e["flags"] & (LW_FLUSH | LW_FUA):
                n_sync += 1
            if j < len(pts) and pts[j] == e["index"]:
                w.flush()
                name = "p%04d.img" % e["index"]
                shutil.copyfile(work, os.path.join(a.outdir, name))
                described.append({"entry": e["index"], "file": name, "flags": lw_flagstr(e["flags"]),
                                  "last_mark": last_mark, "step_done": step,
                                  "flushes_before": n_sync, "torn": False})
                j += 1
            if e["flags"] & LW_FLUSH:
                if undo and epoch_meta and n_torn < a.torn:
                    w.flush()
                    name = "t%04d.img" % e["index"]
                    path = os.path.join(a.outdir, name)
                    shutil.copyfile(work, path)
                    with open(path, "r+b") as t:
                        for off, old in reversed(undo):
                            t.seek(off)
                            t.write(old)
                    described.append({"entry": e["index"], "file": name, "flags": "torn",
                                      "last_mark": last_mark, "step_done": step,
                                      "flushes_before": n_sync, "torn": True})
                    n_torn += 1
                undo, epoch_meta = [], False
    os.unlink(work)
    with open(os.path.join(a.outdir, "points.json"), "w") as f:
        json.dump({"entries": len(entries), "sync_entries": len(sync_pts), "points": described}, f)
    print(json.dumps({"entries": len(entries), "sync_entries": len(sync_pts),
                      "points": len(described), "torn": n_torn}))

# ------------------------------------------------------------------ history oracle


def cmd_history(a):
    """ACTUAL (a raw virtual disk after a crash) against the writes of the
    steps: every step up to --done (and of --done-steps) must be there
    exactly; sectors written by a step in flight (--maybe, default
    --done + 1) may hold the old or any new value of that step; everything
    else must equal the state after the acknowledged steps."""
    ops = read_ops(a.ops)
    done = a.done
    done_steps = set(range(done + 1))
    if a.done_steps:
        done_steps.update(int(x) for x in a.done_steps.split(",") if x)
    maybe = set(int(x) for x in a.maybe.split(",") if x) if a.maybe is not None else {done + 1}
    exp = a.expected_out
    shutil.copyfile(a.base, exp)
    apply_ops([o for o in ops if o["step"] in done_steps], a.pattern, exp)
    nxt = [o for o in ops if o["step"] in maybe]
    allowed = {}
    with open(a.pattern, "rb") as p, open(exp, "rb") as e:
        for o in nxt:
            p.seek(o["src"])
            data = p.read(o["len"])
            for s in range(0, o["len"], SECTOR):
                sec = (o["off"] + s) // SECTOR
                if sec not in allowed:
                    e.seek(sec * SECTOR)
                    allowed[sec] = {e.read(SECTOR)}
                allowed[sec].add(data[s:s + SECTOR])
    bad = []
    with open(exp, "rb") as fe, open(a.actual, "rb") as fa:
        fe.seek(0, 2)
        size = fe.tell()
        fa.seek(0, 2)
        if fa.tell() < size:
            print("the disk read back is %d bytes, expected %d" % (fa.tell(), size))
            return
        pos = 0
        while pos < size:
            n = min(MiB, size - pos)
            fe.seek(pos)
            fa.seek(pos)
            x, y = fe.read(n), fa.read(n)
            if x != y:
                for s in range(0, n, SECTOR):
                    sec = (pos + s) // SECTOR
                    ys = y[s:s + SECTOR]
                    if x[s:s + SECTOR] == ys:
                        continue
                    if sec in allowed and ys in allowed[sec]:
                        continue
                    bad.append(sec)
            pos += n
    if bad:
        sec = bad[0]
        with open(exp, "rb") as fe, open(a.actual, "rb") as fa:
            fe.seek(sec * SECTOR)
            fa.seek(sec * SECTOR)
            x, y = fe.read(SECTOR), fa.read(SECTOR)
        who = [i + 1 for i, o in enumerate(ops) if o["off"] <= sec * SECTOR < o["off"] + o["len"]]
        kind = "zeros" if y == bytes(SECTOR) else ("0xff garbage" if y.count(0xff) > 400 else "other data")
        print("%d sector(s) hold neither the acknowledged data nor a write in flight; first: "
              "sector %d (virtual offset %d, block %d) reads %s; written by ops %s; %d step(s) done" % (
                  len(bad), sec, sec * SECTOR, sec * SECTOR // a.bs, kind, who[-4:] or "none", done))


def cmd_selftest(a):
    """The oracles on synthetic data: each must accept the right answer and
    reject a wrong one."""
    import tempfile
    d = tempfile.mkdtemp(prefix="wrtool-selftest.")
    ok = True

    def check(name, cond):
        nonlocal ok
        print("%s %s" % ("ok" if cond else "FAILED", name))
        ok = ok and cond

    pat = os.path.join(d, "pat")
    cmd_pattern(argparse.Namespace(out=pat, size=MiB, seed=1))
    base = os.path.join(d, "base")
    with open(base, "wb") as f:
        f.truncate(4 * MiB)
    ops = [{"off": 4096, "len": 8192, "src": 512, "mode": "direct", "step": 1},
           {"off": 1 * MiB - 512, "len": 1024, "src": 0, "mode": "direct", "step": 2},
           {"off": 4096, "len": 512, "src": 9216, "mode": "direct", "step": 3}]
    opsf = os.path.join(d, "ops")
    write_ops(opsf, ops)
    exp = os.path.join(d, "exp")
    shutil.copyfile(base, exp)
    apply_ops(ops, pat, exp)
    with open(pat, "rb") as p, open(exp, "rb") as e:
        p.seek(9216)
        e.seek(4096)
        check("apply: last write wins", p.read(512) == e.read(512))
    with open(exp, "rb") as fe, open(exp, "rb") as fa:
        check("cmp: equal files", first_diff(fe, fa, 0, 0, 4 * MiB)[0] is None)
    bad = os.path.join(d, "bad")
    shutil.copyfile(exp, bad)
    with open(bad, "r+b") as f:
        f.seek(MiB + 7)
        f.write(b"\x55")
    with open(exp, "rb") as fe, open(bad, "rb") as fa:
        r = first_diff(fe, fa, 0, 0, 4 * MiB)
        check("cmp: finds a one-byte difference", r == (MiB + 7, 1))
    # history: after step 1 with step 2 half done is fine; garbage is not.
    act = os.path.join(d, "act")
    shutil.copyfile(base, act)
    apply_ops(ops[:1], pat, act)
    with open(pat, "rb") as p, open(act, "r+b") as t:
        p.seek(0)
        t.seek(MiB - 512)
        t.write(p.read(512))    # first sector of step 2 only
    import io
    import contextlib

    def hist(done, actual):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            cmd_history(argparse.Namespace(ops=opsf, pattern=pat, base=base, actual=actual,
                                           done=done, bs=MiB, expected_out=os.path.join(d, "h"),
                                           done_steps=None, maybe=None))
        return buf.getvalue()

    check("history: torn in-flight step accepted", hist(1, act) == "")
    check("history: unacknowledged step 1 rejected", hist(0, base) == "" and hist(1, base) != "")
    with open(act, "r+b") as t:
        t.seek(2 * MiB)
        t.write(b"\xff" * 512)
    check("history: garbage rejected", "garbage" in hist(1, act))
    # dm-log-writes: a synthetic log, parsed and replayed.
    log = os.path.join(d, "log")
    with open(log, "wb") as f:
        ents = [(8, 2, 0, b"A" * 1024), (0, 0, LW_FLUSH, b""), (0, 0, LW_MARK, b"step1"),
                (9, 1, LW_FUA, b"B" * 512), (0, 0, LW_MARK, b"end")]
        f.write(struct.pack("<QQQI", LW_MAGIC, 1, len(ents), 512).ljust(512, b"\0"))
        for sector, n, fl, data in ents:
            mark = fl & LW_MARK
            f.write(struct.pack("<QQQQ", sector, n, fl, len(data)).ljust(32, b"\0") +
                    (data if mark else b"").ljust(480, b"\0"))
            if not mark:
                f.write(data)
    entries, ss = lw_parse(log)
    check("lw: parse", [e["flags"] for e in entries] == [0, 1, 8, 2, 8] and entries[2]["mark"] == "step1")
    outd = os.path.join(d, "replay")
    lbase = os.path.join(d, "lbase")
    with open(lbase, "wb") as f:
        f.write(b"\0" * 8192)
    with contextlib.redirect_stdout(io.StringIO()):
        cmd_lw_replay(argparse.Namespace(log=log, base=lbase, outdir=outd, max=100, torn=0))
    with open(os.path.join(outd, "points.json")) as f:
        pj = json.load(f)
    with open(os.path.join(outd, "p0001.img"), "rb") as f:
        b1 = f.read()
    with open(os.path.join(outd, "p0003.img"), "rb") as f:
        b3 = f.read()
    check("lw: replay to the flush", b1[4096:5120] == b"A" * 1024 and b1[5120:5632] == bytes(512))
    check("lw: replay to the FUA", b3[4096:4608] == b"A" * 512 and b3[4608:5120] == b"B" * 512)
    check("lw: points and marks", [p["entry"] for p in pj["points"]] == [0, 1, 2, 3, 4]
          and pj["points"][2]["step_done"] == 1 and pj["points"][1]["step_done"] == 0)
    shutil.rmtree(d)
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pattern")
    p.add_argument("out")
    p.add_argument("size", type=int)
    p.add_argument("seed", type=int)
    p.set_defaults(fn=cmd_pattern)
    p = sub.add_parser("gen")
    p.add_argument("image")
    p.add_argument("out")
    p.add_argument("--pat-size", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--random", type=int, default=12)
    p.add_argument("--explicit", help="OFF:LEN,... instead of the generated writes")
    p.set_defaults(fn=cmd_gen)
    p = sub.add_parser("steps")
    p.add_argument("out")
    p.add_argument("--vsize", type=int, required=True)
    p.add_argument("--bs", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--pat-size", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--buffered", type=float, default=0.25)
    p.add_argument("--sleep-every", type=int, default=0,
                   help="every Nth step waits --sleep seconds before its fsync")
    p.add_argument("--sleep", default="1.5")
    p.set_defaults(fn=cmd_steps)
    p = sub.add_parser("apply")
    p.add_argument("ops")
    p.add_argument("pattern")
    p.add_argument("target")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--last", type=int, default=None)
    p.add_argument("--upto-step", type=int, default=None)
    p.set_defaults(fn=cmd_apply)
    p = sub.add_parser("cmp")
    p.add_argument("expected")
    p.add_argument("actual")
    p.add_argument("--region", action="append", help="EXP_OFF:ACT_OFF:LEN")
    p.add_argument("--ops")
    p.add_argument("--bs", type=int, default=0)
    p.add_argument("--what", default="content")
    p.set_defaults(fn=cmd_cmp)
    p = sub.add_parser("vhdi")
    p.add_argument("image")
    p.add_argument("raw")
    p.add_argument("--region", action="append", help="VIRT_OFF:RAW_OFF:LEN")
    p.set_defaults(fn=cmd_vhdi)
    p = sub.add_parser("info")
    p.add_argument("image")
    p.set_defaults(fn=cmd_info)
    p = sub.add_parser("layout")
    p.add_argument("before")
    p.add_argument("image")
    p.add_argument("--device-size", type=int, default=0)
    p.add_argument("--expect-blocks")
    p.add_argument("--expect-data-change", action="store_true")
    p.set_defaults(fn=cmd_layout)
    p = sub.add_parser("lw-list")
    p.add_argument("log")
    p.set_defaults(fn=cmd_lw_list)
    p = sub.add_parser("lw-replay")
    p.add_argument("log")
    p.add_argument("base")
    p.add_argument("outdir")
    p.add_argument("--max", type=int, default=120)
    p.add_argument("--torn", type=int, default=0)
    p.set_defaults(fn=cmd_lw_replay)
    p = sub.add_parser("history")
    p.add_argument("ops")
    p.add_argument("pattern")
    p.add_argument("base")
    p.add_argument("actual")
    p.add_argument("--done", type=int, required=True, help="steps 1..DONE were acknowledged")
    p.add_argument("--done-steps", help="more acknowledged steps: N,M,...")
    p.add_argument("--maybe", help="steps in flight (default DONE+1): N,M,...")
    p.add_argument("--bs", type=int, required=True)
    p.add_argument("--expected-out", required=True)
    p.set_defaults(fn=cmd_history)
    p = sub.add_parser("selftest")
    p.set_defaults(fn=cmd_selftest)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
