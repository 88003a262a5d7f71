// SPDX-License-Identifier: GPL-2.0
/*
 * The GUIDs MS-VHDX assigns to regions, metadata items and locator types.
 * GUID_INIT stores them in the mixed-endian form the file uses.
 */
#include "parent.h"

const guid_t vhdx_guid_bat_region =
	GUID_INIT(0x2dc27766, 0xf623, 0x4200,
		  0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08);
const guid_t vhdx_guid_metadata_region =
	GUID_INIT(0x8b7ca206, 0x4790, 0x4b9a,
		  0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e);
const guid_t vhdx_guid_file_parameters =
	GUID_INIT(0xcaa16737, 0xfa36, 0x4d43,
		  0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b);
const guid_t vhdx_guid_virtual_disk_size =
	GUID_INIT(0x2fa54224, 0xcd1b, 0x4876,
		  0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8);
const guid_t vhdx_guid_virtual_disk_id =
	GUID_INIT(0xbeca12ab, 0xb2e6, 0x4523,
		  0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46);
const guid_t vhdx_guid_logical_sector_size =
	GUID_INIT(0x8141bf1d, 0xa96f, 0x4709,
		  0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f);
const guid_t vhdx_guid_physical_sector_size =
	GUID_INIT(0xcda348c7, 0x445d, 0x4471,
		  0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56);
const guid_t vhdx_guid_parent_locator =
	GUID_INIT(0xa8d35f2d, 0xb30b, 0x454d,
		  0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c);
const guid_t vhdx_guid_parent_locator_type =
	GUID_INIT(0xb04aefb7, 0xd19e, 0x4a81,
		  0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13);

void vhdx_guid_to_string(const guid_t *guid, char *buf)
{
	const u8 *b = guid->b;

	snprintf(buf, VHDX_GUID_STRING_SIZE,
		 "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6],
		 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int vhdx_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The inverse of vhdx_guid_to_string(), also accepting braces and any case. */
int vhdx_guid_parse(const char *s, guid_t *guid)
{
	/* Where each byte's two digits go: the first three groups are LE. */
	static const u8 order[16] = {
		3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15,
	};
	bool braces = *s == '{';
	unsigned int i, pos = braces;
	int hi, lo;

	for (i = 0; i < 16; i++) {
		/* Dashes after bytes 4, 6, 8 and 10. */
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (s[pos] != '-')
				return -EINVAL;
			pos++;
		}
		hi = vhdx_hex_digit(s[pos]);
		lo = hi < 0 ? -1 : vhdx_hex_digit(s[pos + 1]);
		if (lo < 0)
			return -EINVAL;
		guid->b[order[i]] = (u8)(hi << 4 | lo);
		pos += 2;
	}
	if (braces && s[pos++] != '}')
		return -EINVAL;
	return s[pos] ? -EINVAL : 0;
}
