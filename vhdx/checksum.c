// SPDX-License-Identifier: GPL-2.0
/*
 * CRC-32C as VHDX uses it: initial value ~0, final inversion, computed over
 * a structure whose own checksum field counts as zero.
 */
#include "vhdx.h"

u32 vhdx_checksum(const void *buf, size_t len, size_t checksum_offset)
{
	static const u8 zero[sizeof(__le32)];
	const u8 *p = buf;
	u32 crc = ~0U;

	crc = vhdx_crc32c(crc, p, checksum_offset);
	crc = vhdx_crc32c(crc, zero, sizeof(zero));
	checksum_offset += sizeof(zero);
	crc = vhdx_crc32c(crc, p + checksum_offset, len - checksum_offset);
	return ~crc;
}

bool vhdx_checksum_ok(const void *buf, size_t len, size_t checksum_offset)
{
	__le32 stored;

	memcpy(&stored, (const u8 *)buf + checksum_offset, sizeof(stored));
	return le32_to_cpu(stored) == vhdx_checksum(buf, len, checksum_offset);
}

void vhdx_checksum_set(void *buf, size_t len, size_t checksum_offset)
{
	__le32 crc = cpu_to_le32(vhdx_checksum(buf, len, checksum_offset));

	memcpy((u8 *)buf + checksum_offset, &crc, sizeof(crc));
}
