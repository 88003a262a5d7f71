// SPDX-License-Identifier: GPL-2.0
/*
 * Log updates held in memory.  A read-only open cannot write the replayed
 * log to the device, so the updates are laid over every metadata read
 * instead; a read-write open uses the same list to write them back.
 */
#include "vhdx.h"

/* Zeros are written from a buffer of this size, in chunks. */
#define VHDX_OVERLAY_ZERO_CHUNK	(64 * VHDX_KiB)
#define VHDX_OVERLAY_MAX_EXTENTS	BIT(27)

static int vhdx_overlay_grow(struct vhdx_overlay *ov)
{
	struct vhdx_overlay_extent *extents;
	u32 capacity;

	/* Keeps the array size within a 32-bit size_t. */
	if (ov->capacity >= VHDX_OVERLAY_MAX_EXTENTS / 2)
		return -ENOMEM;
	capacity = ov->capacity ? ov->capacity * 2 : 16;
	extents = vhdx_alloc(capacity * sizeof(*extents));
	if (!extents)
		return -ENOMEM;
	if (ov->count)
		memcpy(extents, ov->extents, ov->count * sizeof(*extents));
	vhdx_free(ov->extents);
	ov->extents = extents;
	ov->capacity = capacity;
	return 0;
}

int vhdx_overlay_add(struct vhdx_overlay *ov, u64 offset, u64 length,
		     const void *data)
{
	struct vhdx_overlay_extent *e;
	void *copy = NULL;
	int ret;

	if (!length)
		return 0;
	if (length > U64_MAX - offset)
		return -EINVAL;
	if (ov->count == ov->capacity) {
		ret = vhdx_overlay_grow(ov);
		if (ret)
			return ret;
	}
	if (data) {
		if ((size_t)length != length)
			return -ENOMEM;
		copy = vhdx_alloc(length);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, length);
	}
	e = &ov->extents[ov->count++];
	e->offset = offset;
	e->length = length;
	e->data = copy;
	return 0;
}

/*
 * Differences only, never end offsets, so that no sum of an offset and a
 * length can wrap.
 */
void vhdx_overlay_apply(const struct vhdx_overlay *ov, u64 offset, void *buf,
			size_t len)
{
	const struct vhdx_overlay_extent *e;
	u64 buf_start, src_start, n;
	u32 i;

	for (i = 0; i < ov->count; i++) {
		e = &ov->extents[i];
		if (e->offset >= offset) {
			buf_start = e->offset - offset;
			if (buf_start >= len)
				continue;
			src_start = 0;
			n = min_t(u64, len - buf_start, e->length);
		} else {
			src_start = offset - e->offset;
			if (src_start >= e->length)
				continue;
			buf_start = 0;
			n = min_t(u64, len, e->length - src_start);
		}
		if (e->data)
			memcpy((u8 *)buf + buf_start, (u8 *)e->data + src_start,
			       n);
		else
			memset((u8 *)buf + buf_start, 0, n);
	}
}

static const struct vhdx_region *
vhdx_overlay_find_range(const struct vhdx_region *allowed, u32 count, u64 pos)
{
	u32 i;

	for (i = 0; i < count; i++)
		if (pos >= allowed[i].offset &&
		    pos - allowed[i].offset < allowed[i].length)
			return &allowed[i];
	return NULL;
}

/*
 * One update may straddle two adjacent allowed ranges (the BAT and the
 * metadata region often touch), so coverage is checked piece by piece.
 */
static bool vhdx_overlay_extent_covered(const struct vhdx_overlay_extent *e,
					const struct vhdx_region *allowed,
					u32 count)
{
	const struct vhdx_region *r;
	u64 done = 0, skip;

	while (done < e->length) {
		r = vhdx_overlay_find_range(allowed, count, e->offset + done);
		if (!r)
			return false;
		skip = r->length - (e->offset + done - r->offset);
		if (skip >= e->length - done)
			return true;
		done += skip;
	}
	return true;
}

bool vhdx_overlay_covered_by(const struct vhdx_overlay *ov,
			     const struct vhdx_region *allowed, u32 count,
			     u64 *bad_offset)
{
	u32 i;

	for (i = 0; i < ov->count; i++) {
		if (!vhdx_overlay_extent_covered(&ov->extents[i], allowed,
						 count)) {
			if (bad_offset)
				*bad_offset = ov->extents[i].offset;
			return false;
		}
	}
	return true;
}

static int vhdx_overlay_write_zeros(const struct vhdx_io *io, u64 offset,
				    u64 length, const void *zeros)
{
	size_t n;
	int ret;

	while (length) {
		n = min_t(u64, length, VHDX_OVERLAY_ZERO_CHUNK);
		ret = io->write(io->priv, offset, zeros, n);
		if (ret)
			return ret;
		offset += n;
		length -= n;
	}
	return 0;
}

/* In log order, so that later updates land on top of earlier ones. */
int vhdx_overlay_write_back(const struct vhdx_overlay *ov,
			    const struct vhdx_io *io)
{
	const struct vhdx_overlay_extent *e;
	void *zeros = NULL;
	int ret = 0;
	u32 i;

	if (!io->write)
		return -EROFS;
	for (i = 0; i < ov->count && !ret; i++) {
		e = &ov->extents[i];
		if (e->offset % VHDX_IO_ALIGN || e->length % VHDX_IO_ALIGN) {
			ret = -EINVAL;
			break;
		}
		if (e->data) {
			ret = io->write(io->priv, e->offset, e->data, e->length);
			continue;
		}
		if (!zeros) {
			zeros = vhdx_alloc(VHDX_OVERLAY_ZERO_CHUNK);
			if (!zeros) {
				ret = -ENOMEM;
				break;
			}
		}
		ret = vhdx_overlay_write_zeros(io, e->offset, e->length, zeros);
	}
	vhdx_free(zeros);
	return ret;
}

void vhdx_overlay_free(struct vhdx_overlay *ov)
{
	u32 i;

	for (i = 0; i < ov->count; i++)
		vhdx_free(ov->extents[i].data);
	vhdx_free(ov->extents);
	ov->extents = NULL;
	ov->count = 0;
	ov->capacity = 0;
}
