/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A recording device around the image builder's, shared by the write-side
 * suites: it logs every call, can snapshot the device just before a chosen
 * write, and can fail writes to a range.
 */
#ifndef VHDX_KUNIT_REC_DEV_H
#define VHDX_KUNIT_REC_DEV_H

#include "image_builder.h"

#define REC_MAX_OPS	1024

struct rec {
	struct vhdx_io io;		/* io.priv == this */
	struct vhdx_tb *tb;
	struct vhdx_tb_op *ops;		/* the first REC_MAX_OPS calls */
	unsigned int nops;
	/*
	 * The device as it was just before the write that follows snap_skip
	 * earlier writes into [snap_lo, snap_hi); snap_op is its index.
	 */
	u64 snap_lo, snap_hi;
	unsigned int snap_skip;
	u8 *snap;
	unsigned int snap_op;
	/* Writes into [fail_lo, fail_hi) fail with -EIO. */
	u64 fail_lo, fail_hi;
};

struct rec *rec_new(struct kunit *test, struct vhdx_tb *tb);
const char *rec_types(struct kunit *test, const struct rec *r,
		      unsigned int from);
void expect_op(struct kunit *test, const struct rec *r, unsigned int i,
	       char type, u64 offset, size_t len);
/* Another device holding a copy of @dev, with fresh I/O accounting. */
struct vhdx_tb *tb_clone(struct kunit *test, const struct vhdx_tb *tb,
			 const u8 *dev);
bool all_zero(const u8 *p, size_t len);
/* The active log sequence is the one entry at @pos, and it holds @u. */
void expect_active(struct kunit *test, struct vhdx_image *img, u32 pos,
		   u64 sequence, const struct vhdx_log_update *u, u32 count);
/* vhdx_txn_init(), asserted, with vhdx_txn_free() when the test ends. */
void rec_txn_init(struct kunit *test, struct vhdx_image *img);
/* Bytes of a log entry of @count updates, computed from the format. */
u32 expect_len(u32 count);

#endif /* VHDX_KUNIT_REC_DEV_H */
