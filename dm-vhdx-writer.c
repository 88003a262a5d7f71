// SPDX-License-Identifier: GPL-2.0
/*
 * dm-vhdx: everything a write may have to wait for, done by one worker so
 * that map() never sleeps: the header update that opens a session, the
 * allocation of new blocks, and commits of the BAT through the log.
 *
 * As in dm-thin, a flush or FUA bio that arrives while BAT changes are not
 * yet stable waits for the next commit, and commits are grouped: one
 * commit serves every flush queued behind it, and a timer bounds what a
 * crash without a flush can lose.
 *
 * Also as in dm-thin, a new block's BAT entry is set only once the write
 * that allocated it has completed: no commit can make the entry stable
 * before the data it points at, and a failed write leaves the block
 * unallocated.  Until then reads of the block see zeros (or the parent),
 * and other writes to it wait for the allocating one.
 */
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/jiffies.h>
#include <linux/sched/mm.h>

#include "dm-vhdx.h"

void vhdx_remap(struct vhdx_target *vt, struct bio *bio, u64 entry)
{
	sector_t sector = vhdx_bio_sector(vt, bio);
	sector_t in_block = sector & ((1ULL << vt->block_sector_shift) - 1);

	bio_set_dev(bio, vt->dev->bdev);
	bio->bi_iter.bi_sector = (vhdx_bat_offset(entry) >> SECTOR_SHIFT) +
				 in_block;
}

/*
 * A bio is pinned from before it reads its BAT entry until it completes,
 * so that a block given back by a discard is reused only once no bio can
 * still be on its way to it: either the bio sees the discard's BAT
 * change, or vhdx_recycle() sees the bio's pin.  Without discards no
 * block is ever given back, and nothing is counted.
 */
void vhdx_pin(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);
	unsigned int epoch;

	if (!vt->discards || ctx->pinned)
		return;
	epoch = READ_ONCE(vt->epoch);
	atomic_inc(&vt->pins[epoch]);
	/* Pairs with vhdx_recycle(): the pin before the BAT read. */
	smp_mb__after_atomic();
	ctx->epoch = epoch;
	ctx->pinned = true;
}

u64 vhdx_pin_entry(struct vhdx_target *vt, struct bio *bio, u64 index)
{
	vhdx_pin(vt, bio);
	return vhdx_bat_entry(vt, index);
}

void vhdx_unpin(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	if (!ctx->pinned)
		return;
	ctx->pinned = false;
	/* The last bio of a draining epoch lets the waiting allocations go. */
	if (atomic_dec_and_test(&vt->pins[ctx->epoch]) &&
	    READ_ONCE(vt->draining))
		queue_work(vt->wq, &vt->worker);
}

/* The bio's sectors become present in the child when it completes. */
void vhdx_mark_on_completion(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	ctx->set_bits = true;
	ctx->sector = vhdx_bio_sector(vt, bio);
	ctx->sectors = bio_sectors(bio);
}

static void vhdx_arm_commit(struct vhdx_target *vt)
{
	if (vt->commit_ms)
		queue_delayed_work(vt->wq, &vt->commit_work,
				   msecs_to_jiffies(vt->commit_ms));
}

/*
 * From end_io, after a successful data write: marks the sectors present
 * without the worker, if their bitmap pages are cached and no commit is
 * gathering.
 */
bool vhdx_mark_present(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);
	unsigned int lss_shift = ilog2(vt->img.geo.logical_sector_size) -
				 SECTOR_SHIFT;

	if (!vhdx_bitmap_set_cached(&vt->img, ctx->sector >> lss_shift,
				    ctx->sectors >> lss_shift))
		return false;
	vhdx_arm_commit(vt);
	return true;
}

/* From end_io: the data write is done; the worker finishes the bio. */
void vhdx_completed(struct vhdx_target *vt, struct bio *bio)
{
	unsigned long irqflags;

	spin_lock_irqsave(&vt->lock, irqflags);
	bio_list_add(&vt->completed, bio);
	/*
	 * Under the lock: once the bio is on the list the worker may end it,
	 * and the table may then be suspended and destroyed.
	 */
	queue_work(vt->wq, &vt->worker);
	spin_unlock_irqrestore(&vt->lock, irqflags);
}

static void vhdx_recycle_now(struct vhdx_target *vt)
{
	vhdx_space_recycle(&vt->img);
	vt->draining = false;
}

/*
 * Blocks given back are reused in two steps.  Once their release is on
 * stable storage they are sealed and a new epoch starts; once no bio of
 * the old epoch is in flight, no bio can still be on its way to them.
 * New bios pin the new epoch, so the old one drains under any load.
 */
static void vhdx_recycle(struct vhdx_target *vt)
{
	struct vhdx_image *img = &vt->img;

	if (vt->draining) {
		/* Pairs with vhdx_pin(). */
		smp_mb();
		if (atomic_read(&vt->pins[vt->epoch ^ 1]))
			return;
		vhdx_recycle_now(vt);
	}
	/* Sector bits set meanwhile by end_io do not hold this back. */
	if (!vhdx_space_released(img) || vhdx_txn_bat_dirty(img))
		return;
	vhdx_space_seal(img);
	vt->draining = true;
	/* The discards' BAT changes before the new epoch (vhdx_pin()). */
	smp_mb();
	WRITE_ONCE(vt->epoch, vt->epoch ^ 1);
	/* The new epoch before the old one's count (vhdx_pin()). */
	smp_mb();
	if (!atomic_read(&vt->pins[vt->epoch ^ 1]))
		vhdx_recycle_now(vt);
}

void vhdx_defer_bio(struct vhdx_target *vt, struct bio *bio)
{
	unsigned long irqflags;

	spin_lock_irqsave(&vt->lock, irqflags);
	bio_list_add(&vt->deferred, bio);
	queue_work(vt->wq, &vt->worker);
	spin_unlock_irqrestore(&vt->lock, irqflags);
}

static void vhdx_set_failed(struct vhdx_target *vt)
{
	if (!test_and_set_bit(VHDX_FAILED, &vt->flags))
		DMERR("%s: metadata update failed, no more writes: %s",
		      vhdx_name(vt), vt->img.error);
}

static int vhdx_session_open(struct vhdx_target *vt)
{
	int ret;

	if (test_bit(VHDX_SESSION, &vt->flags))
		return 0;
	ret = vhdx_session_begin(&vt->img);
	if (ret) {
		vhdx_set_failed(vt);
		return ret;
	}
	set_bit(VHDX_SESSION, &vt->flags);
	return 0;
}

/*
 * Zeroing, discards and the bios they are made of come from the table's
 * dm-io client, never from the block layer's shared fs_bio_set: swap and
 * page-cache writeback through this device hold fs_bio_set bios while they
 * wait for the worker, so a worker that waited for one of them in turn
 * would deadlock under memory pressure.  Where the device offloads
 * REQ_OP_WRITE_ZEROES (a hole punch on a loop device) one request covers
 * what its limit allows; elsewhere the zero page is written, as often as
 * the range needs, from a page list that points back at itself.
 */
static struct page_list vhdx_zero_pages;

static void vhdx_zero_request(struct vhdx_target *vt, u64 offset, u64 length,
			      bool offload, struct dm_io_region *region,
			      struct dm_io_request *req)
{
	*region = (struct dm_io_region) {
		.bdev = vt->dev->bdev,
		.sector = offset >> SECTOR_SHIFT,
		.count = length >> SECTOR_SHIFT,
	};
	*req = (struct dm_io_request) {
		.bi_opf = offload ? REQ_OP_WRITE_ZEROES : REQ_OP_WRITE,
		.mem.type = DM_IO_PAGE_LIST,
		.mem.ptr.pl = &vhdx_zero_pages,
		.client = vt->io_client,
	};
}

static bool vhdx_zero_offload(struct vhdx_target *vt)
{
	return bdev_write_zeroes_sectors(vt->dev->bdev);
}

/* Offloaded where the device can, and written if the offload fails. */
static int vhdx_zero_wait(struct vhdx_target *vt, u64 offset, u64 length,
			  bool fallback)
{
	struct dm_io_request req;
	struct dm_io_region region;
	int ret = -EOPNOTSUPP;

	if (vhdx_zero_offload(vt)) {
		vhdx_zero_request(vt, offset, length, true, &region, &req);
		ret = dm_io(&req, 1, &region, NULL, IOPRIO_DEFAULT);
	}
	if (ret && fallback) {
		vhdx_zero_request(vt, offset, length, false, &region, &req);
		ret = dm_io(&req, 1, &region, NULL, IOPRIO_DEFAULT);
	}
	return ret;
}

/*
 * One part of an allocation is done: the data write (from end_io), or a
 * zeroing.  Either may run in interrupt context; the worker does the rest.
 */
void vhdx_alloc_part_done(struct vhdx_target *vt, struct bio *bio)
{
	if (atomic_dec_and_test(&vhdx_ctx(bio)->parts))
		vhdx_completed(vt, bio);
}

static void vhdx_zeroed_part(unsigned long error, void *context)
{
	struct bio *bio = context;
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	/* Ordered before the worker's read by vhdx_alloc_part_done(). */
	if (error)
		WRITE_ONCE(ctx->zero_failed, true);
	vhdx_alloc_part_done(ctx->vt, bio);
}

/*
 * Zeros for part of the allocating @bio's new space, issued without
 * waiting.  The bio's own part is still counted, so this never ends the
 * allocation.  A failed offload is retried by vhdx_allocated().
 */
static void vhdx_zero_part(struct vhdx_target *vt, struct bio *bio,
			   u64 offset, u64 length)
{
	struct dm_io_request req;
	struct dm_io_region region;

	if (!length)
		return;
	atomic_inc(&vhdx_ctx(bio)->parts);
	vhdx_zero_request(vt, offset, length, vhdx_zero_offload(vt), &region,
			  &req);
	req.notify.fn = vhdx_zeroed_part;
	req.notify.context = bio;
	/*
	 * With one region and a page list, asynchronous dm_io() reports
	 * every error through the callback only.
	 */
	dm_io(&req, 1, &region, NULL, IOPRIO_DEFAULT);
}

/* The parts of @block that @bio does not cover, as byte ranges of the block. */
static void vhdx_around(struct vhdx_target *vt, struct bio *bio, u64 block,
			u64 *head, u64 *tail, u64 *used)
{
	*used = vhdx_block_used_length(&vt->img.geo, block);
	*head = (u64)(vhdx_bio_sector(vt, bio) &
		      ((1ULL << vt->block_sector_shift) - 1)) << SECTOR_SHIFT;
	*tail = *head + bio->bi_iter.bi_size;
}

/*
 * A new block must read as zeros wherever the write does not cover it,
 * whatever the device held there before; bytes past the virtual disk are
 * never read, so they are left alone.
 */
static void vhdx_zero_around(struct vhdx_target *vt, struct bio *bio,
			     u64 block, u64 offset)
{
	u64 head, tail, used;

	vhdx_around(vt, bio, block, &head, &tail, &used);
	vhdx_zero_part(vt, bio, offset, head);
	if (tail < used)
		vhdx_zero_part(vt, bio, offset + tail, used - tail);
}

/*
 * A zeroing of the allocation failed: the device may have refused the
 * offload it advertised (a file system without hole punching under a
 * loop device, a disk that dropped WRITE SAME).  Zero again, writing the
 * zero page where the offload fails, before the block may enter the BAT.
 */
static int vhdx_zero_again(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);
	u64 block = vhdx_bio_sector(vt, bio) >> vt->block_sector_shift;
	u64 offset = vhdx_bat_offset(ctx->entry), head, tail, used;
	int ret = 0;

	if (ctx->bitmap_offset)
		ret = vhdx_zero_wait(vt, ctx->bitmap_offset,
				     VHDX_BITMAP_BLOCK_SIZE, true);
	if (ret || vhdx_bat_state(ctx->entry) == VHDX_PAYLOAD_PARTIALLY_PRESENT)
		return ret;
	vhdx_around(vt, bio, block, &head, &tail, &used);
	if (head)
		ret = vhdx_zero_wait(vt, offset, head, true);
	if (!ret && tail < used)
		ret = vhdx_zero_wait(vt, offset + tail, used - tail, true);
	return ret;
}

/*
 * Space past the last object is not known to read zeros: an LV's former
 * tenant, or data a crashed session wrote but never committed, may lie
 * there.  So, before any bio (at every resume: the device may have grown),
 * zero what of it is not known zero yet, once, where the device offloads
 * it cheaply (a hole punch on a loop device); new blocks taken from there
 * then need no zeroing.  Without the offload they are zeroed one by one.
 */
void vhdx_writer_zero_tail(struct vhdx_target *vt)
{
	struct vhdx_image *img = &vt->img;
	u64 start = img->data_end, end = img->device_size;
	unsigned int noio;
	int ret;

	if (vt->zero_from == start && vt->zero_end > start) {
		start = vt->zero_end;
	} else {
		vt->zero_from = start;
		vt->zero_end = start;
	}
	if (start >= end || !vhdx_zero_offload(vt))
		return;
	/* The device is suspended: reclaim must not write through it. */
	noio = memalloc_noio_save();
	ret = vhdx_zero_wait(vt, start, end - start, false);
	memalloc_noio_restore(noio);
	if (!ret)
		vt->zero_end = end;
}

/*
 * BLK_STS_AGAIN: there is no room now, but discarded blocks will be free
 * after the next commit or once their epoch drains; the bio waits.
 */
static blk_status_t vhdx_space(struct vhdx_target *vt, u64 length, u64 *offset,
			       bool *zeroed)
{
	struct vhdx_image *img = &vt->img;
	u64 end;
	int ret;

	vhdx_recycle(vt);
	ret = vhdx_space_alloc(img, length, offset);
	if (ret == -ENOSPC && (vt->draining || vhdx_space_released(img))) {
		set_bit(VHDX_COMMIT_DUE, &vt->flags);
		return BLK_STS_AGAIN;
	}
	if (ret == -ENOSPC) {
		if (!test_and_set_bit(VHDX_NO_SPACE, &vt->flags))
			DMERR("%s: out of space: %s", vhdx_name(vt), img->error);
		return BLK_STS_NOSPC;
	}
	clear_bit(VHDX_NO_SPACE, &vt->flags);
	/*
	 * Known zeros are used up once allocated: space that comes back
	 * (vhdx_space_return(), discards) may hold anything.
	 */
	end = *offset + ALIGN(length, VHDX_OBJECT_ALIGN);
	*zeroed = *offset >= vt->zero_from && end <= vt->zero_end;
	if (end > vt->zero_from)
		vt->zero_from = end;
	return BLK_STS_OK;
}

static blk_status_t vhdx_zeroout(struct vhdx_target *vt, u64 offset,
				 u64 length)
{
	int ret = vhdx_zero_wait(vt, offset, length, true);

	if (ret)
		DMERR_LIMIT("%s: cannot zero %llu bytes at %llu: %d",
			    vhdx_name(vt), (unsigned long long)length,
			    (unsigned long long)offset, ret);
	return errno_to_blk_status(ret);
}

/*
 * The chunk's sector bitmap block, before a block of the chunk becomes
 * partially present: zero on the device (every sector from the parent)
 * before the BAT entry that points at it can be committed.  Where it is
 * not known zero, its offset is returned in @zero_at: the allocation
 * zeroes it alongside its data write and records it when both are done.
 */
static blk_status_t vhdx_bitmap_block(struct vhdx_target *vt, u64 chunk,
				      u64 *zero_at)
{
	struct vhdx_image *img = &vt->img;
	u64 index = vhdx_bat_bitmap_index(&img->geo, chunk);
	blk_status_t status;
	bool zeroed;
	u64 offset;

	*zero_at = 0;
	if (vhdx_bitmap_present(img, chunk))
		return BLK_STS_OK;
	status = vhdx_space(vt, VHDX_BITMAP_BLOCK_SIZE, &offset, &zeroed);
	if (status)
		return status;
	if (!zeroed) {
		/* Never 0: the header section is there. */
		*zero_at = offset;
		return BLK_STS_OK;
	}
	vhdx_bitmap_attach(img, chunk);
	vhdx_bat_update(img, index, offset | VHDX_BITMAP_PRESENT);
	return BLK_STS_OK;
}

/*
 * A block of a differencing child that the write does not cover whole
 * becomes partially present: its other sectors still come from the
 * parent, so nothing needs zeroing, and the write sets their bits.
 */
static bool vhdx_allocate_partial(struct vhdx_target *vt, struct bio *bio,
				  u64 block, u64 entry)
{
	u64 used = vhdx_block_used_length(&vt->img.geo, block) >> SECTOR_SHIFT;

	return vt->img.geo.has_parent &&
	       vhdx_bat_state(entry) == VHDX_PAYLOAD_NOT_PRESENT &&
	       bio_sectors(bio) < used;
}

static struct bio *vhdx_allocating(struct vhdx_target *vt, u64 index)
{
	struct vhdx_bio_ctx *ctx;

	hash_for_each_possible(vt->allocating, ctx, pending, index)
		if (ctx->index == index)
			return dm_bio_from_per_bio_data(ctx, sizeof(*ctx));
	return NULL;
}

/* The allocation whose new sector bitmap block @bio would need, if any. */
static struct bio *vhdx_bitmapping(struct vhdx_target *vt, struct bio *bio,
				   u64 entry)
{
	u64 block = vhdx_bio_sector(vt, bio) >> vt->block_sector_shift;
	u64 chunk = block >> vt->img.geo.chunk_ratio_shift;
	struct vhdx_bio_ctx *ctx;

	if (!vhdx_allocate_partial(vt, bio, block, entry))
		return NULL;
	hash_for_each_possible(vt->bitmapping, ctx, bitmap_pending, chunk)
		if (ctx->chunk == chunk)
			return dm_bio_from_per_bio_data(ctx, sizeof(*ctx));
	return NULL;
}

/*
 * Room for the block, zeroed where the write does not cover it and the
 * space is not known zero; the BAT entry is only recorded in the bio, for
 * vhdx_allocated().  The zeroing runs alongside the data write: the
 * worker goes on with other bios meanwhile.
 */
static blk_status_t vhdx_allocate(struct vhdx_target *vt, struct bio *bio,
				  u64 index, u64 entry)
{
	struct vhdx_image *img = &vt->img;
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);
	u64 block = vhdx_bio_sector(vt, bio) >> vt->block_sector_shift;
	u64 chunk = block >> img->geo.chunk_ratio_shift;
	bool partial = vhdx_allocate_partial(vt, bio, block, entry);
	blk_status_t status = BLK_STS_OK;
	u64 offset, bitmap = 0;
	bool zeroed;

	if (partial)
		status = vhdx_bitmap_block(vt, chunk, &bitmap);
	if (!status)
		status = vhdx_space(vt, img->geo.block_size, &offset, &zeroed);
	if (status) {
		if (bitmap)
			vhdx_space_return(img, bitmap, VHDX_BITMAP_BLOCK_SIZE);
		return status;
	}
	ctx->allocating = true;
	ctx->index = index;
	ctx->entry = offset | (partial ? VHDX_PAYLOAD_PARTIALLY_PRESENT :
			       VHDX_PAYLOAD_FULLY_PRESENT);
	bio_list_init(&ctx->waiters);
	hash_add(vt->allocating, &ctx->pending, index);
	ctx->vt = vt;
	/* The data write's part, until vhdx_end_io(). */
	atomic_set(&ctx->parts, 1);
	ctx->zero_failed = false;
	ctx->bitmap_offset = bitmap;
	if (bitmap) {
		ctx->chunk = chunk;
		hash_add(vt->bitmapping, &ctx->bitmap_pending, chunk);
		vhdx_zero_part(vt, bio, bitmap, VHDX_BITMAP_BLOCK_SIZE);
	}
	if (!partial && !zeroed)
		vhdx_zero_around(vt, bio, block, offset);
	if (partial)
		vhdx_mark_on_completion(vt, bio);
	return BLK_STS_OK;
}

/*
 * The allocating write and its zeroing are done: on success its block
 * (and a new sector bitmap block) enters the BAT, on failure its space is
 * free again, as nothing ever pointed at it.  Either way the writes that
 * waited for it are handled again.
 */
static void vhdx_allocated(struct vhdx_target *vt, struct bio *bio,
			   struct bio_list *again)
{
	struct vhdx_image *img = &vt->img;
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	hash_del(&ctx->pending);
	ctx->allocating = false;
	bio_list_merge(again, &ctx->waiters);
	if (ctx->bitmap_offset)
		hash_del(&ctx->bitmap_pending);
	if (!bio->bi_status && ctx->zero_failed && vhdx_zero_again(vt, bio)) {
		DMERR_LIMIT("%s: cannot zero a new block", vhdx_name(vt));
		bio->bi_status = BLK_STS_IOERR;
	}
	if (!bio->bi_status && ctx->bitmap_offset)
		vhdx_bitmap_attach(img, ctx->chunk);
	if (bio->bi_status) {
		ctx->set_bits = false;
		vhdx_space_return(img, vhdx_bat_offset(ctx->entry),
				  img->geo.block_size);
		if (ctx->bitmap_offset)
			vhdx_space_return(img, ctx->bitmap_offset,
					  VHDX_BITMAP_BLOCK_SIZE);
		return;
	}
	if (ctx->bitmap_offset)
		vhdx_bat_update(img, vhdx_bat_bitmap_index(&img->geo, ctx->chunk),
				ctx->bitmap_offset | VHDX_BITMAP_PRESENT);
	vhdx_bat_update(img, ctx->index, ctx->entry);
	WRITE_ONCE(img->allocated_blocks, img->allocated_blocks + 1);
	vhdx_arm_commit(vt);
}

/*
 * A write that must be ordered after the BAT changes already made waits
 * for the next commit: one with a pre-flush, and a FUA one into a block
 * whose entry is not stable yet.  A FUA write that allocates or sets bits
 * waits for a commit after it instead (vhdx_finish()).
 */
static void vhdx_issue(struct vhdx_target *vt, struct bio *bio,
		       struct bio_list *waiters)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);
	bool after = ctx->allocating || ctx->set_bits;

	if (vhdx_txn_dirty(&vt->img) &&
	    ((bio->bi_opf & REQ_PREFLUSH) || ((bio->bi_opf & REQ_FUA) && !after)))
		bio_list_add(waiters, bio);
	else
		dm_submit_bio_remap(bio, NULL);
}

static void vhdx_handle_write(struct vhdx_target *vt, struct bio *bio,
			      struct bio_list *waiters)
{
	u64 index = vhdx_payload_index(vt, vhdx_bio_sector(vt, bio));
	blk_status_t status = BLK_STS_OK;
	struct bio *owner;
	u64 entry;

	/*
	 * map() may have marked it for a block that was partially present
	 * then; the entry read below decides again.
	 */
	vhdx_ctx(bio)->set_bits = false;
	if (test_bit(VHDX_FAILED, &vt->flags) || vhdx_session_open(vt)) {
		bio_io_error(bio);
		return;
	}
	entry = vhdx_pin_entry(vt, bio, index);
	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		break;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		if (vt->img.geo.has_parent) {
			vhdx_mark_on_completion(vt, bio);
			break;
		}
		DMERR_LIMIT("%s: write to a partially present block without a parent",
			    vhdx_name(vt));
		status = BLK_STS_IOERR;
		break;
	default:
		/* New space is never discarded before its entry exists. */
		vhdx_unpin(vt, bio);
		owner = vhdx_allocating(vt, index);
		if (!owner)
			owner = vhdx_bitmapping(vt, bio, entry);
		if (owner) {
			bio_list_add(&vhdx_ctx(owner)->waiters, bio);
			return;
		}
		status = vhdx_allocate(vt, bio, index, entry);
		if (status == BLK_STS_AGAIN) {
			bio_list_add(&vt->no_space, bio);
			return;
		}
		entry = vhdx_ctx(bio)->entry;
	}
	if (status) {
		bio->bi_status = status;
		bio_endio(bio);
		return;
	}
	vhdx_remap(vt, bio, entry);
	vhdx_issue(vt, bio, waiters);
}

/*
 * If nothing needed committing (another commit got there first), a flush
 * still has to reach the device for the data written before it.  After a
 * commit it need not: the commit's log entry went with a pre-flush issued
 * after every write this flush orders, so a second one would be wasted.
 */
static void vhdx_release_waiters(struct vhdx_target *vt,
				 struct bio_list *waiters, bool committed,
				 int ret)
{
	struct bio *bio;

	while ((bio = bio_list_pop(waiters))) {
		if (ret) {
			bio_io_error(bio);
		} else if (bio_sectors(bio)) {
			if (committed)
				bio->bi_opf &= ~REQ_PREFLUSH;
			dm_submit_bio_remap(bio, NULL);
		} else if (committed) {
			bio_endio(bio);
		} else {
			bio_set_dev(bio, vt->dev->bdev);
			dm_submit_bio_remap(bio, NULL);
		}
	}
}

/* Never on a failed device: its log may be half written. */
static int vhdx_commit_unless_failed(struct vhdx_target *vt)
{
	int ret;

	if (test_bit(VHDX_FAILED, &vt->flags))
		return -EIO;
	ret = vhdx_commit(&vt->img);
	if (ret)
		vhdx_set_failed(vt);
	return ret;
}

static void vhdx_commit_for(struct vhdx_target *vt, struct bio_list *waiters,
			    struct bio_list *acked)
{
	bool committed = vhdx_txn_dirty(&vt->img);
	struct bio *bio;
	int ret = 0;

	if (committed)
		ret = vhdx_commit_unless_failed(vt);
	vhdx_release_waiters(vt, waiters, committed, ret);
	while ((bio = bio_list_pop(acked))) {
		if (ret)
			bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
	}
	/*
	 * The BAT sectors in place, now that the waiters are on their way: no
	 * flush here, the next commit's pre-flush (or the session's end) makes
	 * them stable, and until then the entry replays them.
	 */
	if (committed && !ret) {
		ret = vhdx_checkpoint(&vt->img);
		if (ret)
			vhdx_set_failed(vt);
	}
	vhdx_recycle(vt);
}

/* Only whole blocks are given back; the rest of a discard is a hint. */
static bool vhdx_discard_covers(struct vhdx_target *vt, u64 block,
				sector_t start, sector_t end)
{
	sector_t first = block << vt->block_sector_shift;
	sector_t last = first +
		(vhdx_block_used_length(&vt->img.geo, block) >> SECTOR_SHIFT);

	return first >= start && last <= end;
}

/*
 * A differencing child's block without data shows its parent, which the
 * user has just thrown away: there the block reads zeros instead.
 */
static u64 vhdx_discarded_state(const struct vhdx_image *img)
{
	return img->geo.has_parent ? VHDX_PAYLOAD_ZERO : VHDX_PAYLOAD_NOT_PRESENT;
}

static void vhdx_discard_block(struct vhdx_target *vt, u64 block)
{
	struct vhdx_image *img = &vt->img;
	u64 index = vhdx_bat_payload_index(&img->geo, block);
	u64 entry = vhdx_bat_entry(vt, index);
	struct block_device *bdev = vt->dev->bdev;
	u64 used = vhdx_block_used_length(&img->geo, block);

	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		break;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
	case VHDX_PAYLOAD_NOT_PRESENT:
		if (img->geo.has_parent)
			break;
		return;
	default:
		return;
	}
	vhdx_bat_update(img, index, vhdx_discarded_state(img));
	if (vhdx_bat_state(entry) == VHDX_PAYLOAD_NOT_PRESENT)
		return;
	WRITE_ONCE(img->allocated_blocks, img->allocated_blocks - 1);
	/*
	 * The space a block is known to own, as the overlap check counts it:
	 * a short last block may have been allocated short, by another
	 * implementation, with the next object right behind its used length.
	 */
	vhdx_space_release(img, vhdx_bat_offset(entry),
			   used & ~(VHDX_OBJECT_ALIGN - 1));
	/* Let a sparse file or a thin device free the space; only a hint. */
	if (bdev_max_discard_sectors(bdev))
		vhdx_dm_io(vt->io_client, bdev, REQ_OP_DISCARD,
			   vhdx_bat_offset(entry), NULL, used);
}

static void vhdx_handle_discard(struct vhdx_target *vt, struct bio *bio)
{
	sector_t start = vhdx_bio_sector(vt, bio);
	sector_t end = start + bio_sectors(bio);
	u64 block, last = (end - 1) >> vt->block_sector_shift;
	bool changed = false;

	for (block = start >> vt->block_sector_shift; block <= last; block++) {
		if (!vhdx_discard_covers(vt, block, start, end))
			continue;
		if (!changed && (test_bit(VHDX_FAILED, &vt->flags) ||
				 vhdx_session_open(vt))) {
			bio_io_error(bio);
			return;
		}
		changed = true;
		vhdx_discard_block(vt, block);
	}
	if (changed)
		vhdx_arm_commit(vt);
	bio_endio(bio);
}

/*
 * Zeroing: a block covered whole is given back where discards may and
 * the caller allows (no REQ_NOUNMAP): it then reads as zeros, and a
 * sparse file frees its space.  The rest of
 * an allocated block is zeroed in place; blocks that own no data already
 * read as zeros.  Differencing images take no such bio: there a block
 * without data shows the parent.
 */
static void vhdx_handle_write_zeroes(struct vhdx_target *vt, struct bio *bio,
				     struct bio_list *acked)
{
	unsigned int shift = vt->block_sector_shift;
	sector_t start = vhdx_bio_sector(vt, bio);
	sector_t end = start + bio_sectors(bio);
	u64 block, last = (end - 1) >> shift;
	blk_status_t status = BLK_STS_OK;

	if (test_bit(VHDX_FAILED, &vt->flags) || vhdx_session_open(vt)) {
		bio_io_error(bio);
		return;
	}
	for (block = start >> shift; !status && block <= last; block++) {
		u64 entry = vhdx_bat_entry(vt, vhdx_bat_payload_index(&vt->img.geo,
								     block));
		sector_t first = max_t(sector_t, start, block << shift);
		sector_t stop = min_t(sector_t, end, (block + 1) << shift);
		u64 in_block = (first - (block << shift)) << SECTOR_SHIFT;

		switch (vhdx_bat_state(entry)) {
		case VHDX_PAYLOAD_FULLY_PRESENT:
			if (vt->discards && !(bio->bi_opf & REQ_NOUNMAP) &&
			    vhdx_discard_covers(vt, block, start, end)) {
				vhdx_discard_block(vt, block);
				vhdx_arm_commit(vt);
				break;
			}
			status = vhdx_zeroout(vt, vhdx_bat_offset(entry) + in_block,
					      (u64)(stop - first) << SECTOR_SHIFT);
			break;
		case VHDX_PAYLOAD_PARTIALLY_PRESENT:
			DMERR_LIMIT("%s: write to a partially present block without a parent",
				    vhdx_name(vt));
			status = BLK_STS_IOERR;
			break;
		}
	}
	bio->bi_status = status;
	if (!status && (bio->bi_opf & REQ_FUA) && vhdx_txn_dirty(&vt->img))
		bio_list_add(acked, bio);
	else
		bio_endio(bio);
}

/*
 * The worker's way of marking sectors present: their bitmap pages may have
 * to be read first.  If memory is short and every cached page waits for
 * its checkpoint, only a commit and checkpoint, which need no memory, can
 * let pages go; the worker does them here rather than wait for memory
 * that swap through this device may need the worker to free.
 */
static int vhdx_mark_present_loading(struct vhdx_target *vt, u64 sector,
				     u64 count)
{
	int ret = vhdx_bitmap_set_nowait(&vt->img, sector, count);

	if (ret != -ENOMEM)
		return ret;
	ret = vhdx_commit_unless_failed(vt);
	if (ret)
		return ret;
	ret = vhdx_checkpoint(&vt->img);
	if (ret) {
		vhdx_set_failed(vt);
		return ret;
	}
	return vhdx_bitmap_set(&vt->img, sector, count);
}

/*
 * Writes whose data is on the device (or failed): a new block enters the
 * BAT, sectors of a partially present block become present.  A FUA one
 * completes after the commit that makes this stable.
 */
static void vhdx_finish(struct vhdx_target *vt, struct bio_list *completed,
			struct bio_list *again, struct bio_list *acked)
{
	unsigned int lss_shift = ilog2(vt->img.geo.logical_sector_size) -
				 SECTOR_SHIFT;
	struct bio *bio;

	while ((bio = bio_list_pop(completed))) {
		struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

		if (ctx->allocating)
			vhdx_allocated(vt, bio, again);
		if (ctx->set_bits) {
			ctx->set_bits = false;
			if (vhdx_mark_present_loading(vt, ctx->sector >> lss_shift,
						      ctx->sectors >> lss_shift)) {
				DMERR_LIMIT("%s: %s", vhdx_name(vt),
					    vt->img.error);
				bio->bi_status = BLK_STS_IOERR;
			}
			vhdx_arm_commit(vt);
		}
		if (!bio->bi_status && ctx->fua)
			bio_list_add(acked, bio);
		else
			bio_endio(bio);
	}
}

static void vhdx_work(struct vhdx_target *vt)
{
	struct bio_list bios, waiters, completed, acked;
	struct bio *bio;

	bio_list_init(&waiters);
	bio_list_init(&acked);
	/* Those that waited for space go first, in their order. */
	bios = vt->no_space;
	bio_list_init(&vt->no_space);
	spin_lock_irq(&vt->lock);
	bio_list_merge(&bios, &vt->deferred);
	bio_list_init(&vt->deferred);
	completed = vt->completed;
	bio_list_init(&vt->completed);
	spin_unlock_irq(&vt->lock);

	vhdx_finish(vt, &completed, &bios, &acked);

	while ((bio = bio_list_pop(&bios))) {
		if (bio_op(bio) == REQ_OP_DISCARD)
			vhdx_handle_discard(vt, bio);
		else if (bio_op(bio) == REQ_OP_WRITE_ZEROES)
			vhdx_handle_write_zeroes(vt, bio, &acked);
		else if (bio_sectors(bio))
			vhdx_handle_write(vt, bio, &waiters);
		else
			bio_list_add(&waiters, bio);
	}
	if (!bio_list_empty(&waiters) || !bio_list_empty(&acked) ||
	    test_and_clear_bit(VHDX_COMMIT_DUE, &vt->flags))
		vhdx_commit_for(vt, &waiters, &acked);
	/* Space came back without a bio to wake the worker: try again now. */
	if (!bio_list_empty(&vt->no_space) && !vt->draining)
		queue_work(vt->wq, &vt->worker);
}

/*
 * Reclaim may write through this very device: nothing the worker
 * allocates may wait for I/O.
 */
static void vhdx_worker(struct work_struct *work)
{
	struct vhdx_target *vt = container_of(work, struct vhdx_target, worker);
	unsigned int noio = memalloc_noio_save();

	vhdx_work(vt);
	memalloc_noio_restore(noio);
}

static void vhdx_commit_timer(struct work_struct *work)
{
	struct vhdx_target *vt = container_of(to_delayed_work(work),
					      struct vhdx_target, commit_work);

	set_bit(VHDX_COMMIT_DUE, &vt->flags);
	queue_work(vt->wq, &vt->worker);
}

int vhdx_writer_init(struct vhdx_target *vt)
{
	spin_lock_init(&vt->lock);
	bio_list_init(&vt->deferred);
	bio_list_init(&vt->completed);
	bio_list_init(&vt->no_space);
	hash_init(vt->allocating);
	hash_init(vt->bitmapping);
	INIT_WORK(&vt->worker, vhdx_worker);
	INIT_DELAYED_WORK(&vt->commit_work, vhdx_commit_timer);
	/* Constant; setting it again for another table is harmless. */
	vhdx_zero_pages.page = ZERO_PAGE(0);
	vhdx_zero_pages.next = &vhdx_zero_pages;
	vt->wq = alloc_ordered_workqueue("dm-vhdx", WQ_MEM_RECLAIM);
	if (!vt->wq)
		return vhdx_fail(&vt->img, -ENOMEM,
				 "cannot allocate the workqueue");
	return 0;
}

/*
 * Called with no bio in flight (postsuspend, or the destructor): commit
 * and empty the log, so that QEMU, Hyper-V or libvhdi can open the image
 * without a replay and a reload starts from what is on disk.
 */
void vhdx_writer_stop(struct vhdx_target *vt)
{
	unsigned int noio;
	int ret;

	cancel_delayed_work_sync(&vt->commit_work);
	flush_workqueue(vt->wq);
	clear_bit(VHDX_COMMIT_DUE, &vt->flags);
	if (!test_bit(VHDX_SESSION, &vt->flags) ||
	    test_bit(VHDX_FAILED, &vt->flags))
		return;
	noio = memalloc_noio_save();
	ret = vhdx_session_end(&vt->img);
	memalloc_noio_restore(noio);
	if (ret) {
		vhdx_set_failed(vt);
		return;
	}
	clear_bit(VHDX_SESSION, &vt->flags);
	vhdx_recycle(vt);
}

void vhdx_writer_exit(struct vhdx_target *vt)
{
	vhdx_writer_stop(vt);
	destroy_workqueue(vt->wq);
}
