#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Cut VHDX images into the inputs each fuzz target expects.

Usage: cut-seeds.py OUTDIR IMAGE...   writes OUTDIR/<target>/<image>-<piece>
The input formats are described at the top of each tests/fuzz/fuzz_*.c.
"""

import os
import struct
import sys
import uuid

KiB = 1024
MiB = 1024 * KiB
GUID_BAT = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
GUID_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")
GUID_FILE_PARAMS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
GUID_VDISK_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
GUID_LOGICAL_SS = uuid.UUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
GUID_PHYSICAL_SS = uuid.UUID("CDA348C7-445D-4471-9CC9-E9885251C556")
GUID_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
FUZZ_OPEN_MAX = 16 * MiB


def trim(data, unit=4 * KiB, least=0):
    """Drops trailing zeros, keeping whole units and at least @least bytes."""
    end = len(data.rstrip(b"\0"))
    end = max(least, -(-end // unit) * unit)
    return data[:end]


def current_header(img):
    best = None
    for off in (64 * KiB, 128 * KiB):
        h = img[off:off + 4 * KiB]
        if h[:4] != b"head":
            continue
        seq = struct.unpack_from("<Q", h, 8)[0]
        if best is None or seq > best[0]:
            best = (seq, h)
    return best[1] if best else None


def regions(img):
    rt = img[192 * KiB:256 * KiB]
    if rt[:4] != b"regi":
        return {}
    count = min(struct.unpack_from("<I", rt, 8)[0], 2047)
    out = {}
    for i in range(count):
        g, off, length, _ = struct.unpack_from("<16sQII", rt, 16 + 32 * i)
        out[uuid.UUID(bytes_le=g)] = (off, length)
    return out


def metadata_items(md):
    count = struct.unpack_from("<H", md, 10)[0]
    items = {}
    for i in range(min(count, 2047)):
        g, off, length, _flags, _ = struct.unpack_from("<16sIIII", md,
                                                      32 + 32 * i)
        items[uuid.UUID(bytes_le=g)] = md[off:off + length]
    return items


def bat_seed(img, regs, md):
    items = metadata_items(md)
    try:
        block_size, flags = struct.unpack("<II", items[GUID_FILE_PARAMS][:8])
        vsize = struct.unpack("<Q", items[GUID_VDISK_SIZE][:8])[0]
        lss = struct.unpack("<I", items[GUID_LOGICAL_SS][:4])[0]
        pss = struct.unpack("<I", items[GUID_PHYSICAL_SS][:4])[0]
    except (KeyError, struct.error):
        return None
    shift = block_size.bit_length() - 1 - 20
    if not 0 <= shift <= 8 or vsize // block_size > 16384:
        return None
    hdr = current_header(img)
    no_log = hdr is None or struct.unpack_from("<I", hdr, 68)[0] == 0
    fl = (lss == 4096) | (pss == 4096) << 1 | bool(flags & 2) << 2 | no_log << 3
    geo = struct.pack("<BBIQH", shift, fl, vsize // lss, len(img), 0)
    off, length = regs[GUID_BAT]
    return geo + trim(img[off:off + length], 8)


def used_end(img, regs, md):
    """The end of the last object the image uses, so a trimmed seed keeps it."""
    end = max([o + l for o, l in regs.values()] + [0])
    hdr = current_header(img)
    if hdr:
        log_length, log_offset = struct.unpack_from("<IQ", hdr, 68)
        end = max(end, log_offset + log_length)
    try:
        block_size = struct.unpack("<I", metadata_items(md)[GUID_FILE_PARAMS][:4])[0]
        off, length = regs[GUID_BAT]
    except (KeyError, struct.error, TypeError):
        return end
    bat = img[off:off + length]
    for i in range(0, len(bat) - 7, 8):
        entry = struct.unpack_from("<Q", bat, i)[0]
        if entry & 7 in (6, 7):
            end = max(end, (entry & 0xFFFFFFFFFFF00000) + block_size)
    return min(end, len(img))


def log_seed(img, hdr):
    log_length, log_offset = struct.unpack_from("<IQ", hdr, 68)
    if not log_length or log_length > MiB or log_offset + log_length > len(img):
        return None
    log = img[log_offset:log_offset + log_length]
    guid = hdr[48:64]
    if guid == bytes(16):
        # A clean log still holds the last session's entries.
        if log[:4] != b"loge":
            return None
        guid = log[32:48]
    extra = max(0, -(-(len(img) - MiB - MiB) // MiB)) % 64
    prefix = guid + bytes([log_length // (4 * KiB) - 1, extra, 0, 0])
    fixing = guid + bytes([log_length // (4 * KiB) - 1, extra, 1, 0])
    return [prefix + trim(log), fixing + trim(log)]


def cut(outdir, path):
    img = open(path, "rb").read()
    name = os.path.basename(path).rsplit(".", 1)[0]
    seeds = {}
    size = struct.pack("<Q", len(img))
    seeds["fuzz_header"] = [img[0:4 * KiB] + img[64 * KiB:68 * KiB] +
                            img[128 * KiB:132 * KiB] + size]
    seeds["fuzz_region"] = [img[192 * KiB:256 * KiB] + size,
                            img[256 * KiB:320 * KiB] + size]
    regs = regions(img)
    md = None
    if GUID_METADATA in regs:
        off, length = regs[GUID_METADATA]
        md = img[off:off + length]
        seeds["fuzz_metadata"] = [trim(md, least=64 * KiB)]
        # fuzz_metadata also parses its input as a parent locator item.
        locator = metadata_items(md).get(GUID_PARENT_LOCATOR)
        if locator:
            seeds["fuzz_metadata"].append(locator)
        if GUID_BAT in regs:
            bat = bat_seed(img, regs, md)
            if bat:
                seeds["fuzz_bat"] = [bat]
    hdr = current_header(img)
    if hdr:
        log = log_seed(img, hdr)
        if log:
            seeds["fuzz_log"] = log
    # fuzz_open's device is its input rounded up to 1 MiB.
    whole = trim(img)
    need = used_end(img, regs, md)
    if -(-len(whole) // MiB) * MiB < need:
        whole = img[:max(need - MiB + 4 * KiB, 0)]
    if len(whole) <= FUZZ_OPEN_MAX:
        seeds["fuzz_open"] = [whole]
    for target, pieces in seeds.items():
        os.makedirs(os.path.join(outdir, target), exist_ok=True)
        for i, piece in enumerate(pieces):
            with open(os.path.join(outdir, target, f"{name}-{i}"), "wb") as f:
                f.write(piece)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for path in sys.argv[2:]:
        cut(sys.argv[1], path)


if __name__ == "__main__":
    main()
