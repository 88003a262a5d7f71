// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata region: table, entries and items (parent locator included).
 *
 * Input: the start of a metadata region, at most 1 MiB.  The region handed
 * to the parser is exactly as long as the input, but at least the 64 KiB
 * table, so ASan sees any read past an item that claims to fit.  It is
 * parsed as the module does (differencing refused) and as vhdxsetup does
 * (parent locator parsed), and also loaded through vhdx_metadata_load from
 * a device holding it at 3 MiB, as QEMU places it, in a region rounded up
 * to 1 MiB.  Finally the input itself, exactly as long, is parsed as a
 * parent locator item.
 */
#include "fuzz-common.h"
#include "../../vhdx/parent.h"

#define METADATA_MAX		VHDX_MiB
#define METADATA_OFFSET		(3 * VHDX_MiB)

static void check_parsed(const struct vhdx_image *img)
{
	const struct vhdx_geometry *geo = &img->geo;

	FUZZ_ASSERT(geo->block_size >= VHDX_BLOCK_SIZE_MIN &&
		    geo->block_size <= VHDX_BLOCK_SIZE_MAX &&
		    !(geo->block_size & (geo->block_size - 1)) &&
		    geo->virtual_size && geo->payload_blocks &&
		    geo->chunk_ratio && geo->bat_entries >= geo->payload_blocks,
		    "accepted geometry: virtual size %llu, block size %u",
		    (unsigned long long)geo->virtual_size, geo->block_size);
}

/* Every string is NUL-terminated and the interpreted keys are consistent. */
static void check_locator(const struct vhdx_locator *loc)
{
	u32 i;

	FUZZ_ASSERT(loc->count <= VHDX_LOCATOR_MAX_ENTRIES,
		    "locator: %u entries", loc->count);
	for (i = 0; i < loc->count; i++)
		FUZZ_ASSERT(strlen(loc->kv[i].key) > 0 &&
			    strlen(loc->kv[i].value) > 0,
			    "locator: entry %u is empty", i);
	FUZZ_ASSERT(vhdx_locator_get(loc, VHDX_LOCATOR_PARENT_LINKAGE) &&
		    (loc->relative_path || loc->volume_path ||
		     loc->absolute_win32_path),
		    "locator accepted without linkage or path");
}

static void fuzz_locator(const u8 *data, size_t size)
{
	struct vhdx_image img = { 0 };
	struct vhdx_locator loc;
	u8 *item = fuzz_fit(data, size, size);

	if (!vhdx_locator_parse(&img, item, size, &loc)) {
		check_locator(&loc);
		vhdx_locator_free(&loc);
	}
	free(item);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct vhdx_image img = { 0 };
	struct vhdx_locator loc;
	struct vhdx_region region;
	struct fuzz_dev dev;
	size_t len;
	u8 *buf;

	if (size > METADATA_MAX)
		size = METADATA_MAX;
	len = size < VHDX_METADATA_TABLE_SIZE ? VHDX_METADATA_TABLE_SIZE : size;
	buf = fuzz_fit(data, size, len);
	if (!vhdx_metadata_parse(&img, buf, len)) {
		check_parsed(&img);
		FUZZ_ASSERT(!img.geo.has_parent,
			    "the module's parse accepted HasParent");
	}
	vhdx_close(&img);

	memset(&img, 0, sizeof(img));
	if (!vhdx_metadata_parse_any(&img, buf, len, &loc)) {
		check_parsed(&img);
		FUZZ_ASSERT(img.geo.has_parent == !!loc.count,
			    "HasParent %d but %u locator entries",
			    img.geo.has_parent, loc.count);
		if (loc.count)
			check_locator(&loc);
		vhdx_locator_free(&loc);
	}
	vhdx_close(&img);
	fuzz_locator(data, size);

	memset(&img, 0, sizeof(img));
	region = (struct vhdx_region) {
		.guid = vhdx_guid_metadata_region,
		.offset = METADATA_OFFSET,
		.length = (len + VHDX_MiB - 1) & ~(VHDX_MiB - 1),
		.required = true,
	};
	fuzz_dev_init(&dev, METADATA_OFFSET + region.length, false);
	fuzz_dev_add(&dev, METADATA_OFFSET, buf, len, len);
	img.io = &dev.io;
	img.device_size = dev.size;
	img.metadata_region = &region;
	if (!vhdx_metadata_load(&img))
		check_parsed(&img);
	vhdx_close(&img);
	fuzz_dev_free(&dev);
	free(buf);
	return 0;
}
