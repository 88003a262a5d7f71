// SPDX-License-Identifier: GPL-2.0
/*
 * A whole image through vhdx_open, read-only and then read-write.
 *
 * Input: the start of the device, at most 16 MiB.  The device is the input
 * rounded up to 1 MiB, the rest reading as zeros, so seeds need not carry
 * the zeros at the end of a QEMU image.  Properties checked: a read-only
 * open that succeeds also succeeds read-write on a copy, and both see the
 * same geometry and BAT; after the read-write open (which replays a dirty
 * log onto the copy) the copy opens read-only again with a clean log and
 * the same geometry and BAT.
 */
#include "fuzz-common.h"

#define MAX_INPUT	(16 * VHDX_MiB)

static void check_open(const struct vhdx_image *img)
{
	const struct vhdx_geometry *geo = &img->geo;

	FUZZ_ASSERT(img->bat && img->bat_region && img->metadata_region &&
		    geo->block_size && geo->virtual_size &&
		    img->allocated_blocks <= geo->payload_blocks &&
		    geo->bat_entries * sizeof(__le64) <= img->bat_region->length,
		    "open image: block size %u, virtual size %llu",
		    geo->block_size, (unsigned long long)geo->virtual_size);
}

static void check_same(const struct vhdx_image *a, const struct vhdx_image *b,
		       const char *what)
{
	FUZZ_ASSERT(!memcmp(&a->geo, &b->geo, sizeof(a->geo)) &&
		    a->file_flags == b->file_flags &&
		    guid_equal(&a->virtual_disk_id, &b->virtual_disk_id) &&
		    a->allocated_blocks == b->allocated_blocks &&
		    !memcmp(a->bat, b->bat,
			    a->geo.bat_entries * sizeof(__le64)),
		    "%s: the two opens disagree", what);
}

/* Reads through the replayed log, as the target does for metadata. */
static void read_some(struct vhdx_image *img)
{
	u8 buf[VHDX_IO_ALIGN];

	FUZZ_ASSERT(!vhdx_read(img, img->bat_region->offset, buf, sizeof(buf)),
		    "BAT read");
	FUZZ_ASSERT(!vhdx_read(img, img->metadata_region->offset, buf,
			       sizeof(buf)), "metadata read");
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	/* As the module opens images: differencing ones too. */
	struct vhdx_image ro = { .accept_parent = true };
	struct vhdx_image rw = { .accept_parent = true };
	struct vhdx_image again = { .accept_parent = true };
	struct fuzz_dev ro_d, rw_d, again_d;
	u64 device_size;
	int ro_ret, rw_ret;
	u8 *flat;

	if (size > MAX_INPUT)
		size = MAX_INPUT;
	device_size = (size + VHDX_MiB - 1) & ~(VHDX_MiB - 1);

	fuzz_dev_init(&ro_d, device_size, false);
	fuzz_dev_add_ref(&ro_d, 0, data, size);
	ro_ret = vhdx_open(&ro, &ro_d.io, device_size, true);
	FUZZ_ASSERT(!ro_d.writes, "read-only open wrote");
	if (!ro_ret) {
		check_open(&ro);
		read_some(&ro);
	}

	fuzz_dev_init(&rw_d, device_size, true);
	flat = fuzz_scratch(device_size);
	if (size)
		memcpy(flat, data, size);
	fuzz_dev_add_ref(&rw_d, 0, flat, device_size);
	rw_ret = vhdx_open(&rw, &rw_d.io, device_size, false);
	if (!ro_ret)
		FUZZ_ASSERT(!rw_ret, "opens read-only but not read-write: %s",
			    rw.error);
	if (!rw_ret) {
		check_open(&rw);
		read_some(&rw);
		if (!ro_ret)
			check_same(&ro, &rw, "read-only and read-write");

		fuzz_dev_init(&again_d, device_size, false);
		fuzz_dev_add_ref(&again_d, 0, flat, device_size);
		FUZZ_ASSERT(!vhdx_open(&again, &again_d.io, device_size, true),
			    "reopen after a read-write open: %s", again.error);
		FUZZ_ASSERT(again.log_state == VHDX_LOG_CLEAN,
			    "log still dirty after a read-write open");
		check_same(&rw, &again, "read-write and reopen");
		vhdx_close(&again);
		fuzz_dev_free(&again_d);
	}
	vhdx_close(&rw);
	vhdx_close(&ro);
	fuzz_dev_free(&rw_d);
	fuzz_dev_free(&ro_d);
	return 0;
}
