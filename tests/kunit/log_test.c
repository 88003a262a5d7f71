// SPDX-License-Identifier: GPL-2.0
/*
 * The log (MS-VHDX 2.3) and the in-memory overlay: the active sequence
 * search of 2.3.3 over hand-built rings, the checks on every entry field,
 * replay into memory and onto the device.  Entries are built here, not by
 * the code under test, so a shared misreading of the format would show.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "image_builder.h"

#define SECT		VHDX_LOG_SECTOR_SIZE

static const guid_t test_log_guid =
	GUID_INIT(0x10203040, 0x5060, 0x7080,
		  0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01);
static const guid_t stale_log_guid =
	GUID_INIT(0x0badc0de, 0x1111, 0x2222,
		  0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66);

/* One descriptor: 'd'ata (a 4 KiB target) or 'z'ero. */
struct tdesc {
	char kind;
	u64 offset;
	u64 length;		/* zero descriptors */
	u8 fill;		/* data: target byte i is tbyte(fill, i) */
	const u8 *data;		/* data: explicit target instead of fill */
};

struct tentry {
	u64 seq;
	u32 tail;
	const struct tdesc *desc;
	u32 count;
	const guid_t *guid;	/* NULL: test_log_guid */
	u64 flushed;
	u64 last;
};

/* Every byte of a sector differs from its neighbours and from "data". */
static u8 tbyte(u8 fill, unsigned int i)
{
	return fill ^ (u8)(i * 13 + (i >> 8) + 0x80);
}

static void target_sector(const struct tdesc *d, u8 *out)
{
	unsigned int i;

	if (d->data) {
		memcpy(out, d->data, SECT);
		return;
	}
	for (i = 0; i < SECT; i++)
		out[i] = tbyte(d->fill, i);
}

static struct vhdx_log_descriptor *desc_slot(u8 *entry, u32 index)
{
	u32 slot = index + VHDX_LOG_HEADER_DESCRIPTOR_SLOTS;

	return (void *)(entry + slot / VHDX_LOG_DESCRIPTORS_PER_SECTOR * SECT +
			slot % VHDX_LOG_DESCRIPTORS_PER_SECTOR *
			sizeof(struct vhdx_log_descriptor));
}

static u32 desc_sectors(u32 count)
{
	return DIV_ROUND_UP(count + VHDX_LOG_HEADER_DESCRIPTOR_SLOTS,
			    VHDX_LOG_DESCRIPTORS_PER_SECTOR);
}

/* Builds an entry with a valid checksum into test memory. */
static u8 *build_entry(struct kunit *test, const struct tentry *e, u32 *len)
{
	struct vhdx_log_entry_header *h;
	struct vhdx_log_data_sector *s;
	struct vhdx_log_descriptor *d;
	u32 ndata = 0, dsec = desc_sectors(e->count), i, j = 0;
	u8 *buf, *target = vhdx_tb_zalloc(test, SECT);

	for (i = 0; i < e->count; i++)
		ndata += e->desc[i].kind == 'd';
	*len = (dsec + ndata) * SECT;
	buf = vhdx_tb_zalloc(test, *len);
	h = (void *)buf;
	memcpy(h->signature, VHDX_SIGNATURE_LOG_ENTRY, 4);
	h->entry_length = cpu_to_le32(*len);
	h->tail = cpu_to_le32(e->tail);
	h->sequence_number = cpu_to_le64(e->seq);
	h->descriptor_count = cpu_to_le32(e->count);
	h->log_guid = e->guid ? *e->guid : test_log_guid;
	h->flushed_file_offset = cpu_to_le64(e->flushed);
	h->last_file_offset = cpu_to_le64(e->last);
	for (i = 0; i < e->count; i++) {
		d = desc_slot(buf, i);
		d->file_offset = cpu_to_le64(e->desc[i].offset);
		d->sequence_number = cpu_to_le64(e->seq);
		if (e->desc[i].kind == 'z') {
			memcpy(d->signature, VHDX_SIGNATURE_LOG_ZERO, 4);
			d->zero_length = cpu_to_le64(e->desc[i].length);
			continue;
		}
		memcpy(d->signature, VHDX_SIGNATURE_LOG_DESC, 4);
		target_sector(&e->desc[i], target);
		memcpy(d->leading_bytes, target, 8);
		memcpy(d->trailing_bytes, target + SECT - 4, 4);
		s = (void *)(buf + (dsec + j++) * SECT);
		memcpy(s->signature, VHDX_SIGNATURE_LOG_DATA, 4);
		s->sequence_high = cpu_to_le32((u32)(e->seq >> 32));
		memcpy(s->data, target + 8, sizeof(s->data));
		s->sequence_low = cpu_to_le32((u32)e->seq);
	}
	vhdx_checksum_set(buf, *len,
			  offsetof(struct vhdx_log_entry_header, checksum));
	return buf;
}

static void entry_rechecksum(u8 *buf, u32 len)
{
	vhdx_checksum_set(buf, len,
			  offsetof(struct vhdx_log_entry_header, checksum));
}

/* Copies an entry into the ring at @pos, wrapping; returns the next pos. */
static u32 put_entry(struct vhdx_tb *tb, u32 pos, const u8 *buf, u32 len)
{
	u32 i, ring = tb->p.log_length;

	for (i = 0; i < len; i += SECT)
		memcpy(tb->dev + tb->p.log_offset + (pos + i) % ring, buf + i,
		       SECT);
	return (pos + len) % ring;
}

static u32 write_entry(struct kunit *test, struct vhdx_tb *tb, u32 pos,
		       const struct tentry *e)
{
	u32 len;
	u8 *buf = build_entry(test, e, &len);

	return put_entry(tb, pos, buf, len);
}

/* A default image (log at 1 MiB, 1 MiB long) whose headers name a log. */
static struct vhdx_tb *log_tb(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	unsigned int slot;

	for (slot = 0; slot < 2; slot++) {
		vhdx_tb_header(tb, slot)->log_guid = test_log_guid;
		vhdx_tb_header_rechecksum(tb, slot);
	}
	return tb;
}

static struct vhdx_image *log_img(struct kunit *test, struct vhdx_tb *tb,
				  bool read_only)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	img->io = &tb->io;
	img->device_size = tb->size;
	img->read_only = read_only;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_load(img), 0, "%s", img->error);
	return img;
}

static void find_ok(struct kunit *test, struct vhdx_image *img,
		    struct vhdx_log_sequence *seq)
{
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_find_active(img, seq), 0, "%s",
			    img->error);
}

static void expect_error(struct kunit *test, struct vhdx_image *img, int ret,
			 const char *needle)
{
	KUNIT_EXPECT_EQ_MSG(test, ret, -EINVAL, "%s", img->error);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, needle),
				  "expected \"%s\" in: %s", needle, img->error);
}

/* @buf must hold the target of @d, all 4096 bytes. */
static void expect_target(struct kunit *test, const u8 *buf,
			  const struct tdesc *d)
{
	u8 *want = vhdx_tb_zalloc(test, SECT);
	unsigned int i, bad = 0;

	target_sector(d, want);
	for (i = 0; i < SECT; i++)
		bad += buf[i] != want[i];
	KUNIT_EXPECT_EQ_MSG(test, bad, 0U, "target at %llu", d->offset);
	/* The bytes held by the descriptor, not the data sector. */
	KUNIT_EXPECT_EQ(test, memcmp(buf, want, 8), 0);
	KUNIT_EXPECT_EQ(test, memcmp(buf + SECT - 4, want + SECT - 4, 4), 0);
}

static void expect_zeros(struct kunit *test, const u8 *buf, size_t len)
{
	size_t i, bad = 0;

	for (i = 0; i < len; i++)
		bad += buf[i] != 0;
	KUNIT_EXPECT_EQ(test, bad, (size_t)0);
}

/* ---- the active sequence ------------------------------------------- */

static void log_null_guid_is_clean(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_log_sequence seq;
	unsigned int writes = tb->writes;

	/* Entries in a log whose LogGuid is null must never be replayed. */
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .desc = &(struct tdesc) { 'd', 2 * VHDX_MiB },
		.count = 1 });
	KUNIT_EXPECT_EQ(test, vhdx_log_replay(img), 0);
	KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_CLEAN);
	KUNIT_EXPECT_EQ(test, img->overlay.count, 0U);
	KUNIT_EXPECT_EQ(test, tb->writes, writes);
	KUNIT_EXPECT_EQ(test, vhdx_log_find_active(img, &seq), -ENOENT);
}

static void log_single_entry(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	const struct tdesc d[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 1 },
		{ 'd', 2 * VHDX_MiB + 8 * VHDX_KiB, .fill = 2 },
	};
	struct vhdx_log_sequence seq;

	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 7, .tail = 0, .desc = d, .count = 2,
		.flushed = 4 * VHDX_MiB, .last = 5 * VHDX_MiB });
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.tail, 0U);
	KUNIT_EXPECT_EQ(test, seq.head, 0U);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 1U);
	KUNIT_EXPECT_EQ(test, seq.tail_sequence, 7ULL);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, 7ULL);
	KUNIT_EXPECT_EQ(test, seq.flushed_file_offset, 4 * VHDX_MiB);
	KUNIT_EXPECT_EQ(test, seq.last_file_offset, 5 * VHDX_MiB);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, 2U);
	KUNIT_EXPECT_EQ(test, ov->extents[0].offset, d[0].offset);
	KUNIT_EXPECT_EQ(test, ov->extents[0].length, (u64)SECT);
	KUNIT_ASSERT_NOT_NULL(test, ov->extents[0].data);
	expect_target(test, ov->extents[0].data, &d[0]);
	KUNIT_EXPECT_EQ(test, ov->extents[1].offset, d[1].offset);
	KUNIT_ASSERT_NOT_NULL(test, ov->extents[1].data);
	expect_target(test, ov->extents[1].data, &d[1]);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

/* 130 descriptors need two descriptor sectors: ceil((130 + 2) / 128). */
static void log_two_descriptor_sectors(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	struct tdesc *d = vhdx_tb_zalloc(test, 130 * sizeof(*d));
	struct vhdx_log_sequence seq;
	u32 i;

	for (i = 0; i < 130; i++)
		d[i] = (struct tdesc) { 'z', 3 * VHDX_MiB + i * SECT, SECT };
	/* Data in the first sector, first slot of the second, and after. */
	d[0] = (struct tdesc) { 'd', 2 * VHDX_MiB, .fill = 10 };
	d[126] = (struct tdesc) { 'd', 2 * VHDX_MiB + SECT, .fill = 11 };
	d[129] = (struct tdesc) { 'd', 2 * VHDX_MiB + 2 * SECT, .fill = 12 };
	KUNIT_ASSERT_EQ(test, write_entry(test, tb, 0, &(struct tentry) {
		.seq = 3, .desc = d, .count = 130 }), 5 * SECT);
	find_ok(test, img, &seq);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, 130U);
	for (i = 0; i < 130; i++) {
		KUNIT_EXPECT_EQ(test, ov->extents[i].offset, d[i].offset);
		KUNIT_EXPECT_EQ(test, ov->extents[i].length, (u64)SECT);
		KUNIT_EXPECT_EQ(test, !ov->extents[i].data, d[i].kind == 'z');
	}
	expect_target(test, ov->extents[0].data, &d[0]);
	expect_target(test, ov->extents[126].data, &d[126]);
	expect_target(test, ov->extents[129].data, &d[129]);
}

static void log_several_entries(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	const struct tdesc d1[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	const struct tdesc d2[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 2 },
		{ 'd', 2 * VHDX_MiB + SECT, .fill = 3 },
	};
	const struct tdesc d3[] = { { 'z', 2 * VHDX_MiB + SECT, SECT } };
	struct vhdx_log_sequence seq;
	u32 pos2, pos3;
	u8 *buf = vhdx_tb_zalloc(test, 3 * SECT);

	pos2 = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 20, .tail = 0, .desc = d1, .count = 1 });
	pos3 = write_entry(test, tb, pos2, &(struct tentry) {
		.seq = 21, .tail = 0, .desc = d2, .count = 2 });
	write_entry(test, tb, pos3, &(struct tentry) {
		.seq = 22, .tail = 0, .desc = d3, .count = 1 });
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.tail, 0U);
	KUNIT_EXPECT_EQ(test, seq.head, pos3);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 3U);
	KUNIT_EXPECT_EQ(test, seq.tail_sequence, 20ULL);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, 22ULL);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, ov->count, 4U);
	/* Later updates override earlier ones. */
	memset(buf, 0xee, 3 * SECT);
	vhdx_overlay_apply(ov, 2 * VHDX_MiB, buf, 3 * SECT);
	expect_target(test, buf, &d2[0]);
	expect_zeros(test, buf + SECT, SECT);
	KUNIT_EXPECT_EQ(test, buf[2 * SECT], 0xee);
	KUNIT_EXPECT_EQ(test, buf[3 * SECT - 1], 0xee);
}

/* A head whose Tail names a later entry leaves the earlier ones out. */
static void log_tail_in_middle(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	const struct tdesc d1[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	const struct tdesc d2[] = { { 'd', 2 * VHDX_MiB + SECT, .fill = 2 } };
	struct vhdx_log_sequence seq;
	u32 pos2, pos3;

	pos2 = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 40, .tail = 0, .desc = d1, .count = 1 });
	pos3 = write_entry(test, tb, pos2, &(struct tentry) {
		.seq = 41, .tail = 0, .desc = d2, .count = 1 });
	write_entry(test, tb, pos3, &(struct tentry) {
		.seq = 42, .tail = pos2, .desc = d1, .count = 1 });
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.tail, pos2);
	KUNIT_EXPECT_EQ(test, seq.head, pos3);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 2U);
	KUNIT_EXPECT_EQ(test, seq.tail_sequence, 41ULL);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, 2U);
	KUNIT_EXPECT_EQ(test, ov->extents[0].offset, d2[0].offset);
}

static void log_newer_sequence_wins(struct kunit *test)
{
	const struct tdesc old[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	const struct tdesc new[] = { { 'd', 2 * VHDX_MiB, .fill = 2 } };
	unsigned int order;

	/* Whichever lies first in the ring, the higher head sequence wins. */
	for (order = 0; order < 2; order++) {
		struct vhdx_tb *tb = log_tb(test);
		struct vhdx_image *img = log_img(test, tb, false);
		struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
		u32 old_pos = order ? 0 : 512 * VHDX_KiB;
		u32 new_pos = order ? 512 * VHDX_KiB : 0;
		struct vhdx_log_sequence seq;
		u32 next;

		next = write_entry(test, tb, old_pos, &(struct tentry) {
			.seq = 100, .tail = old_pos, .desc = old, .count = 1 });
		write_entry(test, tb, next, &(struct tentry) {
			.seq = 101, .tail = old_pos, .desc = old, .count = 1 });
		write_entry(test, tb, new_pos, &(struct tentry) {
			.seq = 200, .tail = new_pos, .desc = new, .count = 1 });
		find_ok(test, img, &seq);
		KUNIT_EXPECT_EQ(test, seq.head_sequence, 200ULL);
		KUNIT_EXPECT_EQ(test, seq.tail, new_pos);
		KUNIT_EXPECT_EQ(test, seq.entry_count, 1U);
		KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0,
				    "%s", img->error);
		KUNIT_ASSERT_EQ(test, ov->count, 1U);
		expect_target(test, ov->extents[0].data, &new[0]);
	}
}

/* An entry straddling the end of the ring, its last data sector at 0. */
static void log_wrapped(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	u32 ring = tb->p.log_length, first = ring - 2 * SECT, second;
	const struct tdesc d1[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 0x31 },
		{ 'd', 2 * VHDX_MiB + SECT, .fill = 0x32 },
	};
	const struct tdesc d2[] = { { 'd', 3 * VHDX_MiB, .fill = 0x33 } };
	struct vhdx_log_sequence seq;

	second = write_entry(test, tb, first, &(struct tentry) {
		.seq = 9, .tail = first, .desc = d1, .count = 2 });
	KUNIT_ASSERT_EQ(test, second, SECT);
	write_entry(test, tb, second, &(struct tentry) {
		.seq = 10, .tail = first, .desc = d2, .count = 1 });
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.tail, first);
	KUNIT_EXPECT_EQ(test, seq.head, second);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 2U);
	KUNIT_EXPECT_EQ(test, seq.tail_sequence, 9ULL);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, 10ULL);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, 3U);
	expect_target(test, ov->extents[0].data, &d1[0]);
	expect_target(test, ov->extents[1].data, &d1[1]);
	expect_target(test, ov->extents[2].data, &d2[0]);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

/*
 * Entries filling the whole ring: the spec's scan would come back to the
 * same tail forever; the search must stop and find them all.
 */
static void log_full_ring(struct kunit *test)
{
	unsigned int start_index;

	for (start_index = 0; start_index < 2; start_index++) {
		struct vhdx_tb *tb = log_tb(test);
		struct vhdx_image *img = log_img(test, tb, true);
		u32 ring = tb->p.log_length, n = ring / SECT;
		u32 start = start_index ? ring / 2 : 0, pos = start, i;
		struct vhdx_log_sequence seq;

		for (i = 0; i < n; i++)
			pos = write_entry(test, tb, pos, &(struct tentry) {
				.seq = 1000 + i, .tail = start });
		find_ok(test, img, &seq);
		KUNIT_EXPECT_EQ(test, seq.entry_count, n);
		KUNIT_EXPECT_EQ(test, seq.tail, start);
		KUNIT_EXPECT_EQ(test, seq.head, (start + ring - SECT) % ring);
		KUNIT_EXPECT_EQ(test, seq.head_sequence, 1000ULL + n - 1);
	}
}

static void log_zero_descriptor(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	const struct tdesc d[] = { { 'z', 3 * VHDX_MiB, 2 * SECT } };
	struct vhdx_log_sequence seq;
	u8 *buf = vhdx_tb_zalloc(test, 3 * SECT);

	memset(tb->dev + 3 * VHDX_MiB, 0x5a, 3 * SECT);
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .desc = d, .count = 1 });
	find_ok(test, img, &seq);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, 1U);
	KUNIT_EXPECT_NULL(test, ov->extents[0].data);
	KUNIT_EXPECT_EQ(test, ov->extents[0].length, 2 * (u64)SECT);
	memcpy(buf, tb->dev + 3 * VHDX_MiB, 3 * SECT);
	vhdx_overlay_apply(ov, 3 * VHDX_MiB, buf, 3 * SECT);
	expect_zeros(test, buf, 2 * SECT);
	KUNIT_EXPECT_EQ(test, buf[2 * SECT], 0x5a);
}

/* A torn last entry (bad CRC) ends the sequence before it. */
static void log_torn_last_entry(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	const struct tdesc d[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	struct vhdx_log_sequence seq;
	u32 pos2, pos3;

	pos2 = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 5, .desc = d, .count = 1 });
	pos3 = write_entry(test, tb, pos2, &(struct tentry) {
		.seq = 6, .desc = d, .count = 1 });
	write_entry(test, tb, pos3, &(struct tentry) {
		.seq = 7, .desc = d, .count = 1 });
	/* Part of the third entry's data sector never reached the disk. */
	tb->dev[tb->p.log_offset + pos3 + SECT + 100] ^= 0xff;
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.head, pos2);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, 6ULL);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 2U);
}

/* Entries from an earlier LogGuid are invalid, even with higher numbers. */
static void log_stale_guid_ignored(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	const struct tdesc d[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	struct vhdx_log_sequence seq;
	u32 next;

	next = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 10, .desc = d, .count = 1 });
	/* Would extend the sequence if its GUID were not checked. */
	write_entry(test, tb, next, &(struct tentry) {
		.seq = 11, .tail = 0, .desc = d, .count = 1,
		.guid = &stale_log_guid });
	write_entry(test, tb, 256 * VHDX_KiB, &(struct tentry) {
		.seq = 1000, .tail = 256 * VHDX_KiB, .desc = d, .count = 1,
		.guid = &stale_log_guid });
	find_ok(test, img, &seq);
	KUNIT_EXPECT_EQ(test, seq.head, 0U);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, 10ULL);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 1U);
}

static void log_tail_outside_sequence(struct kunit *test)
{
	const struct tdesc d[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	struct vhdx_log_sequence seq;
	struct vhdx_image *img;
	struct vhdx_tb *tb;
	u32 next;

	/* The head's Tail names a place where no entry of it starts. */
	tb = log_tb(test);
	img = log_img(test, tb, false);
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .tail = 64 * VHDX_KiB, .desc = d, .count = 1 });
	expect_error(test, img, vhdx_log_find_active(img, &seq),
		     "no valid log sequence");

	/* Inside the sequence's bytes but not at an entry start. */
	tb = log_tb(test);
	img = log_img(test, tb, false);
	next = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .tail = 0, .desc = d, .count = 1 });
	write_entry(test, tb, next, &(struct tentry) {
		.seq = 2, .tail = SECT, .desc = d, .count = 1 });
	expect_error(test, img, vhdx_log_find_active(img, &seq),
		     "no valid log sequence");
}

static void log_no_valid_entry(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	struct vhdx_log_sequence seq;
	char guid[VHDX_GUID_STRING_SIZE];

	expect_error(test, img, vhdx_log_find_active(img, &seq),
		     "no valid log sequence");
	vhdx_guid_to_string(&test_log_guid, guid);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, guid), "%s",
				  img->error);
	KUNIT_EXPECT_NOT_NULL(test, strstr(img->error, "\"loge\""));
	img->error[0] = '\0';
	expect_error(test, img, vhdx_log_replay(img), "no valid log sequence");
}

/* Every field check, each on an entry that is otherwise valid. */
enum mutation {
	M_SIGNATURE, M_LENGTH_UNALIGNED, M_LENGTH_BEYOND_LOG, M_LENGTH_ZERO,
	M_TAIL_UNALIGNED, M_TAIL_BEYOND_LOG, M_SEQUENCE_ZERO, M_GUID,
	M_DESC_COUNT, M_DESC_SIGNATURE, M_DESC_SEQUENCE, M_DESC_OFFSET,
	M_ZERO_LENGTH_ZERO, M_ZERO_LENGTH_UNALIGNED, M_ZERO_OVERFLOW,
	M_DATA_SIGNATURE, M_DATA_SEQ_HIGH, M_DATA_SEQ_LOW, M_DATA_MISSING,
	M_CHECKSUM, M_COUNT,
};

static const char *const mutation_why[M_COUNT] = {
	[M_SIGNATURE] = "\"loge\"",
	[M_LENGTH_UNALIGNED] = "EntryLength",
	[M_LENGTH_BEYOND_LOG] = "EntryLength",
	[M_LENGTH_ZERO] = "EntryLength",
	[M_TAIL_UNALIGNED] = "Tail",
	[M_TAIL_BEYOND_LOG] = "Tail",
	[M_SEQUENCE_ZERO] = "SequenceNumber is 0",
	[M_GUID] = "LogGuid",
	[M_DESC_COUNT] = "DescriptorCount",
	[M_DESC_SIGNATURE] = "neither",
	[M_DESC_SEQUENCE] = "descriptor's SequenceNumber",
	[M_DESC_OFFSET] = "FileOffset is not 4 KiB aligned",
	[M_ZERO_LENGTH_ZERO] = "ZeroLength",
	[M_ZERO_LENGTH_UNALIGNED] = "ZeroLength",
	[M_ZERO_OVERFLOW] = "overflows",
	[M_DATA_SIGNATURE] = "data sector signature",
	[M_DATA_SEQ_HIGH] = "data sector's sequence",
	[M_DATA_SEQ_LOW] = "data sector's sequence",
	[M_DATA_MISSING] = "data sectors do not fit",
	[M_CHECKSUM] = "checksum mismatch",
};

static void mutate(u8 *buf, u32 len, enum mutation m)
{
	struct vhdx_log_entry_header *h = (void *)buf;
	struct vhdx_log_descriptor *data = desc_slot(buf, 0);
	struct vhdx_log_descriptor *zero = desc_slot(buf, 1);
	struct vhdx_log_data_sector *s = (void *)(buf + SECT);

	switch (m) {
	case M_SIGNATURE:
		h->signature[0] = 'L';
		break;
	case M_LENGTH_UNALIGNED:
		h->entry_length = cpu_to_le32(len + 512);
		break;
	case M_LENGTH_BEYOND_LOG:
		h->entry_length = cpu_to_le32(2 * VHDX_MiB);
		break;
	case M_LENGTH_ZERO:
		h->entry_length = 0;
		break;
	case M_TAIL_UNALIGNED:
		h->tail = cpu_to_le32(512);
		break;
	case M_TAIL_BEYOND_LOG:
		h->tail = cpu_to_le32(VHDX_MiB);
		break;
	case M_SEQUENCE_ZERO:
		h->sequence_number = 0;
		break;
	case M_GUID:
		h->log_guid = stale_log_guid;
		break;
	case M_DESC_COUNT:
		h->descriptor_count = cpu_to_le32(1000);
		break;
	case M_DESC_SIGNATURE:
		memcpy(data->signature, "dsec", 4);
		break;
	case M_DESC_SEQUENCE:
		data->sequence_number =
			cpu_to_le64(le64_to_cpu(data->sequence_number) + 1);
		break;
	case M_DESC_OFFSET:
		data->file_offset =
			cpu_to_le64(le64_to_cpu(data->file_offset) + 512);
		break;
	case M_ZERO_LENGTH_ZERO:
		zero->zero_length = 0;
		break;
	case M_ZERO_LENGTH_UNALIGNED:
		zero->zero_length = cpu_to_le64(6 * VHDX_KiB);
		break;
	case M_ZERO_OVERFLOW:
		zero->file_offset = cpu_to_le64(U64_MAX - SECT + 1);
		zero->zero_length = cpu_to_le64(2 * SECT);
		break;
	case M_DATA_SIGNATURE:
		memcpy(s->signature, "DATA", 4);
		break;
	case M_DATA_SEQ_HIGH:
		s->sequence_high =
			cpu_to_le32(le32_to_cpu(s->sequence_high) + 1);
		break;
	case M_DATA_SEQ_LOW:
		s->sequence_low = cpu_to_le32(le32_to_cpu(s->sequence_low) + 1);
		break;
	case M_DATA_MISSING:
		/* A second data descriptor without its data sector. */
		memcpy(zero->signature, VHDX_SIGNATURE_LOG_DESC, 4);
		break;
	case M_CHECKSUM:
	case M_COUNT:
		break;
	}
	if (m != M_CHECKSUM)
		entry_rechecksum(buf, len);
	else
		buf[SECT + 200] ^= 1;
}

static void log_invalid_entries(struct kunit *test)
{
	const struct tdesc d[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 1 },
		{ 'z', 3 * VHDX_MiB, SECT },
	};
	struct vhdx_log_sequence seq;
	enum mutation m;

	for (m = 0; m < M_COUNT; m++) {
		struct vhdx_tb *tb = log_tb(test);
		struct vhdx_image *img = log_img(test, tb, false);
		u32 len;
		u8 *buf = build_entry(test, &(struct tentry) {
			.seq = 0x100000001ULL, .desc = d, .count = 2 }, &len);

		mutate(buf, len, m);
		put_entry(tb, 0, buf, len);
		expect_error(test, img, vhdx_log_find_active(img, &seq),
			     mutation_why[m]);
	}
}

/* ---- replay ---------------------------------------------------------- */

static void log_flushed_beyond_device(struct kunit *test)
{
	const struct tdesc d[] = { { 'd', 2 * VHDX_MiB, .fill = 1 } };
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, true);

	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .desc = d, .count = 1, .flushed = tb->size + VHDX_MiB,
		.last = tb->size + VHDX_MiB });
	expect_error(test, img, vhdx_log_replay(img), "truncated");

	/* Exactly the device size is fine. */
	tb = log_tb(test);
	img = log_img(test, tb, true);
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .desc = d, .count = 1, .flushed = tb->size,
		.last = tb->size });
	KUNIT_EXPECT_EQ_MSG(test, vhdx_log_replay(img), 0, "%s", img->error);
}

static void log_bad_targets(struct kunit *test)
{
	static const struct {
		struct tdesc d;
		const char *why;
	} cases[] = {
		{ { 'd', 0, .fill = 1 }, "file identifier or headers" },
		{ { 'd', VHDX_HEADER1_OFFSET, .fill = 1 },
		  "file identifier or headers" },
		{ { 'z', VHDX_HEADER2_OFFSET + 60 * VHDX_KiB, 8 * VHDX_KiB },
		  "file identifier or headers" },
		{ { 'd', VHDX_MiB + SECT, .fill = 1 }, "overlaps the log" },
		{ { 'z', VHDX_MiB - SECT, 2 * SECT }, "overlaps the log" },
		{ { 'z', 64 * VHDX_MiB, SECT }, "truncated" },
	};
	struct vhdx_log_sequence seq;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct vhdx_tb *tb = log_tb(test);
		struct vhdx_image *img = log_img(test, tb, true);
		struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);

		write_entry(test, tb, 0, &(struct tentry) {
			.seq = 77, .desc = &cases[i].d, .count = 1 });
		find_ok(test, img, &seq);
		expect_error(test, img, vhdx_log_collect(img, &seq, ov),
			     cases[i].why);
		KUNIT_EXPECT_NOT_NULL(test, strstr(img->error, "entry 77"));
	}
}

/* A zero run that starts inside the device but ends past it. */
static void log_zero_run_past_device(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, true);
	const struct tdesc d = { 'z', tb->size - SECT, 2 * SECT };

	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 5, .desc = &d, .count = 1 });
	expect_error(test, img, vhdx_log_replay(img), "beyond the device");
}

static void log_replay_read_only(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, true);
	const struct tdesc d[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 9 },
		{ 'z', 3 * VHDX_MiB, SECT },
	};
	u8 *before = vhdx_tb_zalloc(test, tb->size);
	u8 *buf = vhdx_tb_zalloc(test, 2 * SECT);

	vhdx_tb_set_read_only(tb);
	memset(tb->dev + 3 * VHDX_MiB, 0x44, 2 * SECT);
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 3, .desc = d, .count = 2 });
	memcpy(before, tb->dev, tb->size);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_replay(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_REPLAYED_IN_MEMORY);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, tb->flushes, 0U);
	KUNIT_EXPECT_EQ(test, memcmp(before, tb->dev, tb->size), 0);
	KUNIT_EXPECT_TRUE(test, guid_equal(&img->header.log_guid,
					   &test_log_guid));

	KUNIT_ASSERT_EQ(test, vhdx_read(img, 2 * VHDX_MiB, buf, 2 * SECT), 0);
	expect_target(test, buf, &d[0]);
	KUNIT_EXPECT_EQ(test, memcmp(buf + SECT, tb->dev + 2 * VHDX_MiB + SECT,
				     SECT), 0);
	KUNIT_ASSERT_EQ(test, vhdx_read(img, 3 * VHDX_MiB, buf, 2 * SECT), 0);
	expect_zeros(test, buf, SECT);
	KUNIT_EXPECT_EQ(test, buf[SECT], 0x44);
}

/* Records writes as 'H'eader or 'D'ata and flushes as 'F'. */
struct trace_io {
	struct vhdx_tb *tb;
	char trace[64];
	unsigned int n;
};

static void trace_add(struct trace_io *t, char c)
{
	if (t->n < sizeof(t->trace) - 1)
		t->trace[t->n++] = c;
}

static int trace_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct trace_io *t = priv;

	if (offset > t->tb->size || len > t->tb->size - offset)
		return -EIO;
	memcpy(buf, t->tb->dev + offset, len);
	return 0;
}

static int trace_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct trace_io *t = priv;

	if (offset > t->tb->size || len > t->tb->size - offset ||
	    offset % SECT || len % SECT)
		return -EIO;
	trace_add(t, offset < VHDX_REGION_TABLE1_OFFSET ? 'H' : 'D');
	memcpy(t->tb->dev + offset, buf, len);
	return 0;
}

static int trace_flush(void *priv)
{
	trace_add(priv, 'F');
	return 0;
}

static void log_replay_read_write(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct trace_io *t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);
	struct vhdx_io io = {
		.priv = t, .read = trace_read, .write = trace_write,
		.flush = trace_flush,
	};
	const u64 zero_at = 3 * VHDX_MiB + 64 * VHDX_KiB;
	const struct tdesc d1[] = {
		{ 'd', 2 * VHDX_MiB, .fill = 3 },
		/* Longer than the zero buffer: written in chunks. */
		{ 'z', zero_at, 132 * VHDX_KiB },
		{ 'd', 2 * VHDX_MiB + SECT, .fill = 4 },
	};
	const struct tdesc d2[] = { { 'd', 2 * VHDX_MiB, .fill = 5 } };
	const struct vhdx_header *cur = vhdx_tb_header(tb, 1);
	guid_t old_fwg = cur->file_write_guid, old_dwg = cur->data_write_guid;
	u64 old_seq = le64_to_cpu(cur->sequence_number);
	struct vhdx_image *img, *again;
	unsigned int slot;
	u32 next;

	KUNIT_ASSERT_NOT_NULL(test, t);
	t->tb = tb;
	memset(tb->dev + zero_at - SECT, 0x77, 132 * VHDX_KiB + 2 * SECT);
	next = write_entry(test, tb, 0, &(struct tentry) {
		.seq = 50, .desc = d1, .count = 3 });
	write_entry(test, tb, next, &(struct tentry) {
		.seq = 51, .desc = d2, .count = 1 });

	img = vhdx_tb_new_image(test);
	img->io = &io;
	img->device_size = tb->size;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_header_load(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_replay(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_REPLAYED);
	KUNIT_EXPECT_EQ(test, img->overlay.count, 0U);
	/*
	 * Both headers (new FileWriteGuid) before anything else, the updates
	 * in log order (zeros in 64 KiB chunks), a flush, then both headers
	 * again with the log emptied.
	 */
	KUNIT_EXPECT_STREQ(test, t->trace, "HFHFDDDDDDFHFHF");

	expect_target(test, tb->dev + 2 * VHDX_MiB, &d2[0]);
	expect_target(test, tb->dev + 2 * VHDX_MiB + SECT, &d1[2]);
	expect_zeros(test, tb->dev + zero_at, 132 * VHDX_KiB);
	KUNIT_EXPECT_EQ(test, tb->dev[zero_at - 1], 0x77);
	KUNIT_EXPECT_EQ(test, tb->dev[zero_at + 132 * VHDX_KiB], 0x77);

	for (slot = 0; slot < 2; slot++) {
		struct vhdx_header *h = vhdx_tb_header(tb, slot);

		KUNIT_EXPECT_TRUE(test, guid_is_null(&h->log_guid));
		KUNIT_EXPECT_FALSE(test, guid_equal(&h->file_write_guid,
						    &old_fwg));
		KUNIT_EXPECT_TRUE(test, guid_equal(&h->data_write_guid,
						   &old_dwg));
	}
	/* A later open finds a clean log. */
	again = log_img(test, tb, true);
	KUNIT_EXPECT_TRUE(test, guid_is_null(&again->header.log_guid));
	KUNIT_EXPECT_EQ(test, le64_to_cpu(again->header.sequence_number),
			old_seq + 4);
	KUNIT_EXPECT_EQ(test, vhdx_log_replay(again), 0);
	KUNIT_EXPECT_EQ(test, again->log_state, VHDX_LOG_CLEAN);
}

/* A failed write leaves the log in place, to be replayed next time. */
static void log_replay_write_error(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	struct vhdx_image *img = log_img(test, tb, false);
	const struct tdesc d[] = { { 'd', 2 * VHDX_MiB, .fill = 3 } };

	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 50, .desc = d, .count = 1 });
	tb->fail_write_offset = 2 * VHDX_MiB;
	KUNIT_EXPECT_EQ(test, vhdx_log_replay(img), -EIO);
	KUNIT_EXPECT_NOT_NULL(test, strstr(img->error, "write error"));
	KUNIT_EXPECT_TRUE(test, guid_equal(&img->header.log_guid,
					   &test_log_guid));
	KUNIT_EXPECT_TRUE(test,
			  guid_equal(&vhdx_tb_header(tb, 0)->log_guid,
				     &test_log_guid));
	KUNIT_EXPECT_TRUE(test,
			  guid_equal(&vhdx_tb_header(tb, 1)->log_guid,
				     &test_log_guid));
}

/* vhdx_open end to end: the BAT entry of block 0 lives only in the log. */
static void log_open_with_dirty_bat(struct kunit *test)
{
	struct vhdx_tb *tb = log_tb(test);
	u8 *bat_sector = vhdx_tb_zalloc(test, SECT);
	struct tdesc d = { 'd', tb->p.bat_offset, .data = bat_sector };
	struct vhdx_io rw_io = tb->io;
	struct vhdx_image *img;
	u64 block_offset;
	unsigned int writes;

	block_offset = vhdx_tb_alloc_block(tb, 0);
	memcpy(bat_sector, tb->dev + tb->p.bat_offset, SECT);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 0),
			VHDX_PAYLOAD_NOT_PRESENT, 0);
	write_entry(test, tb, 0, &(struct tentry) {
		.seq = 1, .desc = &d, .count = 1, .flushed = tb->size,
		.last = tb->size });

	vhdx_tb_set_read_only(tb);
	img = vhdx_tb_new_image(test);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_open(img, &tb->io, tb->size, true), 0,
			    "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_REPLAYED_IN_MEMORY);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->bat[0]),
			block_offset | VHDX_PAYLOAD_FULLY_PRESENT);
	KUNIT_EXPECT_EQ(test, vhdx_tb_get_bat(tb, 0), 0ULL);

	tb->io = rw_io;
	writes = tb->writes;
	img = vhdx_tb_new_image(test);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_open(img, &tb->io, tb->size, false), 0,
			    "%s", img->error);
	KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_REPLAYED);
	KUNIT_EXPECT_GT(test, tb->writes, writes);
	KUNIT_EXPECT_EQ(test, le64_to_cpu(img->bat[0]),
			block_offset | VHDX_PAYLOAD_FULLY_PRESENT);
	KUNIT_EXPECT_EQ(test, vhdx_tb_get_bat(tb, 0),
			block_offset | VHDX_PAYLOAD_FULLY_PRESENT);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);
}

/* ---- the overlay on its own ----------------------------------------- */

static void overlay_apply_order_and_clipping(struct kunit *test)
{
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	u8 *a = vhdx_tb_zalloc(test, 8192), *buf = vhdx_tb_zalloc(test, 32);
	unsigned int i;

	memset(a, 0x11, 8192);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 100, 10, a), 0);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 105, 10, NULL), 0);
	memset(a, 0x22, 8192);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 90, 12, a), 0);
	/* The copy was taken at add time. */
	memset(a, 0x33, 8192);
	KUNIT_EXPECT_EQ(test, vhdx_overlay_add(ov, 0, 0, a), 0);
	KUNIT_EXPECT_EQ(test, ov->count, 3U);
	KUNIT_EXPECT_EQ(test, vhdx_overlay_add(ov, U64_MAX - 4, 10, NULL),
			-EINVAL);

	memset(buf, 0xee, 32);
	vhdx_overlay_apply(ov, 88, buf, 32);	/* [88, 120) */
	for (i = 0; i < 32; i++) {
		u64 off = 88 + i;
		u8 want = 0xee;

		if (off >= 100 && off < 110)
			want = 0x11;
		if (off >= 105 && off < 115)
			want = 0;
		if (off >= 90 && off < 102)
			want = 0x22;
		KUNIT_EXPECT_EQ_MSG(test, buf[i], want, "offset %llu", off);
	}
	/* Entirely before and after: untouched. */
	memset(buf, 0xee, 32);
	vhdx_overlay_apply(ov, 0, buf, 32);
	vhdx_overlay_apply(ov, 115, buf, 32);
	for (i = 0; i < 32; i++)
		KUNIT_EXPECT_EQ(test, buf[i], 0xee);
}

static void overlay_grows(struct kunit *test)
{
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	u8 byte;
	u32 i;

	for (i = 0; i < 1000; i++) {
		byte = (u8)i;
		KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, i, 1, &byte), 0);
	}
	KUNIT_EXPECT_EQ(test, ov->count, 1000U);
	KUNIT_EXPECT_GE(test, ov->capacity, 1000U);
	for (i = 0; i < 1000; i++) {
		KUNIT_EXPECT_EQ(test, ov->extents[i].offset, (u64)i);
		KUNIT_EXPECT_EQ(test, *(u8 *)ov->extents[i].data, (u8)i);
	}
	vhdx_overlay_free(ov);
	KUNIT_EXPECT_EQ(test, ov->count, 0U);
	KUNIT_EXPECT_NULL(test, ov->extents);
}

static void overlay_covered_by_union(struct kunit *test)
{
	const struct vhdx_region allowed[] = {
		{ .offset = VHDX_REGION_TABLE1_OFFSET, .length = 128 * VHDX_KiB },
		{ .offset = 2 * VHDX_MiB, .length = VHDX_MiB },
		{ .offset = 3 * VHDX_MiB, .length = VHDX_MiB },
		{ .offset = 8 * VHDX_MiB, .length = 0 },
	};
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	u64 bad = 0;

	KUNIT_EXPECT_TRUE(test, vhdx_overlay_covered_by(ov, allowed, 4, &bad));
	/* Straddles the adjacent BAT and metadata ranges. */
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 3 * VHDX_MiB - SECT,
					       2 * SECT, NULL), 0);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 2 * VHDX_MiB, 2 * VHDX_MiB,
					       NULL), 0);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 256 * VHDX_KiB, SECT, NULL),
			0);
	KUNIT_EXPECT_TRUE(test, vhdx_overlay_covered_by(ov, allowed, 4, &bad));
	KUNIT_EXPECT_TRUE(test, vhdx_overlay_covered_by(ov, allowed, 4, NULL));

	/* Runs one sector past the metadata range. */
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 4 * VHDX_MiB - SECT,
					       2 * SECT, NULL), 0);
	KUNIT_EXPECT_FALSE(test, vhdx_overlay_covered_by(ov, allowed, 4, &bad));
	KUNIT_EXPECT_EQ(test, bad, 4 * VHDX_MiB - SECT);
	vhdx_overlay_free(ov);

	/* Inside the gap between the region tables and the BAT. */
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, VHDX_MiB, SECT, NULL), 0);
	KUNIT_EXPECT_FALSE(test, vhdx_overlay_covered_by(ov, allowed, 4, &bad));
	KUNIT_EXPECT_EQ(test, bad, VHDX_MiB);
	/* A zero-length range covers nothing. */
	vhdx_overlay_free(ov);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, 8 * VHDX_MiB, SECT, NULL), 0);
	KUNIT_EXPECT_FALSE(test, vhdx_overlay_covered_by(ov, allowed, 4, &bad));
}

static void overlay_write_back(struct kunit *test)
{
	struct vhdx_tb *tb = vhdx_tb_build(test, NULL);
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	u8 *a = vhdx_tb_zalloc(test, SECT);
	const u64 at = 4 * VHDX_MiB;
	unsigned int writes;

	memset(tb->dev + at, 0x99, VHDX_MiB);
	memset(a, 0x42, SECT);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, at, 200 * VHDX_KiB, NULL),
			0);
	KUNIT_ASSERT_EQ(test, vhdx_overlay_add(ov, at + SECT, SECT, a), 0);
	writes = tb->writes;
	KUNIT_ASSERT_EQ(test, vhdx_overlay_write_back(ov, &tb->io), 0);
	/* 64 + 64 + 64 + 8 KiB of zeros, then the data. */
	KUNIT_EXPECT_EQ(test, tb->writes - writes, 5U);
	KUNIT_EXPECT_EQ(test, tb->flushes, 0U);
	expect_zeros(test, tb->dev + at, SECT);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + at + SECT, a, SECT), 0);
	expect_zeros(test, tb->dev + at + 2 * SECT, 200 * VHDX_KiB - 2 * SECT);
	KUNIT_EXPECT_EQ(test, tb->dev[at + 200 * VHDX_KiB], 0x99);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);

	vhdx_tb_set_read_only(tb);
	KUNIT_EXPECT_EQ(test, vhdx_overlay_write_back(ov, &tb->io), -EROFS);
}

static struct kunit_case vhdx_log_cases[] = {
	KUNIT_CASE(log_null_guid_is_clean),
	KUNIT_CASE(log_single_entry),
	KUNIT_CASE(log_two_descriptor_sectors),
	KUNIT_CASE(log_several_entries),
	KUNIT_CASE(log_tail_in_middle),
	KUNIT_CASE(log_newer_sequence_wins),
	KUNIT_CASE(log_wrapped),
	KUNIT_CASE(log_full_ring),
	KUNIT_CASE(log_zero_descriptor),
	KUNIT_CASE(log_torn_last_entry),
	KUNIT_CASE(log_stale_guid_ignored),
	KUNIT_CASE(log_tail_outside_sequence),
	KUNIT_CASE(log_no_valid_entry),
	KUNIT_CASE(log_invalid_entries),
	KUNIT_CASE(log_flushed_beyond_device),
	KUNIT_CASE(log_bad_targets),
	KUNIT_CASE(log_zero_run_past_device),
	KUNIT_CASE(log_replay_read_only),
	KUNIT_CASE(log_replay_read_write),
	KUNIT_CASE(log_replay_write_error),
	KUNIT_CASE(log_open_with_dirty_bat),
	KUNIT_CASE(overlay_apply_order_and_clipping),
	KUNIT_CASE(overlay_grows),
	KUNIT_CASE(overlay_covered_by_union),
	KUNIT_CASE(overlay_write_back),
	{}
};

static struct kunit_suite vhdx_log_suite = {
	.name = "vhdx_log",
	.test_cases = vhdx_log_cases,
};

kunit_test_suite(vhdx_log_suite);
