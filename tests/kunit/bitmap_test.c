// SPDX-License-Identifier: GPL-2.0
/*
 * Differencing images: sector bitmaps in memory (bitmap.c), their cache of
 * 4 KiB pages, their pages in commits (txn.c), and vhdx_open() of images with a parent
 * (image.c), for 512 and 4096 byte logical sectors.  Expected values come
 * from the format (MS-VHDX 2.5.1.2: 2^23 sectors per chunk, bit 0 of byte
 * 0 first) and from the builder's layout, never from the code under test.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "../../vhdx/parent.h"
#include "image_builder.h"
#include "rec_dev.h"

#define SECT		VHDX_LOG_SECTOR_SIZE
#define SB_SIZE		VHDX_MiB		/* a sector bitmap block */
#define SPC		BIT_ULL(23)		/* sectors per chunk */
#define PAGES		(SB_SIZE / SECT)	/* 4 KiB pages of a bitmap */
#define PAGE_BITS	(SECT * 8)		/* sectors per bitmap page */
#define BAT_PER_SECT	(SECT / sizeof(__le64))

/* ---- images --------------------------------------------------------- */

static struct vhdx_tb *diff_tb(struct kunit *test, u32 lss, u32 block_size,
			       u64 virtual_size, u64 device_size)
{
	struct vhdx_tb_params p = {
		.virtual_size = virtual_size,
		.block_size = block_size,
		.logical_sector_size = lss,
		.file_flags = VHDX_PARAMS_HAS_PARENT,
		.device_size = device_size,
	};

	return vhdx_tb_build(test, &p);
}

static int try_open(struct kunit *test, const struct vhdx_io *io, u64 size,
		    bool read_only, bool accept_parent,
		    struct vhdx_image **imgp)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);

	img->accept_parent = accept_parent;
	*imgp = img;
	return vhdx_open(img, io, size, read_only);
}

static struct vhdx_image *open_diff(struct kunit *test,
				    const struct vhdx_io *io, u64 size,
				    bool read_only)
{
	struct vhdx_image *img;
	int ret = try_open(test, io, size, read_only, true, &img);

	KUNIT_ASSERT_EQ_MSG(test, ret, 0, "%s", img->error);
	KUNIT_ASSERT_TRUE(test, img->geo.has_parent);
	KUNIT_ASSERT_NOT_NULL(test, img->bitmaps);
	return img;
}

/* A failed open: the reason, and nothing left allocated. */
static void expect_refused(struct kunit *test, struct vhdx_tb *tb,
			   bool accept_parent, const char *what,
			   const char *needle, const char *needle2)
{
	struct vhdx_image *img;
	int ret = try_open(test, &tb->io, tb->size, true, accept_parent, &img);

	KUNIT_EXPECT_LT_MSG(test, ret, 0, "%s", what);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, needle),
				  "%s: %s", what, img->error);
	if (needle2)
		KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, needle2),
					  "%s: %s", what, img->error);
	KUNIT_EXPECT_NULL(test, img->bat);
	KUNIT_EXPECT_NULL(test, img->bitmaps);
	KUNIT_EXPECT_NULL(test, img->locator);
}

/* A read-write differencing image through @r, ready for sessions. */
static struct vhdx_image *open_txn(struct kunit *test, struct rec *r)
{
	struct vhdx_image *img = open_diff(test, &r->io, r->tb->size, false);

	rec_txn_init(test, img);
	return img;
}

/* @chunk's whole bitmap as the cache shows it, loading what it must. */
static const u8 *read_chunk(struct kunit *test, struct vhdx_image *img,
			    u64 chunk, u8 *buf)
{
	u32 page;

	if (!buf)
		buf = vhdx_tb_zalloc(test, SB_SIZE);
	for (page = 0; page < PAGES; page++)
		KUNIT_ASSERT_EQ_MSG(test,
				    vhdx_bitmap_read_page(img, chunk, page,
							  buf + page * SECT),
				    0, "%s", img->error);
	return buf;
}

/* One byte of @chunk's bitmap. */
static u8 bitmap_byte(struct kunit *test, struct vhdx_image *img, u64 chunk,
		      u64 byte)
{
	u8 *page = vhdx_tb_zalloc(test, SECT);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_bitmap_read_page(img, chunk, byte / SECT,
							page),
			    0, "%s", img->error);
	return page[byte % SECT];
}

/* Which pages of @chunk are cached and dirty, one bit each. */
static void chunk_dirty(struct vhdx_image *img, u64 chunk, u8 *dirty)
{
	bool d;
	u32 page;

	memset(dirty, 0, PAGES / 8);
	for (page = 0; page < PAGES; page++)
		if (vhdx_bitmap_page_cached(img, chunk, page, &d) && d)
			dirty[page / 8] |= 1 << (page % 8);
}

static bool no_dirty(struct vhdx_image *img, u64 chunk)
{
	u8 dirty[PAGES / 8];

	chunk_dirty(img, chunk, dirty);
	return !memchr_inv(dirty, 0, sizeof(dirty));
}

/* ---- the test's own bitmap arithmetic ------------------------------- */

static bool ref_bit(const u8 *bits, u64 i)
{
	return bits && (bits[i / 8] >> (i % 8)) & 1;
}

static void ref_set(u8 *bits, u64 first, u64 count)
{
	u64 i;

	for (i = first; i < first + count; i++)
		bits[i / 8] |= 1 << (i % 8);
}

static void ref_dirty(u8 *dirty, u64 first, u64 count)
{
	u64 page;

	for (page = first / PAGE_BITS; page <= (first + count - 1) / PAGE_BITS;
	     page++)
		dirty[page / 8] |= 1 << (page % 8);
}

/*
 * Bit by bit; @bits NULL is a chunk without a bitmap.  A run through a
 * bitmap ends at the end of its 4 KiB page at the latest.
 */
static u64 ref_run(const u8 *bits, u64 i, u64 count, bool *present)
{
	u64 start = i, end = min(SPC, i + count);

	if (bits)
		end = min(end, (i / PAGE_BITS + 1) * PAGE_BITS);

	*present = ref_bit(bits, i);
	while (i < end && ref_bit(bits, i) == *present)
		i++;
	return i - start;
}

/* ---- vhdx_bitmap_run ------------------------------------------------ */

/*
 * Hand-made bytes at the start (bit and byte boundaries), mixed bytes with
 * runs of 0x00 and 0xff up to byte 8191, zeros, one long run of 0xff bytes
 * from byte 100000, and set bits up to the end of the chunk.
 */
static void run_pattern(u8 *b)
{
	static const u8 head[] = {
		0x00, 0x00, 0xf0, 0xff, 0xff, 0x01, 0x00, 0x00,
		0x00, 0x00, 0xa5, 0x3c, 0xff, 0x7f, 0x80, 0xfe,
	};
	u32 i, x = 12345, r;

	memset(b, 0, SB_SIZE);
	memcpy(b, head, sizeof(head));
	for (i = sizeof(head); i < 8192; i++) {
		x = x * 1103515245 + 12345;
		r = (x >> 16) % 8;
		if (r < 3)
			b[i] = b[i - 1] == 0xff ? 0xff : 0;
		else if (r == 3)
			b[i] = 0;
		else if (r == 4)
			b[i] = 0xff;
		else
			b[i] = x >> 24;
	}
	b[99999] = 0x80;
	memset(b + 100000, 0xff, 100000);
	b[200000] = 0x07;
	b[SB_SIZE - 16] = 0xc0;
	memset(b + SB_SIZE - 15, 0xff, 15);
}

struct run_case {
	u64 sector;		/* in the chunk */
	u64 count;
	u64 want;
	bool present;
};

/* Worked out by hand from run_pattern(). */
static const struct run_case run_cases[] = {
	{ 0, 1000, 20, false },		/* bytes 0-1, low nibble of 2 */
	{ 0, 16, 16, false },		/* capped on a byte boundary */
	{ 0, 17, 17, false },
	{ 3, 9, 9, false },
	{ 20, 1000, 21, true },		/* 0xf0 0xff 0xff 0x01 */
	{ 24, 5, 5, true },
	{ 25, 100, 16, true },
	{ 41, 1000, 39, false },	/* bits 41-47, bytes 6-9 */
	{ 48, 3, 3, false },
	{ 80, 1000, 1, true },		/* 0xa5 */
	{ 81, 1000, 1, false },
	{ 83, 1000, 2, false },
	{ 87, 1000, 1, true },
	{ 88, 1000, 2, false },		/* 0x3c */
	{ 90, 1000, 4, true },
	{ 94, 1000, 2, false },
	{ 96, 1000, 15, true },		/* 0xff 0x7f */
	{ 111, 1000, 8, false },	/* 0x80 */
	{ 119, 1000, 1, true },
	{ 120, 1, 1, false },		/* 0xfe */
	/* Longer runs end with their 4 KiB page: 32768 sectors. */
	{ 65536, 2 * SPC, 32768, false },
	{ 65539, 2 * SPC, 32765, false },
	{ 799992, 1000000, 7, false },
	{ 799999, 2 * SPC, 25 * 32768 - 799999, true },
	{ 800000, 800000, 25 * 32768 - 800000, true },
	{ 800003, 799999, 25 * 32768 - 800003, true },
	{ 1600003, 2 * SPC, 49 * 32768 - 1600003, false },
	{ SPC - 123, 10, 1, false },
	{ SPC - 122, 2 * SPC, 122, true },	/* capped by the chunk end */
	{ SPC - 122, 50, 50, true },
	{ SPC - 1, 5, 1, true },
};

/* Runs in the chunk without a bitmap: clear, up to the chunk end. */
static const struct run_case null_cases[] = {
	{ 0, 2 * SPC, SPC, false },
	{ 12345, 3 * SPC, SPC - 12345, false },
	{ 5, 7, 7, false },
	{ SPC - 1, 100, 1, false },
};

static void check_run(struct kunit *test, struct vhdx_image *img, u64 base,
		      const struct run_case *c, const char *what)
{
	bool present = !c->present;
	u64 got = vhdx_bitmap_run(img, base + c->sector, c->count, &present);

	KUNIT_EXPECT_EQ_MSG(test, got, c->want, "%s: sector %llu count %llu",
			    what, c->sector, c->count);
	KUNIT_EXPECT_EQ_MSG(test, present, c->present,
			    "%s: sector %llu count %llu", what, c->sector,
			    c->count);
}

/* Compares with ref_run(); reports the first few differences only. */
static void compare_runs(struct kunit *test, struct vhdx_image *img,
			 u64 base, const u8 *bits, u64 first, u64 last,
			 u64 step, u64 max_count, unsigned int *bad)
{
	static const u64 counts[] = { 1, 2, 7, 8, 9, 16, 63, 64, 65, 4096,
				      2 * SPC };
	u64 s, got, want;
	unsigned int k;
	bool p, q;

	for (s = first; s <= last; s += step) {
		for (k = 0; k < ARRAY_SIZE(counts); k++) {
			if (counts[k] > max_count)
				break;
			want = ref_run(bits, s, counts[k], &q);
			p = !q;
			got = vhdx_bitmap_run(img, base + s, counts[k], &p);
			if (got == want && p == q)
				continue;
			if (++*bad <= 5)
				KUNIT_FAIL(test,
					   "sector %llu count %llu: run %llu %d, expected %llu %d",
					   s, counts[k], got, p, want, q);
		}
	}
}

/*
 * Two chunks; @chunk has a sector bitmap block holding run_pattern(), the
 * other none.  Runs are in logical sectors whatever their size.
 */
static void bitmap_run_geometry(struct kunit *test, u32 lss, u32 block_size,
				u64 virtual_size, u64 chunk)
{
	struct vhdx_tb *tb = diff_tb(test, lss, block_size, virtual_size,
				     16 * VHDX_MiB);
	u8 *bits = vhdx_tb_zalloc(test, SB_SIZE);
	u64 base = chunk * SPC, other = (1 - chunk) * SPC;
	struct vhdx_image *img;
	unsigned int i, bad = 0;
	u32 x = 777;

	KUNIT_ASSERT_EQ(test, tb->bitmap_blocks, 2ULL);
	run_pattern(bits);
	vhdx_tb_alloc_bitmap(tb, chunk, bits);
	img = open_diff(test, &tb->io, tb->size, true);
	KUNIT_ASSERT_EQ(test, img->geo.bitmap_blocks, 2ULL);
	KUNIT_ASSERT_EQ(test, (u64)img->geo.chunk_ratio,
			SPC * lss / block_size);
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img, chunk));
	KUNIT_ASSERT_FALSE(test, vhdx_bitmap_present(img, 1 - chunk));
	/* Nothing of the bitmap is read at open. */
	KUNIT_EXPECT_EQ(test, img->bmc.loads, 0ULL);
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, chunk, NULL), bits,
				     SB_SIZE), 0);
	KUNIT_EXPECT_TRUE(test, no_dirty(img, chunk));

	for (i = 0; i < ARRAY_SIZE(run_cases); i++)
		check_run(test, img, base, &run_cases[i], "bitmap");
	for (i = 0; i < ARRAY_SIZE(null_cases); i++)
		check_run(test, img, other, &null_cases[i], "no bitmap");

	/* Every start in the hand-made and mixed bytes, then a sample. */
	compare_runs(test, img, base, bits, 0, 2048, 1, U64_MAX, &bad);
	compare_runs(test, img, base, bits, 2049, 8192 * 8 + 64, 7, U64_MAX,
		     &bad);
	compare_runs(test, img, base, bits, 799990, 800010, 1, U64_MAX, &bad);
	compare_runs(test, img, base, bits, SPC - 200, SPC - 1, 1, U64_MAX,
		     &bad);
	compare_runs(test, img, other, NULL, SPC - 20, SPC - 1, 1, U64_MAX,
		     &bad);
	/* Anywhere in the chunk, without scanning megabytes for the answer. */
	for (i = 0; i < 500; i++) {
		x = x * 1103515245 + 12345;
		compare_runs(test, img, base, bits, (x >> 4) % SPC,
			     (x >> 4) % SPC, 1, 4096, &bad);
	}
	KUNIT_EXPECT_EQ(test, bad, 0U);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

static void bitmap_run_512(struct kunit *test)
{
	/* 32 MiB blocks: 128 per 4 GiB chunk. */
	bitmap_run_geometry(test, 512, 32 * VHDX_MiB, 8 * VHDX_GiB, 0);
}

static void bitmap_run_4k(struct kunit *test)
{
	/* 32 MiB blocks: 1024 per 32 GiB chunk; the second chunk's bitmap. */
	bitmap_run_geometry(test, 4096, 32 * VHDX_MiB, 64 * VHDX_GiB, 1);
}

/* ---- vhdx_bitmap_set ------------------------------------------------ */

struct set_state {
	u8 *want[2];			/* the expected bits of each chunk */
	u8 *have;			/* scratch: what the image has */
	u8 dirty[2][PAGES / 8];		/* the expected dirty pages */
	u32 dirty_count;
};

static void expect_set_state(struct kunit *test, struct vhdx_image *img,
			     const struct set_state *s, const char *what)
{
	u8 dirty[PAGES / 8];
	unsigned int c;

	for (c = 0; c < 2; c++) {
		chunk_dirty(img, c, dirty);
		KUNIT_EXPECT_EQ_MSG(test, memcmp(dirty, s->dirty[c],
						 sizeof(s->dirty[c])), 0,
				    "%s: chunk %u dirty pages", what, c);
		KUNIT_EXPECT_EQ_MSG(test, memcmp(read_chunk(test, img, c,
							    s->have),
						 s->want[c], SB_SIZE), 0,
				    "%s: chunk %u bits", what, c);
	}
	KUNIT_EXPECT_EQ_MSG(test, vhdx_txn_dirty_pages(img), s->dirty_count,
			    "%s",
			    what);
}

/* Sets @count sectors from @sector, in the image and in @s. */
static void do_set(struct kunit *test, struct vhdx_image *img,
		   struct set_state *s, u64 sector, u64 count, u32 new_pages)
{
	u64 c = sector / SPC;

	KUNIT_EXPECT_EQ(test, vhdx_bitmap_set(img, sector, count), 0);
	ref_set(s->want[c], sector % SPC, count);
	ref_dirty(s->dirty[c], sector % SPC, count);
	s->dirty_count += new_pages;
	expect_set_state(test, img, s, "after a set");
}

static void bitmap_set_exact(struct kunit *test)
{
	/* 32 MiB blocks: a block's 65536 bits span two 4 KiB pages. */
	struct vhdx_tb *tb = diff_tb(test, 512, 32 * VHDX_MiB, 8 * VHDX_GiB,
				     16 * VHDX_MiB);
	struct vhdx_image *img = open_diff(test, &tb->io, tb->size, false);
	struct set_state *s = kunit_kzalloc(test, sizeof(*s), GFP_KERNEL);
	const u64 block = 65536;

	KUNIT_ASSERT_NOT_NULL(test, s);
	rec_txn_init(test, img);
	s->want[0] = vhdx_tb_zalloc(test, SB_SIZE);
	s->want[1] = vhdx_tb_zalloc(test, SB_SIZE);
	s->have = vhdx_tb_zalloc(test, SB_SIZE);
	KUNIT_ASSERT_FALSE(test, vhdx_bitmap_present(img, 0));
	KUNIT_ASSERT_FALSE(test, vhdx_bitmap_present(img, 1));
	vhdx_bitmap_attach(img, 0);
	vhdx_bitmap_attach(img, 1);
	expect_set_state(test, img, s, "attached");

	do_set(test, img, s, 5, 3, 1);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, 0), 0xe0);
	/* Across the boundary of pages 0 and 1, inside block 0. */
	do_set(test, img, s, PAGE_BITS - 2, 4, 1);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, SECT - 1), 0xc0);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, SECT), 0x03);
	/* Already set: nothing changes. */
	do_set(test, img, s, 5, 3, 0);
	do_set(test, img, s, PAGE_BITS - 1, 2, 0);
	/* Partly set: only the new bits, the page is already dirty. */
	do_set(test, img, s, 4, 5, 0);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, 0), 0xf0);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, 1), 0x01);
	/* The last sector of chunk 0: page 255. */
	do_set(test, img, s, SPC - 1, 1, 1);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, SB_SIZE - 1), 0x80);
	/* Page 0 of chunk 1 is not page 0 of chunk 0. */
	do_set(test, img, s, SPC, 1, 1);
	do_set(test, img, s, SPC + 40963, 2000, 1);
	/* A whole block: pages 6 and 7 of chunk 1. */
	do_set(test, img, s, SPC + 3 * block, block, 2);
	KUNIT_EXPECT_TRUE(test, vhdx_txn_dirty(img));
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 7U);
	/* Nothing reaches the device before a commit. */
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

/* ---- commits -------------------------------------------------------- */

/*
 * A 4 GiB differencing image of 1 MiB blocks and 512-byte sectors: one
 * chunk of 4096 blocks, its sector bitmap entry is BAT entry 4096, in BAT
 * sector 8.
 */
static struct vhdx_tb *commit_tb(struct kunit *test)
{
	struct vhdx_tb *tb = diff_tb(test, 512, VHDX_MiB, 4 * VHDX_GiB,
				     16 * VHDX_MiB);

	KUNIT_ASSERT_EQ(test, tb->bitmap_blocks, 1ULL);
	KUNIT_ASSERT_EQ(test, vhdx_tb_bitmap_index(tb, 0), 4096ULL);
	return tb;
}

static void bitmap_commit(struct kunit *test)
{
	static const struct { u64 block, first, count; } w[] = {
		{ 0, 3, 10 },		/* page 0 */
		{ 40, 100, 1 },		/* page 2 */
		{ 4095, 2040, 8 },	/* page 255, the last byte */
	};
	static const u32 bat_sectors[] = { 0, 7, 8 };
	static const u32 pages[] = { 0, 2, 255 };
	struct vhdx_tb *tb = commit_tb(test);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u64 bat = tb->p.bat_offset, sb, off, sector;
	struct vhdx_log_update u[6];
	u8 *want = vhdx_tb_zalloc(test, SB_SIZE);
	const u8 *bits;
	struct vhdx_tb *c;
	unsigned int i, ro;

	KUNIT_ASSERT_FALSE(test, vhdx_bitmap_present(img, 0));
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, SB_SIZE, &sb), 0);
	KUNIT_EXPECT_EQ(test, sb, tb->data_offset);
	vhdx_bitmap_attach(img, 0);
	vhdx_bat_update(img, 4096, sb | VHDX_BITMAP_PRESENT);
	for (i = 0; i < ARRAY_SIZE(w); i++) {
		KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, VHDX_MiB, &off), 0);
		vhdx_bat_update(img, vhdx_tb_payload_index(tb, w[i].block),
				off | VHDX_PAYLOAD_PARTIALLY_PRESENT);
		sector = w[i].block * 2048 + w[i].first;
		vhdx_bitmap_set(img, sector, w[i].count);
		ref_set(want, sector, w[i].count);
	}
	bits = read_chunk(test, img, 0, NULL);
	KUNIT_ASSERT_EQ(test, memcmp(bits, want, SB_SIZE), 0);
	KUNIT_EXPECT_EQ(test, bits[SB_SIZE - 1], 0xff);
	/* Three BAT sectors and three bitmap pages. */
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 6U);

	/* From the BAT to the end of the bitmap block, which lies past it. */
	KUNIT_ASSERT_GT(test, sb, bat);
	r->snap_lo = bat;
	r->snap_hi = sb + SB_SIZE;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	/* The commit is the entry alone; the checkpoint writes in place. */
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "W");
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "Wwwwwww");
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT, expect_len(6));
	/* Logged from the top down: the bitmap pages, then the BAT sectors. */
	for (i = 0; i < 3; i++) {
		u[i].offset = sb + pages[2 - i] * SECT;
		u[i].data = bits + pages[2 - i] * SECT;
		u[3 + i].offset = bat + bat_sectors[2 - i] * SECT;
		u[3 + i].data = (const u8 *)img->bat + bat_sectors[2 - i] * SECT;
	}
	for (i = 0; i < 6; i++)
		expect_op(test, r, 1 + i, 'w', u[i].offset, SECT);
	KUNIT_EXPECT_EQ(test, r->snap_op, 1U);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	expect_active(test, img, SECT, 2, u, 6);

	/* In place: the whole block is the bitmap, BAT likewise. */
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + bat, img->bat,
				     img->geo.bat_entries * 8), 0);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_TRUE(test, no_dirty(img, 0));
	KUNIT_EXPECT_TRUE(test, all_zero(img->txn.dirty,
					 img->txn.bat_sectors / 8 + 1));

	/* Setting bits already set dirties nothing: nothing to commit. */
	vhdx_bitmap_set(img, w[0].first, w[0].count);
	vhdx_bitmap_set(img, 4095 * 2048 + 2044, 4);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_TRUE(test, no_dirty(img, 0));
	r->nops = 0;
	KUNIT_EXPECT_EQ(test, vhdx_commit(img), 0);
	KUNIT_EXPECT_EQ(test, r->nops, 0U);

	/*
	 * A crash after the entry, before any write in place: the snapshot
	 * has neither the BAT nor the bitmap; the log has both.
	 */
	KUNIT_ASSERT_NOT_NULL(test, r->snap);
	KUNIT_EXPECT_TRUE(test, all_zero(r->snap + sb, SB_SIZE));
	for (ro = 0; ro < 2; ro++) {
		c = tb_clone(test, tb, r->snap);
		img2 = open_diff(test, &c->io, c->size, ro);
		KUNIT_EXPECT_EQ(test, img2->log_state,
				ro ? VHDX_LOG_REPLAYED_IN_MEMORY :
				     VHDX_LOG_REPLAYED);
		KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img2, 0));
		KUNIT_EXPECT_EQ_MSG(test, memcmp(read_chunk(test, img2, 0, NULL), want,
						 SB_SIZE), 0, "ro %u", ro);
		KUNIT_EXPECT_EQ(test, memcmp(img2->bat, img->bat,
					     img->geo.bat_entries * 8), 0);
		if (ro) {
			KUNIT_EXPECT_EQ(test, c->writes, 0U);
			KUNIT_EXPECT_TRUE(test, all_zero(c->dev + sb, SB_SIZE));
		} else {
			KUNIT_EXPECT_EQ(test, memcmp(c->dev + sb, want,
						     SB_SIZE), 0);
		}
	}

	/* The device itself, once the session ends: a clean image. */
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	img2 = open_diff(test, &tb->io, tb->size, false);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_CLEAN);
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img2, 0));
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img2, 0, NULL), want, SB_SIZE),
			0);
	KUNIT_EXPECT_EQ(test, img2->allocated_blocks, 3ULL);
}

/*
 * 200 dirty pages and a BAT sector, more than the 126 updates of one entry
 * of a 1 MiB log: two entries, from the top down, each page written once.
 */
static void bitmap_commit_many_pages(struct kunit *test)
{
	struct vhdx_tb *tb = commit_tb(test);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	u8 *want = vhdx_tb_zalloc(test, SB_SIZE);
	char *types = vhdx_tb_zalloc(test, REC_MAX_OPS + 1);
	u64 sb, page = 0;
	unsigned int i, n = 0;

	KUNIT_ASSERT_EQ(test, img->txn.max_updates, 126U);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, SB_SIZE, &sb), 0);
	vhdx_bitmap_attach(img, 0);
	vhdx_bat_update(img, 4096, sb | VHDX_BITMAP_PRESENT);
	for (i = 0; i < 200; i++) {
		vhdx_bitmap_set(img, i * PAGE_BITS + i, 1);
		ref_set(want, i * PAGE_BITS + i, 1);
	}
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 201U);

	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	/* The first entry is written in place before the second is logged. */
	types[n++] = 'W';
	for (i = 0; i < 126; i++)
		types[n++] = 'w';
	types[n++] = 'W';
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), types);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	for (i = 0; i < 75; i++)
		types[n++] = 'w';
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), types);
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT, expect_len(126));
	/* From the top down: the pages, highest first, then the BAT sector. */
	expect_op(test, r, 1, 'w', sb + 199 * SECT, SECT);
	expect_op(test, r, 127, 'W', tb->p.log_offset + SECT + expect_len(126),
		  expect_len(75));
	expect_op(test, r, 202, 'w', tb->p.bat_offset + 8 * SECT, SECT);
	for (i = 1; i < r->nops && i < REC_MAX_OPS; i++) {
		if (r->ops[i].type != 'w' || r->ops[i].offset < sb)
			continue;
		KUNIT_EXPECT_EQ(test, r->ops[i].offset, sb + (199 - page) * SECT);
		page++;
	}
	KUNIT_EXPECT_EQ(test, page, 200ULL);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);

	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	img2 = open_diff(test, &tb->io, tb->size, true);
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img2, 0));
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img2, 0, NULL), want, SB_SIZE),
			0);
}

/* ---- vhdx_open of differencing images ------------------------------- */

/*
 * 6 GiB of 1 MiB blocks, 512-byte sectors: chunk 0 holds blocks 0-4095,
 * chunk 1 blocks 4096-6143.  Chunk 0 has a sector bitmap and a partially
 * present block 5; chunk 1 a fully present block 4100 and no bitmap.
 */
static struct vhdx_tb *open_tb(struct kunit *test, u8 **bitsp, u64 *sbp)
{
	struct vhdx_tb *tb = diff_tb(test, 512, VHDX_MiB, 6 * VHDX_GiB,
				     32 * VHDX_MiB);
	u8 *bits = vhdx_tb_zalloc(test, SB_SIZE);
	u64 off, sb;

	KUNIT_ASSERT_EQ(test, tb->bitmap_blocks, 2ULL);
	KUNIT_ASSERT_EQ(test, tb->bat_entries, 2ULL * 4097);
	ref_set(bits, 5 * 2048 + 7, 300);
	ref_set(bits, SPC - 9, 9);
	sb = vhdx_tb_alloc_bitmap(tb, 0, bits);
	off = vhdx_tb_alloc_block(tb, 5);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, 5),
			VHDX_PAYLOAD_PARTIALLY_PRESENT, off);
	vhdx_tb_alloc_block(tb, 4100);
	if (bitsp)
		*bitsp = bits;
	if (sbp)
		*sbp = sb;
	return tb;
}

static void open_differencing(struct kunit *test)
{
	const guid_t linkage = VHDX_TB_PARENT_LINKAGE;
	u8 *bits;
	u64 sb;
	struct vhdx_tb *tb = open_tb(test, &bits, &sb);
	struct vhdx_image *img;
	unsigned int ro;

	for (ro = 0; ro < 2; ro++) {
		img = open_diff(test, &tb->io, tb->size, ro);
		KUNIT_EXPECT_EQ(test, img->log_state, VHDX_LOG_CLEAN);
		KUNIT_ASSERT_NOT_NULL(test, img->locator);
		KUNIT_EXPECT_TRUE(test,
				  guid_equal(&img->locator->parent_linkage,
					     &linkage));
		KUNIT_EXPECT_FALSE(test, img->locator->has_parent_linkage2);
		KUNIT_ASSERT_NOT_NULL(test, img->locator->relative_path);
		KUNIT_EXPECT_STREQ(test, img->locator->relative_path,
				   VHDX_TB_PARENT_PATH);
		KUNIT_EXPECT_EQ(test, img->geo.bat_entries, tb->bat_entries);
		KUNIT_EXPECT_EQ(test, img->allocated_blocks, 2ULL);
		/* The bitmap is not read at open, only on demand. */
		KUNIT_EXPECT_EQ(test, img->bmc.loads, 0ULL);
		KUNIT_EXPECT_EQ(test, img->bmc.used, 0ULL);
		KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img, 0));
		KUNIT_EXPECT_FALSE(test, vhdx_bitmap_present(img, 1));
		KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), bits,
					     SB_SIZE), 0);
		/* The bitmap block counts as an object: new space follows. */
		KUNIT_EXPECT_EQ(test, img->data_end,
				sb + SB_SIZE + 2 * VHDX_MiB);
	}
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
	KUNIT_EXPECT_EQ(test, tb->misaligned, 0U);
	KUNIT_EXPECT_EQ(test, tb->out_of_range, 0U);

	/* A caller that cannot build chains still refuses it. */
	expect_refused(test, tb, false, "without accept_parent",
		       "differencing", NULL);
}

static void open_partially_present_without_bitmap(struct kunit *test)
{
	struct vhdx_tb *tb = open_tb(test, NULL, NULL);
	u64 index = vhdx_tb_payload_index(tb, 4100);

	vhdx_tb_set_bat(tb, index, VHDX_PAYLOAD_PARTIALLY_PRESENT,
			vhdx_tb_get_bat(tb, index));
	expect_refused(test, tb, true, "block 4100 partially present",
		       "payload block 4100", "chunk 1");

	/* With a bitmap for chunk 1, the same block is fine. */
	vhdx_tb_alloc_bitmap(tb, 1, NULL);
	open_diff(test, &tb->io, tb->size, true);
}

static void open_bitmap_entry_refused(struct kunit *test)
{
	static const unsigned int reserved[] = { 1, 2, 3, 4, 5, 7 };
	struct vhdx_tb *tb;
	u64 sb, index, entry;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(reserved); i++) {
		tb = open_tb(test, NULL, &sb);
		index = vhdx_tb_bitmap_index(tb, 0);
		vhdx_tb_set_bat(tb, index, reserved[i], sb);
		expect_refused(test, tb, true, "reserved state",
			       "reserved state", "sector bitmap");
	}

	/* The last MiB of the device is fine; one past it is not. */
	tb = open_tb(test, NULL, &sb);
	index = vhdx_tb_bitmap_index(tb, 1);
	vhdx_tb_set_bat(tb, index, VHDX_BITMAP_PRESENT, tb->size - SB_SIZE);
	open_diff(test, &tb->io, tb->size, true);
	vhdx_tb_set_bat(tb, index, VHDX_BITMAP_PRESENT, tb->size);
	expect_refused(test, tb, true, "beyond the device",
		       "beyond the device", "sector bitmap block 1");

	/* On the metadata region, on a payload block, on the other bitmap. */
	entry = tb->p.metadata_offset;
	vhdx_tb_set_bat(tb, index, VHDX_BITMAP_PRESENT, entry);
	expect_refused(test, tb, true, "on the metadata", "overlaps",
		       "sector bitmap block 1");
	entry = vhdx_tb_get_bat(tb, vhdx_tb_payload_index(tb, 5));
	vhdx_tb_set_bat(tb, index, VHDX_BITMAP_PRESENT, entry);
	expect_refused(test, tb, true, "on block 5", "overlaps",
		       "payload block 5");
	vhdx_tb_set_bat(tb, index, VHDX_BITMAP_PRESENT, sb);
	expect_refused(test, tb, true, "on bitmap 0", "overlaps",
		       "sector bitmap block 0");
}

/* ---- read-only opens of dirty differencing images ------------------- */

/*
 * A session that only sets bits in a bitmap already on the device: the
 * log entry holds a bitmap page and no BAT sector.  A read-only open of
 * the device before the page is written in place replays it in memory.
 */
static void open_ro_logged_bitmap_page(struct kunit *test)
{
	u8 *bits, *want = vhdx_tb_zalloc(test, SB_SIZE);
	u64 sb;
	struct vhdx_tb *tb = open_tb(test, &bits, &sb), *c;
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_txn(test, r), *img2;
	struct vhdx_log_update u;

	memcpy(want, bits, SB_SIZE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	vhdx_bitmap_set(img, 5 * 2048 + 1000, 48);
	ref_set(want, 5 * 2048 + 1000, 48);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 1U);
	r->snap_lo = sb;
	r->snap_hi = sb + SB_SIZE;
	r->nops = 0;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_STREQ(test, rec_types(test, r, 0), "Ww");
	expect_op(test, r, 0, 'W', tb->p.log_offset + SECT, expect_len(1));
	/* Block 5's bits are bytes 1280-1535: page 0. */
	expect_op(test, r, 1, 'w', sb, SECT);
	u.offset = sb;
	u.data = want;
	expect_active(test, img, SECT, 2, &u, 1);
	KUNIT_ASSERT_NOT_NULL(test, r->snap);
	KUNIT_ASSERT_EQ(test, memcmp(r->snap + sb, bits, SB_SIZE), 0);

	c = tb_clone(test, tb, r->snap);
	vhdx_tb_set_read_only(c);
	img2 = open_diff(test, &c->io, c->size, true);
	KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED_IN_MEMORY);
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_present(img2, 0));
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img2, 0, NULL), want, SB_SIZE),
			0);
	KUNIT_EXPECT_EQ(test, c->writes, 0U);
	KUNIT_EXPECT_EQ(test, c->flushes, 0U);
	KUNIT_EXPECT_EQ(test, memcmp(c->dev + sb, bits, SB_SIZE), 0);
}

/*
 * Log entries that update a payload block, or free space where no bitmap
 * is (though the not present bitmap entry of chunk 1 holds that offset),
 * cannot be replayed in memory; a read-write open replays them.
 */
static void open_ro_logged_payload_refused(struct kunit *test)
{
	u8 *data = vhdx_tb_zalloc(test, SECT);
	struct vhdx_log_update u;
	unsigned int k;

	memset(data, 0x5a, SECT);
	for (k = 0; k < 2; k++) {
		u64 sb;
		struct vhdx_tb *tb = open_tb(test, NULL, &sb), *c;
		struct vhdx_image *img = open_diff(test, &tb->io, tb->size,
						   false), *img2;

		rec_txn_init(test, img);
		u.offset = k ? tb->next_free :
			   vhdx_tb_get_bat(tb, vhdx_tb_payload_index(tb, 5)) &
			   VHDX_BAT_OFFSET_MASK;
		u.data = data;
		if (k)
			vhdx_tb_set_bat(tb, vhdx_tb_bitmap_index(tb, 1),
					VHDX_BITMAP_NOT_PRESENT, u.offset);
		KUNIT_ASSERT_LE(test, u.offset + SECT, tb->size);
		KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
				    img->error);
		KUNIT_ASSERT_EQ_MSG(test,
				    vhdx_log_write_entry(img,
							 &img->header.log_guid,
							 &u, 1), 0,
				    "%s", img->error);

		c = tb_clone(test, tb, tb->dev);
		vhdx_tb_set_read_only(c);
		expect_refused(test, c, true, k ? "free space" : "payload",
			       "cannot be replayed in memory", NULL);
		KUNIT_EXPECT_EQ(test, c->writes, 0U);

		c = tb_clone(test, tb, tb->dev);
		img2 = open_diff(test, &c->io, c->size, false);
		KUNIT_EXPECT_EQ(test, img2->log_state, VHDX_LOG_REPLAYED);
		KUNIT_EXPECT_EQ(test, memcmp(c->dev + u.offset, data, SECT), 0);
	}
}

/* ---- the page cache ------------------------------------------------- */

/* What @pages pages cost in the cache's budget. */
static u64 pages_cost(u32 pages)
{
	return pages * (SECT + sizeof(struct vhdx_bitmap_page));
}

static struct vhdx_image *open_budget(struct kunit *test,
				      const struct vhdx_io *io, u64 size,
				      bool read_only, u64 budget)
{
	struct vhdx_image *img = vhdx_tb_new_image(test);
	int ret;

	img->accept_parent = true;
	img->bitmap_budget = budget;
	ret = vhdx_open(img, io, size, read_only);
	KUNIT_ASSERT_EQ_MSG(test, ret, 0, "%s", img->error);
	KUNIT_ASSERT_EQ(test, img->bmc.budget, budget);
	return img;
}

/* A bitmap with a different pattern in every page: page p has bit p set. */
static struct vhdx_tb *cache_tb(struct kunit *test, u8 **bitsp, u64 *sbp)
{
	struct vhdx_tb *tb = diff_tb(test, 512, VHDX_MiB, 4 * VHDX_GiB,
				     16 * VHDX_MiB);
	u8 *bits = vhdx_tb_zalloc(test, SB_SIZE);
	u32 page;

	for (page = 0; page < PAGES; page++)
		ref_set(bits, (u64)page * PAGE_BITS + page, 1);
	*sbp = vhdx_tb_alloc_bitmap(tb, 0, bits);
	*bitsp = bits;
	return tb;
}

/* The run at bit @page of page @page: one set sector. */
static void expect_page(struct kunit *test, struct vhdx_image *img, u32 page,
			bool load, int want_ret)
{
	bool present = false;
	u64 run = 0;
	int ret;

	ret = vhdx_bitmap_lookup(img, (u64)page * PAGE_BITS + page, 100, load,
				 &present, &run);
	KUNIT_EXPECT_EQ_MSG(test, ret, want_ret, "page %u", page);
	if (ret)
		return;
	KUNIT_EXPECT_TRUE_MSG(test, present, "page %u", page);
	KUNIT_EXPECT_EQ_MSG(test, run, 1ULL, "page %u", page);
}

static bool cached(struct vhdx_image *img, u32 page)
{
	bool dirty;

	return vhdx_bitmap_page_cached(img, 0, page, &dirty);
}

/* A miss does no I/O without @load; a load reads one page; then hits. */
static void cache_hit_miss(struct kunit *test)
{
	u8 *bits;
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct vhdx_image *img = open_budget(test, &tb->io, tb->size, true,
					     VHDX_BITMAP_CACHE_DEFAULT);
	unsigned int reads = tb->reads;

	expect_page(test, img, 7, false, -EAGAIN);
	KUNIT_EXPECT_EQ(test, tb->reads, reads);
	KUNIT_EXPECT_EQ(test, img->bmc.loads, 0ULL);
	expect_page(test, img, 7, true, 0);
	KUNIT_EXPECT_EQ(test, tb->reads, reads + 1);
	KUNIT_EXPECT_EQ(test, img->bmc.loads, 1ULL);
	KUNIT_EXPECT_EQ(test, img->bmc.used, pages_cost(1));
	/* Now without I/O, and the neighbours are still misses. */
	expect_page(test, img, 7, false, 0);
	expect_page(test, img, 6, false, -EAGAIN);
	expect_page(test, img, 8, false, -EAGAIN);
	KUNIT_EXPECT_EQ(test, tb->reads, reads + 1);
	/* A run never leaves its page, even where the next one is cached. */
	expect_page(test, img, 8, true, 0);
	KUNIT_EXPECT_EQ(test, vhdx_bitmap_run(img, 7 * PAGE_BITS + 8, 2 * SPC,
					      &(bool){ true }),
			(u64)PAGE_BITS - 8);
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

/*
 * A budget of three pages: loading more drops the least recently used
 * clean one, a hit makes a page recent again, and a dropped page is read
 * again, correctly, when it is needed.
 */
static void cache_evicts_clean_lru(struct kunit *test)
{
	u8 *bits;
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct vhdx_image *img = open_budget(test, &tb->io, tb->size, true,
					     pages_cost(3));
	unsigned int reads;
	u32 page;

	for (page = 0; page < 10; page++) {
		expect_page(test, img, page, true, 0);
		KUNIT_EXPECT_LE(test, img->bmc.used, pages_cost(3));
	}
	for (page = 0; page < 10; page++)
		KUNIT_EXPECT_EQ_MSG(test, cached(img, page), page >= 7,
				    "page %u", page);
	KUNIT_EXPECT_EQ(test, img->bmc.evictions, 7ULL);
	/* Page 7 is used again: 8 is now the oldest. */
	expect_page(test, img, 7, false, 0);
	expect_page(test, img, 10, true, 0);
	KUNIT_EXPECT_TRUE(test, cached(img, 7));
	KUNIT_EXPECT_FALSE(test, cached(img, 8));
	KUNIT_EXPECT_TRUE(test, cached(img, 9));
	KUNIT_EXPECT_TRUE(test, cached(img, 10));
	/* Dropped pages come back as they are on the device. */
	reads = tb->reads;
	expect_page(test, img, 0, false, -EAGAIN);
	expect_page(test, img, 0, true, 0);
	KUNIT_EXPECT_EQ(test, tb->reads, reads + 1);
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), bits,
				     SB_SIZE), 0);
	KUNIT_EXPECT_LE(test, img->bmc.used, pages_cost(3));
	KUNIT_EXPECT_EQ(test, tb->writes, 0U);
}

/*
 * Dirty pages, and pages logged but not yet checkpointed, stay whatever
 * the budget; once written in place they may go, and read back right.
 */
static void cache_dirty_never_evicted(struct kunit *test)
{
	u8 *bits, *want = vhdx_tb_zalloc(test, SB_SIZE);
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_budget(test, &r->io, tb->size, false,
					     pages_cost(2));
	u32 page;

	rec_txn_init(test, img);
	memcpy(want, bits, SB_SIZE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	for (page = 0; page < 6; page++) {
		KUNIT_ASSERT_EQ(test, vhdx_bitmap_set(img, page * PAGE_BITS +
						      1000, 3), 0);
		ref_set(want, page * PAGE_BITS + 1000, 3);
	}
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 6U);
	/* Clean loads past the budget drop clean pages only. */
	for (page = 20; page < 30; page++)
		expect_page(test, img, page, true, 0);
	for (page = 0; page < 6; page++)
		KUNIT_EXPECT_TRUE_MSG(test, cached(img, page), "page %u", page);
	KUNIT_EXPECT_FALSE(test, cached(img, 20));
	KUNIT_EXPECT_TRUE(test, cached(img, 29));
	KUNIT_EXPECT_EQ(test, img->bmc.used, pages_cost(7));

	/* Logged, not yet in place: still held. */
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_TRUE(test, no_dirty(img, 0));
	expect_page(test, img, 40, true, 0);
	for (page = 0; page < 6; page++)
		KUNIT_EXPECT_TRUE_MSG(test, cached(img, page), "page %u", page);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, bits, SB_SIZE), 0);

	/* In place: they may go, down to the budget, and read back right. */
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);
	KUNIT_EXPECT_LE(test, img->bmc.used, pages_cost(2));
	/* Released oldest held first, after page 40: 4 and 5 stay. */
	for (page = 0; page < 4; page++)
		KUNIT_EXPECT_FALSE_MSG(test, cached(img, page), "page %u", page);
	KUNIT_EXPECT_TRUE(test, cached(img, 5));
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), want,
				     SB_SIZE), 0);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
}

/*
 * A chunk whose bitmap block was just allocated reads as zeros without
 * any read: the device there holds garbage the test put there.
 */
static void cache_attach_needs_no_read(struct kunit *test)
{
	struct vhdx_tb *tb = commit_tb(test);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_budget(test, &r->io, tb->size, false,
					     VHDX_BITMAP_CACHE_DEFAULT);
	unsigned int reads;
	bool present = true;
	u64 sb, run = 0;
	u32 page;

	rec_txn_init(test, img);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, vhdx_space_alloc(img, SB_SIZE, &sb), 0);
	memset(tb->dev + sb, 0xff, SB_SIZE);
	vhdx_bitmap_attach(img, 0);
	vhdx_bat_update(img, 4096, sb | VHDX_BITMAP_PRESENT);
	reads = tb->reads;
	for (page = 0; page < PAGES; page += 51) {
		KUNIT_EXPECT_EQ(test, vhdx_bitmap_lookup(img, page * PAGE_BITS,
							 SPC, true, &present,
							 &run), 0);
		KUNIT_EXPECT_FALSE(test, present);
		KUNIT_EXPECT_EQ(test, run, (u64)PAGE_BITS);
	}
	KUNIT_ASSERT_EQ(test, vhdx_bitmap_set(img, 5, 1), 0);
	KUNIT_EXPECT_EQ(test, bitmap_byte(test, img, 0, 0), 0x20);
	KUNIT_EXPECT_EQ(test, tb->reads, reads);
}

/* A page that cannot be read: the error, and no page cached. */
static void cache_read_error(struct kunit *test)
{
	u8 *bits;
	u64 sb, run;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_budget(test, &r->io, tb->size, false,
					     VHDX_BITMAP_CACHE_DEFAULT);
	bool present;

	rec_txn_init(test, img);
	tb->fail_read_offset = sb + 3 * SECT + 100;
	expect_page(test, img, 3, true, -EIO);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "read error"), "%s",
				  img->error);
	KUNIT_EXPECT_FALSE(test, cached(img, 3));
	KUNIT_EXPECT_EQ(test, vhdx_bitmap_run(img, 3 * PAGE_BITS, 10, &present),
			0ULL);
	KUNIT_EXPECT_EQ(test, vhdx_bitmap_lookup(img, 3 * PAGE_BITS, 10, false,
						 &present, &run), -EAGAIN);
	KUNIT_EXPECT_EQ(test, vhdx_bitmap_set(img, 3 * PAGE_BITS, 1), -EIO);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	/* Other pages are fine, and so is page 3 once the device is. */
	expect_page(test, img, 4, true, 0);
	tb->fail_read_offset = U64_MAX;
	expect_page(test, img, 3, true, 0);
}

/*
 * Memory runs out: loads go on with the oldest clean page, then with the
 * reserve, and every page still reads as on the device.  The allocator is
 * never asked to wait.
 */
static void cache_no_memory_takes_clean(struct kunit *test)
{
	u8 *bits;
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct vhdx_image *img = open_budget(test, &tb->io, tb->size, true,
					     VHDX_BITMAP_CACHE_DEFAULT);
	u32 page;

	KUNIT_ASSERT_EQ(test, img->bmc.reserved, (u32)VHDX_BITMAP_RESERVE);
	img->bmc.alloc_fails = true;
	/* Nothing cached yet: the first page comes from the reserve. */
	expect_page(test, img, 0, true, 0);
	KUNIT_EXPECT_EQ(test, img->bmc.reserved, VHDX_BITMAP_RESERVE - 1U);
	/* Then each load takes over the page before it. */
	for (page = 1; page < 20; page++) {
		expect_page(test, img, page, true, 0);
		KUNIT_EXPECT_FALSE_MSG(test, cached(img, page - 1), "page %u",
				       page);
		KUNIT_EXPECT_EQ(test, img->bmc.used, pages_cost(1));
	}
	KUNIT_EXPECT_EQ(test, img->bmc.taken, 20ULL);
	KUNIT_EXPECT_EQ(test, img->bmc.reserved, VHDX_BITMAP_RESERVE - 1U);
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), bits,
				     SB_SIZE), 0);
	/* With memory back, pages accumulate again. */
	img->bmc.alloc_fails = false;
	expect_page(test, img, 100, true, 0);
	expect_page(test, img, 101, true, 0);
	KUNIT_EXPECT_TRUE(test, cached(img, 100));
	KUNIT_EXPECT_TRUE(test, cached(img, 101));
}

/*
 * Memory runs out while every cached page waits for its checkpoint: the
 * reserve serves two loads; a third fails cleanly, with nothing changed,
 * where it may not wait (the committing thread), and waits for the
 * allocator where it may.  The checkpoint lets the pages go and fills the
 * reserve again, and loads go on with clean pages.
 */
static void cache_no_memory_all_held(struct kunit *test)
{
	u8 *bits, *want = vhdx_tb_zalloc(test, SB_SIZE);
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_budget(test, &r->io, tb->size, false,
					     pages_cost(1));
	u32 page;

	rec_txn_init(test, img);
	memcpy(want, bits, SB_SIZE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	img->bmc.alloc_fails = true;
	for (page = 0; page < VHDX_BITMAP_RESERVE; page++) {
		KUNIT_ASSERT_EQ_MSG(test,
				    vhdx_bitmap_set_nowait(img, page * PAGE_BITS +
							   77, 5), 0,
				    "%s", img->error);
		ref_set(want, page * PAGE_BITS + 77, 5);
	}
	KUNIT_EXPECT_EQ(test, img->bmc.reserved, 0U);
	KUNIT_EXPECT_EQ(test, vhdx_bitmap_set_nowait(img, 9 * PAGE_BITS, 1),
			-ENOMEM);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(img->error, "out of memory"),
				  "%s", img->error);
	KUNIT_EXPECT_FALSE(test, cached(img, 9));
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img),
			(u32)VHDX_BITMAP_RESERVE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bitmap_set(img, 9 * PAGE_BITS, 1), 0,
			    "%s", img->error);
	ref_set(want, 9 * PAGE_BITS, 1);
	KUNIT_EXPECT_TRUE(test, cached(img, 9));

	/* The commit needs no new page; the checkpoint frees the held ones. */
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_checkpoint(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);
	KUNIT_EXPECT_EQ(test, img->bmc.used, pages_cost(1));
	KUNIT_EXPECT_EQ(test, img->bmc.reserved, (u32)VHDX_BITMAP_RESERVE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_bitmap_set_nowait(img, 10 * PAGE_BITS,
							 1), 0,
			    "%s", img->error);
	ref_set(want, 10 * PAGE_BITS, 1);
	KUNIT_EXPECT_FALSE(test, cached(img, 9));
	KUNIT_EXPECT_EQ(test, img->bmc.reserved, (u32)VHDX_BITMAP_RESERVE);
	img->bmc.alloc_fails = false;
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), want,
				     SB_SIZE), 0);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);
}

/*
 * The completion path's setter: all or nothing, only on cached pages,
 * never while a commit gathers; what it sets is committed like the rest.
 */
static void cache_set_cached(struct kunit *test)
{
	u8 *bits, *want = vhdx_tb_zalloc(test, SB_SIZE);
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct rec *r = rec_new(test, tb);
	struct vhdx_image *img = open_budget(test, &r->io, tb->size, false,
					     VHDX_BITMAP_CACHE_DEFAULT);
	unsigned int reads;

	rec_txn_init(test, img);
	memcpy(want, bits, SB_SIZE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	reads = tb->reads;

	/* Not cached: nothing happens, and nothing is read. */
	KUNIT_EXPECT_FALSE(test, vhdx_bitmap_set_cached(img, 100, 8));
	KUNIT_EXPECT_FALSE(test, cached(img, 0));
	KUNIT_EXPECT_EQ(test, tb->reads, reads);
	expect_page(test, img, 0, true, 0);
	/* Across pages 0 and 1, with 1 not cached: page 0 stays as it was. */
	KUNIT_EXPECT_FALSE(test, vhdx_bitmap_set_cached(img, PAGE_BITS - 4,
							8));
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 0U);
	KUNIT_EXPECT_TRUE(test, vhdx_bitmap_set_cached(img, 100, 8));
	ref_set(want, 100, 8);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 1U);
	KUNIT_EXPECT_TRUE(test, vhdx_txn_dirty(img));
	/* A commit reading the pages: refused, then allowed again. */
	vhdx_bitmaps_gathering(img, true);
	KUNIT_EXPECT_FALSE(test, vhdx_bitmap_set_cached(img, 200, 1));
	vhdx_bitmaps_gathering(img, false);
	expect_page(test, img, 1, true, 0);
	KUNIT_EXPECT_TRUE(test, vhdx_bitmap_set_cached(img, PAGE_BITS - 4, 8));
	ref_set(want, PAGE_BITS - 4, 8);
	KUNIT_EXPECT_EQ(test, vhdx_txn_dirty_pages(img), 2U);
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), want,
				     SB_SIZE), 0);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	KUNIT_EXPECT_FALSE(test, img->bmc.gathering);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_end(img), 0, "%s", img->error);
	KUNIT_EXPECT_EQ(test, memcmp(tb->dev + sb, want, SB_SIZE), 0);
}

/*
 * A device whose writes try vhdx_bitmap_set_cached() first, as an end_io
 * on another CPU could while a commit writes: what it gets is recorded.
 */
struct racing_dev {
	struct vhdx_io io;
	const struct vhdx_io *inner;
	struct vhdx_image *img;
	u64 sector;
	unsigned int tries;
	unsigned int set;
};

static int racing_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct racing_dev *d = priv;

	return d->inner->read(d->inner->priv, offset, buf, len);
}

/* What an end_io on another CPU would try while this write is issued. */
static void racing_try(struct racing_dev *d)
{
	if (d->img) {
		d->tries++;
		d->set += vhdx_bitmap_set_cached(d->img, d->sector, 1);
	}
}

static int racing_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct racing_dev *d = priv;

	racing_try(d);
	return d->inner->write(d->inner->priv, offset, buf, len);
}

static int racing_write_fua(void *priv, u64 offset, const void *buf,
			    size_t len, bool preflush)
{
	struct racing_dev *d = priv;

	racing_try(d);
	return d->inner->write_fua(d->inner->priv, offset, buf, len, preflush);
}

static int racing_flush(void *priv)
{
	struct racing_dev *d = priv;

	return d->inner->flush(d->inner->priv);
}

/*
 * While a commit writes, the completion path's setter is refused, so no
 * bit can be set after the gather read its page and then be cleared as
 * logged; after a failed commit it works again.
 */
static void cache_set_cached_not_while_committing(struct kunit *test)
{
	u8 *bits, *want = vhdx_tb_zalloc(test, SB_SIZE);
	u64 sb;
	struct vhdx_tb *tb = cache_tb(test, &bits, &sb);
	struct rec *r = rec_new(test, tb);
	struct racing_dev *d = kunit_kzalloc(test, sizeof(*d), GFP_KERNEL);
	struct vhdx_image *img;

	KUNIT_ASSERT_NOT_NULL(test, d);
	d->inner = &r->io;
	d->io = r->io;
	d->io.priv = d;
	d->io.read = racing_read;
	d->io.write = racing_write;
	d->io.flush = racing_flush;
	d->io.write_fua = racing_write_fua;
	img = open_budget(test, &d->io, tb->size, false,
			  VHDX_BITMAP_CACHE_DEFAULT);
	rec_txn_init(test, img);
	memcpy(want, bits, SB_SIZE);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_session_begin(img), 0, "%s",
			    img->error);
	expect_page(test, img, 0, true, 0);
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_set_cached(img, 10, 1));
	ref_set(want, 10, 1);

	d->img = img;
	d->sector = 20;
	KUNIT_ASSERT_EQ_MSG(test, vhdx_commit(img), 0, "%s", img->error);
	KUNIT_EXPECT_GT(test, d->tries, 0U);
	KUNIT_EXPECT_EQ(test, d->set, 0U);
	KUNIT_EXPECT_FALSE(test, vhdx_txn_dirty(img));
	KUNIT_EXPECT_FALSE(test, img->bmc.gathering);

	/* A commit that fails leaves the setter usable. */
	d->img = NULL;
	KUNIT_ASSERT_TRUE(test, vhdx_bitmap_set_cached(img, 30, 1));
	ref_set(want, 30, 1);
	r->fail_lo = 0;
	r->fail_hi = U64_MAX;
	KUNIT_EXPECT_NE(test, vhdx_commit(img), 0);
	KUNIT_EXPECT_FALSE(test, img->bmc.gathering);
	r->fail_hi = 0;
	KUNIT_EXPECT_TRUE(test, vhdx_bitmap_set_cached(img, 31, 1));
	ref_set(want, 31, 1);
	KUNIT_EXPECT_EQ(test, memcmp(read_chunk(test, img, 0, NULL), want,
				     SB_SIZE), 0);
}

static struct kunit_case vhdx_bitmap_cases[] = {
	KUNIT_CASE(bitmap_run_512),
	KUNIT_CASE(bitmap_run_4k),
	KUNIT_CASE(bitmap_set_exact),
	KUNIT_CASE(bitmap_commit),
	KUNIT_CASE(bitmap_commit_many_pages),
	KUNIT_CASE(open_differencing),
	KUNIT_CASE(open_partially_present_without_bitmap),
	KUNIT_CASE(open_bitmap_entry_refused),
	KUNIT_CASE(open_ro_logged_bitmap_page),
	KUNIT_CASE(open_ro_logged_payload_refused),
	KUNIT_CASE(cache_hit_miss),
	KUNIT_CASE(cache_evicts_clean_lru),
	KUNIT_CASE(cache_dirty_never_evicted),
	KUNIT_CASE(cache_attach_needs_no_read),
	KUNIT_CASE(cache_read_error),
	KUNIT_CASE(cache_no_memory_takes_clean),
	KUNIT_CASE(cache_no_memory_all_held),
	KUNIT_CASE(cache_set_cached),
	KUNIT_CASE(cache_set_cached_not_while_committing),
	{}
};

static struct kunit_suite vhdx_bitmap_suite = {
	.name = "vhdx_bitmap",
	.test_cases = vhdx_bitmap_cases,
};

kunit_test_suite(vhdx_bitmap_suite);

MODULE_LICENSE("GPL");
