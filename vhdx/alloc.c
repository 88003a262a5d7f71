// SPDX-License-Identifier: GPL-2.0
/*
 * Room for new blocks.  Free space is what lies between the objects of
 * the image (the header section, the log, the regions and every block the
 * BAT points at), on the 1 MiB alignment the spec requires of objects,
 * plus everything past the last of them up to the end of the device.
 * QEMU's fixed images, for one, leave their preallocated space between
 * objects and unreferenced.  A block that a discard gave back joins the
 * free space once the caller knows that nothing can still point at it.
 */
#include "vhdx.h"

static int vhdx_extents_push(struct vhdx_free_space *fs, u64 offset,
			     u64 length)
{
	if (fs->count == fs->capacity) {
		u32 capacity = fs->capacity ? 2 * fs->capacity : 16;
		struct vhdx_free_extent *e = vhdx_alloc(capacity * sizeof(*e));

		if (!e)
			return -ENOMEM;
		if (fs->count)
			memcpy(e, fs->extents, fs->count * sizeof(*e));
		vhdx_free(fs->extents);
		fs->extents = e;
		fs->capacity = capacity;
	}
	fs->extents[fs->count].offset = offset;
	fs->extents[fs->count].length = length;
	fs->count++;
	return 0;
}

static void vhdx_extents_free(struct vhdx_free_space *fs)
{
	vhdx_free(fs->extents);
	memset(fs, 0, sizeof(*fs));
}

static u64 vhdx_align_up(u64 v)
{
	return (v + VHDX_OBJECT_ALIGN - 1) & ~(VHDX_OBJECT_ALIGN - 1);
}

/*
 * The MiBs that no object holds, below the end of the last one, which
 * data_end already covers.  Without memory to remember a gap, it stays
 * unused: nothing is lost.
 */
void vhdx_space_add_gaps(struct vhdx_image *img,
			 const struct vhdx_object_map *map)
{
	u64 mib, start = 0;
	bool in_gap = false;

	for (mib = 0; mib <= map->mibs; mib++) {
		bool held = mib == map->mibs || vhdx_object_map_test(map, mib);

		if (!(mib % (1U << 20)))
			vhdx_cond_resched();
		if (!held && !in_gap)
			start = mib;
		if (held && in_gap &&
		    vhdx_extents_push(&img->free_space,
				      start * VHDX_OBJECT_ALIGN,
				      (mib - start) * VHDX_OBJECT_ALIGN))
			return;
		in_gap = !held;
	}
}

/* From the last free extent that is large enough, then past data_end. */
int vhdx_space_alloc(struct vhdx_image *img, u64 length, u64 *offset)
{
	struct vhdx_free_space *fs = &img->free_space;
	u64 start = img->data_end;
	u32 i;

	length = vhdx_align_up(length);
	for (i = fs->count; i--; ) {
		struct vhdx_free_extent *e = &fs->extents[i];

		if (e->length < length)
			continue;
		*offset = e->offset;
		e->offset += length;
		e->length -= length;
		if (!e->length)
			fs->extents[i] = fs->extents[--fs->count];
		return 0;
	}
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
 * Space that was allocated but never referenced (its data write failed):
 * nothing can point at it, so it is free again at once.  Without memory
 * to remember it, it stays unused, which wastes space but loses nothing.
 */
void vhdx_space_return(struct vhdx_image *img, u64 offset, u64 length)
{
	vhdx_extents_push(&img->free_space, offset, vhdx_align_up(length));
}

/*
 * A block no BAT entry points at any more, in memory.  It stays unused
 * until it is sealed and recycled; without memory to remember it, it
 * stays unused for good, which wastes space but loses nothing.
 */
void vhdx_space_release(struct vhdx_image *img, u64 offset, u64 length)
{
	if (length)
		vhdx_extents_push(&img->released_space, offset, length);
}

/* Whether space was released since the last vhdx_space_seal(). */
bool vhdx_space_released(const struct vhdx_image *img)
{
	return img->released_space.count > img->released_sealed;
}

/*
 * The caller guarantees that the BAT changes which released everything
 * released so far are on stable storage: no crash can bring back an
 * entry pointing at these blocks.  Bios may still be on their way to
 * them, so they wait for vhdx_space_recycle().
 */
void vhdx_space_seal(struct vhdx_image *img)
{
	img->released_sealed = img->released_space.count;
}

/*
 * The caller guarantees that no I/O to the sealed blocks is in flight:
 * they join the free space.  Those released after the seal stay.
 */
void vhdx_space_recycle(struct vhdx_image *img)
{
	struct vhdx_free_space *rs = &img->released_space;
	u32 done = 0;

	while (done < img->released_sealed &&
	       !vhdx_extents_push(&img->free_space, rs->extents[done].offset,
				  rs->extents[done].length))
		done++;
	/* Not recycled for want of memory: dropped, as in vhdx_space_release(). */
	memmove(rs->extents, rs->extents + img->released_sealed,
		(rs->count - img->released_sealed) * sizeof(*rs->extents));
	rs->count -= img->released_sealed;
	img->released_sealed = 0;
}

void vhdx_space_free(struct vhdx_image *img)
{
	vhdx_extents_free(&img->free_space);
	vhdx_extents_free(&img->released_space);
	img->released_sealed = 0;
}
