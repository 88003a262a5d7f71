// SPDX-License-Identifier: GPL-2.0
/*
 * The GUIDs MS-VHDX assigns, checked against the specification's text form
 * and the on-disk byte order (Data1..3 little-endian, Data4 as bytes).
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"

static const struct {
	const guid_t *guid;
	const char *spec;	/* as printed in MS-VHDX */
} vhdx_spec_guids[] = {
	{ &vhdx_guid_bat_region, "2DC27766-F623-4200-9D64-115E9BFD4A08" },
	{ &vhdx_guid_metadata_region, "8B7CA206-4790-4B9A-B8FE-575F050F886E" },
	{ &vhdx_guid_file_parameters, "CAA16737-FA36-4D43-B3B6-33F0AA44E76B" },
	{ &vhdx_guid_virtual_disk_size, "2FA54224-CD1B-4876-B211-5DBED83BF4B8" },
	{ &vhdx_guid_virtual_disk_id, "BECA12AB-B2E6-4523-93EF-C309E000C746" },
	{ &vhdx_guid_logical_sector_size, "8141BF1D-A96F-4709-BA47-F233A8FAAB5F" },
	{ &vhdx_guid_physical_sector_size, "CDA348C7-445D-4471-9CC9-E9885251C556" },
	{ &vhdx_guid_parent_locator, "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C" },
	{ &vhdx_guid_parent_locator_type, "B04AEFB7-D19E-4A81-B789-25B8E9445913" },
};

static u8 hex_byte(const char *s)
{
	return (u8)(hex_to_bin(s[0]) << 4 | hex_to_bin(s[1]));
}

/* Text form to the file's byte order, written out longhand. */
static void spec_to_bytes(const char *s, u8 *b)
{
	static const u8 pos[16] = {	/* text position of byte i */
		6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34,
	};
	int i;

	for (i = 0; i < 16; i++)
		b[i] = hex_byte(s + pos[i]);
}

static void guid_bat_on_disk_bytes(struct kunit *test)
{
	/* MS-VHDX / the Hyper-V dump in LP 1749016. */
	static const u8 bat[16] = {
		0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42,
		0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08,
	};
	u8 b[16];

	KUNIT_EXPECT_MEMEQ(test, vhdx_guid_bat_region.b, bat, 16);
	spec_to_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08", b);
	KUNIT_EXPECT_MEMEQ(test, b, bat, 16);
}

static void guid_spec_values(struct kunit *test)
{
	unsigned int i;
	u8 b[16];

	for (i = 0; i < ARRAY_SIZE(vhdx_spec_guids); i++) {
		spec_to_bytes(vhdx_spec_guids[i].spec, b);
		KUNIT_EXPECT_MEMEQ_MSG(test, vhdx_spec_guids[i].guid->b, b, 16,
				       "GUID %s", vhdx_spec_guids[i].spec);
	}
}

static void guid_to_string_round_trip(struct kunit *test)
{
	char s[VHDX_GUID_STRING_SIZE];
	unsigned int i;
	guid_t g;

	for (i = 0; i < ARRAY_SIZE(vhdx_spec_guids); i++) {
		spec_to_bytes(vhdx_spec_guids[i].spec, g.b);
		memset(s, 'x', sizeof(s));
		vhdx_guid_to_string(&g, s);
		KUNIT_EXPECT_STREQ(test, s, vhdx_spec_guids[i].spec);
	}
}

static struct kunit_case vhdx_guid_cases[] = {
	KUNIT_CASE(guid_bat_on_disk_bytes),
	KUNIT_CASE(guid_spec_values),
	KUNIT_CASE(guid_to_string_round_trip),
	{}
};

static struct kunit_suite vhdx_guid_suite = {
	.name = "vhdx_guid",
	.test_cases = vhdx_guid_cases,
};

kunit_test_suite(vhdx_guid_suite);

MODULE_LICENSE("GPL");
