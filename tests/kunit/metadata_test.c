// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata region (MS-VHDX 2.6): table rules, item placement and the
 * values of the five system items, over buffers laid out as QEMU does
 * (table at 0, items packed from 64 KiB).
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

#define REGION_LEN	VHDX_MiB

static const guid_t unknown_item =
	GUID_INIT(0x76543210, 0xfedc, 0xba98, 0x76, 0x54, 0x32, 0x10, 0xfe,
		  0xdc, 0xba, 0x98);

struct md_ctx {
	struct vhdx_image *img;
	u8 *region;
	u64 len;
	struct vhdx_tb_metadata_item items[8];
	struct vhdx_tb_metadata_values v;
	u32 count;
};

static struct md_ctx *ctx_geo(struct kunit *test, u32 bs, u64 vs, u32 lss,
			      u32 pss)
{
	struct md_ctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	c->img = vhdx_tb_new_image(test);
	c->len = REGION_LEN;
	c->region = vhdx_tb_zalloc(test, 4 * VHDX_MiB);
	vhdx_tb_system_items(c->items, &c->v, bs, 0, vs, lss, pss);
	c->count = 5;
	return c;
}

/* QEMU's defaults for a 10 GiB disk: 32 MiB blocks, 512/4096 sectors. */
static struct md_ctx *ctx_new(struct kunit *test)
{
	return ctx_geo(test, 32 * VHDX_MiB, 10 * VHDX_GiB, 512, 4096);
}

static int parse(struct md_ctx *c)
{
	vhdx_tb_write_metadata(c->region, c->len, c->items, c->count);
	return vhdx_metadata_parse(c->img, c->region, c->len);
}

static void expect_refused(struct kunit *test, struct md_ctx *c,
			   const char *what)
{
	int ret = parse(c);

	KUNIT_EXPECT_LT_MSG(test, ret, 0, "%s", what);
	KUNIT_EXPECT_NE_MSG(test, c->img->error[0], '\0', "%s", what);
}

static void expect_accepted(struct kunit *test, struct md_ctx *c,
			    const char *what)
{
	KUNIT_EXPECT_EQ_MSG(test, parse(c), 0, "%s: %s", what, c->img->error);
}

static void metadata_good(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);
	struct vhdx_image *img = c->img;
	const struct vhdx_geometry *g = &img->geo;

	KUNIT_ASSERT_EQ_MSG(test, parse(c), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, g->virtual_size, 10 * VHDX_GiB);
	KUNIT_EXPECT_EQ(test, g->block_size, 32 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, g->logical_sector_size, 512U);
	KUNIT_EXPECT_EQ(test, g->physical_sector_size, 4096U);
	KUNIT_EXPECT_FALSE(test, g->has_parent);
	KUNIT_EXPECT_EQ(test, g->block_shift, 25U);
	KUNIT_EXPECT_EQ(test, g->chunk_ratio, 128U);
	KUNIT_EXPECT_EQ(test, g->chunk_ratio_shift, 7U);
	KUNIT_EXPECT_EQ(test, g->payload_blocks, 320ULL);
	KUNIT_EXPECT_EQ(test, g->bitmap_blocks, 3ULL);
	KUNIT_EXPECT_EQ(test, g->bat_entries, 320ULL + 319 / 128);
	KUNIT_EXPECT_EQ(test, img->file_flags, 0U);
	KUNIT_EXPECT_TRUE(test, guid_equal(&img->virtual_disk_id,
					   &c->v.virtual_disk_id));
}

static void metadata_good_4k_logical(struct kunit *test)
{
	struct md_ctx *c = ctx_geo(test, VHDX_MiB, 64 * VHDX_GiB, 4096, 4096);
	const struct vhdx_geometry *g = &c->img->geo;

	KUNIT_ASSERT_EQ_MSG(test, parse(c), 0, "%s", c->img->error);
	KUNIT_EXPECT_EQ(test, g->logical_sector_size, 4096U);
	KUNIT_EXPECT_EQ(test, g->chunk_ratio, 32768U);
	KUNIT_EXPECT_EQ(test, g->payload_blocks, 65536ULL);
	KUNIT_EXPECT_EQ(test, g->bat_entries, 65537ULL);
}

static void metadata_leave_block_allocated(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->v.params.flags = cpu_to_le32(VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED);
	KUNIT_ASSERT_EQ_MSG(test, parse(c), 0, "%s", c->img->error);
	KUNIT_EXPECT_EQ(test, c->img->file_flags,
			VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED);
}

/* Item order and placement are free; a Hyper-V-like spread layout. */
static void metadata_good_spread_items(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	swap(c->items[0], c->items[4]);
	c->items[0].offset = 512 * VHDX_KiB;
	c->items[1].offset = 128 * VHDX_KiB + 3;	/* unaligned is fine */
	c->items[2].offset = 64 * VHDX_KiB;
	c->items[3].offset = REGION_LEN - 4;		/* last bytes */
	c->items[4].offset = 200 * VHDX_KiB;
	expect_accepted(test, c, "spread items");
	KUNIT_EXPECT_EQ(test, c->img->geo.block_size, 32 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, c->img->geo.physical_sector_size, 4096U);
}

static void metadata_block_size_bad(struct kunit *test)
{
	static const u32 bad[] = {
		0, 512 * VHDX_KiB, VHDX_MiB - 1, 3 * VHDX_MiB,
		VHDX_MiB + 4096, 512 * VHDX_MiB, 0x80000000U, 0xffffffffU,
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct md_ctx *c = ctx_new(test);

		c->v.params.block_size = cpu_to_le32(bad[i]);
		KUNIT_EXPECT_LT_MSG(test, parse(c), 0, "block size %u", bad[i]);
	}
}

static void metadata_block_size_good(struct kunit *test)
{
	u32 bs;

	for (bs = VHDX_MiB; bs <= 256 * VHDX_MiB; bs <<= 1) {
		struct md_ctx *c = ctx_new(test);

		c->v.params.block_size = cpu_to_le32(bs);
		KUNIT_EXPECT_EQ_MSG(test, parse(c), 0, "block size %u: %s", bs,
				    c->img->error);
		KUNIT_EXPECT_EQ(test, c->img->geo.block_size, bs);
	}
}

static void metadata_virtual_size_bad(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->v.virtual_size = cpu_to_le64(VHDX_GiB + 256);
	expect_refused(test, c, "not a multiple of 512");

	c = ctx_geo(test, VHDX_MiB, VHDX_GiB + 512, 4096, 4096);
	expect_refused(test, c, "not a multiple of 4096");

	c = ctx_new(test);
	c->v.virtual_size = cpu_to_le64(64 * VHDX_TiB + 512);
	expect_refused(test, c, "64 TiB + 512");

	c = ctx_new(test);
	c->v.virtual_size = cpu_to_le64(U64_MAX & ~511ULL);
	expect_refused(test, c, "2^64 - 512");

	c = ctx_new(test);
	c->v.virtual_size = 0;
	expect_refused(test, c, "zero");
}

static void metadata_virtual_size_limits(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->v.virtual_size = cpu_to_le64(64 * VHDX_TiB);
	expect_accepted(test, c, "64 TiB");
	KUNIT_EXPECT_EQ(test, c->img->geo.virtual_size, 64 * VHDX_TiB);

	c = ctx_new(test);
	c->v.virtual_size = cpu_to_le64(512);
	expect_accepted(test, c, "one sector");
	KUNIT_EXPECT_EQ(test, c->img->geo.payload_blocks, 1ULL);
	KUNIT_EXPECT_EQ(test, c->img->geo.bat_entries, 1ULL);
}

static void metadata_sector_sizes(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->v.logical_sector_size = cpu_to_le32(1024);
	expect_refused(test, c, "logical 1024");

	c = ctx_new(test);
	c->v.logical_sector_size = 0;
	expect_refused(test, c, "logical 0");

	c = ctx_new(test);
	c->v.physical_sector_size = cpu_to_le32(1024);
	expect_refused(test, c, "physical 1024");

	c = ctx_new(test);
	c->v.physical_sector_size = cpu_to_le32(512);
	expect_accepted(test, c, "physical 512");
	KUNIT_EXPECT_EQ(test, c->img->geo.physical_sector_size, 512U);

	c = ctx_geo(test, VHDX_MiB, VHDX_GiB, 512, 4096);
	expect_accepted(test, c, "physical 4096");
	KUNIT_EXPECT_EQ(test, c->img->geo.physical_sector_size, 4096U);

	/* Logical 4096 with physical 512 is legal (libvhdi #17's image). */
	c = ctx_geo(test, VHDX_MiB, VHDX_GiB, 4096, 512);
	expect_accepted(test, c, "logical 4096, physical 512");
}

static void metadata_unknown_required_refused(struct kunit *test)
{
	static const u8 data[16] = { 1, 2, 3 };
	struct md_ctx *c = ctx_new(test);

	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 0, 0, VHDX_METADATA_FLAG_IS_REQUIRED,
		data, sizeof(data) };
	c->count = 6;
	expect_refused(test, c, "unknown required item");
}

static void metadata_unknown_optional_accepted(struct kunit *test)
{
	static const u8 data[100] = { 1, 2, 3 };
	struct md_ctx *c = ctx_new(test);

	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 0, 0, VHDX_METADATA_FLAG_IS_VIRTUAL_DISK,
		data, sizeof(data) };
	/* A user item with a system GUID is not a system item. */
	c->items[6] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_file_parameters, 0, 0, VHDX_METADATA_FLAG_IS_USER,
		data, 8 };
	c->count = 7;
	expect_accepted(test, c, "unknown optional items");
	KUNIT_EXPECT_EQ(test, c->img->geo.block_size, 32 * VHDX_MiB);
}

/* Length 0 with offset 0: present but empty (MS-VHDX 2.6.1.2). */
static void metadata_empty_item_accepted(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 0, 0, 0, NULL, 0 };
	c->count = 6;
	expect_accepted(test, c, "empty unknown item");
}

/* MS-VHDX 2.6.1.2: "If Length is zero, then Offset MUST also be zero." */
static void metadata_empty_item_nonzero_offset(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 256 * VHDX_KiB, 0, 0, NULL, 0 };
	c->count = 6;
	expect_refused(test, c, "length 0 at offset 256 KiB");
}

/* At most 1024 entries may have IsUser set. */
static void metadata_user_item_limit(struct kunit *test)
{
	struct vhdx_tb_metadata_item *items;
	struct md_ctx *c = ctx_new(test);
	guid_t *ids;
	u32 n, i;

	items = kunit_kcalloc(test, 5 + 1025, sizeof(*items), GFP_KERNEL);
	ids = kunit_kcalloc(test, 5 + 1025, sizeof(*ids), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, items);
	KUNIT_ASSERT_NOT_NULL(test, ids);
	for (n = 1024; n <= 1025; n++) {
		memcpy(items, c->items, 5 * sizeof(*items));
		/* (ItemID, IsUser) pairs are unique. */
		for (i = 5; i < 5 + n; i++) {
			ids[i] = unknown_item;
			ids[i].b[0] = i;
			ids[i].b[1] = i >> 8;
			items[i] = (struct vhdx_tb_metadata_item) {
				&ids[i], 0, 0, VHDX_METADATA_FLAG_IS_USER,
				NULL, 0 };
		}
		vhdx_tb_write_metadata(c->region, c->len, items, 5 + n);
		if (n == 1024)
			KUNIT_EXPECT_EQ_MSG(test,
					    vhdx_metadata_parse(c->img,
								c->region,
								c->len),
					    0, "%s", c->img->error);
		else
			KUNIT_EXPECT_LT(test,
					vhdx_metadata_parse(c->img, c->region,
							    c->len), 0);
	}
}

static void metadata_missing_required(struct kunit *test)
{
	unsigned int missing;

	for (missing = 0; missing < 5; missing++) {
		struct md_ctx *c = ctx_new(test);
		int ret;

		c->items[missing] = c->items[4];
		c->count = 4;
		ret = parse(c);
		KUNIT_EXPECT_LT_MSG(test, ret, 0, "item %u missing", missing);
	}
}

static void metadata_item_offset_in_table(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[1].offset = 4096;
	expect_refused(test, c, "item at 4 KiB, inside the table");

	c = ctx_new(test);
	c->items[3].offset = VHDX_METADATA_TABLE_SIZE - 2;
	expect_refused(test, c, "item straddling 64 KiB");
}

static void metadata_item_outside_region(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[4].offset = REGION_LEN - 2;
	expect_refused(test, c, "item crossing the region end");

	c = ctx_new(test);
	c->items[4].offset = REGION_LEN;
	expect_refused(test, c, "item at the region end");

	c = ctx_new(test);
	c->items[4].offset = 0xfffffffcU;	/* offset + length wraps u32 */
	c->items[4].length = 8;
	expect_refused(test, c, "offset + length wrapping");

	/* A 2 MiB region parsed as 1 MiB: the item is beyond len. */
	c = ctx_new(test);
	c->items[2].offset = REGION_LEN + 4096;
	expect_refused(test, c, "item beyond the parsed length");
}

static void metadata_item_too_long(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->len = 4 * VHDX_MiB;
	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 2 * VHDX_MiB, VHDX_MiB + 1, 0, NULL, 0 };
	c->count = 6;
	expect_refused(test, c, "item of 1 MiB + 1");

	c = ctx_new(test);
	c->len = 4 * VHDX_MiB;
	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 2 * VHDX_MiB, VHDX_MiB, 0, NULL, 0 };
	c->count = 6;
	expect_accepted(test, c, "item of exactly 1 MiB");
}

static void metadata_items_overlap(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	/* Physical sector size written over the logical one's last bytes. */
	c->items[3].offset = 128 * VHDX_KiB;
	c->items[4].offset = 128 * VHDX_KiB + 2;
	expect_refused(test, c, "partially overlapping items");

	c = ctx_new(test);
	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, VHDX_METADATA_TABLE_SIZE, 64, 0, NULL, 0 };
	c->count = 6;
	expect_refused(test, c, "unknown item covering the system items");

	/* Adjacent is not overlapping. */
	c = ctx_new(test);
	c->items[3].offset = 128 * VHDX_KiB;
	c->items[4].offset = 128 * VHDX_KiB + 4;
	expect_accepted(test, c, "adjacent items");
}

static void metadata_duplicate_item(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[5] = c->items[0];
	c->items[5].offset = 0;
	c->count = 6;
	expect_refused(test, c, "two file parameters items");
}

/* The (ItemID, IsUser) pair is unique, for unknown items too. */
static void metadata_duplicate_unknown_item(struct kunit *test)
{
	static const u8 data[8] = { 1 };
	struct md_ctx *c = ctx_new(test);

	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 0, 0, 0, data, sizeof(data) };
	c->items[6] = c->items[5];
	c->count = 7;
	expect_refused(test, c, "two unknown items with one GUID");

	/* The same GUID once as a user item and once not is fine. */
	c = ctx_new(test);
	c->items[5] = (struct vhdx_tb_metadata_item) {
		&unknown_item, 0, 0, 0, data, sizeof(data) };
	c->items[6] = c->items[5];
	c->items[6].flags = VHDX_METADATA_FLAG_IS_USER;
	c->count = 7;
	expect_accepted(test, c, "same GUID, user and system");
}

static void metadata_item_too_short(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->items[0].length = 4;
	c->items[0].data_len = 4;
	expect_refused(test, c, "4-byte file parameters");
}

static void metadata_has_parent_refused(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	c->v.params.flags = cpu_to_le32(VHDX_PARAMS_HAS_PARENT);
	expect_refused(test, c, "HasParent");
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(c->img->error, "differencing"),
				  "%s", c->img->error);
}

static void metadata_entry_count_too_big(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);
	struct vhdx_metadata_table_header *hdr = (void *)c->region;

	vhdx_tb_write_metadata(c->region, c->len, c->items, c->count);
	hdr->entry_count = cpu_to_le16(2048);
	KUNIT_EXPECT_LT(test, vhdx_metadata_parse(c->img, c->region, c->len),
			0);
	hdr->entry_count = cpu_to_le16(0xffff);
	KUNIT_EXPECT_LT(test, vhdx_metadata_parse(c->img, c->region, c->len),
			0);
}

static void metadata_bad_signature(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	vhdx_tb_write_metadata(c->region, c->len, c->items, c->count);
	memcpy(c->region, "metadatA", 8);
	KUNIT_EXPECT_EQ(test, vhdx_metadata_parse(c->img, c->region, c->len),
			-EINVAL);
	/* The spec's LE-integer reading, byte-swapped, is not accepted. */
	memcpy(c->region, "atadatem", 8);
	KUNIT_EXPECT_EQ(test, vhdx_metadata_parse(c->img, c->region, c->len),
			-EINVAL);
}

static void metadata_region_too_small(struct kunit *test)
{
	struct md_ctx *c = ctx_new(test);

	vhdx_tb_write_metadata(c->region, c->len, c->items, c->count);
	KUNIT_EXPECT_LT(test, vhdx_metadata_parse(c->img, c->region,
						  VHDX_METADATA_TABLE_SIZE - 1),
			0);
	/* Just the table: every item lies outside. */
	KUNIT_EXPECT_LT(test, vhdx_metadata_parse(c->img, c->region,
						  VHDX_METADATA_TABLE_SIZE),
			0);
}

static struct kunit_case vhdx_metadata_cases[] = {
	KUNIT_CASE(metadata_good),
	KUNIT_CASE(metadata_good_4k_logical),
	KUNIT_CASE(metadata_leave_block_allocated),
	KUNIT_CASE(metadata_good_spread_items),
	KUNIT_CASE(metadata_block_size_bad),
	KUNIT_CASE(metadata_block_size_good),
	KUNIT_CASE(metadata_virtual_size_bad),
	KUNIT_CASE(metadata_virtual_size_limits),
	KUNIT_CASE(metadata_sector_sizes),
	KUNIT_CASE(metadata_unknown_required_refused),
	KUNIT_CASE(metadata_unknown_optional_accepted),
	KUNIT_CASE(metadata_empty_item_accepted),
	KUNIT_CASE(metadata_empty_item_nonzero_offset),
	KUNIT_CASE(metadata_user_item_limit),
	KUNIT_CASE(metadata_missing_required),
	KUNIT_CASE(metadata_item_offset_in_table),
	KUNIT_CASE(metadata_item_outside_region),
	KUNIT_CASE(metadata_item_too_long),
	KUNIT_CASE(metadata_items_overlap),
	KUNIT_CASE(metadata_duplicate_item),
	KUNIT_CASE(metadata_duplicate_unknown_item),
	KUNIT_CASE(metadata_item_too_short),
	KUNIT_CASE(metadata_has_parent_refused),
	KUNIT_CASE(metadata_entry_count_too_big),
	KUNIT_CASE(metadata_bad_signature),
	KUNIT_CASE(metadata_region_too_small),
	{}
};

static struct kunit_suite vhdx_metadata_suite = {
	.name = "vhdx_metadata",
	.test_cases = vhdx_metadata_cases,
};

kunit_test_suite(vhdx_metadata_suite);

MODULE_LICENSE("GPL");
