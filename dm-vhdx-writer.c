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
 */
#include <linux/blkdev.h>
#include <linux/jiffies.h>

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
 * still be on its way to it: either the discard's BAT change is seen by
 * the bio, or the bio's pin is seen by vhdx_recycle().
 */
void vhdx_pin(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	if (!ctx->pinned) {
		atomic_inc(&vt->inflight);
		/* Pairs with vhdx_recycle(): the pin before the BAT read. */
		smp_mb__after_atomic();
		ctx->pinned = true;
	}
}

u64 vhdx_pin_entry(struct vhdx_target *vt, struct bio *bio, u64 index)
{
	vhdx_pin(vt, bio);
	return vhdx_bat_entry(vt, index);
}

void vhdx_unpin(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	if (ctx->pinned) {
		ctx->pinned = false;
		atomic_dec(&vt->inflight);
	}
}

/* The bio's sectors become present in the child when it completes. */
void vhdx_mark_on_completion(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	ctx->set_bits = true;
	ctx->sector = vhdx_bio_sector(vt, bio);
	ctx->sectors = bio_sectors(bio);
}

/* From end_io: the data is on the device; the worker sets the bits. */
void vhdx_written(struct vhdx_target *vt, struct bio *bio)
{
	unsigned long irqflags;

	spin_lock_irqsave(&vt->lock, irqflags);
	bio_list_add(&vt->written, bio);
	spin_unlock_irqrestore(&vt->lock, irqflags);
	queue_work(vt->wq, &vt->worker);
}

/*
 * Blocks given back are reused once their release is stable and no bio
 * but the caller's own @held ones (which map elsewhere) is in flight.
 */
static void vhdx_recycle(struct vhdx_target *vt, int held)
{
	if (!vhdx_space_released(&vt->img) || vhdx_txn_dirty(&vt->img))
		return;
	/* Pairs with vhdx_pin(): the discard's BAT change before the count. */
	smp_mb();
	if (atomic_read(&vt->inflight) == held)
		vhdx_space_recycle(&vt->img);
}

void vhdx_defer_bio(struct vhdx_target *vt, struct bio *bio)
{
	unsigned long irqflags;

	spin_lock_irqsave(&vt->lock, irqflags);
	bio_list_add(&vt->deferred, bio);
	spin_unlock_irqrestore(&vt->lock, irqflags);
	queue_work(vt->wq, &vt->worker);
}

static void vhdx_set_failed(struct vhdx_target *vt)
{
	if (!test_and_set_bit(VHDX_FAILED, &vt->flags))
		DMERR("%s: metadata update failed, no more writes: %s",
		      vhdx_name(vt), vt->img.error);
}

static void vhdx_arm_commit(struct vhdx_target *vt)
{
	if (vt->commit_ms)
		queue_delayed_work(vt->wq, &vt->commit_work,
				   msecs_to_jiffies(vt->commit_ms));
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
 * A new block must read as zeros wherever the write does not cover it,
 * whatever the device held there before; bytes past the virtual disk are
 * never read, so they are left alone.
 */
static int vhdx_zero_around(struct vhdx_target *vt, struct bio *bio,
			    u64 block, sector_t start)
{
	struct block_device *bdev = vt->dev->bdev;
	sector_t used = vhdx_block_used_length(&vt->img.geo, block) >>
			SECTOR_SHIFT;
	sector_t head = vhdx_bio_sector(vt, bio) &
			((1ULL << vt->block_sector_shift) - 1);
	sector_t tail = head + bio_sectors(bio);
	int ret = 0;

	if (head)
		ret = blkdev_issue_zeroout(bdev, start, head, GFP_NOIO, 0);
	if (!ret && tail < used)
		ret = blkdev_issue_zeroout(bdev, start + tail, used - tail,
					   GFP_NOIO, 0);
	return ret;
}

static blk_status_t vhdx_space(struct vhdx_target *vt, u64 length, u64 *offset)
{
	struct vhdx_image *img = &vt->img;
	int ret;

	/* The bio being allocated for is pinned, and maps nowhere yet. */
	vhdx_recycle(vt, 1);
	ret = vhdx_space_alloc(img, length, offset);
	if (ret == -ENOSPC) {
		if (!test_and_set_bit(VHDX_NO_SPACE, &vt->flags))
			DMERR("%s: out of space: %s", vhdx_name(vt), img->error);
		return BLK_STS_NOSPC;
	}
	clear_bit(VHDX_NO_SPACE, &vt->flags);
	return BLK_STS_OK;
}

static blk_status_t vhdx_zeroout(struct vhdx_target *vt, u64 offset,
				 u64 length)
{
	int ret = blkdev_issue_zeroout(vt->dev->bdev, offset >> SECTOR_SHIFT,
				       length >> SECTOR_SHIFT, GFP_NOIO, 0);

	if (ret)
		DMERR_LIMIT("%s: cannot zero %llu bytes at %llu: %d",
			    vhdx_name(vt), (unsigned long long)length,
			    (unsigned long long)offset, ret);
	return errno_to_blk_status(ret);
}

/*
 * The chunk's sector bitmap block, before a block of the chunk becomes
 * partially present: zeroed on the device (every sector from the parent)
 * before the BAT entry that points at it can be committed.
 */
static blk_status_t vhdx_bitmap_block(struct vhdx_target *vt, u64 chunk)
{
	struct vhdx_image *img = &vt->img;
	u64 index = vhdx_bat_bitmap_index(&img->geo, chunk);
	blk_status_t status;
	u64 offset;

	if (img->bitmaps[chunk])
		return BLK_STS_OK;
	status = vhdx_space(vt, VHDX_BITMAP_BLOCK_SIZE, &offset);
	if (!status)
		status = vhdx_zeroout(vt, offset, VHDX_BITMAP_BLOCK_SIZE);
	if (!status && vhdx_bitmap_attach(img, chunk))
		status = BLK_STS_RESOURCE;
	if (status)
		return status;
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

static blk_status_t vhdx_allocate(struct vhdx_target *vt, struct bio *bio,
				  u64 index, u64 *entry)
{
	struct vhdx_image *img = &vt->img;
	u64 block = vhdx_bio_sector(vt, bio) >> vt->block_sector_shift;
	bool partial = vhdx_allocate_partial(vt, bio, block, *entry);
	blk_status_t status = BLK_STS_OK;
	u64 offset;

	if (partial)
		status = vhdx_bitmap_block(vt, block >> img->geo.chunk_ratio_shift);
	if (!status)
		status = vhdx_space(vt, img->geo.block_size, &offset);
	if (!status && !partial &&
	    vhdx_zero_around(vt, bio, block, offset >> SECTOR_SHIFT))
		status = BLK_STS_IOERR;
	if (status)
		return status;
	*entry = offset | (partial ? VHDX_PAYLOAD_PARTIALLY_PRESENT :
			   VHDX_PAYLOAD_FULLY_PRESENT);
	vhdx_bat_update(img, index, *entry);
	img->allocated_blocks++;
	vhdx_arm_commit(vt);
	return BLK_STS_OK;
}

/*
 * A FUA write is stable only once the BAT entry that maps it is: such a
 * write waits for the commit, as a flush does.
 */
static void vhdx_issue(struct vhdx_target *vt, struct bio *bio,
		       struct bio_list *waiters)
{
	if (op_is_flush(bio->bi_opf) && vhdx_txn_dirty(&vt->img))
		bio_list_add(waiters, bio);
	else
		dm_submit_bio_remap(bio, NULL);
}

static void vhdx_handle_write(struct vhdx_target *vt, struct bio *bio,
			      struct bio_list *waiters)
{
	u64 index = vhdx_payload_index(vt, vhdx_bio_sector(vt, bio));
	blk_status_t status = BLK_STS_OK;
	u64 entry;

	if (test_bit(VHDX_FAILED, &vt->flags) || vhdx_session_open(vt)) {
		bio_io_error(bio);
		return;
	}
	entry = vhdx_pin_entry(vt, bio, index);
	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		break;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		if (vt->img.geo.has_parent)
			break;
		DMERR_LIMIT("%s: write to a partially present block without a parent",
			    vhdx_name(vt));
		status = BLK_STS_IOERR;
		break;
	default:
		status = vhdx_allocate(vt, bio, index, &entry);
	}
	if (status) {
		bio->bi_status = status;
		bio_endio(bio);
		return;
	}
	if (vhdx_bat_state(entry) == VHDX_PAYLOAD_PARTIALLY_PRESENT)
		vhdx_mark_on_completion(vt, bio);
	vhdx_remap(vt, bio, entry);
	vhdx_issue(vt, bio, waiters);
}

/*
 * If nothing needed committing (another commit got there first), a flush
 * still has to reach the device for the data written before it.
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
			dm_submit_bio_remap(bio, NULL);
		} else if (committed) {
			bio_endio(bio);
		} else {
			bio_set_dev(bio, vt->dev->bdev);
			dm_submit_bio_remap(bio, NULL);
		}
	}
}

static void vhdx_commit_for(struct vhdx_target *vt, struct bio_list *waiters,
			    struct bio_list *acked)
{
	bool committed = vhdx_txn_dirty(&vt->img);
	struct bio *bio;
	int ret = 0;

	if (committed && !test_bit(VHDX_FAILED, &vt->flags)) {
		ret = vhdx_commit(&vt->img);
		if (ret)
			vhdx_set_failed(vt);
	} else if (committed) {
		ret = -EIO;
	}
	vhdx_release_waiters(vt, waiters, committed, ret);
	while ((bio = bio_list_pop(acked))) {
		if (ret)
			bio->bi_status = BLK_STS_IOERR;
		bio_endio(bio);
	}
	vhdx_recycle(vt, 0);
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

static void vhdx_discard_block(struct vhdx_target *vt, u64 block)
{
	struct vhdx_image *img = &vt->img;
	u64 index = vhdx_bat_payload_index(&img->geo, block);
	u64 entry = vhdx_bat_entry(vt, index);
	struct block_device *bdev = vt->dev->bdev;

	if (vhdx_bat_state(entry) != VHDX_PAYLOAD_FULLY_PRESENT)
		return;
	vhdx_bat_update(img, index, VHDX_PAYLOAD_NOT_PRESENT);
	img->allocated_blocks--;
	/*
	 * The space a block is known to own, as the overlap check counts it:
	 * a short last block may have been allocated short.
	 */
	vhdx_space_release(img, vhdx_bat_offset(entry),
			   vhdx_block_used_length(&img->geo, block) &
			   ~(VHDX_OBJECT_ALIGN - 1));
	/* Let a sparse file or a thin device free the space; only a hint. */
	if (bdev_max_discard_sectors(bdev))
		blkdev_issue_discard(bdev, vhdx_bat_offset(entry) >> SECTOR_SHIFT,
				     img->geo.block_size >> SECTOR_SHIFT,
				     GFP_NOIO);
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
 * Writes into partially present blocks whose data is on the device: their
 * sectors become present.  A FUA one completes after the commit.
 */
static void vhdx_set_written(struct vhdx_target *vt, struct bio_list *written,
			     struct bio_list *acked)
{
	unsigned int lss_shift = ilog2(vt->img.geo.logical_sector_size) -
				 SECTOR_SHIFT;
	struct bio *bio;

	while ((bio = bio_list_pop(written))) {
		struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

		vhdx_bitmap_set(&vt->img, ctx->sector >> lss_shift,
				ctx->sectors >> lss_shift);
		vhdx_arm_commit(vt);
		if (bio->bi_opf & REQ_FUA)
			bio_list_add(acked, bio);
		else
			bio_endio(bio);
	}
}

static void vhdx_worker(struct work_struct *work)
{
	struct vhdx_target *vt = container_of(work, struct vhdx_target, worker);
	struct bio_list bios, waiters, written, acked;
	struct bio *bio;

	bio_list_init(&waiters);
	bio_list_init(&acked);
	spin_lock_irq(&vt->lock);
	bios = vt->deferred;
	bio_list_init(&vt->deferred);
	written = vt->written;
	bio_list_init(&vt->written);
	spin_unlock_irq(&vt->lock);

	vhdx_set_written(vt, &written, &acked);

	while ((bio = bio_list_pop(&bios))) {
		if (bio_op(bio) == REQ_OP_DISCARD)
			vhdx_handle_discard(vt, bio);
		else if (bio_sectors(bio))
			vhdx_handle_write(vt, bio, &waiters);
		else
			bio_list_add(&waiters, bio);
	}
	if (!bio_list_empty(&waiters) || !bio_list_empty(&acked) ||
	    test_and_clear_bit(VHDX_COMMIT_DUE, &vt->flags))
		vhdx_commit_for(vt, &waiters, &acked);
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
	bio_list_init(&vt->written);
	INIT_WORK(&vt->worker, vhdx_worker);
	INIT_DELAYED_WORK(&vt->commit_work, vhdx_commit_timer);
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
	int ret;

	cancel_delayed_work_sync(&vt->commit_work);
	flush_workqueue(vt->wq);
	clear_bit(VHDX_COMMIT_DUE, &vt->flags);
	if (!test_bit(VHDX_SESSION, &vt->flags) ||
	    test_bit(VHDX_FAILED, &vt->flags))
		return;
	ret = vhdx_session_end(&vt->img);
	if (ret) {
		vhdx_set_failed(vt);
		return;
	}
	clear_bit(VHDX_SESSION, &vt->flags);
	vhdx_recycle(vt, 0);
}

void vhdx_writer_exit(struct vhdx_target *vt)
{
	vhdx_writer_stop(vt);
	destroy_workqueue(vt->wq);
}
