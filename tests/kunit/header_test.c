// SPDX-License-Identifier: GPL-2.0
/*
 * File identifier and headers: validity (MS-VHDX 2.2.2) and the choice of
 * the current header, for every combination of the two copies.
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

static struct vhdx_header *new_header(struct kunit *test, u64 seq)
{
	struct vhdx_header *h = kunit_kzalloc(test, sizeof(*h), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, h);
	vhdx_tb_write_header(h, seq, VHDX_MiB, VHDX_MiB);
	return h;
}

static void rechecksum(struct vhdx_header *h)
{
	vhdx_checksum_set(h, sizeof(*h), offsetof(struct vhdx_header, checksum));
}

static void file_identifier_good(struct kunit *test)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);
	u8 *buf = kunit_kzalloc(test, VHDX_HEADER_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, buf);
	memcpy(buf, "vhdxfile", 8);
	KUNIT_EXPECT_EQ(test, vhdx_file_identifier_check(img, buf), 0);
	/* The creator string is diagnostic only: garbage is fine. */
	memset(buf + 8, 0xff, 512);
	KUNIT_EXPECT_EQ(test, vhdx_file_identifier_check(img, buf), 0);
}

static void file_identifier_bad_signature(struct kunit *test)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);
	u8 *buf = kunit_kzalloc(test, VHDX_HEADER_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, buf);
	memcpy(buf, "vhdxfilE", 8);
	KUNIT_EXPECT_EQ(test, vhdx_file_identifier_check(img, buf), -EINVAL);
	KUNIT_EXPECT_NE(test, img->error[0], '\0');
	/* QEMU's LE integer, stored big-endian, is not the signature. */
	memcpy(buf, "elifxdhv", 8);
	KUNIT_EXPECT_EQ(test, vhdx_file_identifier_check(img, buf), -EINVAL);
	memset(buf, 0, 8);
	KUNIT_EXPECT_EQ(test, vhdx_file_identifier_check(img, buf), -EINVAL);
}

static void header_check_good(struct kunit *test)
{
	struct vhdx_header *h = new_header(test, 1);
	const char *why = NULL;

	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), 0);
	/* Sequence number 0 and the largest value are both valid. */
	h->sequence_number = 0;
	rechecksum(h);
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), 0);
	h->sequence_number = cpu_to_le64(U64_MAX);
	rechecksum(h);
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), 0);
}

static void header_check_bad_signature(struct kunit *test)
{
	struct vhdx_header *h = new_header(test, 1);
	const char *why = NULL;

	memcpy(h->signature, "daeh", 4);
	rechecksum(h);
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), -EINVAL);
	KUNIT_EXPECT_NOT_NULL(test, why);
}

static void header_check_bad_checksum(struct kunit *test)
{
	struct vhdx_header *h = new_header(test, 1);
	const char *why = NULL;

	h->checksum ^= cpu_to_le32(1);
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), -EINVAL);
	KUNIT_EXPECT_NOT_NULL(test, why);

	/* The checksum covers all 4 KiB, the reserved tail included. */
	h = new_header(test, 1);
	h->reserved[sizeof(h->reserved) - 1] = 1;
	why = NULL;
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), -EINVAL);
	KUNIT_EXPECT_NOT_NULL(test, why);
}

static void header_check_bad_version(struct kunit *test)
{
	static const u16 versions[] = { 0, 2, 0x100, 0xffff };
	struct vhdx_header *h = new_header(test, 1);
	const char *why;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(versions); i++) {
		h->version = cpu_to_le16(versions[i]);
		rechecksum(h);
		why = NULL;
		KUNIT_EXPECT_EQ_MSG(test, vhdx_header_check(h, &why), -EINVAL,
				    "version %u", versions[i]);
		KUNIT_EXPECT_NOT_NULL(test, why);
	}
}

static void header_check_bad_log_version(struct kunit *test)
{
	struct vhdx_header *h = new_header(test, 1);
	const char *why = NULL;

	h->log_version = cpu_to_le16(1);
	rechecksum(h);
	KUNIT_EXPECT_EQ(test, vhdx_header_check(h, &why), -EINVAL);
	KUNIT_EXPECT_NOT_NULL(test, why);
}

static void select_expect(struct kunit *test, const struct vhdx_header *h1,
			  const struct vhdx_header *h2, unsigned int slot)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);
	const struct vhdx_header *want = slot ? h2 : h1;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_select(img, h1, h2), 0,
			    "error: %s", img->error);
	KUNIT_EXPECT_EQ(test, img->header_slot, slot);
	KUNIT_EXPECT_MEMEQ(test, &img->header, want, sizeof(*want));
}

static void select_both_valid_first_newer(struct kunit *test)
{
	select_expect(test, new_header(test, 8), new_header(test, 7), 0);
	/* Compared as u64, not as a signed or 32-bit value. */
	select_expect(test, new_header(test, 1ULL << 63),
		      new_header(test, 5), 0);
	select_expect(test, new_header(test, 1ULL << 32),
		      new_header(test, 0xffffffff), 0);
}

static void select_both_valid_second_newer(struct kunit *test)
{
	select_expect(test, new_header(test, 7), new_header(test, 8), 1);
	select_expect(test, new_header(test, 0), new_header(test, U64_MAX), 1);
}

static void select_equal_identical_accepted(struct kunit *test)
{
	struct vhdx_header *h1 = new_header(test, 42);
	struct vhdx_header *h2 = new_header(test, 42);
	struct vhdx_image *img = vhdx_tb_new_image(test);

	KUNIT_ASSERT_EQ(test, vhdx_header_select(img, h1, h2), 0);
	KUNIT_EXPECT_MEMEQ(test, &img->header, h1, sizeof(*h1));
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 42ULL);
}

static void select_equal_different_refused(struct kunit *test)
{
	struct vhdx_header *h1 = new_header(test, 42);
	struct vhdx_header *h2 = new_header(test, 42);
	struct vhdx_image *img = vhdx_tb_new_image(test);

	h2->data_write_guid.b[0] ^= 1;
	rechecksum(h2);
	KUNIT_EXPECT_EQ(test, vhdx_header_select(img, h1, h2), -EINVAL);
	KUNIT_EXPECT_NE(test, img->error[0], '\0');
}

static void select_only_first_valid(struct kunit *test)
{
	struct vhdx_header *h1 = new_header(test, 5);
	struct vhdx_header *h2 = new_header(test, 9);

	h2->checksum ^= cpu_to_le32(0x100);
	select_expect(test, h1, h2, 0);

	h2 = new_header(test, 9);
	memset(h2, 0, sizeof(*h2));
	select_expect(test, h1, h2, 0);

	/* A higher sequence number does not make an invalid header count. */
	h2 = new_header(test, 9);
	h2->version = cpu_to_le16(2);
	rechecksum(h2);
	select_expect(test, h1, h2, 0);
}

static void select_only_second_valid(struct kunit *test)
{
	struct vhdx_header *h1 = new_header(test, 9);
	struct vhdx_header *h2 = new_header(test, 5);

	memcpy(h1->signature, "xead", 4);
	select_expect(test, h1, h2, 1);

	h1 = new_header(test, 9);
	h1->log_version = cpu_to_le16(3);
	rechecksum(h1);
	select_expect(test, h1, h2, 1);
}

static void select_none_valid_refused(struct kunit *test)
{
	struct vhdx_header *h1 = new_header(test, 1);
	struct vhdx_header *h2 = new_header(test, 2);
	struct vhdx_image *img = vhdx_tb_new_image(test);

	h1->checksum ^= cpu_to_le32(1);
	memcpy(h2->signature, "HEAD", 4);
	rechecksum(h2);
	KUNIT_EXPECT_EQ(test, vhdx_header_select(img, h1, h2), -EINVAL);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "header 1"),
				  "error: %s", img->error);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "header 2"),
				  "error: %s", img->error);
}

/* Through the fake device: identifier and both headers from the builder. */
static void header_load_from_device(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = vhdx_tb_new_image(test);

	img->io = &tb->io;
	img->device_size = tb->size;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_load(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->header_slot, 1U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 11ULL);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);

	/* Damage header 2: header 1 takes over. */
	vhdx_tb_header(tb, 1)->sequence_number = cpu_to_le64(99);
	KUNIT_ASSERT_EQ(test, vhdx_header_load(img), 0);
	KUNIT_EXPECT_EQ(test, img->header_slot, 0U);

	/* Damage the file identifier: not a VHDX. */
	tb->dev[0] = 'V';
	KUNIT_EXPECT_EQ(test, vhdx_header_load(img), -EINVAL);
}

static void header_load_bad_log_location(struct kunit *test)
{
	struct vhdx_tb_params p = { 0 };
	struct vhdx_image *img = vhdx_tb_new_image(test);
	struct vhdx_tb *tb;

	/* Log inside the header section. */
	p.log_offset = 512 * VHDX_KiB;
	p.log_length = VHDX_MiB;
	tb = vhdx_tb_build(test, &p);
	img->io = &tb->io;
	img->device_size = tb->size;
	KUNIT_EXPECT_EQ(test, vhdx_header_load(img), -EINVAL);

	/* Log not 1 MiB aligned. */
	p.log_offset = VHDX_MiB + 4096;
	tb = vhdx_tb_build(test, &p);
	img->io = &tb->io;
	KUNIT_EXPECT_EQ(test, vhdx_header_load(img), -EINVAL);

	/* Log beyond the device. */
	p.log_offset = 64 * VHDX_MiB;
	tb = vhdx_tb_build(test, &p);
	img->io = &tb->io;
	img->device_size = tb->size;
	KUNIT_EXPECT_EQ(test, vhdx_header_load(img), -EINVAL);
}

static const guid_t new_fw = GUID_INIT(0xf0f0f0f0, 1, 2, 3, 4, 5, 6, 7, 8,
				       9, 10);
static const guid_t new_dw = GUID_INIT(0xd0d0d0d0, 1, 2, 3, 4, 5, 6, 7, 8,
				       9, 10);
static const guid_t new_log = GUID_INIT(0x10610610, 1, 2, 3, 4, 5, 6, 7, 8,
					9, 10);

static struct vhdx_image *loaded(struct kunit *test, struct vhdx_tb *tb)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	img->io = &tb->io;
	img->device_size = tb->size;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_load(img), 0, "%s", img->error);
	tb->nops = 0;
	tb->reads = 0;
	return img;
}

static void expect_device_header(struct kunit *test, struct vhdx_tb *tb,
				 unsigned int slot, u64 seq)
{
	struct vhdx_header *h = vhdx_tb_header(tb, slot);
	const char *why = NULL;

	KUNIT_EXPECT_EQ_MSG(test, vhdx_header_check(h, &why), 0,
			    "header %u: %s", slot + 1, why);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->sequence_number), seq);
	KUNIT_EXPECT_TRUE(test, guid_equal(&h->file_write_guid, &new_fw));
	KUNIT_EXPECT_TRUE(test, guid_equal(&h->data_write_guid, &new_dw));
	KUNIT_EXPECT_TRUE(test, guid_equal(&h->log_guid, &new_log));
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->log_offset), VHDX_MiB);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->log_length), (u32)VHDX_MiB);
}

/* The writes and flushes recorded by the fake device, as text. */
static const char *write_sequence(struct vhdx_tb *tb)
{
	unsigned int i, n = min_t(unsigned int, tb->nops, VHDX_TB_MAX_OPS);
	char *buf = kunit_kzalloc(tb->test, 256, GFP_KERNEL);
	size_t len = 0;

	if (!buf)
		return "";
	for (i = 0; i < n && len < 200; i++) {
		if (tb->ops[i].type == 'w')
			len += scnprintf(buf + len, 256 - len, "%sw%llu",
					 len ? " " : "", tb->ops[i].offset);
		else if (tb->ops[i].type == 'f')
			len += scnprintf(buf + len, 256 - len, "%sf",
					 len ? " " : "");
	}
	return buf;
}

/*
 * MS-VHDX 2.2.2.1: the non-current header first with seq + 1, flush, then
 * the other one with seq + 2, flush.
 */
static void header_update_two_steps(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);	/* seq 10, 11 */
	struct vhdx_image *img = loaded(test, tb);

	KUNIT_ASSERT_EQ(test, img->header_slot, 1U);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_update(img, &new_fw, &new_dw,
						     &new_log), 0,
			    "%s", img->error);
	KUNIT_EXPECT_EQ(test, tb->writes, 2U);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_ASSERT_GE(test, tb->nops, 4U);
	/* Ignoring reads: write header 1, flush, write header 2, flush. */
	KUNIT_EXPECT_STREQ(test, write_sequence(tb), "w65536 f w131072 f");
	expect_device_header(test, tb, 0, 12);
	expect_device_header(test, tb, 1, 13);
	KUNIT_EXPECT_EQ(test, img->header_slot, 1U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 13ULL);
	KUNIT_EXPECT_MEMEQ(test, &img->header, vhdx_tb_header(tb, 1),
			   sizeof(img->header));

	/* What was written is what a fresh open selects. */
	img = loaded(test, tb);
	KUNIT_EXPECT_EQ(test, img->header_slot, 1U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 13ULL);
}

/* Header 1 current: header 2 is written first. */
static void header_update_from_slot_0(struct kunit *test)
{
	struct vhdx_tb_params p = { .header_seq = { 50, 7 } };
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img = loaded(test, tb);

	KUNIT_ASSERT_EQ(test, img->header_slot, 0U);
	KUNIT_ASSERT_EQ(test, vhdx_header_update(img, &new_fw, &new_dw,
						 &new_log), 0);
	KUNIT_EXPECT_STREQ(test, write_sequence(tb), "w131072 f w65536 f");
	expect_device_header(test, tb, 1, 51);
	expect_device_header(test, tb, 0, 52);
	KUNIT_EXPECT_EQ(test, img->header_slot, 0U);
}

/*
 * An invalid stale header must not leak its fields into the new one: both
 * copies are built from the current header (unlike QEMU, reference 2.4).
 */
static void header_update_ignores_stale_copy(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_header *h1 = vhdx_tb_header(tb, 0);
	struct vhdx_image *img;

	h1->log_offset = cpu_to_le64(40 * VHDX_MiB);	/* and bad CRC */
	img = loaded(test, tb);
	KUNIT_ASSERT_EQ(test, vhdx_header_update(img, &new_fw, &new_dw,
						 &new_log), 0);
	expect_device_header(test, tb, 0, 12);
	expect_device_header(test, tb, 1, 13);
}

static void header_update_read_only(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = loaded(test, tb);

	vhdx_tb_set_read_only(tb);
	KUNIT_EXPECT_LT(test, vhdx_header_update(img, &new_fw, &new_dw,
						 &new_log), 0);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 11ULL);
}

/* A failed first write leaves the current header current. */
static void header_update_write_error(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = loaded(test, tb);

	tb->fail_write_offset = VHDX_HEADER1_OFFSET;
	KUNIT_EXPECT_EQ(test, vhdx_header_update(img, &new_fw, &new_dw,
						 &new_log), -EIO);
	KUNIT_EXPECT_NE(test, img->error[0], '\0');
	KUNIT_EXPECT_EQ(test, img->header_slot, 1U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->header.sequence_number), 11ULL);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(vhdx_tb_header(tb, 1)->sequence_number),
			11ULL);
}

static void header_update_sequence_overflow(struct kunit *test)
{
	struct vhdx_tb_params p = { .header_seq = { 1, U64_MAX } };
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img = loaded(test, tb);

	KUNIT_EXPECT_LT(test, vhdx_header_update(img, &new_fw, &new_dw,
						 &new_log), 0);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	/* The current header is untouched on the device. */
	KUNIT_EXPECT_EQ(test, le64_to_cpu(vhdx_tb_header(tb, 1)->sequence_number),
			U64_MAX);
}

static struct kunit_case vhdx_header_cases[] = {
	KUNIT_CASE(file_identifier_good),
	KUNIT_CASE(file_identifier_bad_signature),
	KUNIT_CASE(header_check_good),
	KUNIT_CASE(header_check_bad_signature),
	KUNIT_CASE(header_check_bad_checksum),
	KUNIT_CASE(header_check_bad_version),
	KUNIT_CASE(header_check_bad_log_version),
	KUNIT_CASE(select_both_valid_first_newer),
	KUNIT_CASE(select_both_valid_second_newer),
	KUNIT_CASE(select_equal_identical_accepted),
	KUNIT_CASE(select_equal_different_refused),
	KUNIT_CASE(select_only_first_valid),
	KUNIT_CASE(select_only_second_valid),
	KUNIT_CASE(select_none_valid_refused),
	KUNIT_CASE(header_load_from_device),
	KUNIT_CASE(header_load_bad_log_location),
	KUNIT_CASE(header_update_two_steps),
	KUNIT_CASE(header_update_from_slot_0),
	KUNIT_CASE(header_update_ignores_stale_copy),
	KUNIT_CASE(header_update_read_only),
	KUNIT_CASE(header_update_write_error),
	KUNIT_CASE(header_update_sequence_overflow),
	{}
};

static struct kunit_suite vhdx_header_suite = {
	.name = "vhdx_header",
	.test_cases = vhdx_header_cases,
};

kunit_test_suite(vhdx_header_suite);

MODULE_LICENSE("GPL");
