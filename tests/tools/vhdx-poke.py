#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Write a byte pattern into a VHDX image offline, for tests that need
data in a differencing image (QEMU cannot write one).  Independent of
the vhdx/ code: it uses only tests/e2e/vhdxmangle.py's parser.

    vhdx-poke.py IMAGE OFFSET LENGTH BYTE

OFFSET and LENGTH are in bytes of the virtual disk, multiples of the
logical sector size.  A block the range covers whole becomes
FULLY_PRESENT; a block it covers in part becomes PARTIALLY_PRESENT with
its sectors set in the chunk's sector bitmap (differencing images only).
New blocks go past the end of the file.  The log must be empty.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../e2e"))
import vhdxmangle as m  # noqa: E402

FULLY, PARTIALLY = 6, 7
OFFSET_MASK = ~((1 << 20) - 1) & (2 ** 64 - 1)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    path = sys.argv[1]
    off, length, byte = (int(a, 0) for a in sys.argv[2:5])
    img = m.Image(path)
    bs, lss, cr = img.block_size, img.lss, img.chunk_ratio
    if off % lss or length % lss or off + length > img.virtual_size:
        sys.exit("range not in whole sectors of the disk")
    with open(path, "r+b") as f:
        f.seek(0, 2)
        end = (f.tell() + m.MiB - 1) // m.MiB * m.MiB

        def bat(i, v=None):
            f.seek(img.bat_offset + 8 * i)
            if v is None:
                return struct.unpack("<Q", f.read(8))[0]
            f.write(struct.pack("<Q", v))
            return v

        def new_extent(n):
            nonlocal end
            at = end
            end += n
            f.seek(end - 1)
            f.write(b"\0")
            return at

        while length:
            b, within = divmod(off, bs)
            n = min(length, bs - within)
            idx = b + b // cr
            e = bat(idx)
            state, boff = e & 7, e & OFFSET_MASK
            if state not in (FULLY, PARTIALLY):
                state = FULLY if n == bs else PARTIALLY
                boff = new_extent(bs)
                bat(idx, boff | state)
            f.seek(boff + within)
            f.write(bytes([byte]) * n)
            if state == PARTIALLY:
                bidx = (b // cr) * (cr + 1) + cr
                be = bat(bidx)
                bm = be & OFFSET_MASK if be & 7 == 6 else new_extent(m.MiB)
                bat(bidx, bm | 6)
                first = (off // lss) % (8 * m.MiB)
                bits = bytearray(m.read_at(f, bm, m.MiB))
                for s in range(first, first + n // lss):
                    bits[s // 8] |= 1 << (s % 8)
                f.seek(bm)
                f.write(bits)
            off += n
            length -= n


if __name__ == "__main__":
    main()
