// SPDX-License-Identifier: GPL-2.0
/*
 * Opening an image: the order of the steps is the spec's.  Nothing but the
 * headers and the log may be read before a dirty log has been replayed, and
 * everything read afterwards goes through the replayed updates.
 */
#include "parent.h"

int vhdx_fail(struct vhdx_image *img, int err, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(img->error, sizeof(img->error), fmt, args);
	va_end(args);
	return err;
}

int vhdx_read(struct vhdx_image *img, u64 offset, void *buf, size_t len)
{
	int ret = img->io->read(img->io->priv, offset, buf, len);

	if (!ret && img->overlay.count)
		vhdx_overlay_apply(&img->overlay, offset, buf, len);
	return ret;
}

/*
 * An in-memory replay can only stand in for the metadata this code reads;
 * payload bytes are read straight from the device by the caller.
 */
static int vhdx_overlay_check_metadata_only(struct vhdx_image *img)
{
	const struct vhdx_geometry *geo = &img->geo;
	u64 chunks = geo->has_parent ? geo->bitmap_blocks : 0, chunk, entry;
	struct vhdx_region *allowed;
	u32 count = 3;
	u64 bad;
	bool ok;

	allowed = vhdx_alloc((count + chunks) * sizeof(*allowed));
	if (!allowed)
		return vhdx_fail(img, -ENOMEM, "log: out of memory");
	allowed[0].offset = VHDX_REGION_TABLE1_OFFSET;
	allowed[0].length = 2 * VHDX_REGION_TABLE_SIZE;
	allowed[1] = *img->bat_region;
	allowed[2] = *img->metadata_region;
	/* A differencing image also logs its sector bitmaps. */
	for (chunk = 0; chunk < chunks; chunk++) {
		entry = le64_to_cpu(img->bat[vhdx_bat_bitmap_index(geo, chunk)]);
		if (vhdx_bat_state(entry) != VHDX_BITMAP_PRESENT)
			continue;
		allowed[count].offset = vhdx_bat_offset(entry);
		allowed[count++].length = VHDX_BITMAP_BLOCK_SIZE;
	}
	ok = vhdx_overlay_covered_by(&img->overlay, allowed, count, &bad);
	vhdx_free(allowed);
	if (ok)
		return 0;
	return vhdx_fail(img, -EINVAL,
			 "log: an update at %llu lies outside the region tables, BAT, metadata and sector bitmaps, so it cannot be replayed in memory; replay it with a read-write open",
			 (unsigned long long)bad);
}

/* Only a caller that builds chains (accept_parent) takes a parent locator. */
static int vhdx_image_metadata_load(struct vhdx_image *img)
{
	if (!img->accept_parent)
		return vhdx_metadata_load(img);
	img->locator = vhdx_alloc(sizeof(*img->locator));
	if (!img->locator)
		return vhdx_fail(img, -ENOMEM, "metadata: out of memory");
	return vhdx_metadata_load_any(img, img->locator);
}

int vhdx_open(struct vhdx_image *img, const struct vhdx_io *io,
	      u64 device_size, bool read_only)
{
	int ret;

	img->io = io;
	img->device_size = device_size;
	img->read_only = read_only;
	if (device_size < VHDX_HEADER_SECTION_SIZE)
		return vhdx_fail(img, -EINVAL,
				 "device of %llu bytes is too small for a VHDX image",
				 (unsigned long long)device_size);
	ret = vhdx_header_load(img);
	if (!ret)
		ret = vhdx_log_replay(img);
	if (!ret)
		ret = vhdx_region_table_load(img);
	if (!ret)
		ret = vhdx_image_metadata_load(img);
	if (!ret)
		ret = vhdx_bat_load(img);
	if (!ret && img->log_state == VHDX_LOG_REPLAYED_IN_MEMORY)
		ret = vhdx_overlay_check_metadata_only(img);
	if (!ret && img->geo.has_parent)
		ret = vhdx_bitmaps_load(img);
	if (ret)
		vhdx_close(img);
	return ret;
}

/* Frees what vhdx_open allocated; img->error survives for the caller. */
void vhdx_close(struct vhdx_image *img)
{
	vhdx_free(img->bat);
	img->bat = NULL;
	vhdx_free(img->regions);
	img->regions = NULL;
	img->region_count = 0;
	img->bat_region = NULL;
	img->metadata_region = NULL;
	vhdx_overlay_free(&img->overlay);
	vhdx_space_free(img);
	vhdx_bitmaps_free(img);
	if (img->locator) {
		vhdx_locator_free(img->locator);
		vhdx_free(img->locator);
		img->locator = NULL;
	}
}
