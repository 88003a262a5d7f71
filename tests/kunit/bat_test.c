// SPDX-License-Identifier: GPL-2.0
/*
 * Geometry, BAT index math (MS-VHDX 2.5) and the BAT check: every entry's
 * state and the rule that no allocated block leaves the device or overlaps
 * another object.  Expected values are computed here from the spec's
 * formulas, not taken from vhdx/bat.c.
 */
#include <kunit/test.h>
#include <linux/math64.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

static unsigned int ilog2_u64(u64 v)
{
	unsigned int s = 0;

	while (v >>= 1)
		s++;
	return s;
}

static void geometry_chunk_ratio_all(struct kunit *test)
{
	static const u32 lss[] = { 512, 4096 };
	struct vhdx_geometry g;
	unsigned int i;
	u64 bs;

	for (i = 0; i < ARRAY_SIZE(lss); i++) {
		for (bs = VHDX_MiB; bs <= 256 * VHDX_MiB; bs <<= 1) {
			u64 cr = (1ULL << 23) * lss[i] / bs;

			KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, VHDX_GiB,
								 bs, lss[i],
								 512, false),
					0);
			KUNIT_EXPECT_EQ_MSG(test, (u64)g.chunk_ratio, cr,
					    "lss %u bs %llu", lss[i], bs);
			KUNIT_EXPECT_EQ_MSG(test, g.chunk_ratio_shift,
					    ilog2_u64(cr), "lss %u bs %llu",
					    lss[i], bs);
			KUNIT_EXPECT_EQ(test, g.block_shift, ilog2_u64(bs));
			KUNIT_EXPECT_EQ(test, (u64)g.block_size, bs);
		}
	}
}

/* The table in MS-VHDX 2.5 / the reference. */
static void geometry_chunk_ratio_table(struct kunit *test)
{
	static const struct { u32 lss; u32 bs; u32 cr; } t[] = {
		{ 512, 1 << 20, 4096 }, { 512, 2 << 20, 2048 },
		{ 512, 32 << 20, 128 }, { 512, 256 << 20, 16 },
		{ 4096, 1 << 20, 32768 }, { 4096, 32 << 20, 1024 },
		{ 4096, 256 << 20, 128 },
	};
	struct vhdx_geometry g;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, VHDX_GiB, t[i].bs,
							 t[i].lss, 4096, false),
				0);
		KUNIT_EXPECT_EQ(test, g.chunk_ratio, t[i].cr);
	}
}

struct count_case {
	u64 vs;
	u32 bs;
	u32 lss;
	u64 p, s, dyn, parent;
};

static void geometry_counts(struct kunit *test)
{
	static const struct count_case t[] = {
		/* P = ceil(VS/BS), S = ceil(P/CR) */
		{ 4 * VHDX_GiB, 1 << 20, 512, 4096, 1, 4096, 4097 },
		{ 4 * VHDX_GiB + VHDX_MiB, 1 << 20, 512, 4097, 2, 4098, 8194 },
		{ 4 * VHDX_GiB + 512, 1 << 20, 512, 4097, 2, 4098, 8194 },
		{ 10 * VHDX_GiB, 32 << 20, 512, 320, 3, 322, 387 },
		{ 10 * VHDX_GiB + 512, 32 << 20, 512, 321, 3, 323, 387 },
		{ VHDX_MiB, 256 << 20, 4096, 1, 1, 1, 129 },
		{ 512, 1 << 20, 512, 1, 1, 1, 4097 },
		{ 32 * VHDX_GiB, 1 << 20, 4096, 32768, 1, 32768, 32769 },
		{ 32 * VHDX_GiB + 4096, 1 << 20, 4096, 32769, 2, 32770, 65538 },
		{ 64 * VHDX_TiB, 1 << 20, 512, 1ULL << 26, 1ULL << 14,
		  (1ULL << 26) + 16383, (1ULL << 14) * 4097 },
		{ 64 * VHDX_TiB, 256 << 20, 4096, 1ULL << 18, 1ULL << 11,
		  (1ULL << 18) + 2047, (1ULL << 11) * 129 },
	};
	struct vhdx_geometry g;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(t); i++) {
		KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, t[i].vs, t[i].bs,
							 t[i].lss, 512, false),
				0);
		KUNIT_EXPECT_EQ_MSG(test, g.payload_blocks, t[i].p, "case %u", i);
		KUNIT_EXPECT_EQ_MSG(test, g.bitmap_blocks, t[i].s, "case %u", i);
		KUNIT_EXPECT_EQ_MSG(test, g.bat_entries, t[i].dyn, "case %u", i);
		KUNIT_EXPECT_FALSE(test, g.has_parent);
		KUNIT_EXPECT_EQ(test, g.virtual_size, t[i].vs);

		KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, t[i].vs, t[i].bs,
							 t[i].lss, 512, true),
				0);
		KUNIT_EXPECT_EQ_MSG(test, g.bat_entries, t[i].parent,
				    "case %u (parent)", i);
		KUNIT_EXPECT_TRUE(test, g.has_parent);
	}
}

static void geometry_invalid(struct kunit *test)
{
	struct vhdx_geometry g;

	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 3 << 20, 512,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 512 << 10, 512,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 512 << 20, 512,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 0, 512,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 1 << 20, 1024,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB, 1 << 20, 512,
						 1000, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, 0, 1 << 20, 512,
						 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, 64 * VHDX_TiB + 512,
						 1 << 20, 512, 512, false), 0);
	KUNIT_EXPECT_LT(test, vhdx_geometry_init(&g, VHDX_GiB + 512, 1 << 20,
						 4096, 512, false), 0);
}

static void bat_index_interleaving(struct kunit *test)
{
	struct vhdx_geometry g;

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 64 * VHDX_GiB, 1 << 20,
						 512, 512, false), 0);
	KUNIT_ASSERT_EQ(test, g.chunk_ratio, 4096U);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 0), 0ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 4095), 4095ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 4096), 4097ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 8191), 8192ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 8192), 8194ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 0), 4096ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 1), 8193ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 2), 12290ULL);

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 64 * VHDX_GiB, 256 << 20,
						 512, 512, false), 0);
	KUNIT_ASSERT_EQ(test, g.chunk_ratio, 16U);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 15), 15ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 16), 17ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 255), 270ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 0), 16ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 2), 50ULL);

	/* 4 KiB sectors, 1 MiB blocks: CR 32768. */
	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 64 * VHDX_GiB, 1 << 20,
						 4096, 4096, false), 0);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 32767), 32767ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_payload_index(&g, 32768), 32769ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bat_bitmap_index(&g, 0), 32768ULL);
}

/* In a differencing layout every index is exactly one block or bitmap. */
static void bat_index_covers_table(struct kunit *test)
{
	struct vhdx_geometry g;
	u8 *seen;
	u64 b, c, i;

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 48ULL * (256 << 20),
						 256 << 20, 512, 512, true), 0);
	KUNIT_ASSERT_EQ(test, g.bat_entries, 3ULL * 17);
	seen = kunit_kzalloc(test, g.bat_entries, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, seen);
	for (b = 0; b < g.payload_blocks; b++) {
		i = vhdx_bat_payload_index(&g, b);
		KUNIT_ASSERT_LT(test, i, g.bat_entries);
		KUNIT_EXPECT_EQ(test, i, b + div_u64(b, 16));
		seen[i]++;
	}
	for (c = 0; c < g.bitmap_blocks; c++) {
		i = vhdx_bat_bitmap_index(&g, c);
		KUNIT_ASSERT_LT(test, i, g.bat_entries);
		seen[i]++;
	}
	for (i = 0; i < g.bat_entries; i++)
		KUNIT_EXPECT_EQ_MSG(test, seen[i], 1, "BAT index %llu", i);
}

static void block_used_length(struct kunit *test)
{
	struct vhdx_geometry g;

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 10 * VHDX_MiB + 512,
						 4 << 20, 512, 512, false), 0);
	KUNIT_EXPECT_EQ(test, g.payload_blocks, 3ULL);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 0), 4 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 1), 4 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 2),
			2 * VHDX_MiB + 512);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 3), 0ULL);

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 8 * VHDX_MiB, 4 << 20,
						 512, 512, false), 0);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 1), 4 * VHDX_MiB);

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&g, 4096, 256 << 20, 4096,
						 4096, false), 0);
	KUNIT_EXPECT_EQ(test, vhdx_block_used_length(&g, 0), 4096ULL);
}

/*
 * A prepared image for vhdx_bat_check: log at 1 MiB, BAT at 2 MiB,
 * metadata at 3 MiB (each 1 MiB), on a 64 MiB device unless told.
 */
static struct vhdx_image *bat_img(struct kunit *test, u64 vs, u32 bs,
				  u64 device_size)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	KUNIT_ASSERT_EQ(test, vhdx_geometry_init(&img->geo, vs, bs, 512, 4096,
						 false), 0);
	img->device_size = device_size;
	vhdx_tb_write_header(&img->header, 1, VHDX_MiB, VHDX_MiB);
	img->regions = vhdx_alloc(3 * sizeof(*img->regions));
	KUNIT_ASSERT_NOT_NULL(test, img->regions);
	img->regions[0] = (struct vhdx_region) {
		vhdx_guid_bat_region, 2 * VHDX_MiB, VHDX_MiB, true };
	img->regions[1] = (struct vhdx_region) {
		vhdx_guid_metadata_region, 3 * VHDX_MiB, VHDX_MiB, true };
	img->region_count = 2;
	img->bat_region = &img->regions[0];
	img->metadata_region = &img->regions[1];
	img->bat = vhdx_alloc(img->geo.bat_entries * sizeof(__le64));
	KUNIT_ASSERT_NOT_NULL(test, img->bat);
	return img;
}

static struct vhdx_image *bat_img_default(struct kunit *test)
{
	return bat_img(test, 16 * VHDX_MiB, VHDX_MiB, 64 * VHDX_MiB);
}

static void set_entry(struct vhdx_image *img, u64 index, unsigned int state,
		      u64 offset)
{
	img->bat[index] = cpu_to_le64((offset & VHDX_BAT_OFFSET_MASK) | state);
}

static void set_block(struct vhdx_image *img, u64 block, unsigned int state,
		      u64 offset)
{
	set_entry(img, vhdx_bat_payload_index(&img->geo, block), state, offset);
}

static void expect_check_refused(struct kunit *test, struct vhdx_image *img,
				 const char *what)
{
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), -EINVAL, "%s", what);
	KUNIT_EXPECT_NE_MSG(test, img->error[0], '\0', "%s", what);
}

static void bat_check_good(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);
	u64 b;

	for (b = 0; b < 4; b++)
		set_block(img, b, VHDX_PAYLOAD_FULLY_PRESENT, (4 + b) * VHDX_MiB);
	set_block(img, 5, VHDX_PAYLOAD_ZERO, 0);
	/* Out of order in the file, last MiB of the device. */
	set_block(img, 15, VHDX_PAYLOAD_FULLY_PRESENT, 63 * VHDX_MiB);
	set_block(img, 14, VHDX_PAYLOAD_FULLY_PRESENT, 20 * VHDX_MiB);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 6ULL);
}

static void bat_check_empty(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 0ULL);
}

static void bat_check_beyond_device(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 64 * VHDX_MiB);
	expect_check_refused(test, img, "block at the device end");

	img = bat_img_default(test);
	set_block(img, 3, VHDX_PAYLOAD_FULLY_PRESENT, VHDX_BAT_OFFSET_MASK);
	expect_check_refused(test, img, "block at the largest offset");

	/* A 2 MiB block starting in the last MiB. */
	img = bat_img(test, 16 * VHDX_MiB, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 63 * VHDX_MiB);
	expect_check_refused(test, img, "2 MiB block crossing the end");

	/* Partially present blocks are bounded the same way. */
	img = bat_img_default(test);
	set_block(img, 2, VHDX_PAYLOAD_PARTIALLY_PRESENT, 100 * VHDX_MiB);
	expect_check_refused(test, img, "state 7 beyond the device");
}

/* The last block of a disk that is not a multiple of the block size. */
static void bat_check_partial_last_block(struct kunit *test)
{
	struct vhdx_image *img = bat_img(test, 15 * VHDX_MiB + 512,
					 2 * VHDX_MiB, 64 * VHDX_MiB);

	KUNIT_ASSERT_EQ(test, img->geo.payload_blocks, 8ULL);
	set_block(img, 7, VHDX_PAYLOAD_FULLY_PRESENT, 62 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 1ULL);
}

static void bat_check_in_header_section(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 0);
	expect_check_refused(test, img, "FULLY_PRESENT at offset 0");
}

static void bat_check_overlaps_regions(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 2 * VHDX_MiB);
	expect_check_refused(test, img, "block on the BAT region");

	img = bat_img_default(test);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 3 * VHDX_MiB);
	expect_check_refused(test, img, "block on the metadata region");

	img = bat_img_default(test);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, VHDX_MiB);
	expect_check_refused(test, img, "block on the log");

	/* A 2 MiB block at 2 MiB covers BAT and metadata. */
	img = bat_img(test, 16 * VHDX_MiB, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 2 * VHDX_MiB);
	expect_check_refused(test, img, "2 MiB block on BAT + metadata");

	/* An unknown region still owns its space. */
	img = bat_img_default(test);
	img->regions[2] = (struct vhdx_region) {
		GUID_INIT(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 30 * VHDX_MiB,
		4 * VHDX_MiB, false };
	img->region_count = 3;
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 32 * VHDX_MiB);
	expect_check_refused(test, img, "block on an unknown region");
}

static void bat_check_duplicate_offset(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	set_block(img, 9, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	expect_check_refused(test, img, "two blocks at 10 MiB");
}

static void bat_check_partial_overlap(struct kunit *test)
{
	struct vhdx_image *img = bat_img(test, 16 * VHDX_MiB, 2 * VHDX_MiB,
					 64 * VHDX_MiB);

	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 11 * VHDX_MiB);
	expect_check_refused(test, img, "2 MiB blocks at 10 and 11 MiB");

	/* Adjacent is fine. */
	img = bat_img(test, 16 * VHDX_MiB, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 12 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
}

static void bat_check_reserved_state(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 3, 4, 10 * VHDX_MiB);
	expect_check_refused(test, img, "payload state 4");
}

/* State 7 without a parent is accepted here; reads of it fail later. */
static void bat_check_partially_present_accepted(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 3, VHDX_PAYLOAD_PARTIALLY_PRESENT, 10 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
}

/* 256 MiB blocks: CR 16, so 17 blocks need a sector bitmap entry. */
static struct vhdx_image *bat_img_with_bitmap(struct kunit *test)
{
	struct vhdx_image *img = bat_img(test, 17ULL * (256 << 20),
					 256 << 20, 8 * VHDX_GiB);

	KUNIT_ASSERT_EQ(test, img->geo.bat_entries, 18ULL);
	KUNIT_ASSERT_EQ(test, vhdx_bat_bitmap_index(&img->geo, 0), 16ULL);
	return img;
}

static void bat_check_bitmap_present_refused(struct kunit *test)
{
	struct vhdx_image *img = bat_img_with_bitmap(test);

	set_entry(img, 16, VHDX_BITMAP_PRESENT, 10 * VHDX_MiB);
	expect_check_refused(test, img, "SB PRESENT without a parent");

	img = bat_img_with_bitmap(test);
	set_entry(img, 16, 3, 10 * VHDX_MiB);
	expect_check_refused(test, img, "SB reserved state 3");
}

static void bat_check_bitmap_not_present_garbage(struct kunit *test)
{
	struct vhdx_image *img = bat_img_with_bitmap(test);

	/* Offset reserved for NOT_PRESENT: even the header section is fine. */
	set_entry(img, 16, VHDX_BITMAP_NOT_PRESENT, 0);
	set_block(img, 16, VHDX_PAYLOAD_FULLY_PRESENT, 4 * VHDX_GiB);
	KUNIT_ASSERT_EQ(test, vhdx_bat_payload_index(&img->geo, 16), 17ULL);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 1ULL);

	img = bat_img_with_bitmap(test);
	set_entry(img, 16, VHDX_BITMAP_NOT_PRESENT, VHDX_BAT_OFFSET_MASK);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
}

/* FileOffsetMB is reserved for these states: never dereferenced. */
static void bat_check_unallocated_garbage_offsets(struct kunit *test)
{
	static const unsigned int states[] = {
		VHDX_PAYLOAD_NOT_PRESENT, VHDX_PAYLOAD_UNDEFINED,
		VHDX_PAYLOAD_ZERO, VHDX_PAYLOAD_UNMAPPED,
	};
	static const u64 offsets[] = {
		0, VHDX_MiB, 2 * VHDX_MiB, 3 * VHDX_MiB, 10 * VHDX_MiB,
		64 * VHDX_MiB, VHDX_BAT_OFFSET_MASK,
	};
	struct vhdx_image *img = bat_img_default(test);
	unsigned int i;

	for (i = 0; i < 16; i++)
		set_block(img, i, states[i % ARRAY_SIZE(states)],
			  offsets[i % ARRAY_SIZE(offsets)]);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 0ULL);
}

static void bat_check_allocated_count(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);
	u64 b, n = 0;

	for (b = 0; b < 16; b++) {
		if (b % 3) {
			set_block(img, b, VHDX_PAYLOAD_FULLY_PRESENT,
				  (10 + 2 * b) * VHDX_MiB);
			n++;
		} else {
			set_block(img, b, VHDX_PAYLOAD_ZERO, 10 * VHDX_MiB);
		}
	}
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, n);
}

static void expect_overlap_named(struct kunit *test, struct vhdx_image *img,
				 const char *first, const char *second)
{
	KUNIT_EXPECT_EQ(test, vhdx_bat_check(img), -EINVAL);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, first), "%s",
				  img->error);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, second), "%s",
				  img->error);
}

/* The message names both objects, whichever entry comes first. */
static void bat_check_overlap_names_both(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);

	set_block(img, 9, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	set_block(img, 2, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	expect_overlap_named(test, img, "payload block 9", "payload block 2");

	img = bat_img(test, 16 * VHDX_MiB, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 11 * VHDX_MiB);
	set_block(img, 5, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	expect_overlap_named(test, img,
			     "payload block 1 (BAT entry 1) at 11534336 overlaps",
			     "payload block 5 (BAT entry 5) at 10485760");

	img = bat_img_default(test);
	set_block(img, 3, VHDX_PAYLOAD_FULLY_PRESENT, 3 * VHDX_MiB);
	expect_overlap_named(test, img, "payload block 3",
			     "the metadata region");
}

/*
 * A last block shorter than a MiB holds that MiB and no more; one longer
 * than a MiB but short of its block size holds what it uses, rounded up.
 */
static void bat_check_short_last_block_neighbours(struct kunit *test)
{
	struct vhdx_image *img = bat_img(test, 14 * VHDX_MiB + 4096,
					 2 * VHDX_MiB, 64 * VHDX_MiB);

	set_block(img, 7, VHDX_PAYLOAD_FULLY_PRESENT, 40 * VHDX_MiB);
	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 41 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);

	img = bat_img(test, 15 * VHDX_MiB + 512, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 7, VHDX_PAYLOAD_FULLY_PRESENT, 40 * VHDX_MiB);
	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 41 * VHDX_MiB);
	expect_overlap_named(test, img, "payload block 7", "payload block 0");

	img = bat_img(test, 15 * VHDX_MiB + 512, 2 * VHDX_MiB, 64 * VHDX_MiB);
	set_block(img, 7, VHDX_PAYLOAD_FULLY_PRESENT, 40 * VHDX_MiB);
	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 42 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
}

/* The space no object holds below the last one is free, in order. */
static void bat_check_free_space(struct kunit *test)
{
	struct vhdx_image *img = bat_img_default(test);
	struct vhdx_free_space *fs = &img->free_space;

	set_block(img, 0, VHDX_PAYLOAD_FULLY_PRESENT, 4 * VHDX_MiB);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	set_block(img, 2, VHDX_PAYLOAD_FULLY_PRESENT, 20 * VHDX_MiB);
	set_block(img, 3, VHDX_PAYLOAD_FULLY_PRESENT, 11 * VHDX_MiB);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->data_end, 21 * VHDX_MiB);
	KUNIT_ASSERT_EQ(test, fs->count, 2U);
	KUNIT_EXPECT_EQ(test, fs->extents[0].offset, 5 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, fs->extents[0].length, 5 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, fs->extents[1].offset, 12 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, fs->extents[1].length, 8 * VHDX_MiB);

	/* Nothing allocated: the fixed objects end the used space. */
	img = bat_img_default(test);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->data_end, 4 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->free_space.count, 0U);
}

/*
 * The map of the file is bounded: an object past VHDX_OBJECT_MAP_MAX is
 * refused, not given a larger map; one well inside is fine.
 */
static void bat_check_object_map_bound(struct kunit *test)
{
	struct vhdx_image *img = bat_img(test, 16 * VHDX_MiB, VHDX_MiB,
					 2 * VHDX_OBJECT_MAP_MAX);

	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT, VHDX_OBJECT_MAP_MAX);
	KUNIT_EXPECT_EQ(test, vhdx_bat_check(img), -EFBIG);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "256 TiB"), "%s",
				  img->error);

	img = bat_img(test, 16 * VHDX_MiB, VHDX_MiB, 2 * VHDX_OBJECT_MAP_MAX);
	set_block(img, 1, VHDX_PAYLOAD_FULLY_PRESENT,
		  VHDX_OBJECT_MAP_MAX - VHDX_MiB);
	set_block(img, 2, VHDX_PAYLOAD_FULLY_PRESENT, 4 * VHDX_MiB);
	KUNIT_EXPECT_EQ_MSG(test, vhdx_bat_check(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->data_end, VHDX_OBJECT_MAP_MAX);
}

static struct kunit_case vhdx_bat_cases[] = {
	KUNIT_CASE(geometry_chunk_ratio_all),
	KUNIT_CASE(geometry_chunk_ratio_table),
	KUNIT_CASE(geometry_counts),
	KUNIT_CASE(geometry_invalid),
	KUNIT_CASE(bat_index_interleaving),
	KUNIT_CASE(bat_index_covers_table),
	KUNIT_CASE(block_used_length),
	KUNIT_CASE(bat_check_good),
	KUNIT_CASE(bat_check_empty),
	KUNIT_CASE(bat_check_beyond_device),
	KUNIT_CASE(bat_check_partial_last_block),
	KUNIT_CASE(bat_check_in_header_section),
	KUNIT_CASE(bat_check_overlaps_regions),
	KUNIT_CASE(bat_check_duplicate_offset),
	KUNIT_CASE(bat_check_partial_overlap),
	KUNIT_CASE(bat_check_reserved_state),
	KUNIT_CASE(bat_check_partially_present_accepted),
	KUNIT_CASE(bat_check_bitmap_present_refused),
	KUNIT_CASE(bat_check_bitmap_not_present_garbage),
	KUNIT_CASE(bat_check_unallocated_garbage_offsets),
	KUNIT_CASE(bat_check_allocated_count),
	KUNIT_CASE(bat_check_overlap_names_both),
	KUNIT_CASE(bat_check_short_last_block_neighbours),
	KUNIT_CASE(bat_check_free_space),
	KUNIT_CASE(bat_check_object_map_bound),
	{}
};

static struct kunit_suite vhdx_bat_suite = {
	.name = "vhdx_bat",
	.test_cases = vhdx_bat_cases,
};

kunit_test_suite(vhdx_bat_suite);

MODULE_LICENSE("GPL");
