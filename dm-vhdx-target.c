// SPDX-License-Identifier: GPL-2.0
/*
 * dm-vhdx: a device-mapper target presenting a VHDX image (MS-VHDX) held on
 * a block device as a virtual disk.
 *
 * The table constructor opens the image through the format code in vhdx/,
 * which validates every structure, replays a dirty log and loads the BAT
 * into memory; map() then resolves each bio with one BAT lookup.  Writes
 * that need a new block or a commit go to the worker in dm-vhdx-writer.c.
 */
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/module.h>
#include <linux/sched/mm.h>

#include "dm-vhdx.h"

#define VHDX_DEFAULT_COMMIT_MS	1000

/*
 * The sector bitmap cache of each image of a table (vhdx/bitmap.c), read
 * when the table is loaded.  A few pages are enough for progress: the
 * budget only bounds what stays cached.
 */
static unsigned int bitmap_cache_kb = VHDX_BITMAP_CACHE_DEFAULT / 1024;
module_param(bitmap_cache_kb, uint, 0644);
MODULE_PARM_DESC(bitmap_cache_kb,
		 "Sector bitmap cache per image of a differencing chain, in KiB (default 16384)");

u64 vhdx_bitmap_budget(void)
{
	/* 0 would mean the default to vhdx_bitmaps_load(): one page instead. */
	return max_t(u64, (u64)READ_ONCE(bitmap_cache_kb) * 1024, 1);
}

/*
 * dm core prints ti->error after the constructor has returned and freed
 * everything it allocated, so a message with values in it needs storage
 * that outlives the target.  A small ring is enough: only a burst of more
 * than VHDX_ERROR_SLOTS concurrent failing constructors could reuse a slot
 * before it is printed, and the last byte of each slot is never anything
 * but NUL, so a reused slot is garbled at worst, never unterminated.
 */
#define VHDX_ERROR_SLOTS 8
static char vhdx_error_ring[VHDX_ERROR_SLOTS][VHDX_ERROR_MAX];
static atomic_t vhdx_error_next = ATOMIC_INIT(0);

void vhdx_set_error(struct dm_target *ti, const char *fmt, ...)
{
	unsigned int slot = (unsigned int)atomic_inc_return(&vhdx_error_next) %
			    VHDX_ERROR_SLOTS;
	char *msg = vhdx_error_ring[slot];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, VHDX_ERROR_MAX, fmt, args);
	va_end(args);
	ti->error = msg;
}

const char *vhdx_name(struct vhdx_target *vt)
{
	return dm_device_name(dm_table_get_md(vt->ti->table));
}

int vhdx_dm_io(struct dm_io_client *client, struct block_device *bdev,
	       blk_opf_t opf, u64 offset, void *buf, size_t len)
{
	struct dm_io_region region = {
		.bdev = bdev,
		.sector = offset >> SECTOR_SHIFT,
		.count = len >> SECTOR_SHIFT,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = is_vmalloc_addr(buf) ? DM_IO_VMA : DM_IO_KMEM,
		.mem.ptr.addr = buf,
		.client = client,
	};

	return dm_io(&req, 1, &region, NULL, IOPRIO_DEFAULT);
}

static int vhdx_io_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct vhdx_target *vt = priv;

	return vhdx_dm_io(vt->io_client, vt->dev->bdev, REQ_OP_READ, offset,
			  buf, len);
}

static int vhdx_io_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct vhdx_target *vt = priv;

	/* dm_io() takes a mutable pointer but does not write to the buffer. */
	return vhdx_dm_io(vt->io_client, vt->dev->bdev,
			  REQ_OP_WRITE | REQ_SYNC, offset, (void *)buf, len);
}

/*
 * A commit's log entry: one request, so that a device with FUA needs one
 * flush for it; the block layer emulates FUA where the device has none.
 */
static int vhdx_io_write_fua(void *priv, u64 offset, const void *buf,
			     size_t len, bool preflush)
{
	struct vhdx_target *vt = priv;
	blk_opf_t opf = REQ_OP_WRITE | REQ_SYNC | REQ_FUA;

	if (preflush)
		opf |= REQ_PREFLUSH;
	return vhdx_dm_io(vt->io_client, vt->dev->bdev, opf, offset,
			  (void *)buf, len);
}

static int vhdx_io_flush(void *priv)
{
	struct vhdx_target *vt = priv;

	return blkdev_issue_flush(vt->dev->bdev);
}

static int vhdx_parse_feature(struct dm_target *ti, struct vhdx_target *vt,
			      const char *arg, unsigned int *count,
			      struct dm_arg_set *as)
{
	size_t prefix = str_has_prefix(arg, "commit_time:");

	if (!strcmp(arg, "parent")) {
		if (!*count || !as->argc) {
			vhdx_set_error(ti, "Feature 'parent' needs a device");
			return -EINVAL;
		}
		if (vt->nr_parents == VHDX_MAX_PARENTS) {
			vhdx_set_error(ti, "More than %u parents", VHDX_MAX_PARENTS);
			return -EINVAL;
		}
		(*count)--;
		vt->parent_paths[vt->nr_parents++] = dm_shift_arg(as);
		return 0;
	}
	if (!strcmp(arg, "no_linkage_check")) {
		vt->skip_linkage_check = true;
		return 0;
	}

	if (prefix) {
		if (kstrtouint(arg + prefix, 10, &vt->commit_ms) ||
		    vt->commit_ms > 3600 * MSEC_PER_SEC) {
			vhdx_set_error(ti, "Invalid commit_time (ms, at most 3600000): %s",
				       arg);
			return -EINVAL;
		}
		return 0;
	}
	vhdx_set_error(ti, "Unknown feature argument: %s", arg);
	return -EINVAL;
}

static int vhdx_parse_features(struct dm_target *ti, struct vhdx_target *vt,
			       struct dm_arg_set *as)
{
	static const struct dm_arg count_arg = {
		0, 2 * VHDX_MAX_PARENTS + 2, "Invalid number of feature arguments"
	};
	unsigned int count;
	int ret;

	vt->commit_ms = VHDX_DEFAULT_COMMIT_MS;
	if (!as->argc)
		return 0;
	ret = dm_read_arg_group(&count_arg, as, &count, &ti->error);
	if (ret)
		return ret;
	while (count--) {
		ret = vhdx_parse_feature(ti, vt, dm_shift_arg(as), &count, as);
		if (ret)
			return ret;
	}
	if (as->argc) {
		vhdx_set_error(ti, "Unexpected argument after the features: %s",
			       dm_shift_arg(as));
		return -EINVAL;
	}
	return 0;
}

static int vhdx_check_table(struct dm_target *ti, struct vhdx_target *vt)
{
	const struct vhdx_geometry *geo = &vt->img.geo;
	sector_t sectors = geo->virtual_size >> SECTOR_SHIFT;
	unsigned int dev_lbs = bdev_logical_block_size(vt->dev->bdev);

	if (ti->len != sectors) {
		vhdx_set_error(ti,
			       "Table length %llu does not match the virtual disk size: use %llu (%llu bytes)",
			       (unsigned long long)ti->len,
			       (unsigned long long)sectors,
			       (unsigned long long)geo->virtual_size);
		return -EINVAL;
	}
	if (dev_lbs > geo->logical_sector_size) {
		vhdx_set_error(ti,
			       "Device logical block size %u is larger than the image's logical sector size %u",
			       dev_lbs, geo->logical_sector_size);
		return -EINVAL;
	}
	return 0;
}

/*
 * Opens the image, or, while another table of the same mapped device still
 * owns it (a reload before the old table is suspended), only reads it
 * without writing: the real open waits for preresume, when the old table
 * has committed and emptied the log.
 */
static int vhdx_load(struct vhdx_target *vt, bool probe)
{
	struct block_device *bdev = vt->dev->bdev;
	bool read_only = vt->read_only || probe;
	int ret;

	vt->io = (struct vhdx_io) {
		.priv = vt,
		.read = vhdx_io_read,
		.write = read_only ? NULL : vhdx_io_write,
		.flush = read_only ? NULL : vhdx_io_flush,
		.write_fua = read_only ? NULL : vhdx_io_write_fua,
	};
	vt->img.accept_parent = true;
	vt->img.bitmap_budget = vhdx_bitmap_budget();
	ret = vhdx_open(&vt->img, &vt->io, bdev_nr_bytes(bdev), read_only);
	if (ret || read_only)
		return ret;
	ret = vhdx_txn_init(&vt->img);
	if (ret)
		vhdx_close(&vt->img);
	return ret;
}

static void vhdx_unload(struct vhdx_target *vt)
{
	vhdx_txn_free(&vt->img);
	vhdx_close(&vt->img);
}

static int vhdx_open_image(struct dm_target *ti, struct vhdx_target *vt)
{
	struct block_device *bdev = vt->dev->bdev;
	int ret;

	if (bdev_logical_block_size(bdev) > VHDX_IO_ALIGN) {
		vhdx_set_error(ti, "Device logical block size %u exceeds %llu",
			       bdev_logical_block_size(bdev), VHDX_IO_ALIGN);
		return -EINVAL;
	}
	ret = vhdx_load(vt, vt->reopen);
	if (ret) {
		vhdx_set_error(ti, "%s", vt->img.error);
		return ret;
	}
	ret = vhdx_check_table(ti, vt);
	if (!ret && !vt->read_only) {
		ret = vhdx_writer_init(vt);
		if (ret)
			vhdx_set_error(ti, "%s", vt->img.error);
	}
	if (ret)
		vhdx_unload(vt);
	return ret;
}

/*
 * Every table of this target, by device: two mapped devices writing one
 * image would corrupt it, and a reload of the same mapped device must not
 * open the image while the old table may still write to it.
 */
static DEFINE_MUTEX(vhdx_registry_lock);
static LIST_HEAD(vhdx_registry);

static int vhdx_register(struct dm_target *ti, struct vhdx_target *vt)
{
	struct mapped_device *md = dm_table_get_md(ti->table);
	struct vhdx_target *other;
	int ret = 0;

	mutex_lock(&vhdx_registry_lock);
	list_for_each_entry(other, &vhdx_registry, node) {
		if (other->dev->bdev != vt->dev->bdev)
			continue;
		if (dm_table_get_md(other->ti->table) == md) {
			vt->reopen = true;
		} else if (!vt->read_only || !other->read_only) {
			vhdx_set_error(ti, "%s is already mapped by %s%s",
				       vt->dev->name, vhdx_name(other),
				       other->read_only ? "" : " read-write");
			ret = -EBUSY;
			break;
		}
	}
	if (!ret)
		list_add(&vt->node, &vhdx_registry);
	mutex_unlock(&vhdx_registry_lock);
	return ret;
}

static bool vhdx_uses_as_parent(const struct vhdx_target *vt,
				const struct block_device *bdev)
{
	unsigned int i;

	for (i = 0; vt->parents && i < vt->nr_parents; i++)
		if (vt->parents[i].dev && vt->parents[i].dev->bdev == bdev)
			return true;
	return false;
}

/*
 * Under vhdx_registry_lock: a table that writes must not be of an image
 * that a published table reads as a parent.
 */
static int vhdx_refuse_parent(struct dm_target *ti, struct vhdx_target *vt)
{
	struct vhdx_target *other;

	if (vt->read_only)
		return 0;
	list_for_each_entry(other, &vhdx_registry, node) {
		if (other->published && vhdx_uses_as_parent(other, vt->dev->bdev)) {
			vhdx_set_error(ti, "%s is a parent image in %s: it cannot be written",
				       vt->dev->name, vhdx_name(other));
			return -EBUSY;
		}
	}
	return 0;
}

/*
 * Before the image is opened, which may replay its log: a parent in a
 * loaded chain must not change under its children at all.
 */
static int vhdx_check_not_parent(struct dm_target *ti, struct vhdx_target *vt)
{
	int ret;

	mutex_lock(&vhdx_registry_lock);
	ret = vhdx_refuse_parent(ti, vt);
	mutex_unlock(&vhdx_registry_lock);
	return ret;
}

/*
 * The last step of the constructor: no table may write an image that is a
 * parent in another.  Parents are compared only between published tables,
 * whose parents stay open until they are unpublished; publishing is
 * atomic, so of two tables loaded at once the later one sees the other.
 */
static int vhdx_publish(struct dm_target *ti, struct vhdx_target *vt)
{
	struct vhdx_target *other;
	int ret = 0;

	mutex_lock(&vhdx_registry_lock);
	list_for_each_entry(other, &vhdx_registry, node) {
		if (!other->published)
			continue;
		if (!other->read_only && vhdx_uses_as_parent(vt, other->dev->bdev)) {
			vhdx_set_error(ti, "Parent %s is mapped read-write by %s",
				       other->dev->name, vhdx_name(other));
			ret = -EBUSY;
			break;
		}
	}
	if (!ret)
		ret = vhdx_refuse_parent(ti, vt);
	vt->published = !ret;
	mutex_unlock(&vhdx_registry_lock);
	return ret;
}

static void vhdx_unpublish(struct vhdx_target *vt)
{
	mutex_lock(&vhdx_registry_lock);
	vt->published = false;
	mutex_unlock(&vhdx_registry_lock);
}

static void vhdx_unregister(struct vhdx_target *vt)
{
	mutex_lock(&vhdx_registry_lock);
	list_del(&vt->node);
	mutex_unlock(&vhdx_registry_lock);
}

static void vhdx_target_free(struct vhdx_target *vt)
{
	if (vt->io_client)
		dm_io_client_destroy(vt->io_client);
	if (vt->dev)
		dm_put_device(vt->ti, vt->dev);
	kfree(vt);
}

static int vhdx_open_parents(struct dm_target *ti, struct vhdx_target *vt)
{
	int ret;

	if (vt->nr_parents) {
		vt->parents = kcalloc(vt->nr_parents, sizeof(*vt->parents),
				      GFP_KERNEL);
		if (!vt->parents) {
			ti->error = "Cannot allocate the parents";
			return -ENOMEM;
		}
	}
	ret = vhdx_chain_open(ti, vt);
	if (!ret && vt->img.geo.has_parent) {
		ret = vhdx_reader_init(vt);
		if (ret) {
			ti->error = "Cannot allocate the read worker";
			vhdx_chain_close(ti, vt);
		}
	}
	if (ret) {
		kfree(vt->parents);
		vt->parents = NULL;
	}
	return ret;
}

/* <device> [<#feature args> <feature arg>*] */
static int vhdx_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct vhdx_target *vt;
	int ret;

	if (argc < 1) {
		ti->error = "Invalid argument count: <device> [<#feature args> <feature arg>...]";
		return -EINVAL;
	}
	vt = kzalloc(sizeof(*vt), GFP_KERNEL);
	if (!vt) {
		ti->error = "Cannot allocate the target context";
		return -ENOMEM;
	}
	vt->ti = ti;
	vt->read_only = !(dm_table_get_mode(ti->table) & VHDX_MODE_WRITE);
	dm_consume_args(&as, 1);
	ret = vhdx_parse_features(ti, vt, &as);
	if (ret)
		goto bad;
	ret = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table),
			    &vt->dev);
	if (ret) {
		ti->error = "Device lookup failed";
		goto bad;
	}
	vt->io_client = dm_io_client_create();
	if (IS_ERR(vt->io_client)) {
		ret = PTR_ERR(vt->io_client);
		vt->io_client = NULL;
		ti->error = "Cannot create the dm-io client";
		goto bad;
	}
	ret = vhdx_register(ti, vt);
	if (ret)
		goto bad;
	ret = vhdx_check_not_parent(ti, vt);
	if (!ret)
		ret = vhdx_open_image(ti, vt);
	if (ret)
		goto bad_unregister;
	vt->block_sector_shift = vt->img.geo.block_shift - SECTOR_SHIFT;
	/* No bio crosses a payload block: one BAT lookup maps it whole. */
	ret = dm_set_target_max_io_len(ti, 1U << vt->block_sector_shift);
	if (!ret)
		ret = vhdx_open_parents(ti, vt);
	if (ret)
		goto bad_unload;
	ret = vhdx_publish(ti, vt);
	if (ret) {
		vhdx_reader_exit(vt);
		vhdx_chain_close(ti, vt);
		kfree(vt->parents);
		goto bad_unload;
	}
	ti->num_flush_bios = 1;
	/*
	 * Flushes and FUA reach map() even over a device without a write
	 * cache, as in dm-thin: they must commit the BAT and the bitmaps,
	 * which the device's own ordering cannot make stable.
	 */
	ti->flush_supported = true;
	ti->per_io_data_size = sizeof(struct vhdx_bio_ctx);
	/*
	 * The writer and the read worker remap bios that map() deferred;
	 * dm_submit_bio_remap() starts their accounting then, not dm core
	 * at DM_MAPIO_SUBMITTED, which could race with it.
	 */
	ti->accounts_remapped_io = true;
	/*
	 * Discards give blocks back, which a fixed image (LeaveBlockAllocated)
	 * must not do; in a differencing image they leave ZERO blocks, never
	 * absent ones that would show the parent again.  The device below
	 * need not support discard itself.
	 */
	vt->discards = !vt->read_only &&
		       !(vt->img.file_flags & VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED);
	if (vt->discards) {
		ti->num_discard_bios = 1;
		ti->discards_supported = true;
	}
	/*
	 * Where the device zeroes cheaply, so do we; in a differencing
	 * image the block layer writes zeros as data instead.
	 */
	if (!vt->read_only && !vt->img.geo.has_parent)
		ti->num_write_zeroes_bios = 1;
	ti->private = vt;
	return 0;
bad_unload:
	if (!vt->read_only)
		vhdx_writer_exit(vt);
	vhdx_unload(vt);
bad_unregister:
	vhdx_unregister(vt);
bad:
	vhdx_target_free(vt);
	return ret;
}

static void vhdx_dtr(struct dm_target *ti)
{
	struct vhdx_target *vt = ti->private;

	vhdx_unpublish(vt);
	if (!vt->read_only)
		vhdx_writer_exit(vt);
	vhdx_reader_exit(vt);
	vhdx_chain_close(ti, vt);
	kfree(vt->parents);
	vhdx_unload(vt);
	vhdx_unregister(vt);
	vhdx_target_free(vt);
}

/*
 * One BAT lookup per image: a FULLY_PRESENT block is remapped as it is,
 * the states that own no data read as zeros without touching the device.
 * Through a chain, a bio may span runs that live in different images: map
 * the first run and let dm core send the rest again.  A sector bitmap page
 * that is not cached is loaded by the read worker, which serves the bio.
 */
static int vhdx_map_read(struct vhdx_target *vt, struct bio *bio)
{
	struct vhdx_extent ext;

	vhdx_pin(vt, bio);
	vhdx_resolve(vt, vhdx_bio_sector(vt, bio), bio_sectors(bio), false,
		     &ext);
	if (ext.miss) {
		/* Still pinned: the worker reads the BAT again. */
		vhdx_defer_read(vt, bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (ext.layer || !ext.bdev)
		vhdx_unpin(vt, bio);
	if (ext.err) {
		DMERR_LIMIT("%s: sector %llu: sector bitmap lookup failed: %d",
			    vhdx_name(vt),
			    (unsigned long long)vhdx_bio_sector(vt, bio), ext.err);
		return DM_MAPIO_KILL;
	}
	if (ext.bad) {
		DMERR_LIMIT("%s: sector %llu: partially present block without a parent",
			    vhdx_name(vt),
			    (unsigned long long)vhdx_bio_sector(vt, bio));
		return DM_MAPIO_KILL;
	}
	if (ext.len < bio_sectors(bio))
		dm_accept_partial_bio(bio, ext.len);
	if (!ext.bdev) {
		zero_fill_bio(bio);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	bio_set_dev(bio, ext.bdev);
	bio->bi_iter.bi_sector = ext.sector;
	return DM_MAPIO_REMAPPED;
}

/*
 * In place if the block is there and nothing has to happen first: the
 * session's header update, an allocation, or, for FUA, a commit.
 */
static int vhdx_map_write(struct vhdx_target *vt, struct bio *bio)
{
	u64 entry;

	if (test_bit(VHDX_FAILED, &vt->flags))
		return DM_MAPIO_KILL;
	if (!test_bit(VHDX_SESSION, &vt->flags))
		goto defer;
	entry = vhdx_pin_entry(vt, bio,
			       vhdx_payload_index(vt, vhdx_bio_sector(vt, bio)));
	if (vhdx_bat_state(entry) == VHDX_PAYLOAD_PARTIALLY_PRESENT &&
	    vt->img.geo.has_parent)
		vhdx_mark_on_completion(vt, bio);
	else if (vhdx_bat_state(entry) != VHDX_PAYLOAD_FULLY_PRESENT)
		goto defer;
	/* vhdx_bat_get() ordered the entry before this: see vhdx_bat_update(). */
	if ((bio->bi_opf & REQ_FUA) && vhdx_txn_dirty(&vt->img))
		goto defer;
	vhdx_remap(vt, bio, entry);
	return DM_MAPIO_REMAPPED;
defer:
	vhdx_unpin(vt, bio);
	vhdx_defer_bio(vt, bio);
	return DM_MAPIO_SUBMITTED;
}

static int vhdx_map(struct dm_target *ti, struct bio *bio)
{
	struct vhdx_target *vt = ti->private;

	vhdx_ctx(bio)->pinned = false;
	vhdx_ctx(bio)->set_bits = false;
	vhdx_ctx(bio)->allocating = false;
	/* The block layer drops REQ_FUA from the clone where the device has no cache. */
	vhdx_ctx(bio)->fua = bio->bi_opf & REQ_FUA;
	if (bio_op(bio) == REQ_OP_READ)
		return vhdx_map_read(vt, bio);
	if (op_is_flush(bio->bi_opf) && !bio_sectors(bio)) {
		/* Stable data is not enough while the BAT is not. */
		if (!vt->read_only && vhdx_txn_dirty(&vt->img)) {
			vhdx_defer_bio(vt, bio);
			return DM_MAPIO_SUBMITTED;
		}
		bio_set_dev(bio, vt->dev->bdev);
		return DM_MAPIO_REMAPPED;
	}
	if ((bio_op(bio) == REQ_OP_DISCARD && vt->discards) ||
	    (bio_op(bio) == REQ_OP_WRITE_ZEROES && ti->num_write_zeroes_bios)) {
		vhdx_defer_bio(vt, bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (bio_op(bio) != REQ_OP_WRITE || vt->read_only) {
		DMERR_LIMIT("%s: unsupported operation %u", vhdx_name(vt),
			    bio_op(bio));
		return DM_MAPIO_KILL;
	}
	return vhdx_map_write(vt, bio);
}

/*
 * A write into a partially present block makes its sectors present only
 * once its data is on the device: until then a read of them still gets
 * the parent's data, never what the child's block held before.  A new
 * block enters the BAT only then, for the same reason.  Where the bitmap
 * page is cached the sectors are marked here; otherwise the worker ends
 * the bio, which brings it back here with both flags clear.
 */
static int vhdx_end_io(struct dm_target *ti, struct bio *bio,
		       blk_status_t *error)
{
	struct vhdx_target *vt = ti->private;
	struct vhdx_bio_ctx *ctx = vhdx_ctx(bio);

	/*
	 * A failed allocating write still has its space to give back; its
	 * zeroing may still be running.
	 */
	if (ctx->allocating) {
		vhdx_alloc_part_done(vt, bio);
		return DM_ENDIO_INCOMPLETE;
	}
	if (ctx->set_bits && !*error) {
		/* A FUA write must wait for the commit: the worker's job. */
		if (ctx->fua || !vhdx_mark_present(vt, bio)) {
			vhdx_completed(vt, bio);
			return DM_ENDIO_INCOMPLETE;
		}
	}
	ctx->set_bits = false;
	vhdx_unpin(vt, bio);
	return DM_ENDIO_DONE;
}

/*
 * The current header on the device, as an open picks it: the valid one
 * with the higher sequence number.  Two 4 KiB reads.
 */
static int vhdx_read_header_id(struct vhdx_target *vt,
			       struct vhdx_header_id *id)
{
	static const u64 offsets[] = { VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET };
	struct vhdx_header *h;
	unsigned int i, noio;
	bool found = false;
	const char *why;
	int ret = 0;

	/* Called while the device is suspended: no reclaim may wait on it. */
	noio = memalloc_noio_save();
	h = vhdx_alloc(VHDX_HEADER_SIZE);
	memalloc_noio_restore(noio);
	if (!h)
		return -ENOMEM;
	for (i = 0; i < ARRAY_SIZE(offsets); i++) {
		ret = vt->io.read(vt->io.priv, offsets[i], h, VHDX_HEADER_SIZE);
		if (ret)
			break;
		if (vhdx_header_check(h, &why) ||
		    (found && le64_to_cpu(h->sequence_number) <= id->sequence_number))
			continue;
		id->sequence_number = le64_to_cpu(h->sequence_number);
		id->file_write_guid = h->file_write_guid;
		id->data_write_guid = h->data_write_guid;
		id->log_guid = h->log_guid;
		found = true;
	}
	vhdx_free(h);
	if (!ret && !found)
		ret = -EINVAL;
	return ret;
}

/*
 * After this, until the next resume, nothing of this table writes: the
 * writer committed and emptied the log, and a table that replaces this
 * one (a reload) opens the image only at its own preresume.  What is on
 * disk now is noted, so that a resume of this very table can tell
 * whether someone changed the image meanwhile (see vhdx_preresume()).
 */
static void vhdx_postsuspend(struct dm_target *ti)
{
	struct vhdx_target *vt = ti->private;

	if (!vt->read_only)
		vhdx_writer_stop(vt);
	vt->on_disk_known = !vhdx_read_header_id(vt, &vt->on_disk);
	vt->suspended = true;
}

/*
 * A table resumed after a suspend, without a reload, still holds the BAT,
 * sector bitmaps and geometry it had: if a tool changed the image in
 * between (vhdxsetup resize that failed after writing, then resumed the
 * old table), writing with that state would corrupt the image.  Any
 * change of the image updates its header (a new sequence number and
 * FileWriteGuid), so comparing the current header is enough.
 */
static int vhdx_check_unchanged(struct vhdx_target *vt)
{
	struct vhdx_header_id now;
	int ret = vhdx_read_header_id(vt, &now);

	if (ret) {
		DMERR("%s: %s (%d): not resumed", vhdx_name(vt),
		      "cannot read the headers to check that the image did not change while suspended",
		      ret);
		return ret;
	}
	if (vt->on_disk_known &&
	    now.sequence_number == vt->on_disk.sequence_number &&
	    guid_equal(&now.file_write_guid, &vt->on_disk.file_write_guid) &&
	    guid_equal(&now.data_write_guid, &vt->on_disk.data_write_guid) &&
	    guid_equal(&now.log_guid, &vt->on_disk.log_guid))
		return 0;
	DMERR("%s: %s (header sequence number %llu, now %llu): %s",
	      vhdx_name(vt), "the image changed while the device was suspended",
	      (unsigned long long)vt->on_disk.sequence_number,
	      (unsigned long long)now.sequence_number,
	      "not resumed with a stale BAT; load the table again");
	return -ESTALE;
}

/* The old table of a reload is suspended now: open the image for real. */
static int vhdx_reopen(struct vhdx_target *vt)
{
	struct vhdx_geometry geo = vt->img.geo;
	int ret;

	vhdx_unload(vt);
	ret = vhdx_load(vt, false);
	if (!ret && (vt->img.geo.virtual_size != geo.virtual_size ||
		     vt->img.geo.block_size != geo.block_size)) {
		vhdx_unload(vt);
		ret = vhdx_fail(&vt->img, -EINVAL,
				"the image's geometry changed since the table was loaded");
	}
	if (ret) {
		DMERR("%s: cannot open the image: %s", vhdx_name(vt),
		      vt->img.error);
		return ret;
	}
	vt->reopen = false;
	/* Another table wrote the image meanwhile: nothing is known zero. */
	vt->zero_from = 0;
	vt->zero_end = 0;
	return 0;
}

static int vhdx_preresume(struct dm_target *ti)
{
	struct vhdx_target *vt = ti->private;
	u64 size = bdev_nr_bytes(vt->dev->bdev);
	int ret;

	if (vt->reopen) {
		ret = vhdx_reopen(vt);
		if (ret)
			return ret;
	} else if (vt->suspended) {
		ret = vhdx_check_unchanged(vt);
		if (ret)
			return ret;
	}
	vt->suspended = false;
	/* The device may have grown (truncate -s, losetup -c) meanwhile. */
	if (size > vt->img.device_size) {
		vt->img.device_size = size;
		clear_bit(VHDX_NO_SPACE, &vt->flags);
	}
	if (!vt->read_only)
		vhdx_writer_zero_tail(vt);
	return 0;
}

static const char *vhdx_health(struct vhdx_target *vt)
{
	if (test_bit(VHDX_FAILED, &vt->flags))
		return "fail";
	if (test_bit(VHDX_NO_SPACE, &vt->flags))
		return "no_space";
	return "ok";
}

static const char *vhdx_log_state_name(enum vhdx_log_state state)
{
	switch (state) {
	case VHDX_LOG_CLEAN:
		return "clean";
	case VHDX_LOG_REPLAYED:
		return "replayed";
	case VHDX_LOG_REPLAYED_IN_MEMORY:
		return "replayed-in-memory";
	}
	return "unknown";
}

static void vhdx_emit_table(struct vhdx_target *vt, char *result,
			    unsigned int maxlen, unsigned int *size)
{
	unsigned int sz = *size, i;
	unsigned int count = 2 * vt->nr_parents + vt->skip_linkage_check +
			     (vt->commit_ms != VHDX_DEFAULT_COMMIT_MS);

	DMEMIT("%s %u", vt->dev->name, count);
	for (i = 0; i < vt->nr_parents; i++)
		DMEMIT(" parent %s", vt->parents[i].dev->name);
	if (vt->skip_linkage_check)
		DMEMIT(" no_linkage_check");
	if (vt->commit_ms != VHDX_DEFAULT_COMMIT_MS)
		DMEMIT(" commit_time:%u", vt->commit_ms);
	*size = sz;
}

/*
 * Of the whole chain: KiB of sector bitmap cache in use, its budget, and
 * how many pages were loaded since the table was.  Read without the
 * cache locks: a snapshot, good enough for a status line.
 */
static void vhdx_emit_bitmap_cache(struct vhdx_target *vt, char *result,
				   unsigned int maxlen, unsigned int *size)
{
	u64 used = 0, budget = 0, loads = 0;
	unsigned int sz = *size, i;
	struct vhdx_image *img;

	for (i = 0; i <= vt->nr_parents; i++) {
		img = i ? &vt->parents[i - 1].img : &vt->img;
		if (!img->bitmaps)
			continue;
		used += READ_ONCE(img->bmc.used);
		budget += img->bmc.budget;
		loads += READ_ONCE(img->bmc.loads);
	}
	DMEMIT(" %llu/%llu %llu", (unsigned long long)(used >> 10),
	       (unsigned long long)(budget >> 10), (unsigned long long)loads);
	*size = sz;
}

static void vhdx_status(struct dm_target *ti, status_type_t type,
			unsigned int status_flags, char *result,
			unsigned int maxlen)
{
	struct vhdx_target *vt = ti->private;
	const struct vhdx_geometry *geo = &vt->img.geo;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		DMEMIT("%u %u %u %llu/%llu %s %s %s",
		       geo->logical_sector_size, geo->physical_sector_size,
		       1U << vt->block_sector_shift,
		       (unsigned long long)READ_ONCE(vt->img.allocated_blocks),
		       (unsigned long long)geo->payload_blocks,
		       vhdx_log_state_name(vt->img.log_state),
		       vt->read_only ? "ro" : "rw", vhdx_health(vt));
		if (geo->has_parent)
			vhdx_emit_bitmap_cache(vt, result, maxlen, &sz);
		break;
	case STATUSTYPE_TABLE:
		vhdx_emit_table(vt, result, maxlen, &sz);
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",device_name=%s,logical_sector_size=%u,log=%s,mode=%s;",
		       vt->dev->name, geo->logical_sector_size,
		       vhdx_log_state_name(vt->img.log_state),
		       vt->read_only ? "ro" : "rw");
		break;
	}
}

static int vhdx_iterate_devices(struct dm_target *ti,
				iterate_devices_callout_fn fn, void *data)
{
	struct vhdx_target *vt = ti->private;

	unsigned int i;
	int ret;

	/* The image file's size, not the virtual size, bounds the device. */
	ret = fn(ti, vt->dev, 0, bdev_nr_sectors(vt->dev->bdev), data);
	for (i = 0; !ret && i < vt->nr_parents; i++)
		ret = fn(ti, vt->parents[i].dev, 0,
			 bdev_nr_sectors(vt->parents[i].dev->bdev), data);
	return ret;
}

static void vhdx_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct vhdx_target *vt = ti->private;
	const struct vhdx_geometry *geo = &vt->img.geo;
	unsigned int physical = max(geo->physical_sector_size,
				    geo->logical_sector_size);

	/*
	 * The stacked limits already hold those of the devices below, whose
	 * logical block size the constructor found no larger than ours.
	 */
	limits->logical_block_size = max(limits->logical_block_size,
					 geo->logical_sector_size);
	limits->physical_block_size = max(limits->physical_block_size, physical);
	limits->io_min = max(limits->io_min, limits->physical_block_size);
	if (vt->discards) {
		limits->discard_granularity = geo->block_size;
		limits->max_hw_discard_sectors = UINT_MAX;
		limits->max_discard_sectors = UINT_MAX;
	}
}

static struct target_type vhdx_target_type = {
	.name = "vhdx",
	.version = { 0, 2, 0 },
	.module = THIS_MODULE,
	.ctr = vhdx_ctr,
	.dtr = vhdx_dtr,
	.map = vhdx_map,
	.end_io = vhdx_end_io,
	.postsuspend = vhdx_postsuspend,
	.preresume = vhdx_preresume,
	.status = vhdx_status,
	.iterate_devices = vhdx_iterate_devices,
	.io_hints = vhdx_io_hints,
};

static int __init dm_vhdx_init(void)
{
	int ret = dm_register_target(&vhdx_target_type);

	if (ret)
		DMERR("register failed %d", ret);
	return ret;
}

static void __exit dm_vhdx_exit(void)
{
	dm_unregister_target(&vhdx_target_type);
}

module_init(dm_vhdx_init);
module_exit(dm_vhdx_exit);

MODULE_DESCRIPTION(DM_NAME " target presenting a VHDX image as a block device");
MODULE_AUTHOR("The dm-vhdx developers");
MODULE_LICENSE("GPL");
