#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Inspect and damage VHDX images for the dm-vhdx end-to-end tests.

Parses the on-disk structures directly from MS-VHDX (struct module only) so
the tests can aim damage at one structure and, where the structure is
checksummed, keep the checksum valid when the damage must be "semantic"
rather than a plain CRC mismatch.

Usage: vhdxmangle.py COMMAND IMAGE [ARGS...]   (see --help)
"""

import argparse
import json
import struct
import sys
import uuid

KiB = 1024
MiB = 1024 * KiB

HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
REGION_OFFSETS = (192 * KiB, 256 * KiB)
REGION_SIZE = 64 * KiB

GUID_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
GUID_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
GUID_FILE_PARAMS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
GUID_VDISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
GUID_LOGICAL_SS = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
GUID_PHYSICAL_SS = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")

STATE_FULLY_PRESENT = 6
BAT_OFFSET_MASK = 0xFFFFFFFFFFF00000

# ---------------------------------------------------------------- CRC-32C

def _crc32c_table():
    poly = 0x82F63B78  # 0x1EDC6F41 reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    tab = _TABLE
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksum_with_field_zeroed(buf, field_off=4):
    b = bytearray(buf)
    b[field_off:field_off + 4] = b"\0\0\0\0"
    return crc32c(bytes(b))

# ---------------------------------------------------------------- parsing

def guid_from_bytes(b):
    return uuid.UUID(bytes_le=bytes(b))


def read_at(f, off, n):
    f.seek(off)
    data = f.read(n)
    if len(data) != n:
        raise SystemExit("short read at %d (%d of %d bytes)" % (off, len(data), n))
    return data


def parse_header(buf):
    (sig, csum, seq) = struct.unpack_from("<4sIQ", buf, 0)
    log_guid = guid_from_bytes(buf[48:64])
    (log_version, version, log_length, log_offset) = struct.unpack_from("<HHIQ", buf, 64)
    calc = checksum_with_field_zeroed(buf)
    return {
        "signature_ok": sig == b"head",
        "checksum": csum,
        "checksum_calc": calc,
        "checksum_ok": csum == calc,
        "valid": sig == b"head" and csum == calc and version == 1,
        "sequence": seq,
        "log_guid": str(log_guid),
        "log_version": log_version,
        "version": version,
        "log_length": log_length,
        "log_offset": log_offset,
    }


def parse_region_table(buf):
    (sig, csum, count, _res) = struct.unpack_from("<4sIII", buf, 0)
    calc = checksum_with_field_zeroed(buf)
    entries = []
    for i in range(min(count, 2047)):
        off = 16 + 32 * i
        g = guid_from_bytes(buf[off:off + 16])
        (foff, length, req) = struct.unpack_from("<QII", buf, off + 16)
        entries.append({"guid": str(g).upper(), "file_offset": foff,
                        "length": length, "required": req, "entry_offset": off})
    return {"signature_ok": sig == b"regi", "checksum": csum,
            "checksum_calc": calc, "checksum_ok": csum == calc,
            "valid": sig == b"regi" and csum == calc and count <= 2047,
            "entry_count": count, "entries": entries}


def find_region(rt, guid):
    for e in rt["entries"]:
        if uuid.UUID(e["guid"]) == guid:
            return e
    return None


def parse_metadata(f, moff):
    buf = read_at(f, moff, 64 * KiB)
    (sig, _r, count) = struct.unpack_from("<8sHH", buf, 0)
    items = {}
    entries = []
    for i in range(min(count, 2047)):
        off = 32 + 32 * i
        g = guid_from_bytes(buf[off:off + 16])
        (ioff, ilen, flags) = struct.unpack_from("<III", buf, off + 16)
        entries.append({"guid": str(g).upper(), "offset": ioff, "length": ilen,
                        "flags": flags, "entry_offset": moff + off})
        if ilen and ilen <= MiB:
            items[g] = read_at(f, moff + ioff, ilen)
    md = {"signature_ok": sig == b"metadata", "entry_count": count,
          "entries": entries}
    if GUID_FILE_PARAMS in items:
        (bs, flags) = struct.unpack_from("<II", items[GUID_FILE_PARAMS], 0)
        md["block_size"] = bs
        md["file_flags"] = flags
    if GUID_VDISK_SIZE in items:
        md["virtual_size"] = struct.unpack_from("<Q", items[GUID_VDISK_SIZE], 0)[0]
    if GUID_LOGICAL_SS in items:
        md["logical_sector_size"] = struct.unpack_from("<I", items[GUID_LOGICAL_SS], 0)[0]
    if GUID_PHYSICAL_SS in items:
        md["physical_sector_size"] = struct.unpack_from("<I", items[GUID_PHYSICAL_SS], 0)[0]
    return md


class Image:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            f.seek(0, 2)
            self.file_size = f.tell()
            self.file_id_ok = read_at(f, 0, 8) == b"vhdxfile"
            self.headers = [parse_header(read_at(f, o, HEADER_SIZE)) for o in HEADER_OFFSETS]
            self.regions = [parse_region_table(read_at(f, o, REGION_SIZE)) for o in REGION_OFFSETS]
            rt = next((r for r in self.regions if r["valid"]), None)
            if rt is None:
                raise SystemExit("%s: no valid region table" % path)
            bat = find_region(rt, GUID_BAT)
            meta = find_region(rt, GUID_METADATA)
            if bat is None or meta is None:
                raise SystemExit("%s: BAT or metadata region missing" % path)
            self.bat_offset = bat["file_offset"]
            self.bat_length = bat["length"]
            self.metadata_offset = meta["file_offset"]
            self.metadata_length = meta["length"]
            self.md = parse_metadata(f, self.metadata_offset)
            self.block_size = self.md["block_size"]
            self.virtual_size = self.md["virtual_size"]
            self.lss = self.md.get("logical_sector_size", 512)
            self.chunk_ratio = (2 ** 23 * self.lss) // self.block_size
            self.payload_blocks = -(-self.virtual_size // self.block_size)
            self.bat_entries = (self.payload_blocks +
                                (self.payload_blocks - 1) // self.chunk_ratio)
            raw = read_at(f, self.bat_offset, self.bat_entries * 8)
            self.bat = list(struct.unpack("<%dQ" % self.bat_entries, raw))

    def current_header(self):
        valid = [(h["sequence"], i) for i, h in enumerate(self.headers) if h["valid"]]
        if not valid:
            return None
        return max(valid)[1]

    def bat_index(self, block):
        return block + block // self.chunk_ratio

    def payload_states(self):
        return [self.bat[self.bat_index(p)] for p in range(self.payload_blocks)]

    def allocated(self):
        return [p for p in range(self.payload_blocks)
                if self.bat[self.bat_index(p)] & 7 == STATE_FULLY_PRESENT]

    def info(self):
        cur = self.current_header()
        return {
            "file_size": self.file_size,
            "file_id_ok": self.file_id_ok,
            "headers": self.headers,
            "current_header": None if cur is None else cur + 1,
            "region_tables": self.regions,
            "bat_offset": self.bat_offset,
            "bat_length": self.bat_length,
            "metadata_offset": self.metadata_offset,
            "metadata_length": self.metadata_length,
            "log_offset": None if cur is None else self.headers[cur]["log_offset"],
            "log_length": None if cur is None else self.headers[cur]["log_length"],
            "log_guid": None if cur is None else self.headers[cur]["log_guid"],
            "metadata": self.md,
            "block_size": self.block_size,
            "virtual_size": self.virtual_size,
            "logical_sector_size": self.lss,
            "chunk_ratio": self.chunk_ratio,
            "payload_blocks": self.payload_blocks,
            "bat_entry_count": self.bat_entries,
            "allocated_blocks": len(self.allocated()),
            "payload_bat": ["0x%x" % e for e in self.payload_states()],
        }

# ---------------------------------------------------------------- writing

def patch(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def xor_byte(path, off, mask=0xFF):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        if len(b) != 1:
            raise SystemExit("offset %d beyond end of file" % off)
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))


def fix_crc(path, off, size):
    with open(path, "r+b") as f:
        buf = read_at(f, off, size)
        f.seek(off + 4)
        f.write(struct.pack("<I", checksum_with_field_zeroed(buf)))


def set_header_field(path, which, field, value):
    fields = {"sequence": (8, "<Q"), "log_version": (64, "<H"),
              "version": (66, "<H"), "log_length": (68, "<I"),
              "log_offset": (72, "<Q")}
    base = HEADER_OFFSETS[which - 1]
    if field == "log_guid":
        patch(path, base + 48, uuid.UUID(value).bytes_le)
    else:
        (o, fmt) = fields[field]
        patch(path, base + o, struct.pack(fmt, value))
    fix_crc(path, base, HEADER_SIZE)


def set_region_entry(path, which, guid, field, value, fix=True):
    img = Image(path)
    rt = img.regions[which - 1]
    e = find_region(rt, uuid.UUID(guid))
    if e is None:
        raise SystemExit("region %s not in table %d" % (guid, which))
    base = REGION_OFFSETS[which - 1]
    (o, fmt) = {"file_offset": (16, "<Q"), "length": (24, "<I"),
                "required": (28, "<I")}[field]
    patch(path, base + e["entry_offset"] + o, struct.pack(fmt, value))
    if fix:
        fix_crc(path, base, REGION_SIZE)


def add_region_entry(path, which, guid, file_offset, length, required):
    base = REGION_OFFSETS[which - 1]
    with open(path, "rb") as f:
        buf = read_at(f, base, REGION_SIZE)
    count = struct.unpack_from("<I", buf, 8)[0]
    ent = uuid.UUID(guid).bytes_le + struct.pack("<QII", file_offset, length, required)
    patch(path, base + 16 + 32 * count, ent)
    patch(path, base + 8, struct.pack("<I", count + 1))
    fix_crc(path, base, REGION_SIZE)


def set_bat(path, index, value):
    img = Image(path)
    if not 0 <= index < img.bat_entries:
        raise SystemExit("BAT index %d out of range (%d entries)" % (index, img.bat_entries))
    patch(path, img.bat_offset + 8 * index, struct.pack("<Q", value))

# ---------------------------------------------------------------- commands

def cmd_selftest(args):
    # RFC 3720 / iSCSI check value for CRC-32C.
    ok = crc32c(b"123456789") == 0xE3069283
    ok &= crc32c(bytes(32)) == 0x8A9136AA
    if args.image:
        img = Image(args.image)
        for i, h in enumerate(img.headers):
            print("header %d: stored 0x%08x computed 0x%08x %s" %
                  (i + 1, h["checksum"], h["checksum_calc"],
                   "OK" if h["checksum_ok"] else "MISMATCH"))
            ok &= h["checksum_ok"]
        for i, r in enumerate(img.regions):
            print("region table %d: stored 0x%08x computed 0x%08x %s" %
                  (i + 1, r["checksum"], r["checksum_calc"],
                   "OK" if r["checksum_ok"] else "MISMATCH"))
            ok &= r["checksum_ok"]
    print("selftest", "OK" if ok else "FAILED")
    return 0 if ok else 1


def cmd_info(args):
    img = Image(args.image)
    inf = img.info()
    if args.field:
        v = inf
        for k in args.field.split("."):
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v if not isinstance(v, (dict, list)) else json.dumps(v))
    else:
        print(json.dumps(inf, indent=1))
    return 0


def cmd_flip(args):
    xor_byte(args.image, int(args.offset, 0), int(args.mask, 0))
    return 0


def cmd_header_flip(args):
    # A byte in the reserved area: only the checksum notices.
    xor_byte(args.image, HEADER_OFFSETS[args.which - 1] + args.at)
    return 0


def cmd_header_set(args):
    v = args.value if args.field == "log_guid" else int(args.value, 0)
    set_header_field(args.image, args.which, args.field, v)
    return 0


def cmd_region_flip(args):
    xor_byte(args.image, REGION_OFFSETS[args.which - 1] + args.at)
    return 0


def cmd_region_set(args):
    for w in args.which:
        set_region_entry(args.image, w, args.guid, args.field, int(args.value, 0))
    return 0


def cmd_region_add(args):
    for w in args.which:
        add_region_entry(args.image, w, args.guid, int(args.file_offset, 0),
                         int(args.length, 0), int(args.required, 0))
    return 0


def cmd_metadata_sig(args):
    img = Image(args.image)
    xor_byte(args.image, img.metadata_offset + args.at)
    return 0


def cmd_bat_get(args):
    img = Image(args.image)
    idx = img.bat_index(args.block) if args.payload else args.block
    print("0x%x" % img.bat[idx])
    return 0


def cmd_bat_set(args):
    img = Image(args.image)
    idx = img.bat_index(args.block) if args.payload else args.block
    set_bat(args.image, idx, int(args.value, 0))
    return 0


def cmd_bat_beyond_end(args):
    """Point an allocated payload block past the end of the file."""
    img = Image(args.image)
    alloc = img.allocated()
    if not alloc:
        raise SystemExit("no allocated block to redirect")
    end = (img.file_size + args.extra_mib * MiB + MiB - 1) & ~(MiB - 1)
    set_bat(args.image, img.bat_index(alloc[-1]), end | STATE_FULLY_PRESENT)
    print("block %d -> 0x%x (file size 0x%x)" % (alloc[-1], end, img.file_size))
    return 0


def cmd_bat_dup(args):
    """Make a second payload block share the first allocated block's offset."""
    img = Image(args.image)
    alloc = img.allocated()
    if not alloc:
        raise SystemExit("no allocated block")
    src = alloc[0]
    dst = next((p for p in range(img.payload_blocks) if p != src and
                (p not in alloc or args.use_allocated)), None)
    if args.use_allocated and len(alloc) > 1:
        dst = alloc[1]
    if dst is None:
        raise SystemExit("no second block")
    val = img.bat[img.bat_index(src)]
    set_bat(args.image, img.bat_index(dst), val)
    print("block %d -> 0x%x (same as block %d)" % (dst, val, src))
    return 0


def cmd_bat_overlap(args):
    """Point a payload block at a given region (metadata, bat or log)."""
    img = Image(args.image)
    target = {"metadata": img.metadata_offset, "bat": img.bat_offset,
              "log": img.headers[img.current_header()]["log_offset"],
              "header": 0}[args.region]
    block = args.block
    set_bat(args.image, img.bat_index(block), (target & BAT_OFFSET_MASK) | STATE_FULLY_PRESENT)
    print("block %d -> 0x%x (%s region)" % (block, target, args.region))
    return 0


def cmd_set_sector_size(args):
    """Rewrite the logical/physical sector size metadata items."""
    img = Image(args.image)
    done = 0
    for e in img.md["entries"]:
        g = uuid.UUID(e["guid"])
        val = {GUID_LOGICAL_SS: args.logical, GUID_PHYSICAL_SS: args.physical}.get(g)
        if val is not None:
            patch(args.image, img.metadata_offset + e["offset"], struct.pack("<I", val))
            done += 1
    if done != 2:
        raise SystemExit("sector size items not found")
    return 0


def cmd_set_block_size(args):
    """Rewrite the block size in the file parameters item."""
    img = Image(args.image)
    for e in img.md["entries"]:
        if uuid.UUID(e["guid"]) == GUID_FILE_PARAMS:
            patch(args.image, img.metadata_offset + e["offset"],
                  struct.pack("<I", args.block_size))
            return 0
    raise SystemExit("file parameters item not found")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("selftest", help="check CRC-32C (and an image's stored checksums)")
    p.add_argument("image", nargs="?")
    p.set_defaults(fn=cmd_selftest)

    p = sub.add_parser("info", help="print parsed structures as JSON")
    p.add_argument("image")
    p.add_argument("field", nargs="?", help="dotted path into the JSON")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("flip", help="xor one byte at an absolute offset")
    p.add_argument("image")
    p.add_argument("offset")
    p.add_argument("mask", nargs="?", default="0xff")
    p.set_defaults(fn=cmd_flip)

    p = sub.add_parser("header-flip", help="flip a checksummed byte of header 1|2")
    p.add_argument("image")
    p.add_argument("which", type=int, choices=(1, 2))
    p.add_argument("--at", type=int, default=1000)
    p.set_defaults(fn=cmd_header_flip)

    p = sub.add_parser("header-set", help="set a header field, CRC recomputed")
    p.add_argument("image")
    p.add_argument("which", type=int, choices=(1, 2))
    p.add_argument("field", choices=("sequence", "log_version", "version",
                                     "log_length", "log_offset", "log_guid"))
    p.add_argument("value")
    p.set_defaults(fn=cmd_header_set)

    p = sub.add_parser("region-flip", help="flip a checksummed byte of region table 1|2")
    p.add_argument("image")
    p.add_argument("which", type=int, choices=(1, 2))
    p.add_argument("--at", type=int, default=2000)
    p.set_defaults(fn=cmd_region_flip)

    p = sub.add_parser("region-set", help="set a region entry field, CRC recomputed")
    p.add_argument("image")
    p.add_argument("guid", help="region GUID, or 'bat' / 'metadata'")
    p.add_argument("field", choices=("file_offset", "length", "required"))
    p.add_argument("value")
    p.add_argument("--which", type=int, action="append", choices=(1, 2))
    p.set_defaults(fn=cmd_region_set)

    p = sub.add_parser("region-add", help="append a region entry, CRC recomputed")
    p.add_argument("image")
    p.add_argument("guid")
    p.add_argument("file_offset")
    p.add_argument("length")
    p.add_argument("required")
    p.add_argument("--which", type=int, action="append", choices=(1, 2))
    p.set_defaults(fn=cmd_region_add)

    p = sub.add_parser("metadata-sig", help="damage the metadata table signature")
    p.add_argument("image")
    p.add_argument("--at", type=int, default=0)
    p.set_defaults(fn=cmd_metadata_sig)

    for name, fn in (("bat-get", cmd_bat_get), ("bat-set", cmd_bat_set)):
        p = sub.add_parser(name, help="read/write a BAT entry (raw index, or "
                           "payload block with --payload)")
        p.add_argument("image")
        p.add_argument("block", type=int)
        if name == "bat-set":
            p.add_argument("value")
        p.add_argument("--payload", action="store_true")
        p.set_defaults(fn=fn)

    p = sub.add_parser("bat-beyond-end", help="point an allocated block past EOF")
    p.add_argument("image")
    p.add_argument("--extra-mib", type=int, default=64)
    p.set_defaults(fn=cmd_bat_beyond_end)

    p = sub.add_parser("bat-dup", help="two payload blocks at one file offset")
    p.add_argument("image")
    p.add_argument("--use-allocated", action="store_true")
    p.set_defaults(fn=cmd_bat_dup)

    p = sub.add_parser("bat-overlap", help="point a payload block at a region")
    p.add_argument("image")
    p.add_argument("region", choices=("metadata", "bat", "log", "header"))
    p.add_argument("--block", type=int, default=0)
    p.set_defaults(fn=cmd_bat_overlap)

    p = sub.add_parser("set-sector-size", help="set logical/physical sector size items")
    p.add_argument("image")
    p.add_argument("logical", type=int)
    p.add_argument("physical", type=int)
    p.set_defaults(fn=cmd_set_sector_size)

    p = sub.add_parser("set-block-size", help="set the file parameters block size")
    p.add_argument("image")
    p.add_argument("block_size", type=lambda x: int(x, 0))
    p.set_defaults(fn=cmd_set_block_size)

    args = ap.parse_args()
    if getattr(args, "which", None) is None and args.cmd in ("region-set", "region-add"):
        args.which = [1, 2]
    if args.cmd == "region-set":
        args.guid = {"bat": str(GUID_BAT), "metadata": str(GUID_METADATA)}.get(
            args.guid, args.guid)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
