// SPDX-License-Identifier: GPL-2.0
/*
 * Room for new blocks.  New objects go past the end of everything the
 * image holds, as QEMU and Hyper-V do: gaps are never reused, so a block
 * can never land on metadata or on another block, whatever the layout of
 * the image we were given.
 */
#include "vhdx.h"

int vhdx_space_alloc(struct vhdx_image *img, u64 length, u64 *offset)
{
	u64 start = img->data_end;

	length = (length + VHDX_OBJECT_ALIGN - 1) & ~(VHDX_OBJECT_ALIGN - 1);
	if (start > img->device_size || length > img->device_size - start)
		return vhdx_fail(img, -ENOSPC,
				 "no room for %llu bytes at %llu: the device has %llu bytes",
				 (unsigned long long)length,
				 (unsigned long long)start,
				 (unsigned long long)img->device_size);
	*offset = start;
	img->data_end = start + length;
	return 0;
}
