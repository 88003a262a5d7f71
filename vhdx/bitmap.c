// SPDX-License-Identifier: GPL-2.0
/*
 * Sector bitmaps of differencing images (MS-VHDX 2.5.1.2): one 1 MiB block
 * per chunk, one bit per logical sector, bit 0 of byte 0 first.  They are
 * kept in memory so that a read can be resolved without I/O, as the BAT
 * is: 1 MiB for every 4 GiB (512-byte sectors) or 32 GiB (4 KiB sectors)
 * of virtual disk that the image has touched.
 */
#include "vhdx.h"

static u64 vhdx_chunk_of(u64 sector)
{
	return sector / VHDX_SECTORS_PER_CHUNK;
}

static struct vhdx_bitmap *vhdx_bitmap_new(void)
{
	struct vhdx_bitmap *b = vhdx_alloc(sizeof(*b));

	if (!b)
		return NULL;
	b->bits = vhdx_alloc(VHDX_BITMAP_BLOCK_SIZE);
	if (!b->bits) {
		vhdx_free(b);
		return NULL;
	}
	return b;
}

static void vhdx_bitmap_free(struct vhdx_bitmap *b)
{
	if (b) {
		vhdx_free(b->bits);
		vhdx_free(b);
	}
}

/* A partially present block is read through its chunk's bitmap: it must exist. */
static int vhdx_bitmaps_check_chunk(struct vhdx_image *img, u64 chunk)
{
	const struct vhdx_geometry *geo = &img->geo;
	u64 block = chunk << geo->chunk_ratio_shift;
	u64 end = min_t(u64, block + geo->chunk_ratio, geo->payload_blocks);
	u64 entry;

	for (; block < end; block++) {
		entry = le64_to_cpu(img->bat[vhdx_bat_payload_index(geo, block)]);
		if (vhdx_bat_state(entry) == VHDX_PAYLOAD_PARTIALLY_PRESENT)
			return vhdx_fail(img, -EINVAL,
					 "BAT: payload block %llu is partially present but the sector bitmap block of chunk %llu is not",
					 (unsigned long long)block,
					 (unsigned long long)chunk);
	}
	return 0;
}

int vhdx_bitmaps_load(struct vhdx_image *img)
{
	const struct vhdx_geometry *geo = &img->geo;
	u64 chunk, entry;
	int ret;

	img->bitmaps = vhdx_alloc(geo->bitmap_blocks * sizeof(*img->bitmaps));
	if (!img->bitmaps)
		return vhdx_fail(img, -ENOMEM,
				 "sector bitmaps: out of memory for %llu chunks",
				 (unsigned long long)geo->bitmap_blocks);
	for (chunk = 0; chunk < geo->bitmap_blocks; chunk++) {
		entry = le64_to_cpu(img->bat[vhdx_bat_bitmap_index(geo, chunk)]);
		/* vhdx_bat_check() allowed only these two states. */
		if (vhdx_bat_state(entry) != VHDX_BITMAP_PRESENT) {
			ret = vhdx_bitmaps_check_chunk(img, chunk);
			if (ret)
				return ret;
			continue;
		}
		img->bitmaps[chunk] = vhdx_bitmap_new();
		if (!img->bitmaps[chunk])
			return vhdx_fail(img, -ENOMEM,
					 "sector bitmap of chunk %llu: out of memory",
					 (unsigned long long)chunk);
		/* The offset was checked to lie inside the device. */
		ret = vhdx_read(img, vhdx_bat_offset(entry),
				img->bitmaps[chunk]->bits, VHDX_BITMAP_BLOCK_SIZE);
		if (ret)
			return vhdx_fail(img, ret,
					 "sector bitmap of chunk %llu: read error %d",
					 (unsigned long long)chunk, ret);
	}
	return 0;
}

void vhdx_bitmaps_free(struct vhdx_image *img)
{
	u64 chunk;

	if (!img->bitmaps)
		return;
	for (chunk = 0; chunk < img->geo.bitmap_blocks; chunk++)
		vhdx_bitmap_free(img->bitmaps[chunk]);
	vhdx_free(img->bitmaps);
	img->bitmaps = NULL;
}

static bool vhdx_bit(const u8 *bits, u64 i)
{
	return READ_ONCE(bits[i / 8]) & (1U << (i % 8));
}

/*
 * How many of @count logical sectors from @sector share the bit of the
 * first (returned in @present); never past the end of the chunk.  Whole
 * bytes of equal bits are skipped at once.
 */
u64 vhdx_bitmap_run(const struct vhdx_image *img, u64 sector, u64 count,
		    bool *present)
{
	u64 chunk = vhdx_chunk_of(sector);
	u64 i = sector % VHDX_SECTORS_PER_CHUNK, start = i;
	u64 end = min_t(u64, VHDX_SECTORS_PER_CHUNK, i + count);
	/* Pairs with vhdx_bitmap_attach(): a published bitmap is all clear. */
	const struct vhdx_bitmap *b = smp_load_acquire(&img->bitmaps[chunk]);
	u8 same;

	if (!b) {
		*present = false;
		return end - start;
	}
	*present = vhdx_bit(b->bits, i);
	same = *present ? 0xff : 0;
	while (i < end) {
		if (!(i % 8) && end - i >= 8 && READ_ONCE(b->bits[i / 8]) == same) {
			i += 8;
			continue;
		}
		if (vhdx_bit(b->bits, i) != *present)
			break;
		i++;
	}
	return i - start;
}

/* A new, all-clear bitmap for a chunk whose bitmap block was just allocated. */
int vhdx_bitmap_attach(struct vhdx_image *img, u64 chunk)
{
	struct vhdx_bitmap *b = vhdx_bitmap_new();

	if (!b)
		return vhdx_fail(img, -ENOMEM,
				 "sector bitmap of chunk %llu: out of memory",
				 (unsigned long long)chunk);
	/* Readers (vhdx_bitmap_run()) see it all clear, never half made. */
	smp_store_release(&img->bitmaps[chunk], b);
	return 0;
}

static void vhdx_bitmap_mark(struct vhdx_image *img, struct vhdx_bitmap *b,
			     u64 byte)
{
	u64 page = byte / VHDX_LOG_SECTOR_SIZE;

	if (b->dirty[page / 8] & (1U << (page % 8)))
		return;
	b->dirty[page / 8] |= 1U << (page % 8);
	WRITE_ONCE(img->txn.dirty_count, img->txn.dirty_count + 1);
}

/*
 * Marks @count logical sectors from @sector as present in this image, for
 * the next commit.  The chunk's bitmap must be attached; the range must
 * lie in one payload block, and so in one chunk.
 */
void vhdx_bitmap_set(struct vhdx_image *img, u64 sector, u64 count)
{
	struct vhdx_bitmap *b = img->bitmaps[vhdx_chunk_of(sector)];
	u64 i = sector % VHDX_SECTORS_PER_CHUNK, end = i + count;

	for (; i < end; i++) {
		u8 old = b->bits[i / 8], mask = 1U << (i % 8);

		if (old & mask)
			continue;
		WRITE_ONCE(b->bits[i / 8], old | mask);
		vhdx_bitmap_mark(img, b, i / 8);
	}
}
