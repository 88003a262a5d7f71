#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Read a VHDX image through libvhdi, an implementation independent of
both QEMU and dm-vhdx.

    vhdi-read.py [--parent PARENT]... IMAGE [RAW-OUTPUT]

Prints "media_size N bytes_per_sector N" and, with RAW-OUTPUT, writes the
whole virtual disk there.  For a differencing IMAGE, each --parent names the
next file up the chain (libvhdi checks each linkage); then a second line
says "disk_type N parent_identifier G parent_data_write_guid G" for IMAGE
and its parent.
"""
import sys

import pyvhdi

CHUNK = 4 << 20


def main():
    args = sys.argv[1:]
    parents = []
    while len(args) > 1 and args[0] == "--parent":
        parents.append(args[1])
        args = args[2:]
    if not 1 <= len(args) <= 2:
        sys.exit(__doc__)
    chain = [pyvhdi.file() for _ in range(len(parents) + 1)]
    for f, path in zip(chain, args[:1] + parents):
        f.open(path)
    # From the top of the chain down: each file gets its parent set first.
    for i in range(len(chain) - 2, -1, -1):
        chain[i].set_parent(chain[i + 1])
    f = chain[0]
    size = f.get_media_size()
    print("media_size %d bytes_per_sector %d" % (size, f.get_bytes_per_sector()))
    if parents:
        print("disk_type %d parent_identifier %s parent_data_write_guid %s" %
              (f.get_disk_type(), f.get_parent_identifier(),
               chain[1].get_identifier()))
    if len(args) > 1:
        with open(args[1], "wb") as out:
            off = 0
            while off < size:
                n = min(CHUNK, size - off)
                data = f.read_buffer_at_offset(n, off)
                if len(data) != n:
                    sys.exit("short read at %d: %d of %d" % (off, len(data), n))
                out.write(data)
                off += n
    for c in chain:
        c.close()


if __name__ == "__main__":
    main()
