// SPDX-License-Identifier: GPL-2.0
/* Userspace implementations of what the kernel provides to vhdx/. */
#include <sys/random.h>

#include "vhdx-user.h"

/* Reflected CRC-32C (Castagnoli), bitwise table built on first use. */
u32 vhdx_crc32c(u32 crc, const void *buf, size_t len)
{
	static u32 table[256];
	const u8 *p = buf;
	size_t i;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			u32 c = i;
			int k;

			for (k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
			table[i] = c;
		}
	}
	for (i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

/* A random (version 4) GUID, as the kernel's guid_gen() makes. */
void vhdx_guid_gen(guid_t *guid)
{
	if (getrandom(guid, sizeof(*guid), 0) != sizeof(*guid))
		abort();
	guid->b[7] = (guid->b[7] & 0x0f) | 0x40;
	guid->b[8] = (guid->b[8] & 0x3f) | 0x80;
}
