#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Read a VHDX image through libvhdi, an implementation independent of
both QEMU and dm-vhdx.

    vhdi-read.py IMAGE [RAW-OUTPUT]

Prints "media_size N bytes_per_sector N" and, with RAW-OUTPUT, writes the
whole virtual disk there.
"""
import sys

import pyvhdi

CHUNK = 4 << 20


def main():
    f = pyvhdi.file()
    f.open(sys.argv[1])
    size = f.get_media_size()
    print("media_size %d bytes_per_sector %d" % (size, f.get_bytes_per_sector()))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "wb") as out:
            off = 0
            while off < size:
                n = min(CHUNK, size - off)
                data = f.read_buffer_at_offset(n, off)
                if len(data) != n:
                    sys.exit("short read at %d: %d of %d" % (off, len(data), n))
                out.write(data)
                off += n
    f.close()


if __name__ == "__main__":
    main()
