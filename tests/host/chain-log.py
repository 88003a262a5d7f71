#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Usage: MANGLE_DIR=tests/e2e chain-log.py IMAGE LOGGUID  (the headers name LOGGUID)
#
# Writes a log of 1-sector entries with consecutive sequence numbers whose
# head names a Tail outside every run: a search that follows the run again
# from each of its entries takes a number of steps quadratic in the ring.
import os, struct, sys, uuid
sys.path.insert(0, os.environ["MANGLE_DIR"])
import vhdxmangle as vm

# vhdxmangle's CRC-32C table, driven here without its inversions.
TABLE = vm._TABLE

def feed(reg, data):
    for byte in data:
        reg = TABLE[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg

# The register after 4032 zero bytes is a linear function of the one
# before: its image of each bit, so an entry costs 64 bytes of CRC.
ZEROS = 4096 - 64
COLUMNS = [feed(1 << i, bytes(ZEROS)) for i in range(32)]

def after_zeros(reg):
    out = 0
    for i in range(32):
        if reg >> i & 1:
            out ^= COLUMNS[i]
    return out

def entry(seq, tail, guid, length):
    def hdr(crc):
        return struct.pack("<4sIIIQII16sQQ", b"loge", crc, 4096, tail, seq,
                           0, 0, guid.bytes_le, length, length)
    crc = after_zeros(feed(0xFFFFFFFF, hdr(0))) ^ 0xFFFFFFFF
    return hdr(crc).ljust(4096, b"\0")

path, guid = sys.argv[1], uuid.UUID(sys.argv[2])
img = vm.Image(path)
h = img.headers[img.current_header()]
off, length = h["log_offset"], h["log_length"]
n = length // 4096
size = os.path.getsize(path)
with open(path, "r+b") as f:
    f.seek(off)
    for i in range(n - 1):
        f.write(entry(i + 1, (n - 1) * 4096, guid, size))
    f.write(b"garbage!".ljust(4096, b"\0"))
