// SPDX-License-Identifier: GPL-2.0
/*
 * CRC-32C as VHDX uses it.  The expected values are published check values
 * (Castagnoli "123456789", RFC 3720 B.4) or were computed with an
 * independent bitwise CRC-32C, so they do not depend on the code under test.
 */
#include <kunit/test.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"

/* Standard CRC-32C: initial ~0, final inversion, as the platform shim says. */
static u32 std_crc32c(const void *buf, size_t len)
{
	return ~vhdx_crc32c(~0U, buf, len);
}

static void crc32c_check_value(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, std_crc32c("123456789", 9), 0xE3069283U);
}

/* RFC 3720 appendix B.4. */
static void crc32c_rfc3720_vectors(struct kunit *test)
{
	static const u8 read_pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	u8 buf[32];
	int i;

	memset(buf, 0, sizeof(buf));
	KUNIT_EXPECT_EQ(test, std_crc32c(buf, 32), 0x8A9136AAU);
	memset(buf, 0xff, sizeof(buf));
	KUNIT_EXPECT_EQ(test, std_crc32c(buf, 32), 0x62A8AB43U);
	for (i = 0; i < 32; i++)
		buf[i] = i;
	KUNIT_EXPECT_EQ(test, std_crc32c(buf, 32), 0x46DD794EU);
	for (i = 0; i < 32; i++)
		buf[i] = 31 - i;
	KUNIT_EXPECT_EQ(test, std_crc32c(buf, 32), 0x113FDB5CU);
	KUNIT_EXPECT_EQ(test, std_crc32c(read_pdu, sizeof(read_pdu)),
			0xD9963A56U);
}

/* The checksum field counts as zero: with a zero field, it is plain CRC. */
static void checksum_zero_field_is_plain_crc(struct kunit *test)
{
	u8 buf[36] = { 0 };

	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 32, 4), 0x8A9136AAU);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 32, 0), 0x8A9136AAU);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 32, 28), 0x8A9136AAU);
	memset(buf, 0xff, sizeof(buf));
	memset(buf + 4, 0, 4);
	/* 0xff*4, 0*4, 0xff*24, computed independently. */
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 32, 4),
			std_crc32c(buf, 32));
}

/* Known values for "123456789" with 4 bytes at an offset zeroed. */
static void checksum_field_anywhere(struct kunit *test)
{
	u8 buf[9];

	memcpy(buf, "123456789", 9);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 9, 0), 0x7D227B4EU);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 9, 4), 0x6D901313U);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 9, 5), 0x691F84F6U);
	/* Whatever the field holds, the result is the same. */
	memset(buf + 4, 0xa5, 4);
	KUNIT_EXPECT_EQ(test, vhdx_checksum(buf, 9, 4), 0x6D901313U);
	/* The rest of the buffer is not modified. */
	KUNIT_EXPECT_EQ(test, buf[4], 0xa5);
	KUNIT_EXPECT_EQ(test, buf[0], '1');
	KUNIT_EXPECT_EQ(test, buf[8], '9');
}

/* For every field position in a 64-byte buffer, against a zeroed copy. */
static void checksum_matches_zeroed_copy(struct kunit *test)
{
	u8 buf[64], copy[64];
	size_t off;
	int i;

	for (i = 0; i < 64; i++)
		buf[i] = i * 37 + 11;
	for (off = 0; off + 4 <= sizeof(buf); off++) {
		memcpy(copy, buf, sizeof(buf));
		memset(copy + off, 0, 4);
		KUNIT_EXPECT_EQ_MSG(test, vhdx_checksum(buf, sizeof(buf), off),
				    std_crc32c(copy, sizeof(copy)),
				    "checksum field at %zu", off);
	}
}

static void checksum_set_ok_round_trip(struct kunit *test)
{
	u8 *buf = kunit_kzalloc(test, VHDX_HEADER_SIZE, GFP_KERNEL);
	__le32 stored;
	size_t off;
	int i;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	for (i = 0; i < VHDX_HEADER_SIZE; i++)
		buf[i] = i ^ (i >> 8);
	KUNIT_EXPECT_FALSE(test, vhdx_checksum_ok(buf, VHDX_HEADER_SIZE, 4));
	for (off = 0; off <= 8; off += 4) {
		vhdx_checksum_set(buf, VHDX_HEADER_SIZE, off);
		KUNIT_EXPECT_TRUE(test,
				  vhdx_checksum_ok(buf, VHDX_HEADER_SIZE, off));
		memcpy(&stored, buf + off, 4);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(stored),
				vhdx_checksum(buf, VHDX_HEADER_SIZE, off));
	}
	/* Stored little-endian. */
	memset(buf, 0, VHDX_HEADER_SIZE);
	vhdx_checksum_set(buf, 32, 4);
	KUNIT_EXPECT_EQ(test, buf[4], 0xAA);
	KUNIT_EXPECT_EQ(test, buf[5], 0x36);
	KUNIT_EXPECT_EQ(test, buf[6], 0x91);
	KUNIT_EXPECT_EQ(test, buf[7], 0x8A);
}

static void checksum_detects_flipped_bit(struct kunit *test)
{
	static const size_t positions[] = { 0, 3, 4, 7, 8, 100, 4095 };
	u8 *buf = kunit_kzalloc(test, VHDX_HEADER_SIZE, GFP_KERNEL);
	unsigned int i, bit;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	memcpy(buf, "head", 4);
	vhdx_checksum_set(buf, VHDX_HEADER_SIZE, 4);
	KUNIT_ASSERT_TRUE(test, vhdx_checksum_ok(buf, VHDX_HEADER_SIZE, 4));
	for (i = 0; i < ARRAY_SIZE(positions); i++) {
		for (bit = 0; bit < 8; bit++) {
			bool ok;

			buf[positions[i]] ^= 1 << bit;
			ok = vhdx_checksum_ok(buf, VHDX_HEADER_SIZE, 4);
			KUNIT_EXPECT_FALSE_MSG(test, ok, "byte %zu bit %u",
					       positions[i], bit);
			buf[positions[i]] ^= 1 << bit;
		}
	}
	KUNIT_EXPECT_TRUE(test, vhdx_checksum_ok(buf, VHDX_HEADER_SIZE, 4));
}

static struct kunit_case vhdx_checksum_cases[] = {
	KUNIT_CASE(crc32c_check_value),
	KUNIT_CASE(crc32c_rfc3720_vectors),
	KUNIT_CASE(checksum_zero_field_is_plain_crc),
	KUNIT_CASE(checksum_field_anywhere),
	KUNIT_CASE(checksum_matches_zeroed_copy),
	KUNIT_CASE(checksum_set_ok_round_trip),
	KUNIT_CASE(checksum_detects_flipped_bit),
	{}
};

static struct kunit_suite vhdx_checksum_suite = {
	.name = "vhdx_checksum",
	.test_cases = vhdx_checksum_cases,
};

kunit_test_suite(vhdx_checksum_suite);

MODULE_LICENSE("GPL");
