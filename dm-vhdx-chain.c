// SPDX-License-Identifier: GPL-2.0
/*
 * dm-vhdx: differencing chains.  The table names the child and then its
 * parents, nearest first, each a block device holding one image; parents
 * are opened read-only (a dirty log in one is replayed in memory) and are
 * never written.  A read is resolved through the chain: a block the child
 * does not have comes from the parent, and in a partially present block
 * the child's sector bitmap decides, sector by sector.
 */
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/sched/mm.h>

#include "dm-vhdx.h"
#include "vhdx/parent.h"

static int vhdx_parent_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct vhdx_parent *p = priv;

	return vhdx_dm_io(p->vt->io_client, p->dev->bdev, REQ_OP_READ, offset,
			  buf, len);
}

static bool vhdx_linked(const struct vhdx_image *child,
			const struct vhdx_image *parent)
{
	const struct vhdx_locator *loc = child->locator;
	const guid_t *dwg = &parent->header.data_write_guid;

	return guid_equal(&loc->parent_linkage, dwg) ||
	       (loc->has_parent_linkage2 && guid_equal(&loc->parent_linkage2, dwg));
}

/* @child is the image nearer the top of the chain than @p. */
static int vhdx_chain_check(struct dm_target *ti, struct vhdx_target *vt,
			    const struct vhdx_image *child,
			    const char *child_name, struct vhdx_parent *p)
{
	const struct vhdx_geometry *cg = &child->geo, *pg = &p->img.geo;
	char want[VHDX_GUID_STRING_SIZE], have[VHDX_GUID_STRING_SIZE];

	/*
	 * The virtual sizes may differ: a child may be grown past its parent
	 * (Hyper-V allows it; vhdx_resolve() reads zeros past the parent's
	 * end), and a larger parent is read only as far as the child reaches.
	 */
	if (cg->logical_sector_size != pg->logical_sector_size) {
		vhdx_set_error(ti,
			       "Parent %s (%u-byte sectors) does not match %s (%u-byte sectors)",
			       p->dev->name, pg->logical_sector_size,
			       child_name, cg->logical_sector_size);
		return -EINVAL;
	}
	if (vhdx_linked(child, &p->img))
		return 0;
	vhdx_guid_to_string(&child->locator->parent_linkage, want);
	vhdx_guid_to_string(&p->img.header.data_write_guid, have);
	if (!vt->skip_linkage_check) {
		vhdx_set_error(ti,
			       "Parent %s is not the parent of %s: parent_linkage %s, DataWriteGuid %s (no_linkage_check overrides)",
			       p->dev->name, child_name, want, have);
		return -EINVAL;
	}
	DMWARN("%s: parent %s is not linked to %s (%s, DataWriteGuid %s): mapped anyway",
	       dm_device_name(dm_table_get_md(ti->table)), p->dev->name,
	       child_name, want, have);
	return 0;
}

static int vhdx_parent_open(struct dm_target *ti, struct vhdx_target *vt,
			    struct vhdx_parent *p, const char *path)
{
	int ret;

	p->vt = vt;
	ret = dm_get_device(ti, path, VHDX_MODE_READ, &p->dev);
	if (ret) {
		vhdx_set_error(ti, "Parent device lookup failed: %s", path);
		return ret;
	}
	/* Sectors of the child are read from the parent one by one. */
	if (bdev_logical_block_size(p->dev->bdev) >
	    vt->img.geo.logical_sector_size) {
		vhdx_set_error(ti,
			       "Parent %s: device logical block size %u is larger than the image's logical sector size %u",
			       p->dev->name,
			       bdev_logical_block_size(p->dev->bdev),
			       vt->img.geo.logical_sector_size);
		dm_put_device(ti, p->dev);
		p->dev = NULL;
		return -EINVAL;
	}
	p->io = (struct vhdx_io) { .priv = p, .read = vhdx_parent_read };
	p->img.accept_parent = true;
	p->img.bitmap_budget = vhdx_bitmap_budget();
	ret = vhdx_open(&p->img, &p->io, bdev_nr_bytes(p->dev->bdev), true);
	if (ret) {
		vhdx_set_error(ti, "Parent %s: %s", p->dev->name, p->img.error);
		dm_put_device(ti, p->dev);
		p->dev = NULL;
		return ret;
	}
	p->block_sector_shift = p->img.geo.block_shift - SECTOR_SHIFT;
	return 0;
}

void vhdx_chain_close(struct dm_target *ti, struct vhdx_target *vt)
{
	unsigned int i;

	for (i = 0; i < vt->nr_parents; i++) {
		struct vhdx_parent *p = &vt->parents[i];

		if (!p->dev)
			continue;
		vhdx_close(&p->img);
		dm_put_device(ti, p->dev);
		p->dev = NULL;
	}
}

/*
 * Opens the parents named in the table and checks the chain: each link's
 * parent_linkage, sizes, and that the deepest image has no parent.
 */
int vhdx_chain_open(struct dm_target *ti, struct vhdx_target *vt)
{
	const struct vhdx_image *child = &vt->img;
	const char *child_name = vt->dev->name;
	unsigned int i;
	int ret;

	for (i = 0; i < vt->nr_parents; i++) {
		struct vhdx_parent *p = &vt->parents[i];

		if (!child->geo.has_parent) {
			vhdx_set_error(ti, "%s has no parent, but %s is given as its parent",
				       child_name, vt->parent_paths[i]);
			ret = -EINVAL;
			goto fail;
		}
		ret = vhdx_parent_open(ti, vt, p, vt->parent_paths[i]);
		if (!ret)
			ret = vhdx_chain_check(ti, vt, child, child_name, p);
		if (ret)
			goto fail;
		child = &p->img;
		child_name = p->dev->name;
	}
	if (child->geo.has_parent) {
		vhdx_set_error(ti,
			       "%s is a differencing image: name its parent with the feature args 'parent <device>' (relative path in its locator: %s)",
			       child_name,
			       child->locator->relative_path ?: "none");
		ret = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	vhdx_chain_close(ti, vt);
	return ret;
}

/* The layers of the chain: 0 is the child, then the parents in order. */
static struct vhdx_image *vhdx_layer(struct vhdx_target *vt,
				     unsigned int layer,
				     struct block_device **bdev,
				     unsigned int *shift)
{
	if (!layer) {
		*bdev = vt->dev->bdev;
		*shift = vt->block_sector_shift;
		return &vt->img;
	}
	*bdev = vt->parents[layer - 1].dev->bdev;
	*shift = vt->parents[layer - 1].block_sector_shift;
	return &vt->parents[layer - 1].img;
}

/*
 * Where the @len sectors from virtual @sector live: the longest run from
 * @sector that one image of the chain holds in one piece (or that reads as
 * zeros), at most @len sectors.  Without @load (map()) it never blocks: a
 * sector bitmap page that is not cached sets ext->miss; with @load (the
 * read worker) it is read, and a failure sets ext->err.
 */
void vhdx_resolve(struct vhdx_target *vt, sector_t sector, sector_t len,
		  bool load, struct vhdx_extent *ext)
{
	unsigned int layer, shift, lss_shift;
	struct vhdx_image *img;
	struct block_device *bdev;
	sector_t in_block, end;
	u64 index, entry, run;
	bool present;
	int ret;

	ext->bdev = NULL;
	ext->layer = 0;
	ext->bad = false;
	ext->miss = false;
	ext->err = 0;
	for (layer = 0; layer <= vt->nr_parents; layer++) {
		img = vhdx_layer(vt, layer, &bdev, &shift);
		/*
		 * Past the end of a parent smaller than the child, the chain
		 * reads zeros whatever deeper parents hold: that range is no
		 * part of this parent's disk, and its BAT has no entry for it
		 * (nor for the bytes past the end of its last block).
		 */
		end = img->geo.virtual_size >> SECTOR_SHIFT;
		if (sector >= end)
			goto zeros;
		len = min_t(sector_t, len, end - sector);
		in_block = sector & ((1ULL << shift) - 1);
		len = min_t(sector_t, len, (1ULL << shift) - in_block);
		index = vhdx_bat_payload_index(&img->geo, sector >> shift);
		entry = vhdx_bat_get(img, index);
		switch (vhdx_bat_state(entry)) {
		case VHDX_PAYLOAD_FULLY_PRESENT:
			break;
		case VHDX_PAYLOAD_PARTIALLY_PRESENT:
			if (!img->geo.has_parent) {
				ext->bad = true;
				goto zeros;
			}
			lss_shift = ilog2(img->geo.logical_sector_size) -
				    SECTOR_SHIFT;
			ret = vhdx_bitmap_lookup(img, sector >> lss_shift,
						 len >> lss_shift, load,
						 &present, &run);
			if (ret == -EAGAIN) {
				ext->miss = true;
				goto zeros;
			}
			if (ret) {
				ext->err = ret;
				ext->layer = layer;
				goto zeros;
			}
			len = run << lss_shift;
			if (present)
				break;
			continue;
		case VHDX_PAYLOAD_NOT_PRESENT:
			continue;
		default:
			/*
			 * ZERO, UNMAPPED (3, and 5 of the 0.95 draft) and
			 * UNDEFINED own no data: the image says what the data
			 * is, not its parent, and zeros never leak old data.
			 * The block's file offset is never followed.
			 */
			goto zeros;
		}
		ext->bdev = bdev;
		ext->layer = layer;
		ext->sector = (vhdx_bat_offset(entry) >> SECTOR_SHIFT) + in_block;
		break;
	}
zeros:
	ext->len = len;
}

/* Bounce buffer of the read worker: the most it reads at once. */
#define VHDX_BOUNCE_SIZE	(256 * 1024)

/* @len bytes of @buf (zeros if NULL) into @bio at @iter, which advances. */
static void vhdx_copy_to_bio(struct bio *bio, struct bvec_iter *iter,
			     const u8 *buf, unsigned int len)
{
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *iter);
		unsigned int n = min(len, bv.bv_len);

		bv.bv_len = n;
		if (buf) {
			memcpy_to_bvec(&bv, buf);
			buf += n;
		} else {
			memzero_bvec(&bv);
		}
		bio_advance_iter_single(bio, iter, n);
		len -= n;
	}
}

/*
 * A read that map() could not resolve without I/O.  Resolving it here
 * loads the bitmap pages it needs.  If one image holds it whole it is
 * remapped as map() would have; otherwise (dm_accept_partial_bio() is
 * only allowed in map()) each piece is read through the bounce buffer.
 * The bio stays pinned (vhdx_pin()) until it ends, as a remapped one does.
 */
static void vhdx_read_deferred(struct vhdx_target *vt, struct bio *bio)
{
	sector_t sector = vhdx_bio_sector(vt, bio), left = bio_sectors(bio);
	struct bvec_iter iter = bio->bi_iter;
	blk_status_t status = BLK_STS_OK;
	struct vhdx_extent ext;
	sector_t done, n;
	int ret;

	vhdx_resolve(vt, sector, left, true, &ext);
	if (!ext.err && !ext.bad && ext.bdev && ext.len == left) {
		bio_set_dev(bio, ext.bdev);
		bio->bi_iter.bi_sector = ext.sector;
		dm_submit_bio_remap(bio, NULL);
		return;
	}
	for (;;) {
		if (ext.err) {
			DMERR_LIMIT("%s: sector %llu: %s", vhdx_name(vt),
				    (unsigned long long)sector,
				    ext.layer ? vt->parents[ext.layer - 1].img.error :
						vt->img.error);
			status = errno_to_blk_status(ext.err);
			break;
		}
		if (ext.bad) {
			DMERR_LIMIT("%s: sector %llu: partially present block without a parent",
				    vhdx_name(vt), (unsigned long long)sector);
			status = BLK_STS_IOERR;
			break;
		}
		for (done = 0; done < ext.len; done += n) {
			n = min_t(sector_t, ext.len - done,
				  VHDX_BOUNCE_SIZE >> SECTOR_SHIFT);
			if (ext.bdev) {
				ret = vhdx_dm_io(vt->io_client, ext.bdev,
						 REQ_OP_READ,
						 (u64)(ext.sector + done) << SECTOR_SHIFT,
						 vt->bounce, n << SECTOR_SHIFT);
				if (ret) {
					status = errno_to_blk_status(ret);
					goto out;
				}
			}
			vhdx_copy_to_bio(bio, &iter, ext.bdev ? vt->bounce : NULL,
					 n << SECTOR_SHIFT);
		}
		sector += ext.len;
		left -= ext.len;
		if (!left)
			break;
		vhdx_resolve(vt, sector, left, true, &ext);
	}
out:
	bio->bi_status = status;
	bio_endio(bio);
}

static void vhdx_read_worker(struct work_struct *work)
{
	struct vhdx_target *vt = container_of(work, struct vhdx_target,
					      read_work);
	/* Reclaim may read through this very device. */
	unsigned int noio = memalloc_noio_save();
	struct bio_list bios;
	struct bio *bio;

	spin_lock_irq(&vt->read_lock);
	bios = vt->read_deferred;
	bio_list_init(&vt->read_deferred);
	spin_unlock_irq(&vt->read_lock);
	while ((bio = bio_list_pop(&bios))) {
		vhdx_read_deferred(vt, bio);
		cond_resched();
	}
	memalloc_noio_restore(noio);
}

void vhdx_defer_read(struct vhdx_target *vt, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&vt->read_lock, flags);
	bio_list_add(&vt->read_deferred, bio);
	spin_unlock_irqrestore(&vt->read_lock, flags);
	queue_work(vt->read_wq, &vt->read_work);
}

int vhdx_reader_init(struct vhdx_target *vt)
{
	spin_lock_init(&vt->read_lock);
	bio_list_init(&vt->read_deferred);
	INIT_WORK(&vt->read_work, vhdx_read_worker);
	vt->bounce = kvmalloc(VHDX_BOUNCE_SIZE, GFP_KERNEL);
	if (!vt->bounce)
		return -ENOMEM;
	vt->read_wq = alloc_ordered_workqueue("dm-vhdx-read", WQ_MEM_RECLAIM);
	if (!vt->read_wq) {
		kvfree(vt->bounce);
		vt->bounce = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* With no bio in flight: the destructor. */
void vhdx_reader_exit(struct vhdx_target *vt)
{
	if (vt->read_wq) {
		destroy_workqueue(vt->read_wq);
		vt->read_wq = NULL;
	}
	kvfree(vt->bounce);
	vt->bounce = NULL;
}
