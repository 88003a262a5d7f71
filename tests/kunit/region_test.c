// SPDX-License-Identifier: GPL-2.0
/*
 * The region table (MS-VHDX 2.2.3): entry rules, required regions, overlap
 * with the header section and the log, and the choice between the copies.
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

#define DEVICE_SIZE	(16 * VHDX_MiB)

static const guid_t unknown_guid =
	GUID_INIT(0x01234567, 0x89ab, 0xcdef, 0x01, 0x23, 0x45, 0x67, 0x89,
		  0xab, 0xcd, 0xef);

struct region_ctx {
	struct vhdx_image *img;
	void *table;
	struct vhdx_tb_region r[4];
	u32 count;
};

/* Log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB, each 1 MiB. */
static struct region_ctx *ctx_new(struct kunit *test)
{
	struct region_ctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	c->table = kunit_kzalloc(test, VHDX_REGION_TABLE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, c->table);
	c->img = vhdx_tb_new_image(test);
	c->img->device_size = DEVICE_SIZE;
	vhdx_tb_write_header(&c->img->header, 1, VHDX_MiB, VHDX_MiB);
	c->r[0] = (struct vhdx_tb_region) {
		&vhdx_guid_bat_region, 2 * VHDX_MiB, VHDX_MiB, 1 };
	c->r[1] = (struct vhdx_tb_region) {
		&vhdx_guid_metadata_region, 3 * VHDX_MiB, VHDX_MiB, 1 };
	c->count = 2;
	return c;
}

static int parse(struct region_ctx *c, unsigned int copy)
{
	vhdx_tb_write_region_table(c->table, c->r, c->count);
	return vhdx_region_table_parse(c->img, c->table, copy);
}

static void expect_refused(struct kunit *test, struct region_ctx *c,
			   const char *what)
{
	KUNIT_EXPECT_EQ_MSG(test, parse(c, 0), -EINVAL, "%s", what);
	KUNIT_EXPECT_NE_MSG(test, c->img->error[0], '\0', "%s", what);
}

static void region_good(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);
	struct vhdx_image *img = c->img;

	KUNIT_ASSERT_EQ_MSG(test, parse(c, 0), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->region_count, 2U);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 0U);
	KUNIT_ASSERT_NOT_NULL(test, img->bat_region);
	KUNIT_ASSERT_NOT_NULL(test, img->metadata_region);
	KUNIT_EXPECT_TRUE(test, guid_equal(&img->bat_region->guid,
					   &vhdx_guid_bat_region));
	KUNIT_EXPECT_EQ(test, img->bat_region->offset, 2 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->bat_region->length, VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->metadata_region->offset, 3 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->metadata_region->length, VHDX_MiB);
	KUNIT_EXPECT_TRUE(test, img->bat_region->required);

	/* The copy number is recorded. */
	KUNIT_ASSERT_EQ(test, parse(c, 1), 0);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 1U);
}

/* QEMU writes Required = 0 on the known regions (LP 1749016). */
static void region_good_required_zero(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].required = 0;
	c->r[1].required = 0;
	KUNIT_ASSERT_EQ_MSG(test, parse(c, 0), 0, "%s", c->img->error);
	KUNIT_EXPECT_EQ(test, c->img->region_count, 2U);
	KUNIT_EXPECT_FALSE(test, c->img->bat_region->required);
}

/* Entry order is free: metadata first, BAT far away. */
static void region_good_any_order(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	swap(c->r[0], c->r[1]);
	c->r[1].offset = 10 * VHDX_MiB;
	c->r[1].length = 2 * VHDX_MiB;
	KUNIT_ASSERT_EQ_MSG(test, parse(c, 0), 0, "%s", c->img->error);
	KUNIT_EXPECT_EQ(test, c->img->bat_region->offset, 10 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, c->img->bat_region->length, 2 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, c->img->metadata_region->offset, 3 * VHDX_MiB);
}

static void region_bad_signature(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	vhdx_tb_write_region_table(c->table, c->r, c->count);
	memcpy(c->table, "igeR", 4);
	vhdx_checksum_set(c->table, VHDX_REGION_TABLE_SIZE, 4);
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, c->table, 0),
			-EINVAL);
	KUNIT_EXPECT_NE(test, c->img->error[0], '\0');
}

static void region_bad_checksum(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);
	u8 *t = c->table;

	vhdx_tb_write_region_table(t, c->r, c->count);
	/* The checksum covers the whole 64 KiB, unused space included. */
	t[VHDX_REGION_TABLE_SIZE - 1] ^= 0x80;
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, t, 0), -EINVAL);
	t[VHDX_REGION_TABLE_SIZE - 1] ^= 0x80;
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, t, 0), 0);
	t[4] ^= 1;
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, t, 0), -EINVAL);
}

static void region_entry_count_too_big(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);
	struct vhdx_region_table_header *hdr = c->table;

	vhdx_tb_write_region_table(c->table, c->r, c->count);
	hdr->entry_count = cpu_to_le32(2048);
	vhdx_checksum_set(c->table, VHDX_REGION_TABLE_SIZE, 4);
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, c->table, 0),
			-EINVAL);
	hdr->entry_count = cpu_to_le32(U32_MAX);
	vhdx_checksum_set(c->table, VHDX_REGION_TABLE_SIZE, 4);
	KUNIT_EXPECT_EQ(test, vhdx_region_table_parse(c->img, c->table, 0),
			-EINVAL);
}

/* 2047 entries fit in the table; unknown optional ones are accepted. */
static void region_entry_count_max(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);
	struct vhdx_region_table_header *hdr = c->table;
	struct vhdx_region_table_entry *e = (void *)(hdr + 1);
	u32 i;

	c->img->device_size = 4 * VHDX_GiB;
	vhdx_tb_write_region_table(c->table, c->r, c->count);
	for (i = 2; i < VHDX_REGION_MAX_ENTRIES; i++) {
		e[i].guid = unknown_guid;
		e[i].guid.b[0] = i;
		e[i].guid.b[1] = i >> 8;
		e[i].file_offset = cpu_to_le64((8ULL + i) * VHDX_MiB);
		e[i].length = cpu_to_le32(VHDX_MiB);
	}
	hdr->entry_count = cpu_to_le32(VHDX_REGION_MAX_ENTRIES);
	vhdx_checksum_set(c->table, VHDX_REGION_TABLE_SIZE, 4);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_region_table_parse(c->img, c->table, 0),
			    0, "%s", c->img->error);
	KUNIT_EXPECT_EQ(test, c->img->region_count, VHDX_REGION_MAX_ENTRIES);
}

static void region_unknown_required_refused(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[2] = (struct vhdx_tb_region) {
		&unknown_guid, 8 * VHDX_MiB, VHDX_MiB, 1 };
	c->count = 3;
	expect_refused(test, c, "unknown required region");
}

static void region_unknown_optional_preserved(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);
	struct vhdx_image *img = c->img;
	bool found = false;
	u32 i;

	c->r[2] = (struct vhdx_tb_region) {
		&unknown_guid, 8 * VHDX_MiB, 2 * VHDX_MiB, 0 };
	c->count = 3;
	KUNIT_ASSERT_EQ_MSG(test, parse(c, 0), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->region_count, 3U);
	for (i = 0; i < img->region_count; i++) {
		if (!guid_equal(&img->regions[i].guid, &unknown_guid))
			continue;
		found = true;
		KUNIT_EXPECT_EQ(test, img->regions[i].offset, 8 * VHDX_MiB);
		KUNIT_EXPECT_EQ(test, img->regions[i].length, 2 * VHDX_MiB);
		KUNIT_EXPECT_FALSE(test, img->regions[i].required);
	}
	KUNIT_EXPECT_TRUE(test, found);
}

/* An unknown region still occupies space: overlap is refused. */
static void region_unknown_overlapping_refused(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[2] = (struct vhdx_tb_region) {
		&unknown_guid, 3 * VHDX_MiB, VHDX_MiB, 0 };
	c->count = 3;
	expect_refused(test, c, "unknown region on the metadata");
}

static void region_missing_bat(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0] = c->r[1];
	c->count = 1;
	expect_refused(test, c, "no BAT");
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(c->img->error, "BAT"), "%s",
				  c->img->error);
}

static void region_missing_metadata(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->count = 1;
	expect_refused(test, c, "no metadata");
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(c->img->error, "metadata"),
				  "%s", c->img->error);
}

static void region_empty_table(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->count = 0;
	expect_refused(test, c, "no entries");
}

static void region_unaligned_offset(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].offset = 2 * VHDX_MiB + 4096;
	expect_refused(test, c, "BAT offset 2 MiB + 4 KiB");
}

static void region_unaligned_length(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[1].length = VHDX_MiB + 512;
	expect_refused(test, c, "metadata length 1 MiB + 512");

	c = ctx_new(test);
	c->r[1].length = 0;
	expect_refused(test, c, "metadata length 0");
}

static void region_in_header_section(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].offset = 0;
	expect_refused(test, c, "BAT at 0");

	/* Aligned to 64 KiB but not 1 MiB, inside the header section. */
	c = ctx_new(test);
	c->r[1].offset = 512 * VHDX_KiB;
	expect_refused(test, c, "metadata at 512 KiB");
}

static void region_beyond_device(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].offset = DEVICE_SIZE;
	expect_refused(test, c, "BAT at the device end");

	c = ctx_new(test);
	c->r[1].offset = DEVICE_SIZE - VHDX_MiB;
	c->r[1].length = 2 * VHDX_MiB;
	expect_refused(test, c, "metadata crossing the device end");

	/* offset + length wraps around 2^64. */
	c = ctx_new(test);
	c->r[1].offset = 0xfffffffffff00000ULL;
	c->r[1].length = 2 * VHDX_MiB;
	expect_refused(test, c, "metadata wrapping");

	/* Exactly at the end is fine. */
	c = ctx_new(test);
	c->r[1].offset = DEVICE_SIZE - VHDX_MiB;
	KUNIT_EXPECT_EQ_MSG(test, parse(c, 0), 0, "%s", c->img->error);
}

static void region_bat_overlaps_metadata(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].length = 2 * VHDX_MiB;	/* 2..4 MiB over metadata at 3 */
	expect_refused(test, c, "BAT over metadata");

	c = ctx_new(test);
	c->r[1].offset = c->r[0].offset;
	expect_refused(test, c, "same offset");
}

static void region_overlaps_log(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[0].offset = VHDX_MiB;
	expect_refused(test, c, "BAT on the log");

	/* A longer log reaching the metadata. */
	c = ctx_new(test);
	vhdx_tb_write_header(&c->img->header, 1, 2 * VHDX_MiB, 2 * VHDX_MiB);
	c->r[0].offset = 8 * VHDX_MiB;
	expect_refused(test, c, "log 2..4 MiB over metadata at 3 MiB");

	/* No log at all: the 1 MiB slot is free for a region. */
	c = ctx_new(test);
	vhdx_tb_write_header(&c->img->header, 1, 0, 0);
	c->r[0].offset = VHDX_MiB;
	KUNIT_EXPECT_EQ_MSG(test, parse(c, 0), 0, "%s", c->img->error);
}

static void region_duplicate_guid(struct kunit *test)
{
	struct region_ctx *c = ctx_new(test);

	c->r[2] = c->r[0];
	c->r[2].offset = 8 * VHDX_MiB;
	c->count = 3;
	expect_refused(test, c, "two BAT entries");

	c = ctx_new(test);
	c->r[2] = (struct vhdx_tb_region) {
		&unknown_guid, 8 * VHDX_MiB, VHDX_MiB, 0 };
	c->r[3] = (struct vhdx_tb_region) {
		&unknown_guid, 10 * VHDX_MiB, VHDX_MiB, 0 };
	c->count = 4;
	expect_refused(test, c, "two unknown entries, same GUID");
}

/* Region table loading through the fake device. */
static struct vhdx_image *load_img(struct kunit *test, struct vhdx_tb *tb)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	img->io = &tb->io;
	img->device_size = tb->size;
	vhdx_tb_write_header(&img->header, 1, tb->p.log_offset,
			     tb->p.log_length);
	return img;
}

static void region_load_first_copy(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = load_img(test, tb);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_region_table_load(img), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 0U);
	KUNIT_EXPECT_EQ(test, img->bat_region->offset, tb->p.bat_offset);
	KUNIT_EXPECT_EQ(test, img->metadata_region->offset,
			tb->p.metadata_offset);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

static void region_load_second_copy(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = load_img(test, tb);
	u8 *t1 = vhdx_tb_region_table(tb, 0);

	t1[100] ^= 0x10;	/* checksum mismatch in copy 1 */
	KUNIT_ASSERT_EQ_MSG(test, vhdx_region_table_load(img), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 1U);
	KUNIT_EXPECT_EQ(test, img->bat_region->offset, tb->p.bat_offset);
	/* Loading never repairs the damaged copy behind the caller's back. */
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

/* Copy 1 valid by checksum but semantically bad: copy 2 used. */
static void region_load_second_copy_semantic(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = load_img(test, tb);
	struct vhdx_region_table_header *hdr = vhdx_tb_region_table(tb, 0);
	struct vhdx_region_table_entry *e = (void *)(hdr + 1);

	e[0].file_offset = cpu_to_le64(0);
	vhdx_tb_region_rechecksum(tb, 0);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_region_table_load(img), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 1U);
}

/* A read error on copy 1 is a damaged copy too. */
static void region_load_read_error(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = load_img(test, tb);

	tb->fail_read_offset = VHDX_REGION_TABLE1_OFFSET + 8192;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_region_table_load(img), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 1U);
}

static void region_load_both_damaged(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = load_img(test, tb);
	u8 *t1 = vhdx_tb_region_table(tb, 0);
	u8 *t2 = vhdx_tb_region_table(tb, 1);

	t1[200] ^= 1;
	memcpy(t2, "xxxx", 4);
	KUNIT_EXPECT_EQ(test, vhdx_region_table_load(img), -EINVAL);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "region table 1"),
				  "%s", img->error);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "region table 2"),
				  "%s", img->error);
	KUNIT_EXPECT_NULL(test, img->bat_region);
	KUNIT_EXPECT_NULL(test, img->metadata_region);
}

static struct kunit_case vhdx_region_cases[] = {
	KUNIT_CASE(region_good),
	KUNIT_CASE(region_good_required_zero),
	KUNIT_CASE(region_good_any_order),
	KUNIT_CASE(region_bad_signature),
	KUNIT_CASE(region_bad_checksum),
	KUNIT_CASE(region_entry_count_too_big),
	KUNIT_CASE(region_entry_count_max),
	KUNIT_CASE(region_unknown_required_refused),
	KUNIT_CASE(region_unknown_optional_preserved),
	KUNIT_CASE(region_unknown_overlapping_refused),
	KUNIT_CASE(region_missing_bat),
	KUNIT_CASE(region_missing_metadata),
	KUNIT_CASE(region_empty_table),
	KUNIT_CASE(region_unaligned_offset),
	KUNIT_CASE(region_unaligned_length),
	KUNIT_CASE(region_in_header_section),
	KUNIT_CASE(region_beyond_device),
	KUNIT_CASE(region_bat_overlaps_metadata),
	KUNIT_CASE(region_overlaps_log),
	KUNIT_CASE(region_duplicate_guid),
	KUNIT_CASE(region_load_first_copy),
	KUNIT_CASE(region_load_second_copy),
	KUNIT_CASE(region_load_second_copy_semantic),
	KUNIT_CASE(region_load_read_error),
	KUNIT_CASE(region_load_both_damaged),
	{}
};

static struct kunit_suite vhdx_region_suite = {
	.name = "vhdx_region",
	.test_cases = vhdx_region_cases,
};

kunit_test_suite(vhdx_region_suite);

MODULE_LICENSE("GPL");
