#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Inspect and damage the differencing parts of a VHDX image, straight from
MS-VHDX 2.5 and 2.6.2.6 (struct module only, no code shared with vhdx/):
the parent locator item and the BAT of a differencing image.

    vhdxdiff.py info IMAGE           JSON: flags, locator, BAT size and states
    vhdxdiff.py damage IMAGE KIND    break the locator in one way (KINDS below)
"""

import json
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import vhdxmangle as vm  # noqa: E402  (region table and metadata table parse)

GUID_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
GUID_LOCATOR_VHDX = uuid.UUID("B04AEFB7-D19E-4A81-B789-25B8E9445913")
HAS_PARENT = 2
MiB = 1 << 20


def metadata_location(path):
    with open(path, "rb") as f:
        rt = next(vm.parse_region_table(vm.read_at(f, o, vm.REGION_SIZE))
                  for o in vm.REGION_OFFSETS)
        meta = vm.find_region(rt, vm.GUID_METADATA)
        bat = vm.find_region(rt, vm.GUID_BAT)
        md = vm.parse_metadata(f, meta["file_offset"])
    return meta["file_offset"], bat, md


def locator_entry(md):
    for e in md["entries"]:
        if uuid.UUID(e["guid"]) == GUID_LOCATOR and not e["flags"] & 1:
            return e
    return None


def utf16(buf):
    return buf.decode("utf-16-le")


def parse_locator(item):
    (typ, _res, count) = struct.unpack_from("<16sHH", item, 0)
    pairs = []
    for i in range(count):
        (ko, vo, kl, vl) = struct.unpack_from("<IIHH", item, 20 + 12 * i)
        pairs.append({"key": utf16(item[ko:ko + kl]),
                      "value": utf16(item[vo:vo + vl]),
                      "entry": 20 + 12 * i})
    return {"type": str(uuid.UUID(bytes_le=typ)).upper(), "pairs": pairs}


def cmd_info(path):
    moff, bat, md = metadata_location(path)
    out = {"file_flags": md.get("file_flags"), "bat_length": bat["length"]}
    bs, vs = md["block_size"], md["virtual_size"]
    lss = md.get("logical_sector_size", 512)
    chunk_ratio = (1 << 23) * lss // bs
    payload = -(-vs // bs)
    # MS-VHDX 2.5: a differencing BAT ends with the last chunk's bitmap entry.
    if md.get("file_flags", 0) & HAS_PARENT:
        entries = -(-payload // chunk_ratio) * (chunk_ratio + 1)
    else:
        entries = payload + (payload - 1) // chunk_ratio
    out.update(chunk_ratio=chunk_ratio, payload_blocks=payload,
               bat_entries=entries,
               bat_length_needed=-(-entries * 8 // MiB) * MiB)
    with open(path, "rb") as f:
        raw = vm.read_at(f, bat["file_offset"], min(entries * 8, bat["length"]))
        out["bat_nonzero"] = sum(1 for (e,) in struct.iter_unpack("<Q", raw) if e)
        loc = locator_entry(md)
        if loc:
            item = vm.read_at(f, moff + loc["offset"], loc["length"])
            out["locator"] = parse_locator(item)
            out["locator"]["flags"] = loc["flags"]
    print(json.dumps(out, indent=1))


def damage(path, kind):
    moff, _bat, md = metadata_location(path)
    loc = locator_entry(md)
    item_off = moff + loc["offset"]
    with open(path, "rb") as f:
        item = vm.read_at(f, item_off, loc["length"])
    parsed = parse_locator(item)
    by_key = {p["key"]: p for p in parsed["pairs"]}

    def entry(key):
        return item_off + by_key[key]["entry"]

    if kind == "type":		# an unknown locator type
        vm.patch(path, item_off, uuid.uuid4().bytes_le)
    elif kind == "count":	# more entries than the item holds
        vm.patch(path, item_off + 18, struct.pack("<H", 30))
    elif kind == "key-beyond":	# a key that ends past the item
        vm.patch(path, entry("relative_path"), struct.pack("<I", loc["length"] - 2))
    elif kind == "value-zero":	# a zero value offset
        vm.patch(path, entry("relative_path") + 4, struct.pack("<I", 0))
    elif kind == "odd-length":	# half a UTF-16 unit
        vm.patch(path, entry("relative_path") + 10, struct.pack("<H", 3))
    elif kind == "no-linkage":	# rename parent_linkage to parent_linkagX
        p = by_key["parent_linkage"]
        (ko,) = struct.unpack_from("<I", item, p["entry"])
        vm.patch(path, item_off + ko + 2 * 13, "X".encode("utf-16-le"))
    elif kind == "bad-linkage":	# a value that is not a GUID
        (vo,) = struct.unpack_from("<I", item, by_key["parent_linkage"]["entry"] + 4)
        vm.patch(path, item_off + vo + 2, "zz".encode("utf-16-le"))
    elif kind == "dup-key":	# two relative_path keys
        rel = by_key["relative_path"]["entry"]
        vm.patch(path, item_off + by_key["absolute_win32_path"]["entry"],
                 item[rel:rel + 4])
        (kl,) = struct.unpack_from("<H", item, rel + 8)
        vm.patch(path, item_off + by_key["absolute_win32_path"]["entry"] + 8,
                 struct.pack("<H", kl))
    elif kind == "no-path":	# drop both paths: KeyValueCount 1
        vm.patch(path, item_off + 18, struct.pack("<H", 1))
    elif kind == "nul":		# a NUL character inside a value
        (vo,) = struct.unpack_from("<I", item, by_key["relative_path"]["entry"] + 4)
        vm.patch(path, item_off + vo, b"\0\0")
    elif kind == "missing":	# HasParent set, the locator turned into a user item
        vm.patch(path, loc["entry_offset"] + 24, struct.pack("<I", 1))
    else:
        raise SystemExit("unknown damage " + kind)


KINDS = ("type", "count", "key-beyond", "value-zero", "odd-length", "no-linkage",
         "bad-linkage", "dup-key", "no-path", "nul", "missing")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "info":
        cmd_info(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "damage":
        damage(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 2 and sys.argv[1] == "kinds":
        print(" ".join(KINDS))
    else:
        raise SystemExit(__doc__ + "KINDS: " + " ".join(KINDS))


if __name__ == "__main__":
    main()
