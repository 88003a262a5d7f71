// SPDX-License-Identifier: GPL-2.0
/*
 * The write side: log entries written by log_write.c and read back by the
 * reader in log.c, sessions and commits (txn.c) with the order of their
 * writes and flushes, recovery from a crash at the worst moment, and space
 * allocation (alloc.c).  Expected values come from the builder's layout and
 * from the format, never from the code under test.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"
#include "rec_dev.h"

#define SECT		VHDX_LOG_SECTOR_SIZE
#define RING_1M		((u32)VHDX_MiB)
#define BAT_PER_SECT	(SECT / sizeof(__le64))

static const guid_t guid_a =
	GUID_INIT(0xa1a2a3a4, 0xb1b2, 0xc1c2,
		  0xd1, 0xd2, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06);
static const guid_t guid_b =
	GUID_INIT(0xb1b2b3b4, 0xc1c2, 0xd1d2,
		  0xe1, 0xe2, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01);

/* ---- images --------------------------------------------------------- */

static struct vhdx_image *open_img(struct kunit *test,
				   const struct vhdx_io *io, u64 size,
				   bool read_only)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_open(img, io, size, read_only), 0,
			    "%s", img->error);
	return img;
}

/* A read-write image through @r, ready for sessions. */
static struct vhdx_image *open_txn(struct kunit *test, struct rec *r)
{
	struct vhdx_image *img = open_img(test, &r->io, r->tb->size, false);

	rec_txn_init(test, img);
	return img;
}

/* 1 MiB blocks, so that a virtual size of N GiB needs 2 * N BAT sectors. */
static struct vhdx_tb *big_tb(struct kunit *test, u64 virtual_size,
			      u64 device_size)
{
	struct vhdx_tb_params p = {
		.virtual_size = virtual_size,
		.device_size = device_size,
	};

	return vhdx_tb_build(test, &p);
}

static u32 bat_sectors(const struct vhdx_tb *tb)
{
	return DIV_ROUND_UP(tb->bat_entries * sizeof(__le64), SECT);
}

/* A payload entry (never a sector bitmap entry) in BAT sector @s. */
static u64 entry_in_sector(const struct vhdx_tb *tb, u32 s, u32 k)
{
	u64 index = (u64)s * BAT_PER_SECT + k % BAT_PER_SECT;

	if (index % (tb->chunk_ratio + 1) == tb->chunk_ratio)
		index++;
	KUNIT_ASSERT_LT(tb->test, index, tb->bat_entries);
	KUNIT_ASSERT_EQ(tb->test, index / BAT_PER_SECT, (u64)s);
	return index;
}

static u64 zero_entry(void)
{
	return VHDX_PAYLOAD_ZERO;
}

static u64 present_entry(u64 offset)
{
	return offset | VHDX_PAYLOAD_FULLY_PRESENT;
}

static void expect_bat(struct kunit *test, const u8 *got,
		       const struct vhdx_image *want, const char *what)
{
	size_t len = want->geo.bat_entries * sizeof(__le64), i, bad = 0;
	const u8 *w = (const u8 *)want->bat;

	for (i = 0; i < len; i++)
		bad += got[i] != w[i];
	KUNIT_EXPECT_EQ_MSG(test, bad, (size_t)0, "%s", what);
}

/* ---- log entries ---------------------------------------------------- */

static bool entry_crc_ok(const void *entry, u32 len)
{
	return vhdx_checksum_ok(entry, len,
				offsetof(struct vhdx_log_entry_header,
					 checksum));
}

static bool header_crc_ok(const struct vhdx_header *h)
{
	return vhdx_checksum_ok(h, sizeof(*h),
				offsetof(struct vhdx_header, checksum));
}

/* The largest count whose entry fits in half of @ring. */
static u32 expect_max_updates(u32 ring)
{
	u32 n = 0;

	while (expect_len(n + 1) <= ring / 2)
		n++;
	return n;
}

/* Sector i of an update set: neighbouring sectors and sets all differ. */
static void fill_updates(u8 *data, u32 count, u32 seed)
{
	u32 i, j;

	for (i = 0; i < count; i++)
		for (j = 0; j < SECT; j++)
			data[(size_t)i * SECT + j] =
				(u8)(j * 7 + (j >> 8) * 3 + i * 29 +
				     (i >> 8) * 17 + seed * 101 + 1);
}

static struct vhdx_log_update *make_updates(struct kunit *test, u32 count,
					    u64 first, const u8 *data)
{
	struct vhdx_log_update *u =
		vhdx_tb_zalloc(test, (count + 1) * sizeof(*u));
	u32 i;

	for (i = 0; i < count; i++) {
		u[i].offset = first + (u64)i * SECT;
		u[i].data = data + (size_t)i * SECT;
	}
	return u;
}

/* Bytes [pos, pos + len) of the ring, wrapping. */
static u8 *ring_copy(struct kunit *test, const struct vhdx_tb *tb, u32 pos,
		     u32 len)
{
	u8 *buf = vhdx_tb_zalloc(test, len);
	u32 i, ring = tb->p.log_length;

	for (i = 0; i < len; i += SECT)
		memcpy(buf + i, tb->dev + tb->p.log_offset + (pos + i) % ring,
		       SECT);
	return buf;
}

/* An image whose log is @ring bytes at 1 MiB; nothing else changes. */
static struct vhdx_tb *ring_tb(struct kunit *test, u32 ring)
{
	struct vhdx_tb_params p = {
		.log_offset = VHDX_MiB,
		.log_length = ring,
		.bat_offset = VHDX_MiB + ring,
	};

	return vhdx_tb_build(test, &p);
}

/* An open image whose header (in memory) names @guid. */
static struct vhdx_image *log_img(struct kunit *test, struct vhdx_tb *tb,
				  const guid_t *guid, u64 sequence)
{
	struct vhdx_image *img = open_img(test, &tb->io, tb->size, false);

	img->header.log_guid = *guid;
	img->txn.log_pos = 0;
	img->txn.log_sequence = sequence;
	return img;
}

static void round_trip(struct kunit *test, u32 count, u32 ring)
{
	const u64 sequence = 0x123456789ULL;	/* both halves matter */
	struct vhdx_tb *tb = ring_tb(test, ring);
	struct vhdx_image *img = log_img(test, tb, &guid_a, sequence);
	u8 *data = vhdx_tb_zalloc(test, (size_t)(count + 1) * SECT);
	struct vhdx_log_update *u = make_updates(test, count, tb->data_offset,
						 data);
	const u8 *entry = tb->dev + tb->p.log_offset;
	const struct vhdx_log_entry_header *h = (const void *)entry;
	u32 len = expect_len(count), dsec = DIV_ROUND_UP(count + 2, 128);
	unsigned int writes = tb->writes, flushes = tb->flushes;

	KUNIT_ASSERT_LE(test, (u64)count * SECT, tb->size - tb->data_offset);
	fill_updates(data, count, count);
	tb->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_write_entry(img, &guid_a, u, count),
			    0, "%u updates: %s", count, img->error);
	KUNIT_EXPECT_EQ(test, vhdx_log_entry_length(count), len);

	/* One write of the whole entry at the ring start; the caller flushes. */
	KUNIT_EXPECT_EQ(test, tb->writes - writes, 1U);
	KUNIT_EXPECT_EQ(test, tb->flushes, flushes);
	KUNIT_EXPECT_EQ(test, tb->ops[0].type, 'w');
	KUNIT_EXPECT_EQ(test, tb->ops[0].offset, tb->p.log_offset);
	KUNIT_EXPECT_EQ(test, tb->ops[0].len, (size_t)len);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, img->txn.log_pos, len);
	KUNIT_EXPECT_EQ(test, img->txn.log_sequence, sequence + 1);

	/* The header field by field, and the CRC over the whole entry. */
	KUNIT_EXPECT_EQ(test, memcmp(h->signature, "loge", 4), 0);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->entry_length), len);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->tail), 0U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->sequence_number), sequence);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->descriptor_count), count);
	KUNIT_EXPECT_TRUE(test, guid_equal(&h->log_guid, &guid_a));
	/* Nothing is allocated yet: every object ends at the first block. */
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->flushed_file_offset),
			tb->data_offset);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->last_file_offset),
			tb->data_offset);
	KUNIT_EXPECT_TRUE(test, entry_crc_ok(entry, len));
	if (len < ring)
		KUNIT_EXPECT_TRUE(test, all_zero(entry + len, SECT));

	/* The last update, placed by hand from the format. */
	if (count) {
		u32 slot = count - 1 + 2;
		const struct vhdx_log_descriptor *d =
			(const void *)(entry + slot / 128 * SECT +
				       slot % 128 * sizeof(*d));
		const struct vhdx_log_data_sector *s =
			(const void *)(entry + (dsec + count - 1) * SECT);
		const u8 *src = u[count - 1].data;

		KUNIT_EXPECT_EQ(test, memcmp(d->signature, "desc", 4), 0);
		KUNIT_EXPECT_EQ(test, le64_to_cpu(d->file_offset),
				u[count - 1].offset);
		KUNIT_EXPECT_EQ(test, le64_to_cpu(d->sequence_number),
				sequence);
		KUNIT_EXPECT_EQ(test, memcmp(d->leading_bytes, src, 8), 0);
		KUNIT_EXPECT_EQ(test,
				memcmp(d->trailing_bytes, src + SECT - 4, 4),
				0);
		KUNIT_EXPECT_EQ(test, memcmp(s->signature, "data", 4), 0);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(s->sequence_high), 1U);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(s->sequence_low),
				0x23456789U);
		KUNIT_EXPECT_EQ(test, memcmp(s->data, src + 8, SECT - 12), 0);
	}

	expect_active(test, img, 0, sequence, u, count);
}

static void lw_entry_length(struct kunit *test)
{
	static const u32 table[][2] = {
		/* updates, sectors: descriptor sectors plus data sectors */
		{ 0, 1 }, { 1, 2 }, { 125, 126 }, { 126, 127 }, { 127, 129 },
		{ 128, 130 }, { 254, 256 }, { 255, 258 }, { 508, 512 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(table); i++)
		KUNIT_EXPECT_EQ_MSG(test, vhdx_log_entry_length(table[i][0]),
				    table[i][1] * SECT, "%u updates",
				    table[i][0]);
	KUNIT_EXPECT_EQ(test, expect_max_updates(RING_1M), 126U);
	KUNIT_EXPECT_EQ(test, expect_max_updates(4 * RING_1M), 508U);
}

static void lw_round_trip_0_1(struct kunit *test)
{
	round_trip(test, 0, RING_1M);
	round_trip(test, 1, RING_1M);
}

/* 126 updates fill the first descriptor sector exactly. */
static void lw_round_trip_126(struct kunit *test)
{
	round_trip(test, 126, RING_1M);
}

/* 127 need a second descriptor sector, so a ring of 2 MiB. */
static void lw_round_trip_127(struct kunit *test)
{
	round_trip(test, 127, 2 * RING_1M);
	round_trip(test, 128, 2 * RING_1M);
}

/* max_updates from txn.c matches the format, and such an entry works. */
static void lw_round_trip_max(struct kunit *test)
{
	static const u32 rings[] = { RING_1M, 2 * RING_1M, 4 * RING_1M };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(rings); i++) {
		struct vhdx_tb *tb = ring_tb(test, rings[i]);
		struct rec *r = rec_new(test, tb);
		struct vhdx_image *img = open_txn(test, r);
		/* txn.c caps an entry at 256 updates (its buffer, ~1 MiB). */
		u32 max = min(expect_max_updates(rings[i]), 256U);

		KUNIT_EXPECT_EQ_MSG(test, img->txn.max_updates, max,
				    "ring of %u", rings[i]);
		round_trip(test, max, rings[i]);
	}
}

static void expect_refused(struct kunit *test, u32 count)
{
	struct vhdx_tb *tb = ring_tb(test, RING_1M);
	struct vhdx_image *img = log_img(test, tb, &guid_a, 5);
	u8 *data = vhdx_tb_zalloc(test, 128 * SECT);
	struct vhdx_log_update *u = make_updates(test, min(count, 127U),
						 tb->data_offset, data);
	unsigned int writes = tb->writes;

	img->txn.log_pos = 12 * SECT;
	KUNIT_EXPECT_EQ_MSG(test, vhdx_log_write_entry(img, &guid_a, u, count),
			    -EINVAL, "%u updates", count);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "half"), "%s",
				  img->error);
	KUNIT_EXPECT_EQ(test, tb->writes, writes);
	KUNIT_EXPECT_EQ(test, img->txn.log_pos, 12 * SECT);
	KUNIT_EXPECT_EQ(test, img->txn.log_sequence, 5ULL);
	KUNIT_EXPECT_TRUE(test, all_zero(tb->dev + tb->p.log_offset, RING_1M));
}

/* 127 updates take 129 sectors, more than half of a 1 MiB ring. */
static void lw_too_large_refused(struct kunit *test)
{
	u32 count;

	expect_refused(test, 127);
	expect_refused(test, U32_MAX);
	/* A count whose length, taken modulo 2^32, would look small. */
	for (count = 1040000; count < 1050000; count++) {
		u64 sectors = DIV_ROUND_UP((u64)count + 2, 128) + count;

		if (sectors % (1U << 20) && sectors % (1U << 20) <= 64)
			break;
	}
	KUNIT_ASSERT_LT(test, count, 1050000U);
	expect_refused(test, count);
}

/*
 * Entries of many sizes, several of them split across the ring end: each
 * lands right after the previous one, leaves it intact, and is then the
 * active sequence with exactly its own updates.
 */
static void lw_ring_wrap(struct kunit *test)
{
	static const u32 counts[] = {
		100, 100, 100, 0, 126, 126, 50, 1, 126, 3, 0, 126, 90, 126,
	};
	struct vhdx_tb *tb = ring_tb(test, RING_1M);
	struct vhdx_image *img = log_img(test, tb, &guid_a, 1);
	u8 *data = vhdx_tb_zalloc(test, 126 * SECT);
	u32 ring = RING_1M, pos = 0, prev_pos = 0, prev_len = 0, wraps = 0;
	u8 *prev = NULL;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(counts); i++) {
		u32 len = expect_len(counts[i]), first = min(len, ring - pos);
		struct vhdx_log_update *u =
			make_updates(test, counts[i],
				     tb->data_offset + i * SECT, data);

		fill_updates(data, counts[i], i);
		tb->nops = 0;
		KUNIT_ASSERT_EQ_MSG(test,
				    vhdx_log_write_entry(img, &guid_a, u,
							 counts[i]),
				    0, "entry %u: %s", i, img->error);
		KUNIT_EXPECT_EQ(test, tb->ops[0].type, 'w');
		KUNIT_EXPECT_EQ(test, tb->ops[0].offset,
				tb->p.log_offset + pos);
		KUNIT_EXPECT_EQ(test, tb->ops[0].len, (size_t)first);
		if (first < len) {
			wraps++;
			KUNIT_EXPECT_EQ(test, tb->nops, 2U);
			KUNIT_EXPECT_EQ(test, tb->ops[1].type, 'w');
			KUNIT_EXPECT_EQ(test, tb->ops[1].offset,
					tb->p.log_offset);
			KUNIT_EXPECT_EQ(test, tb->ops[1].len,
					(size_t)(len - first));
		} else {
			KUNIT_EXPECT_EQ(test, tb->nops, 1U);
		}
		KUNIT_EXPECT_EQ_MSG(test, img->txn.log_pos, (pos + len) % ring,
				    "entry %u", i);
		if (prev) {
			u8 *now = ring_copy(test, tb, prev_pos, prev_len);

			KUNIT_EXPECT_EQ_MSG(test, memcmp(now, prev, prev_len),
					    0, "entry %u overwrote entry %u",
					    i, i - 1);
		}
		expect_active(test, img, pos, 1 + i, u, counts[i]);
		prev_pos = pos;
		prev_len = len;
		prev = ring_copy(test, tb, pos, len);
		pos = (pos + len) % ring;
	}
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
	KUNIT_EXPECT_GE(test, wraps, 3U);
}

/* Entries ending exactly at the ring end: no empty write, back to 0. */
static void lw_ring_exact_end(struct kunit *test)
{
	static const u32 counts[] = { 126, 126, 0, 0, 5 };
	static const u32 at[] = { 0, 127 * SECT, 254 * SECT, 255 * SECT, 0 };
	struct vhdx_tb *tb = ring_tb(test, RING_1M);
	struct vhdx_image *img = log_img(test, tb, &guid_a, 40);
	u8 *data = vhdx_tb_zalloc(test, 126 * SECT);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(counts); i++) {
		struct vhdx_log_update *u =
			make_updates(test, counts[i], tb->data_offset, data);

		fill_updates(data, counts[i], 50 + i);
		KUNIT_EXPECT_EQ(test, img->txn.log_pos, at[i]);
		tb->nops = 0;
		KUNIT_ASSERT_EQ_MSG(test,
				    vhdx_log_write_entry(img, &guid_a, u,
							 counts[i]),
				    0, "%s", img->error);
		KUNIT_EXPECT_EQ_MSG(test, tb->nops, 1U, "entry %u", i);
		expect_active(test, img, at[i], 40 + i, u, counts[i]);
	}
	KUNIT_EXPECT_EQ(test, img->txn.log_pos, 6 * SECT);
}

/*
 * A corrupt byte anywhere in the newest entry, also in the part that
 * wrapped to the ring start: the entry before it is the active one.
 */
static void lw_torn_last_entry(struct kunit *test)
{
	static const struct {
		u32 count;	/* of each of the three entries */
		u32 offset;	/* of the corrupt byte in the third */
	} cases[] = {
		{ 10, 5 },			/* the checksum field */
		{ 10, 16 },			/* the sequence number */
		{ 10, 6 * SECT + 100 },		/* a data sector */
		{ 10, 40 },			/* the LogGuid */
		{ 100, 72 },			/* a descriptor */
		{ 100, 216 * VHDX_KiB - 1 },	/* last byte before the end */
		{ 100, 300 * VHDX_KiB + 7 },	/* wrapped: a data sector */
		{ 100, 101 * SECT - 1 },	/* wrapped: the last byte */
	};
	unsigned int c, i;

	for (c = 0; c < ARRAY_SIZE(cases); c++) {
		struct vhdx_tb *tb = ring_tb(test, RING_1M);
		struct vhdx_image *img = log_img(test, tb, &guid_a, 70);
		u32 count = cases[c].count, len = expect_len(count);
		struct vhdx_log_update *u[3];
		u32 pos[3];

		for (i = 0; i < 3; i++) {
			u8 *data = vhdx_tb_zalloc(test, count * SECT);

			fill_updates(data, count, 10 * c + i);
			u[i] = make_updates(test, count,
					    tb->data_offset + i * SECT, data);
			pos[i] = img->txn.log_pos;
			KUNIT_ASSERT_EQ_MSG(test,
					    vhdx_log_write_entry(img, &guid_a,
								 u[i], count),
					    0, "%s", img->error);
		}
		if (count == 100)
			KUNIT_ASSERT_GT(test, pos[2] + len, RING_1M);
		expect_active(test, img, pos[2], 72, u[2], count);

		KUNIT_ASSERT_LT(test, cases[c].offset, len);
		tb->dev[tb->p.log_offset +
			(pos[2] + cases[c].offset) % RING_1M] ^= 0x10;
		expect_active(test, img, pos[1], 71, u[1], count);
	}
}

/* Valid entries of another LogGuid, even with higher sequence numbers. */
static void lw_other_guid_ignored(struct kunit *test)
{
	struct vhdx_tb *tb = ring_tb(test, RING_1M);
	struct vhdx_image *img = log_img(test, tb, &guid_a, 300);
	u8 *data = vhdx_tb_zalloc(test, 4 * 20 * SECT);
	struct vhdx_log_update *u[4];
	const guid_t *guid[4] = { &guid_a, &guid_a, &guid_b, &guid_b };
	u64 seq[4] = { 300, 301, 302, 900 };
	u32 pos[4];
	unsigned int i;

	for (i = 0; i < 4; i++) {
		fill_updates(data + i * 20 * SECT, 20, 90 + i);
		u[i] = make_updates(test, 20, tb->data_offset,
				    data + i * 20 * SECT);
		pos[i] = img->txn.log_pos;
		img->txn.log_sequence = seq[i];
		KUNIT_ASSERT_EQ_MSG(test, vhdx_log_write_entry(img, guid[i],
							       u[i], 20),
				    0, "%s", img->error);
	}
	expect_active(test, img, pos[1], 301, u[1], 20);
	/* The other GUID's entries are valid: they were ignored for it. */
	img->header.log_guid = guid_b;
	expect_active(test, img, pos[3], 900, u[3], 20);
}

/* ---- sessions ------------------------------------------------------- */

static u64 header_seq(const struct vhdx_header *h)
{
	return le64_to_cpu(h->sequence_number);
}

static void expect_header_from(struct kunit *test, const struct vhdx_header *h,
			       const struct vhdx_header *old)
{
	KUNIT_EXPECT_TRUE(test, header_crc_ok(h));
	KUNIT_EXPECT_EQ(test, memcmp(h->signature, "head", 4), 0);
	KUNIT_EXPECT_EQ(test, h->log_offset, old->log_offset);
	KUNIT_EXPECT_EQ(test, h->log_length, old->log_length);
	KUNIT_EXPECT_EQ(test, h->version, old->version);
	KUNIT_EXPECT_EQ(test, h->log_version, old->log_version);
}

/*
 * The first entry of the new LogGuid is on stable storage before a header
 * names it, and the headers are updated one at a time, non-current first,
 * each built from the current one.
 */
static void txn_session_begin(struct kunit *test)
{
	unsigned int cur;

	for (cur = 0; cur < 2; cur++) {
		struct vhdx_tb_params p = {
			.header_seq = { cur ? 10 : 11, cur ? 11 : 10 },
		};
		struct vhdx_tb *tb = vhdx_tb_build(test, &p);
		struct rec *r = rec_new(test, tb);
		struct vhdx_image *img = open_txn(test, r);
		const u8 *entry = tb->dev + tb->p.log_offset;
		const struct vhdx_log_entry_header *e = (const void *)entry;
		u64 first = cur ? VHDX_HEADER1_OFFSET : VHDX_HEADER2_OFFSET;
		u64 second = cur ? VHDX_HEADER2_OFFSET : VHDX_HEADER1_OFFSET;
		struct vhdx_header *old = vhdx_tb_zalloc(test, sizeof(*old));
		unsigned int slot;

		*old = img->header;
		KUNIT_ASSERT_EQ(test, img->header_slot, cur);
		r->nops = 0;
		KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
				    img->error);
		KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wfwfwf");
		expect_op(test, r, 0, 'w', tb->p.log_offset, SECT);
		expect_op(test, r, 2, 'w', first, VHDX_HEADER_SIZE);
		expect_op(test, r, 4, 'w', second, VHDX_HEADER_SIZE);
		KUNIT_EXPECT_TRUE(test, img->txn.session);

		/* The entry: empty, sequence 1, its own tail. */
		KUNIT_EXPECT_EQ(test, memcmp(e->signature, "loge", 4), 0);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(e->entry_length), SECT);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(e->tail), 0U);
		KUNIT_EXPECT_EQ(test, le64_to_cpu(e->sequence_number), 1ULL);
		KUNIT_EXPECT_EQ(test, le32_to_cpu(e->descriptor_count), 0U);
		KUNIT_EXPECT_TRUE(test, entry_crc_ok(entry, SECT));
		KUNIT_EXPECT_FALSE(test, guid_is_null(&e->log_guid));

		for (slot = 0; slot < 2; slot++) {
			const struct vhdx_header *h = vhdx_tb_header(tb, slot);

			expect_header_from(test, h, old);
			KUNIT_EXPECT_TRUE(test, guid_equal(&h->log_guid,
							   &e->log_guid));
			KUNIT_EXPECT_TRUE(test,
					  guid_equal(&h->file_write_guid,
						     &img->txn.file_write_guid));
			KUNIT_EXPECT_TRUE(test,
					  guid_equal(&h->data_write_guid,
						     &img->txn.data_write_guid));
			KUNIT_EXPECT_FALSE(test,
					   guid_equal(&h->file_write_guid,
						      &old->file_write_guid));
			KUNIT_EXPECT_FALSE(test,
					   guid_equal(&h->data_write_guid,
						      &old->data_write_guid));
			KUNIT_EXPECT_FALSE(test,
					   guid_equal(&h->data_write_guid,
						      &h->file_write_guid));
			KUNIT_EXPECT_EQ(test, header_seq(h),
					header_seq(old) +
					(slot == cur ? 2 : 1));
		}
		KUNIT_EXPECT_EQ(test, img->header_slot, cur);
		KUNIT_EXPECT_EQ(test, memcmp(&img->header,
					     vhdx_tb_header(tb, cur),
					     VHDX_HEADER_SIZE), 0);

		/* Already in a session: nothing to do. */
		r->nops = 0;
		KUNIT_EXPECT_EQ(test, vhdx_session_begin(img), 0);
		KUNIT_EXPECT_EQ(test, r->nops, 0U);
	}
}

/* A crash inside session_begin: the log entry alone, or the whole of it. */
static void txn_crash_in_session_begin(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	struct vhdx_tb *c;

	r->snap_lo = VHDX_HEADER1_OFFSET;
	r->snap_hi = VHDX_HEADER2_OFFSET + VHDX_HEADER_SIZE;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);

	/* Before any header names the new log: a clean image. */
	c = tb_clone(test, tb, r->snap);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	KUNIT_EXPECT_EQ(test, c->writes, 0U);

	/* After: the empty entry replays, and the log is emptied. */
	c = tb_clone(test, tb, tb->dev);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	KUNIT_EXPECT_TRUE(test, guid_is_null(&img2->header.log_guid));
	expect_bat(test, (const u8 *)img2->bat, img, "BAT after replay");
}

/*
 * session_end commits, writes the BAT in place, flushes, then clears
 * LogGuid in both headers; any reader then opens a clean image with the
 * new BAT.
 */
static void txn_session_end(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u64 bat = tb->p.bat_offset, off[2], base;
	guid_t fwg, dwg;
	unsigned int slot;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	fwg = img->txn.file_write_guid;
	dwg = img->txn.data_write_guid;
	base = header_seq(&img->header);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off[0]), 0);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off[1]), 0);
	vhdx_bat_update(img, vhdx_tb_payload_index(tb, 0),
			present_entry(off[0]));
	vhdx_bat_update(img, vhdx_tb_payload_index(tb, 1000),
			present_entry(off[1]));
	vhdx_bat_update(img, entry_in_sector(tb, 7, 9), zero_entry());
	KUNIT_ASSERT_EQ(test, vhdx_tb_payload_index(tb, 1000) / BAT_PER_SECT,
			1ULL);

	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "Wwwwfwfwf");
	/* From the top down (vhdx_txn_gather()). */
	expect_op(test, r, 1, 'w', bat + 7 * SECT, SECT);
	expect_op(test, r, 2, 'w', bat + SECT, SECT);
	expect_op(test, r, 3, 'w', bat, SECT);
	KUNIT_EXPECT_FALSE(test, img->txn.session);
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	for (slot = 0; slot < 2; slot++) {
		const struct vhdx_header *h = vhdx_tb_header(tb, slot);

		KUNIT_EXPECT_TRUE(test, header_crc_ok(h));
		KUNIT_EXPECT_TRUE(test, guid_is_null(&h->log_guid));
		KUNIT_EXPECT_TRUE(test, guid_equal(&h->file_write_guid, &fwg));
		KUNIT_EXPECT_TRUE(test, guid_equal(&h->data_write_guid, &dwg));
		KUNIT_EXPECT_GT(test, header_seq(h), base);
		KUNIT_EXPECT_LE(test, header_seq(h), base + 2);
	}
	expect_bat(test, tb->dev + bat, img, "BAT in place");

	img2 = open_img(test, &tb->io, tb->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT reopened");
	KUNIT_EXPECT_EQ(test, img2->allocated_blocks, 2ULL);
	KUNIT_EXPECT_EQ(test, img2->data_end, tb->data_offset + 2 * VHDX_MiB);
	img2 = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT reopened");

	/* Outside a session there is nothing to end. */
	r->nops = 0;
	KUNIT_EXPECT_EQ(test, vhdx_session_end(img), 0);
	KUNIT_EXPECT_EQ(test, r->nops, 0U);
}

/*
 * A second session on the same image: new GUIDs, its log starts again at
 * the ring start, and the first session's entries, with higher sequence
 * numbers and further along the ring, never replay over its commits.
 */
static void txn_second_session(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u64 bat = tb->p.bat_offset, index = entry_in_sector(tb, 4, 8);
	guid_t log1, fwg1;
	unsigned int i;
	struct vhdx_tb *c;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	log1 = img->header.log_guid;
	fwg1 = img->txn.file_write_guid;
	for (i = 0; i < 6; i++) {
		vhdx_bat_update(img, index, zero_entry());
		vhdx_bat_update(img, entry_in_sector(tb, i, 1), zero_entry());
		KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s",
				    img->error);
	}
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);

	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wfwfwf");
	expect_op(test, r, 0, 'w', tb->p.log_offset, SECT);
	KUNIT_EXPECT_FALSE(test, guid_is_null(&img->header.log_guid));
	KUNIT_EXPECT_FALSE(test, guid_equal(&img->header.log_guid, &log1));
	KUNIT_EXPECT_FALSE(test, guid_equal(&img->txn.file_write_guid, &fwg1));
	/* Back to NOT_PRESENT: older entries would say ZERO. */
	vhdx_bat_update(img, index, 0);
	r->snap_lo = bat;
	r->snap_hi = bat + tb->p.bat_length;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT, expect_len(1));

	c = tb_clone(test, tb, r->snap);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img2->bat[index]), 0ULL);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT replayed");
}

/* ---- commits -------------------------------------------------------- */

static void txn_commit_order(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r);
	u64 bat = tb->p.bat_offset, off;
	u8 *old = vhdx_tb_zalloc(test, 8 * SECT);
	struct vhdx_log_update u[3];
	static const u32 sectors[] = { 0, 3, 7 };
	unsigned int i;

	KUNIT_ASSERT_EQ(test, bat_sectors(tb), 8U);
	KUNIT_EXPECT_EQ(test, img->txn.bat_sectors, 8U);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	memcpy(old, tb->dev + bat, 8 * SECT);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	vhdx_bat_update(img, entry_in_sector(tb, 0, 0), present_entry(off));
	vhdx_bat_update(img, entry_in_sector(tb, 3, 5), zero_entry());
	vhdx_bat_update(img, entry_in_sector(tb, 3, 511), zero_entry());
	vhdx_bat_update(img, entry_in_sector(tb, 7, 100), zero_entry());
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 3U);
	KUNIT_EXPECT_TRUE(test, vhdx_txn_dirty(img));
	/* Nothing reaches the device before the commit. */
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + bat, old, 8 * SECT), 0);

	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	/* One write with a pre-flush and FUA; nothing in place yet. */
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "W");
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + bat, old, 8 * SECT), 0);
	KUNIT_EXPECT_EQ(test, img->txn.ckpt_count, 3U);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->txn.ckpt_count, 0U);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "Wwww");
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT, expect_len(3));
	/* From the top down (vhdx_txn_gather()). */
	for (i = 0; i < 3; i++) {
		expect_op(test, r, 1 + i, 'w', bat + sectors[2 - i] * SECT, SECT);
		u[i].offset = bat + sectors[2 - i] * SECT;
		u[i].data = (const u8 *)img->bat + sectors[2 - i] * SECT;
	}
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	expect_bat(test, tb->dev + bat, img, "BAT in place");
	/* The entry after the session's first one holds the three sectors. */
	expect_active(test, img, SECT, 2, u, 3);

	/* Nothing dirty: nothing written, not even a flush. */
	r->nops = 0;
	KUNIT_EXPECT_EQ(test, vhdx_commit(img), 0);
	KUNIT_EXPECT_EQ(test, vhdx_checkpoint(img), 0);
	KUNIT_EXPECT_EQ(test, r->nops, 0U);

	/* Only what changed since goes in the next entry. */
	vhdx_bat_update(img, entry_in_sector(tb, 3, 6), zero_entry());
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 1U);
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "W");
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT + expect_len(3),
		  expect_len(1));
	expect_active(test, img, SECT + expect_len(3), 3, &u[1], 1);

	/*
	 * Without a checkpoint in between, the next commit writes the last
	 * entry's sectors in place first, so that its pre-flush makes them
	 * stable before the new entry replaces the old one.  What is written
	 * is what was logged, not sector 3 as it is now.
	 */
	memcpy(old, (const u8 *)img->bat + 3 * SECT, SECT);
	vhdx_bat_update(img, entry_in_sector(tb, 3, 7), zero_entry());
	vhdx_bat_update(img, entry_in_sector(tb, 5, 0), zero_entry());
	r->nops = 0;
	r->snap_lo = tb->p.log_offset;
	r->snap_hi = tb->p.log_offset + tb->p.log_length;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wW");
	expect_op(test, r, 0, 'w', bat + 3 * SECT, SECT);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);
	KUNIT_EXPECT_EQ(test, memcmp(r->snap + bat + 3 * SECT, old, SECT), 0);
	u[1].offset = bat + 5 * SECT;
	u[1].data = (const u8 *)img->bat + 5 * SECT;
	u[2].offset = bat + 3 * SECT;
	u[2].data = (const u8 *)img->bat + 3 * SECT;
	expect_active(test, img, SECT + expect_len(3) + expect_len(1), 4,
		      &u[1], 2);
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "ww");
	expect_op(test, r, 0, 'w', bat + 5 * SECT, SECT);
	expect_op(test, r, 1, 'w', bat + 3 * SECT, SECT);
	expect_bat(test, tb->dev + bat, img, "BAT in place");
	KUNIT_EXPECT_EQ(test, r->tb->misaligned, 0U);
}

/*
 * A commit costs one device flush: its entry is one write with a pre-flush
 * and FUA, and nothing else, whose Tail is the entry itself.  The device
 * as it is right then, without the checkpoint, replays to the new BAT.
 * Without write_fua the io layer gets flush, write, flush.
 */
static void txn_commit_one_flush(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	const struct vhdx_log_entry_header *h;
	u64 bat = tb->p.bat_offset, off;
	u8 *old = vhdx_tb_zalloc(test, 8 * SECT);
	struct vhdx_tb *c;
	unsigned int ro;
	u32 pos;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	memcpy(old, tb->dev + bat, 8 * SECT);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	vhdx_bat_update(img, vhdx_tb_payload_index(tb, 3), present_entry(off));
	vhdx_bat_update(img, entry_in_sector(tb, 6, 2), zero_entry());
	pos = img->txn.log_pos;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "W");
	expect_op(test, r, 0, 'W', tb->p.log_offset + pos, expect_len(2));
	h = (const void *)(tb->dev + tb->p.log_offset + pos);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->tail), pos);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->sequence_number), 2ULL);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + bat, old, 8 * SECT), 0);

	for (ro = 0; ro < 2; ro++) {
		c = tb_clone(test, tb, tb->dev);
		img2 = open_img(test, &c->io, c->size, ro);
		KUNIT_EXPECT_EQ(test, img2->log_state,
				ro ? VHDX_LOG_REPLAYED_IN_MEMORY :
				     VHDX_LOG_REPLAYED);
		expect_bat(test, (const u8 *)img2->bat, img, "BAT replayed");
		KUNIT_EXPECT_EQ(test, img2->allocated_blocks, 1ULL);
		if (!ro)
			expect_bat(test, c->dev + bat, img,
				   "BAT replayed in place");
	}

	/* The next entry: again one write, its Tail again itself. */
	vhdx_bat_update(img, entry_in_sector(tb, 6, 3), zero_entry());
	pos = img->txn.log_pos;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wwW");
	h = (const void *)(tb->dev + tb->p.log_offset + pos);
	KUNIT_EXPECT_EQ(test, le32_to_cpu(h->tail), pos);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(h->sequence_number), 3ULL);
	c = tb_clone(test, tb, tb->dev);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	expect_bat(test, c->dev + bat, img, "BAT replayed in place");

	/* An io layer without write_fua: the flushes around a plain write. */
	r->io.write_fua = NULL;
	vhdx_bat_update(img, entry_in_sector(tb, 1, 3), zero_entry());
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wfwf");
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	img2 = open_img(test, &tb->io, tb->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT reopened");
}

static void txn_commit_needs_session(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r);

	vhdx_bat_update(img, 0, zero_entry());
	r->nops = 0;
	KUNIT_EXPECT_EQ(test, vhdx_commit(img), -EINVAL);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "session"), "%s",
				  img->error);
	KUNIT_EXPECT_EQ(test, r->nops, 0U);
	KUNIT_EXPECT_TRUE(test, vhdx_txn_dirty(img));
}

/*
 * 160 GiB of 1 MiB blocks: 321 BAT sectors, more than the 126 one entry of
 * a 1 MiB log holds.  Returns the image with every sector dirty.
 */
static struct vhdx_image *many_sectors(struct kunit *test, struct rec **rp,
				       struct vhdx_tb **tbp)
{
	struct vhdx_tb *tb = big_tb(test, 160 * VHDX_GiB, 8 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r);
	u32 s;

	KUNIT_ASSERT_EQ(test, bat_sectors(tb), 321U);
	KUNIT_ASSERT_EQ(test, img->txn.bat_sectors, 321U);
	KUNIT_ASSERT_EQ(test, img->txn.max_updates, 126U);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	for (s = 0; s < 321; s++)
		vhdx_bat_update(img, entry_in_sector(tb, s, s * 7 % 40),
				zero_entry());
	KUNIT_ASSERT_EQ(test, vhdx_txn_dirty_pages(img), 321U);
	*rp = r;
	*tbp = tb;
	return img;
}

static void txn_commit_many_entries(struct kunit *test)
{
	static const u32 per_entry[] = { 126, 126, 69 };
	struct vhdx_tb *tb;
	struct rec *r;
	struct vhdx_image *img = many_sectors(test, &r, &tb), *img2;
	char *want = vhdx_tb_zalloc(test, REC_MAX_OPS + 1);
	u64 bat = tb->p.bat_offset;
	u32 pos = SECT, ring = tb->p.log_length, len = 0, sector = 0;
	struct vhdx_log_update *u;
	unsigned int i, n = 0, e, wraps = 0;

	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	/*
	 * Per entry: the entry with a pre-flush (split at the ring end: the
	 * second part with FUA only), then its BAT sectors in place before
	 * the next one; the last one's wait for the checkpoint.
	 */
	for (e = 0; e < ARRAY_SIZE(per_entry); e++) {
		len = expect_len(per_entry[e]);
		if (e)
			for (i = 0; i < per_entry[e - 1]; i++)
				want[n++] = 'w';
		want[n++] = 'W';
		if (pos + len > ring) {
			want[n++] = 'U';
			wraps++;
		}
		pos = (pos + len) % ring;
	}
	KUNIT_EXPECT_EQ(test, wraps, 1U);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), want);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	for (i = 0; i < per_entry[e - 1]; i++)
		want[n++] = 'w';
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), want);
	/* Highest sectors first: a bitmap entry before its chunk's blocks. */
	for (i = 0; i < r->nops && i < REC_MAX_OPS; i++) {
		if (r->ops[i].type != 'w' || r->ops[i].offset < bat)
			continue;
		KUNIT_EXPECT_EQ(test, r->ops[i].offset,
				bat + (320 - sector) * SECT);
		sector++;
	}
	KUNIT_EXPECT_EQ(test, sector, 321U);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_EQ(test, img->txn.log_pos, pos);
	KUNIT_EXPECT_EQ(test, img->txn.log_sequence, 5ULL);
	expect_bat(test, tb->dev + bat, img, "BAT in place");

	/* The newest entry holds the first 69 sectors, from the top. */
	u = vhdx_tb_zalloc(test, 69 * sizeof(*u));
	for (i = 0; i < 69; i++) {
		u[i].offset = bat + (68 - i) * SECT;
		u[i].data = (const u8 *)img->bat + (68 - i) * SECT;
	}
	expect_active(test, img, (pos + ring - len) % ring, 4, u, 69);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	img2 = open_img(test, &tb->io, tb->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT reopened");
}

/* ---- crashes -------------------------------------------------------- */

/*
 * The device as a crash would leave it right after the entry, before any
 * BAT sector is written in place: a read-write open replays the entry
 * onto the device, a read-only one into memory.
 */
static void txn_crash_after_log_entry(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u64 bat = tb->p.bat_offset, off;
	u8 *old = vhdx_tb_zalloc(test, 8 * SECT);
	struct vhdx_tb *c;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	memcpy(old, tb->dev + bat, 8 * SECT);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	vhdx_bat_update(img, vhdx_tb_payload_index(tb, 17), present_entry(off));
	vhdx_bat_update(img, entry_in_sector(tb, 5, 3), zero_entry());
	r->snap_lo = bat;
	r->snap_hi = bat + tb->p.bat_length;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);
	/* Taken after the entry, before the first BAT write. */
	KUNIT_EXPECT_EQ(test, r->snap_op, 1U);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "Www");
	KUNIT_EXPECT_EQ(test, memcmp(r->snap + bat, old, 8 * SECT), 0);

	c = tb_clone(test, tb, r->snap);
	img2 = open_img(test, &c->io, c->size, true);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED_IN_MEMORY);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT replayed in memory");
	KUNIT_EXPECT_EQ(test, img2->allocated_blocks, 1ULL);
	KUNIT_EXPECT_EQ(test, c->writes, 0U);
	KUNIT_EXPECT_EQ(test, c->flushes, 0U);
	KUNIT_EXPECT_EQ(test, memcmp(c->dev + bat, old, 8 * SECT), 0);

	c = tb_clone(test, tb, r->snap);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT replayed");
	expect_bat(test, c->dev + bat, img, "BAT replayed in place");
	KUNIT_EXPECT_TRUE(test, guid_is_null(&vhdx_tb_header(c, 0)->log_guid));
	KUNIT_EXPECT_TRUE(test, guid_is_null(&vhdx_tb_header(c, 1)->log_guid));
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT after replay");
}

/*
 * A crash in the middle of a commit of several entries: what the entries
 * before the crash carried is there after replay, nothing of the rest.
 */
static void txn_crash_between_entries(struct kunit *test)
{
	struct vhdx_tb *tb;
	struct rec *r;
	struct vhdx_image *img = many_sectors(test, &r, &tb), *img2;
	u64 bat = tb->p.bat_offset;
	u8 *old = vhdx_tb_zalloc(test, 321 * SECT);
	unsigned int ro;

	memcpy(old, tb->dev + bat, 321 * SECT);
	/* Before the first in-place write of the second entry. */
	r->snap_lo = bat;
	r->snap_hi = bat + tb->p.bat_length;
	r->snap_skip = 126;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);

	for (ro = 0; ro < 2; ro++) {
		struct vhdx_tb *c = tb_clone(test, tb, r->snap);
		const u8 *got;

		img2 = open_img(test, &c->io, c->size, ro);
		KUNIT_EXPECT_EQ(test, img2->log_state,
				ro ? VHDX_LOG_REPLAYED_IN_MEMORY :
				     VHDX_LOG_REPLAYED);
		/* The two entries logged took the 252 highest sectors. */
		got = (const u8 *)img2->bat;
		KUNIT_EXPECT_EQ(test, memcmp(got + 69 * SECT,
					     (const u8 *)img->bat + 69 * SECT,
					     252 * SECT), 0);
		KUNIT_EXPECT_EQ(test, memcmp(got, old, 69 * SECT), 0);
		if (ro)
			KUNIT_EXPECT_EQ(test, c->writes, 0U);
		else
			KUNIT_EXPECT_EQ(test, memcmp(c->dev + bat, got,
						     321 * SECT), 0);
	}
}

/*
 * In-place BAT writes fail: the commit is done (the log has it all), the
 * checkpoint fails, and so does the next commit, which must not log over
 * an entry not yet in place.
 */
static void txn_commit_write_error(struct kunit *test)
{
	struct vhdx_tb *tb = big_tb(test, 4 * VHDX_GiB, 16 * VHDX_MiB);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u64 bat = tb->p.bat_offset;
	u8 *old = vhdx_tb_zalloc(test, 8 * SECT);
	struct vhdx_tb *c;
	u32 pos;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	memcpy(old, tb->dev + bat, 8 * SECT);
	vhdx_bat_update(img, entry_in_sector(tb, 2, 1), zero_entry());
	vhdx_bat_update(img, entry_in_sector(tb, 6, 1), zero_entry());
	r->fail_lo = bat;
	r->fail_hi = bat + tb->p.bat_length;
	KUNIT_EXPECT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	KUNIT_EXPECT_EQ(test, vhdx_checkpoint(img), -EIO);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "BAT"), "%s",
				  img->error);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + bat, old, 8 * SECT), 0);
	pos = img->txn.log_pos;
	vhdx_bat_update(img, entry_in_sector(tb, 4, 1), zero_entry());
	r->nops = 0;
	KUNIT_EXPECT_EQ(test, vhdx_commit(img), -EIO);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "w");
	KUNIT_EXPECT_EQ(test, img->txn.log_pos, pos);
	KUNIT_EXPECT_TRUE(test, vhdx_txn_dirty(img));

	/* The entry of the first commit replays. */
	c = tb_clone(test, tb, tb->dev);
	img2 = open_img(test, &c->io, c->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	KUNIT_EXPECT_EQ(test, memcmp(c->dev + bat + 2 * SECT,
				     (const u8 *)img->bat + 2 * SECT, SECT), 0);
	KUNIT_EXPECT_EQ(test, memcmp(c->dev + bat + 4 * SECT,
				     old + 4 * SECT, SECT), 0);

	/* Once the device works again, the same commit goes through. */
	r->fail_lo = 0;
	r->fail_hi = 0;
	r->nops = 0;
	KUNIT_EXPECT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "wwW");
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	KUNIT_EXPECT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	expect_bat(test, tb->dev + bat, img, "BAT in place");
}

/*
 * The last block of a virtual disk that is not a multiple of the block
 * size, on a device that ends where that block's data ends: data_end is
 * past the device, and entries must still replay.
 */
static void txn_crash_short_last_block(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.virtual_size = 8 * VHDX_MiB + 512 * VHDX_KiB,
		.device_size = 4 * VHDX_MiB + 512 * VHDX_KiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct rec *r;
	struct vhdx_image *img, *img2;
	struct vhdx_tb *c;
	u64 off;

	KUNIT_ASSERT_EQ(test, tb->data_offset, 4 * VHDX_MiB);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 8),
			VHDX_PAYLOAD_FULLY_PRESENT, tb->data_offset);
	r = rec_new(test, tb);
	img = open_txn(test, r);
	KUNIT_EXPECT_EQ(test, img->data_end, 5 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), -ENOSPC);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	vhdx_bat_update(img, vhdx_tb_payload_index(tb, 3), zero_entry());
	r->snap_lo = tb->p.bat_offset;
	r->snap_hi = tb->p.bat_offset + tb->p.bat_length;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);

	c = tb_clone(test, tb, r->snap);
	img2 = vhdx_tb_new_image(test);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_open(img2, &c->io, c->size, false), 0,
			    "%s", img2->error);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
	expect_bat(test, (const u8 *)img2->bat, img, "BAT replayed");
}

/* ---- allocation ----------------------------------------------------- */

/* The end of the builder's objects and of @blocks_end, rounded to 1 MiB. */
static u64 expect_data_end(const struct vhdx_tb *tb, u64 blocks_end)
{
	const struct vhdx_tb_params *p = &tb->p;
	u64 end = VHDX_HEADER_SECTION_SIZE;

	end = max(end, p->log_offset + p->log_length);
	end = max(end, p->bat_offset + p->bat_length);
	end = max(end, p->metadata_offset + p->metadata_length);
	end = max(end, blocks_end);
	return round_up(end, VHDX_MiB);
}

static void alloc_data_end_after_open(struct kunit *test)
{
	struct vhdx_tb_params p;
	struct vhdx_image *img;
	struct vhdx_tb *tb;

	/* Nothing allocated: the first block's place. */
	tb = vhdx_tb_build(test, NULL);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end, expect_data_end(tb, 0));
	KUNIT_EXPECT_EQ(test, img->data_end, 4 * VHDX_MiB);

	/* Blocks allocated in order. */
	tb = vhdx_tb_build(test, NULL);
	vhdx_tb_alloc_block(tb, 5);
	vhdx_tb_alloc_block(tb, 1);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end,
			expect_data_end(tb, tb->next_free));
	KUNIT_EXPECT_EQ(test, img->data_end, 6 * VHDX_MiB);

	/* A block far past the others, leaving a gap that is not reused. */
	p = (struct vhdx_tb_params) { .device_size = 32 * VHDX_MiB };
	tb = vhdx_tb_build(test, &p);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 2),
			VHDX_PAYLOAD_FULLY_PRESENT, 20 * VHDX_MiB);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end,
			expect_data_end(tb, 21 * VHDX_MiB));
	KUNIT_EXPECT_EQ(test, img->data_end, 21 * VHDX_MiB);

	/* The log last in the file. */
	p = (struct vhdx_tb_params) {
		.log_offset = 12 * VHDX_MiB, .log_length = 2 * VHDX_MiB,
		.bat_offset = VHDX_MiB, .device_size = 14 * VHDX_MiB,
	};
	tb = vhdx_tb_build(test, &p);
	vhdx_tb_alloc_block(tb, 0);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end,
			expect_data_end(tb, tb->next_free));
	KUNIT_EXPECT_EQ(test, img->data_end, 14 * VHDX_MiB);

	/* Metadata last, 2 MiB of it. */
	p = (struct vhdx_tb_params) {
		.metadata_offset = 9 * VHDX_MiB,
		.metadata_length = 2 * VHDX_MiB,
		.device_size = 12 * VHDX_MiB,
	};
	tb = vhdx_tb_build(test, &p);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end, expect_data_end(tb, 0));
	KUNIT_EXPECT_EQ(test, img->data_end, 11 * VHDX_MiB);

	/* A short last block (512 KiB of data) still ends on 1 MiB. */
	p = (struct vhdx_tb_params) {
		.virtual_size = 8 * VHDX_MiB + 512 * VHDX_KiB,
		.device_size = 16 * VHDX_MiB,
	};
	tb = vhdx_tb_build(test, &p);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 8),
			VHDX_PAYLOAD_FULLY_PRESENT, 10 * VHDX_MiB);
	img = open_img(test, &tb->io, tb->size, true);
	KUNIT_EXPECT_EQ(test, img->data_end,
			expect_data_end(tb, 10 * VHDX_MiB + 512 * VHDX_KiB));
	KUNIT_EXPECT_EQ(test, img->data_end, 11 * VHDX_MiB);
}

static void alloc_sequence_and_enospc(struct kunit *test)
{
	struct vhdx_tb_params p = { .device_size = 8 * VHDX_MiB };
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;
	u64 off, end;

	vhdx_tb_alloc_block(tb, 3);
	img = open_img(test, &tb->io, tb->size, false);
	end = expect_data_end(tb, tb->next_free);
	KUNIT_ASSERT_EQ(test, end, 5 * VHDX_MiB);
	KUNIT_ASSERT_EQ(test, img->data_end, end);

	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	KUNIT_EXPECT_EQ(test, off, end);
	KUNIT_EXPECT_EQ(test, img->data_end, end + VHDX_MiB);
	/* Less than 1 MiB still takes 1 MiB: the next object is aligned. */
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, SECT, &off), 0);
	KUNIT_EXPECT_EQ(test, off, end + VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->data_end, end + 2 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, off % VHDX_MiB, 0ULL);

	/* 1 MiB left: 2 MiB do not fit, 1 MiB does, then nothing. */
	off = 12345;
	KUNIT_EXPECT_EQ(test, vhdx_space_alloc(img, 2 * VHDX_MiB, &off),
			-ENOSPC);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "no room"), "%s",
				  img->error);
	KUNIT_EXPECT_EQ(test, off, 12345ULL);
	KUNIT_EXPECT_EQ(test, img->data_end, end + 2 * VHDX_MiB);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	KUNIT_EXPECT_EQ(test, off, 7 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, img->data_end, 8 * VHDX_MiB);
	img->error[0] = 0;
	KUNIT_EXPECT_EQ(test, vhdx_space_alloc(img, 1, &off), -ENOSPC);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "no room"), "%s",
				  img->error);
	KUNIT_EXPECT_EQ(test, img->data_end, 8 * VHDX_MiB);
}

/* A 1 MiB unit of the device that the builder's layout occupies. */
static bool tb_occupied(const struct vhdx_tb *tb, u64 mib)
{
	const struct vhdx_tb_params *p = &tb->p;
	u64 at = mib * VHDX_MiB, i, e;

	if (at < VHDX_HEADER_SECTION_SIZE ||
	    (at >= p->log_offset && at < p->log_offset + p->log_length) ||
	    (at >= p->bat_offset && at < p->bat_offset + p->bat_length) ||
	    (at >= p->metadata_offset &&
	     at < p->metadata_offset + p->metadata_length))
		return true;
	for (i = 0; i < tb->bat_entries; i++) {
		e = le64_to_cpu(((const __le64 *)(tb->dev + p->bat_offset))[i]);
		if ((e & 7) >= 6 && at >= (e & ~0xfffffULL) &&
		    at < (e & ~0xfffffULL) + VHDX_MiB)
			return true;
	}
	return false;
}

/*
 * The allocator hands out every free 1 MiB of the device, the gaps
 * between objects included, once each, and never one an object holds.
 */
static void alloc_every_free_place_once(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.log_offset = 6 * VHDX_MiB, .log_length = VHDX_MiB,
		.bat_offset = VHDX_MiB, .device_size = 24 * VHDX_MiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	bool taken[24] = { false };
	unsigned int i, free = 0, got = 0;
	struct vhdx_image *img;
	u64 off;

	/* Blocks 0 and 1 in the gap before the log, block 2 after it. */
	vhdx_tb_alloc_block(tb, 0);
	vhdx_tb_alloc_block(tb, 1);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 2),
			VHDX_PAYLOAD_FULLY_PRESENT, 9 * VHDX_MiB);
	for (i = 0; i < ARRAY_SIZE(taken); i++) {
		taken[i] = tb_occupied(tb, i);
		free += !taken[i];
	}
	/* The gaps at 5 MiB and 7-8 MiB and the 14 MiB past the last block. */
	KUNIT_ASSERT_EQ(test, free, 17U);
	img = open_img(test, &tb->io, tb->size, false);
	KUNIT_EXPECT_EQ(test, img->data_end,
			expect_data_end(tb, 10 * VHDX_MiB));
	while (!vhdx_space_alloc(img, VHDX_MiB, &off)) {
		KUNIT_ASSERT_EQ(test, off % VHDX_MiB, 0ULL);
		KUNIT_ASSERT_LT(test, off / VHDX_MiB, (u64)ARRAY_SIZE(taken));
		KUNIT_EXPECT_FALSE_MSG(test, taken[off / VHDX_MiB],
				       "%llu MiB handed out twice or taken",
				       off / VHDX_MiB);
		taken[off / VHDX_MiB] = true;
		KUNIT_ASSERT_LE(test, ++got, free);
	}
	KUNIT_EXPECT_EQ(test, got, free);
	KUNIT_EXPECT_NOT_NULL(test, strstr(img->error, "no room"));
}

/* A 2 MiB request is never cut from a 1 MiB gap. */
static void alloc_gap_too_small(struct kunit *test)
{
	struct vhdx_tb_params p = {
		.log_offset = 6 * VHDX_MiB, .log_length = VHDX_MiB,
		.bat_offset = VHDX_MiB, .device_size = 12 * VHDX_MiB,
	};
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;
	u64 off;

	vhdx_tb_alloc_block(tb, 0);
	vhdx_tb_alloc_block(tb, 1);
	img = open_img(test, &tb->io, tb->size, false);
	/* Free: 5 MiB (1 MiB gap), then 7 MiB to the end. */
	KUNIT_ASSERT_EQ(test, img->data_end, 7 * VHDX_MiB);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, 2 * VHDX_MiB, &off), 0);
	KUNIT_EXPECT_EQ(test, off, 7 * VHDX_MiB);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
	KUNIT_EXPECT_EQ(test, off, 5 * VHDX_MiB);
}

/*
 * Released space comes back only through a seal (its release is stable)
 * and then a recycle (no I/O in flight): what was released after the
 * seal waits for the next one.
 */
static void alloc_release_recycle(struct kunit *test)
{
	struct vhdx_tb_params p = { .device_size = 8 * VHDX_MiB };
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;
	u64 a, b, c;

	img = open_img(test, &tb->io, tb->size, false);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &a), 0);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &b), 0);
	vhdx_space_release(img, a, VHDX_MiB);
	KUNIT_EXPECT_TRUE(test, vhdx_space_released(img));
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &c), 0);
	KUNIT_EXPECT_NE(test, c, a);
	/* Not sealed: a recycle gives nothing back. */
	vhdx_space_recycle(img);
	KUNIT_EXPECT_TRUE(test, vhdx_space_released(img));
	vhdx_space_seal(img);
	KUNIT_EXPECT_FALSE(test, vhdx_space_released(img));
	vhdx_space_release(img, b, VHDX_MiB);
	KUNIT_EXPECT_TRUE(test, vhdx_space_released(img));
	vhdx_space_recycle(img);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &c), 0);
	KUNIT_EXPECT_EQ(test, c, a);
	/* b was released after the seal: still held back. */
	KUNIT_EXPECT_TRUE(test, vhdx_space_released(img));
	if (!vhdx_space_alloc(img, VHDX_MiB, &c))
		KUNIT_EXPECT_NE(test, c, b);
	vhdx_space_seal(img);
	vhdx_space_recycle(img);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &c), 0);
	KUNIT_EXPECT_EQ(test, c, b);
	/* Nothing of length 0 is kept. */
	vhdx_space_release(img, b, 0);
	KUNIT_EXPECT_FALSE(test, vhdx_space_released(img));
}

/* Space that nothing ever pointed at is free again at once. */
static void alloc_return(struct kunit *test)
{
	struct vhdx_tb_params p = { .device_size = 8 * VHDX_MiB };
	struct vhdx_tb *tb = vhdx_tb_build(test, &p);
	struct vhdx_image *img;
	u64 a, c;

	img = open_img(test, &tb->io, tb->size, false);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, 2 * VHDX_MiB, &a), 0);
	vhdx_space_return(img, a, 2 * VHDX_MiB);
	KUNIT_EXPECT_FALSE(test, vhdx_space_released(img));
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &c), 0);
	KUNIT_EXPECT_EQ(test, c, a);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &c), 0);
	KUNIT_EXPECT_EQ(test, c, a + VHDX_MiB);
}

static struct kunit_case vhdx_log_write_cases[] = {
	KUNIT_CASE(lw_entry_length),
	KUNIT_CASE(lw_round_trip_0_1),
	KUNIT_CASE(lw_round_trip_126),
	KUNIT_CASE(lw_round_trip_127),
	KUNIT_CASE(lw_round_trip_max),
	KUNIT_CASE(lw_too_large_refused),
	KUNIT_CASE(lw_ring_wrap),
	KUNIT_CASE(lw_ring_exact_end),
	KUNIT_CASE(lw_torn_last_entry),
	KUNIT_CASE(lw_other_guid_ignored),
	{}
};

static struct kunit_suite vhdx_log_write_suite = {
	.name = "vhdx_log_write",
	.test_cases = vhdx_log_write_cases,
};

static struct kunit_case vhdx_txn_cases[] = {
	KUNIT_CASE(txn_session_begin),
	KUNIT_CASE(txn_crash_in_session_begin),
	KUNIT_CASE(txn_session_end),
	KUNIT_CASE(txn_second_session),
	KUNIT_CASE(txn_commit_order),
	KUNIT_CASE(txn_commit_one_flush),
	KUNIT_CASE(txn_commit_needs_session),
	KUNIT_CASE(txn_commit_many_entries),
	KUNIT_CASE(txn_crash_after_log_entry),
	KUNIT_CASE(txn_crash_between_entries),
	KUNIT_CASE(txn_commit_write_error),
	KUNIT_CASE(txn_crash_short_last_block),
	{}
};

static struct kunit_suite vhdx_txn_suite = {
	.name = "vhdx_txn",
	.test_cases = vhdx_txn_cases,
};

static struct kunit_case vhdx_alloc_cases[] = {
	KUNIT_CASE(alloc_data_end_after_open),
	KUNIT_CASE(alloc_sequence_and_enospc),
	KUNIT_CASE(alloc_every_free_place_once),
	KUNIT_CASE(alloc_gap_too_small),
	KUNIT_CASE(alloc_release_recycle),
	KUNIT_CASE(alloc_return),
	{}
};

static struct kunit_suite vhdx_alloc_suite = {
	.name = "vhdx_alloc",
	.test_cases = vhdx_alloc_cases,
};

kunit_test_suites(&vhdx_log_write_suite, &vhdx_txn_suite, &vhdx_alloc_suite);
