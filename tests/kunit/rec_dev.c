// SPDX-License-Identifier: GPL-2.0
/* The recording device of rec_dev.h. */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "../../vhdx/vhdx.h"
#include "rec_dev.h"

#define SECT		VHDX_LOG_SECTOR_SIZE

static bool overlaps(u64 lo, u64 hi, u64 offset, size_t len)
{
	return offset < hi && lo < offset + len;
}

static void rec_record(struct rec *r, char type, u64 offset, size_t len)
{
	if (r->nops < REC_MAX_OPS)
		r->ops[r->nops] = (struct vhdx_tb_op) { type, offset, len };
	r->nops++;
}

static int rec_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct rec *r = priv;

	rec_record(r, 'r', offset, len);
	return r->tb->io.read(r->tb->io.priv, offset, buf, len);
}

static int rec_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct rec *r = priv;
	struct vhdx_tb *tb = r->tb;

	rec_record(r, 'w', offset, len);
	if (!r->snap && overlaps(r->snap_lo, r->snap_hi, offset, len)) {
		if (r->snap_skip) {
			r->snap_skip--;
		} else {
			r->snap = vhdx_tb_zalloc(tb->test, tb->size);
			memcpy(r->snap, tb->dev, tb->size);
			r->snap_op = r->nops - 1;
		}
	}
	if (overlaps(r->fail_lo, r->fail_hi, offset, len))
		return -EIO;
	return tb->io.write(tb->io.priv, offset, buf, len);
}

/*
 * A commit's stable write: recorded as 'W' with a pre-flush and 'U' (FUA
 * only) without, so that a test sees how many device flushes a commit
 * costs.  The fake device has no cache: the data goes where write puts it.
 */
static int rec_write_fua(void *priv, u64 offset, const void *buf, size_t len,
			 bool preflush)
{
	struct rec *r = priv;
	int ret;

	ret = rec_write(priv, offset, buf, len);
	/* rec_write() recorded it as the last op, if it was kept. */
	if (r->nops <= REC_MAX_OPS)
		r->ops[r->nops - 1].type = preflush ? 'W' : 'U';
	return ret;
}

static int rec_flush(void *priv)
{
	struct rec *r = priv;

	rec_record(r, 'f', 0, 0);
	return r->tb->io.flush(r->tb->io.priv);
}

struct rec *rec_new(struct kunit *test, struct vhdx_tb *tb)
{
	struct rec *r = kunit_kzalloc(test, sizeof(*r), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, r);
	r->tb = tb;
	r->ops = vhdx_tb_zalloc(test, REC_MAX_OPS * sizeof(*r->ops));
	r->io = (struct vhdx_io) {
		.priv = r,
		.read = rec_read,
		.write = rec_write,
		.flush = rec_flush,
		.write_fua = rec_write_fua,
	};
	return r;
}

/*
 * The recorded call types ('r', 'w', 'f', and 'W'/'U' for a FUA write with
 * and without a pre-flush) from op @from on, as a string.
 */
const char *rec_types(struct kunit *test, const struct rec *r,
		      unsigned int from)
{
	char *s = vhdx_tb_zalloc(test, REC_MAX_OPS + 1);
	unsigned int i;

	KUNIT_ASSERT_LE(test, r->nops, REC_MAX_OPS);
	for (i = from; i < r->nops; i++)
		s[i - from] = r->ops[i].type;
	return s;
}

void expect_op(struct kunit *test, const struct rec *r, unsigned int i,
	       char type, u64 offset, size_t len)
{
	KUNIT_ASSERT_LT(test, i, min_t(unsigned int, r->nops, REC_MAX_OPS));
	KUNIT_EXPECT_EQ_MSG(test, r->ops[i].type, type, "op %u", i);
	KUNIT_EXPECT_EQ_MSG(test, r->ops[i].offset, offset, "op %u", i);
	KUNIT_EXPECT_EQ_MSG(test, r->ops[i].len, len, "op %u", i);
}

struct vhdx_tb *tb_clone(struct kunit *test, const struct vhdx_tb *tb,
			 const u8 *dev)
{
	struct vhdx_tb *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	*c = *tb;
	c->dev = vhdx_tb_zalloc(test, tb->size);
	memcpy(c->dev, dev, tb->size);
	c->io.priv = c;
	c->reads = 0;
	c->writes = 0;
	c->flushes = 0;
	c->nops = 0;
	return c;
}

bool all_zero(const u8 *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* The header takes two descriptor slots. */
u32 expect_len(u32 count)
{
	return (DIV_ROUND_UP(count + 2, 128) + count) * SECT;
}

static void rec_txn_free(void *img)
{
	vhdx_txn_free(img);
}

void rec_txn_init(struct kunit *test, struct vhdx_image *img)
{
	KUNIT_ASSERT_EQ_MSG(test, vhdx_txn_init(img), 0, "%s", img->error);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, rec_txn_free,
							img), 0);
}

void expect_active(struct kunit *test, struct vhdx_image *img, u32 pos,
		   u64 sequence, const struct vhdx_log_update *u, u32 count)
{
	struct vhdx_overlay *ov = vhdx_tb_new_overlay(test);
	struct vhdx_log_sequence seq;
	u32 i;

	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_find_active(img, &seq), 0, "%s",
			    img->error);
	KUNIT_EXPECT_EQ(test, seq.tail, pos);
	KUNIT_EXPECT_EQ(test, seq.head, pos);
	KUNIT_EXPECT_EQ(test, seq.entry_count, 1U);
	KUNIT_EXPECT_EQ(test, seq.tail_sequence, sequence);
	KUNIT_EXPECT_EQ(test, seq.head_sequence, sequence);
	KUNIT_ASSERT_EQ_MSG(test, vhdx_log_collect(img, &seq, ov), 0, "%s",
			    img->error);
	KUNIT_ASSERT_EQ(test, ov->count, count);
	for (i = 0; i < count; i++) {
		KUNIT_EXPECT_EQ_MSG(test, ov->extents[i].offset, u[i].offset,
				    "update %u", i);
		KUNIT_EXPECT_EQ(test, ov->extents[i].length, (u64)SECT);
		KUNIT_ASSERT_NOT_NULL(test, ov->extents[i].data);
		KUNIT_EXPECT_EQ_MSG(test,
				    memcmp(ov->extents[i].data, u[i].data,
					   SECT), 0, "update %u", i);
	}
}
