// SPDX-License-Identifier: GPL-2.0
/*
 * The BAT checks: entry states, blocks inside the device, no overlaps.
 *
 * Input: a 16 byte geometry, then the BAT entries (missing ones are 0):
 *   byte 0      block size: 1 MiB << (byte % 9)
 *   byte 1      bit 0: 4096 byte logical sectors, bit 1: 4096 byte physical
 *               sectors, bit 2: has a parent, bit 3: no log
 *   bytes 2-5   virtual size in logical sectors, at most 16384 blocks
 *   bytes 6-13  device size in bytes
 * The file has QEMU's layout: log at 1 MiB (1 MiB), the BAT at 2 MiB,
 * rounded up to 1 MiB, then a 1 MiB metadata region.  The BAT is loaded
 * with vhdx_bat_load from a memory device holding it.
 */
#include "fuzz-common.h"

#define GEOMETRY_SIZE	16
#define MAX_BLOCKS	16384
#define BAT_OFFSET	(2 * VHDX_MiB)

static bool geometry(const u8 *g, struct vhdx_geometry *geo, bool *has_log,
		     u64 *device_size)
{
	u32 block_size = VHDX_MiB << (g[0] % 9);
	u32 lss = g[1] & 1 ? 4096 : 512;
	u32 pss = g[1] & 2 ? 4096 : 512;
	u64 max_sectors = ((u64)MAX_BLOCKS * block_size) / lss;
	u64 sectors = fuzz_le32(g + 2);

	sectors = sectors ? (sectors - 1) % max_sectors + 1 : 1;
	*has_log = !(g[1] & 8);
	*device_size = fuzz_le64(g + 6);
	return !vhdx_geometry_init(geo, sectors * lss, block_size, lss, pss,
				   g[1] & 4);
}

static void check_accepted(const struct vhdx_image *img)
{
	u64 i, entry, len;

	FUZZ_ASSERT(img->allocated_blocks <= img->geo.payload_blocks,
		    "%llu allocated blocks of %llu",
		    (unsigned long long)img->allocated_blocks,
		    (unsigned long long)img->geo.payload_blocks);
	for (i = 0; i < img->geo.bat_entries; i++) {
		entry = le64_to_cpu(img->bat[i]);
		if (vhdx_bat_state(entry) != VHDX_PAYLOAD_FULLY_PRESENT &&
		    vhdx_bat_state(entry) != VHDX_PAYLOAD_PARTIALLY_PRESENT)
			continue;
		len = vhdx_bat_offset(entry);
		FUZZ_ASSERT(len >= VHDX_HEADER_SECTION_SIZE &&
			    len < img->device_size,
			    "BAT entry %llu at %llu accepted",
			    (unsigned long long)i, (unsigned long long)len);
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	struct vhdx_image img = { 0 };
	struct vhdx_region *regions;
	static const guid_t log_guid;
	struct fuzz_dev dev;
	u64 bat_bytes, bat_len, device_size;
	bool has_log;
	u8 g[GEOMETRY_SIZE] = { 0 };

	memcpy(g, data, size < GEOMETRY_SIZE ? size : GEOMETRY_SIZE);
	if (!geometry(g, &img.geo, &has_log, &device_size))
		return 0;
	data += size < GEOMETRY_SIZE ? size : GEOMETRY_SIZE;
	size -= size < GEOMETRY_SIZE ? size : GEOMETRY_SIZE;

	bat_bytes = img.geo.bat_entries * sizeof(__le64);
	bat_len = (bat_bytes + VHDX_MiB - 1) & ~(VHDX_MiB - 1);
	regions = calloc(2, sizeof(*regions));
	if (!regions)
		abort();
	regions[0] = (struct vhdx_region) {
		vhdx_guid_bat_region, BAT_OFFSET, bat_len, true };
	regions[1] = (struct vhdx_region) {
		vhdx_guid_metadata_region, BAT_OFFSET + bat_len, VHDX_MiB, true };
	img.regions = regions;
	img.region_count = 2;
	img.bat_region = &regions[0];
	img.metadata_region = &regions[1];
	if (has_log)
		fuzz_header_init(&img.header, 1, &log_guid, VHDX_MiB, VHDX_MiB);
	img.device_size = device_size;

	/* The device itself is unbounded: only img.device_size matters. */
	fuzz_dev_init(&dev, U64_MAX - VHDX_MiB, false);
	fuzz_dev_add(&dev, BAT_OFFSET, data, size, bat_len);
	img.io = &dev.io;
	if (!vhdx_bat_load(&img))
		check_accepted(&img);
	vhdx_close(&img);
	fuzz_dev_free(&dev);
	return 0;
}
