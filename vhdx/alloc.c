// SPDX-License-Identifier: GPL-2.0
/*
 * Room for new blocks.  New objects go past the end of everything the
 * image holds, as QEMU and Hyper-V do, so a block can never land on
 * metadata or on another block, whatever the layout of the image we were
 * given.  The one exception is a payload block that a discard gave back:
 * it is BlockSize long and 1 MiB aligned, so another payload block fits
 * exactly, once the caller knows that nothing can still point at it.
 */
#include "vhdx.h"

static int vhdx_blocks_push(struct vhdx_free_blocks *fb, u64 offset)
{
	if (fb->count == fb->capacity) {
		u32 capacity = fb->capacity ? 2 * fb->capacity : 64;
		u64 *offsets = vhdx_alloc(capacity * sizeof(*offsets));

		if (!offsets)
			return -ENOMEM;
		if (fb->count)
			memcpy(offsets, fb->offsets, fb->count * sizeof(*offsets));
		vhdx_free(fb->offsets);
		fb->offsets = offsets;
		fb->capacity = capacity;
	}
	fb->offsets[fb->count++] = offset;
	return 0;
}

static void vhdx_blocks_free(struct vhdx_free_blocks *fb)
{
	vhdx_free(fb->offsets);
	memset(fb, 0, sizeof(*fb));
}

int vhdx_space_alloc(struct vhdx_image *img, u64 length, u64 *offset)
{
	struct vhdx_free_blocks *fb = &img->free_blocks;
	u64 start = img->data_end;

	if (length == img->geo.block_size && fb->count) {
		*offset = fb->offsets[--fb->count];
		return 0;
	}
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

/*
 * A block no BAT entry points at any more, in memory.  It stays unused
 * until vhdx_space_recycle(); without memory to remember it, it stays
 * unused for good, which wastes space but loses nothing.
 */
void vhdx_space_release(struct vhdx_image *img, u64 offset)
{
	vhdx_blocks_push(&img->released_blocks, offset);
}

bool vhdx_space_released(const struct vhdx_image *img)
{
	return img->released_blocks.count;
}

/*
 * The caller guarantees that the BAT changes which released the blocks
 * are on stable storage (so no crash can bring back an entry pointing at
 * a reused block) and that no I/O to them is still in flight.
 */
void vhdx_space_recycle(struct vhdx_image *img)
{
	struct vhdx_free_blocks *rb = &img->released_blocks;

	while (rb->count &&
	       !vhdx_blocks_push(&img->free_blocks, rb->offsets[rb->count - 1]))
		rb->count--;
}

void vhdx_space_free(struct vhdx_image *img)
{
	vhdx_blocks_free(&img->free_blocks);
	vhdx_blocks_free(&img->released_blocks);
}
