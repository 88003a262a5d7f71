// SPDX-License-Identifier: GPL-2.0
/*
 * The region table.
 *
 * Input: one 64 KiB region table (truncated or zero-padded), then
 * optionally 8 bytes of device size (default 64 GiB, at least 1 MiB).  The
 * header has a 1 MiB log at 1 MiB, as QEMU and Hyper-V write it, so regions
 * can collide with it.  The table is parsed as it is and with its checksum
 * made valid, then loaded from a device whose first copy is the input as it
 * is and whose second copy has the valid checksum.
 */
#include "fuzz-common.h"

static void setup(struct vhdx_image *img, u64 device_size)
{
	static const guid_t log_guid = {{ 1 }};

	memset(img, 0, sizeof(*img));
	img->device_size = device_size;
	fuzz_header_init(&img->header, 1, &log_guid, VHDX_MiB, VHDX_MiB);
}

static void check_parsed(const struct vhdx_image *img)
{
	u32 i;

	FUZZ_ASSERT(img->bat_region && img->metadata_region,
		    "parsed without BAT or metadata region");
	for (i = 0; i < img->region_count; i++) {
		const struct vhdx_region *r = &img->regions[i];

		FUZZ_ASSERT(r->offset >= VHDX_HEADER_SECTION_SIZE &&
			    r->offset <= img->device_size &&
			    r->length <= img->device_size - r->offset,
			    "region %u at %llu, length %llu accepted", i,
			    (unsigned long long)r->offset,
			    (unsigned long long)r->length);
	}
}

static void parse(const u8 *table, u64 device_size)
{
	struct vhdx_image img;

	setup(&img, device_size);
	if (!vhdx_region_table_parse(&img, table, 0))
		check_parsed(&img);
	vhdx_close(&img);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	u64 device_size = 64 * VHDX_GiB;
	struct vhdx_image img;
	struct fuzz_dev dev;
	u8 *raw, *fixed;

	/* vhdx_open refuses a device smaller than the header section. */
	if (size >= VHDX_REGION_TABLE_SIZE + sizeof(u64))
		device_size = fuzz_le64(data + VHDX_REGION_TABLE_SIZE);
	if (device_size < VHDX_HEADER_SECTION_SIZE)
		device_size = VHDX_HEADER_SECTION_SIZE;
	raw = fuzz_fit(data, size, VHDX_REGION_TABLE_SIZE);
	parse(raw, device_size);

	fuzz_dev_init(&dev, device_size, false);
	fuzz_dev_add(&dev, VHDX_REGION_TABLE1_OFFSET, raw,
		     VHDX_REGION_TABLE_SIZE, VHDX_REGION_TABLE_SIZE);
	fixed = fuzz_dev_add(&dev, VHDX_REGION_TABLE2_OFFSET, raw,
			     VHDX_REGION_TABLE_SIZE, VHDX_REGION_TABLE_SIZE);
	vhdx_checksum_set(fixed, VHDX_REGION_TABLE_SIZE,
			  offsetof(struct vhdx_region_table_header, checksum));
	parse(fixed, device_size);

	setup(&img, device_size);
	img.io = &dev.io;
	if (!vhdx_region_table_load(&img))
		check_parsed(&img);
	vhdx_close(&img);
	fuzz_dev_free(&dev);
	free(raw);
	return 0;
}
