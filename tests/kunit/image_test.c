// SPDX-License-Identifier: GPL-2.0
/*
 * vhdx_open() end to end over complete in-memory images, for 512 and 4096
 * byte logical sectors.  qemu-img cannot create 4 KiB-sector images, so
 * this suite is their only coverage.
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

static struct vhdx_image *open_ok(struct kunit *test, struct vhdx_tb *tb,
				  bool read_only)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_open(img, &tb->io, tb->size, read_only),
			    0, "%s", img->error);
	/* The format code only asks for 4 KiB units inside the device. */
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
	return img;
}

static int open_err(struct kunit *test, struct vhdx_tb *tb)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);
	int ret = vhdx_open(img, &tb->io, tb->size, true);

	KUNIT_EXPECT_NE_MSG(test, img->error[0], '\0', "ret %d", ret);
	/* A failed open frees everything it allocated. */
	KUNIT_EXPECT_NULL(test, img->bat);
	KUNIT_EXPECT_NULL(test, img->regions);
	return ret;
}

static void expect_bat_matches(struct kunit *test, struct vhdx_tb *tb,
			       struct vhdx_image *img)
{
	u64 i;

	KUNIT_ASSERT_NOT_NULL(test, img->bat);
	KUNIT_ASSERT_EQ(test, img->geo.bat_entries, tb->bat_entries);
	for (i = 0; i < tb->bat_entries; i++)
		if (le64_to_cpu(img->bat[i]) != vhdx_tb_get_bat(tb, i))
			KUNIT_FAIL(test, "BAT entry %llu: %llx, expected %llx",
				   i, le64_to_cpu(img->bat[i]),
				   vhdx_tb_get_bat(tb, i));
}

/* Reads the payload block @block through vhdx_read, checks its bytes. */
static void expect_block_data(struct kunit *test, struct vhdx_tb *tb,
			      struct vhdx_image *img, u64 block)
{
	u64 entry = le64_to_cpu(img->bat[vhdx_tb_payload_index(tb, block)]);
	u64 voff = block * tb->p.block_size;
	u8 *buf = kunit_kzalloc(test, 8192, GFP_KERNEL);
	unsigned int i, bad = 0;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	KUNIT_ASSERT_EQ(test, vhdx_bat_state(entry),
			(unsigned int)VHDX_PAYLOAD_FULLY_PRESENT);
	/* First and last 8 KiB of the block. */
	KUNIT_ASSERT_EQ(test, vhdx_read(img, vhdx_bat_offset(entry), buf,
					8192), 0);
	for (i = 0; i < 8192; i++)
		bad += buf[i] != vhdx_tb_pattern(voff + i);
	KUNIT_EXPECT_EQ_MSG(test, bad, 0U, "block %llu start", block);
	voff += tb->p.block_size - 8192;
	KUNIT_ASSERT_EQ(test, vhdx_read(img, vhdx_bat_offset(entry) +
					tb->p.block_size - 8192, buf, 8192), 0);
	for (i = 0, bad = 0; i < 8192; i++)
		bad += buf[i] != vhdx_tb_pattern(voff + i);
	KUNIT_EXPECT_EQ_MSG(test, bad, 0U, "block %llu end", block);
}

static void image_open_512(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img;

	vhdx_tb_alloc_block(tb, 0);
	vhdx_tb_alloc_block(tb, 7);
	vhdx_tb_alloc_block(tb, 3);
	vhdx_tb_set_bat(tb, 5, VHDX_PAYLOAD_ZERO, 0);
	img = open_ok(test, tb, false);

	KUNIT_EXPECT_EQ(test, img->geo.virtual_size, 8 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->geo.block_size, VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->geo.logical_sector_size, 512U);
	KUNIT_EXPECT_EQ(test, img->geo.physical_sector_size, 4096U);
	KUNIT_EXPECT_EQ(test, img->geo.chunk_ratio, 4096U);
	KUNIT_EXPECT_EQ(test, img->geo.payload_blocks, 8ULL);
	KUNIT_EXPECT_EQ(test, img->geo.bat_entries, 8ULL);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 3ULL);
	KUNIT_EXPECT_EQ(test, img->header_slot, 1U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 11ULL);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 0U);
	KUNIT_EXPECT_EQ(test, img->bat_region->offset, 2 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->metadata_region->offset, 3 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, (int)img->log_state, (int)VHDX_LOG_CLEAN);
	KUNIT_EXPECT_TRUE(test, guid_equal(&img->virtual_disk_id,
					   &tb->virtual_disk_id));
	KUNIT_EXPECT_FALSE(test, img->read_only);
	expect_bat_matches(test, tb, img);
	expect_block_data(test, tb, img, 0);
	expect_block_data(test, tb, img, 3);
	expect_block_data(test, tb, img, 7);
}

static void image_open_4096(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.virtual_size = 64 * VHDX_MiB,
		.block_size = 2 * VHDX_MiB,
		.logical_sector_size = 4096,
		.physical_sector_size = 4096,
		.region_required = true,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;

	vhdx_tb_alloc_block(tb, 31);
	vhdx_tb_alloc_block(tb, 1);
	img = open_ok(test, tb, false);

	KUNIT_EXPECT_EQ(test, img->geo.logical_sector_size, 4096U);
	KUNIT_EXPECT_EQ(test, img->geo.chunk_ratio, 16384U);
	KUNIT_EXPECT_EQ(test, img->geo.payload_blocks, 32ULL);
	KUNIT_EXPECT_EQ(test, img->geo.bat_entries, 32ULL);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 2ULL);
	expect_bat_matches(test, tb, img);
	expect_block_data(test, tb, img, 31);
	expect_block_data(test, tb, img, 1);
}

/*
 * Past the first chunk, so the BAT holds a sector bitmap entry before the
 * block: 512-byte sectors, 1 MiB blocks (CR 4096), block 4096 at index 4097.
 */
static void image_open_second_chunk_512(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.virtual_size = 4 * VHDX_GiB + 3 * VHDX_MiB,
		.device_size = 8 * VHDX_MiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;

	KUNIT_ASSERT_EQ(test, tb->bat_entries, 4099ULL + 1);
	vhdx_tb_alloc_block(tb, 4096);
	vhdx_tb_alloc_block(tb, 4095);
	KUNIT_ASSERT_EQ(test, vhdx_tb_get_bat(tb, 4097) & 7,
			(u64)VHDX_PAYLOAD_FULLY_PRESENT);
	img = open_ok(test, tb, true);
	KUNIT_EXPECT_EQ(test, img->geo.bat_entries, 4100ULL);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 2ULL);
	expect_bat_matches(test, tb, img);
	expect_block_data(test, tb, img, 4096);
	expect_block_data(test, tb, img, 4095);
}

/* The same with 4 KiB sectors: CR 32768, chunks of 32 GiB. */
static void image_open_second_chunk_4096(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.virtual_size = 32 * VHDX_GiB + VHDX_MiB,
		.logical_sector_size = 4096,
		.physical_sector_size = 512,
		.device_size = 8 * VHDX_MiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;

	KUNIT_ASSERT_EQ(test, tb->chunk_ratio, 32768U);
	KUNIT_ASSERT_EQ(test, tb->bat_entries, 32770ULL);
	vhdx_tb_alloc_block(tb, 32768);
	img = open_ok(test, tb, true);
	KUNIT_EXPECT_EQ(test, img->geo.chunk_ratio, 32768U);
	KUNIT_EXPECT_EQ(test, img->geo.physical_sector_size, 512U);
	KUNIT_EXPECT_EQ(test, img->allocated_blocks, 1ULL);
	expect_bat_matches(test, tb, img);
	expect_block_data(test, tb, img, 32768);
}

/* A read-only device: a write or flush would dereference NULL. */
static void image_read_only_never_writes(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img;

	vhdx_tb_alloc_block(tb, 2);
	vhdx_tb_set_read_only(tb);
	img = open_ok(test, tb, true);
	KUNIT_EXPECT_TRUE(test, img->read_only);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, tb->flushes, 0U);
	expect_block_data(test, tb, img, 2);
}

/* Writable callbacks but a read-only open: still no write. */
static void image_read_only_open_counts(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img;

	img = open_ok(test, tb, true);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, tb->flushes, 0U);
	KUNIT_EXPECT_GT(test, tb->reads, 0U);
	vhdx_close(img);
	/* Closing twice is harmless (the test cleanup closes again). */
	vhdx_close(img);
}

static void image_damaged_header_2(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img;

	vhdx_tb_header(tb, 1)->checksum ^= cpu_to_le32(1);
	img = open_ok(test, tb, true);
	KUNIT_EXPECT_EQ(test, img->header_slot, 0U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 10ULL);
}

static void image_damaged_region_table_1(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img;
	u8 *t = vhdx_tb_region_table(tb, 0);

	t[20] ^= 0xff;
	vhdx_tb_alloc_block(tb, 4);
	img = open_ok(test, tb, true);
	KUNIT_EXPECT_EQ(test, img->region_table_copy, 1U);
	expect_block_data(test, tb, img, 4);
}

static void image_bad_identifier(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);

	memcpy(tb->dev, "conectix", 8);	/* a VHD footer signature */
	KUNIT_EXPECT_EQ(test, open_err(test, tb), -EINVAL);
}

static void image_device_too_small(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);

	tb->size = 512 * VHDX_KiB;
	KUNIT_EXPECT_LT(test, open_err(test, tb), 0);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

/* The device is shorter than the regions: refused, nothing read beyond. */
static void image_truncated(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);

	tb->size = 3 * VHDX_MiB;	/* metadata region at 3 MiB is gone */
	KUNIT_EXPECT_LT(test, open_err(test, tb), 0);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

/* 200 GiB of 1 MiB blocks needs 1.6 MiB of BAT; the region has 1 MiB. */
static void image_bat_region_too_small(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.virtual_size = 200 * VHDX_GiB,
		.bat_length = VHDX_MiB,
		.device_size = 8 * VHDX_MiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);

	KUNIT_EXPECT_EQ(test, open_err(test, tb), -EINVAL);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

static void image_bad_bat_entry(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);

	vhdx_tb_set_bat(tb, 2, VHDX_PAYLOAD_FULLY_PRESENT, 2 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, open_err(test, tb), -EINVAL);

	tb = vhdx_tb_build(test, NULL);
	vhdx_tb_set_bat(tb, 2, 4, 0);
	KUNIT_EXPECT_EQ(test, open_err(test, tb), -EINVAL);
}

static void image_read_error(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);

	tb->fail_read_offset = tb->p.bat_offset;
	KUNIT_EXPECT_EQ(test, open_err(test, tb), -EIO);
}

static struct kunit_case vhdx_image_cases[] = {
	KUNIT_CASE(image_open_512),
	KUNIT_CASE(image_open_4096),
	KUNIT_CASE(image_open_second_chunk_512),
	KUNIT_CASE(image_open_second_chunk_4096),
	KUNIT_CASE(image_read_only_never_writes),
	KUNIT_CASE(image_read_only_open_counts),
	KUNIT_CASE(image_damaged_header_2),
	KUNIT_CASE(image_damaged_region_table_1),
	KUNIT_CASE(image_bad_identifier),
	KUNIT_CASE(image_device_too_small),
	KUNIT_CASE(image_truncated),
	KUNIT_CASE(image_bat_region_too_small),
	KUNIT_CASE(image_bad_bat_entry),
	KUNIT_CASE(image_read_error),
	{}
};

static struct kunit_suite vhdx_image_suite = {
	.name = "vhdx_image",
	.test_cases = vhdx_image_cases,
};

kunit_test_suite(vhdx_image_suite);

MODULE_LICENSE("GPL");
