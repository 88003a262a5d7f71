// SPDX-License-Identifier: GPL-2.0
/*
 * MS-VHDX requires that no two objects in the file overlap: the header
 * section, the log, every region and every allocated block.  The few fixed
 * objects are sorted by offset.  The blocks, up to 64 Mi of them, are
 * checked against a map of one bit per MiB of the file instead: every
 * object starts on a 1 MiB boundary (the spec requires it of the log and
 * the regions, and a BAT entry cannot express anything else), so the map
 * is exact, costs 8 MiB for a 64 TiB file instead of 2 GiB of sorted
 * objects, and needs no sort.
 */
#include "vhdx.h"

static const char *vhdx_region_name(const struct vhdx_image *img, u64 index)
{
	const struct vhdx_region *r = &img->regions[index];

	if (guid_equal(&r->guid, &vhdx_guid_bat_region))
		return "the BAT region";
	if (guid_equal(&r->guid, &vhdx_guid_metadata_region))
		return "the metadata region";
	return NULL;
}

void vhdx_object_describe(const struct vhdx_image *img,
			  const struct vhdx_object *obj, char *buf, size_t len)
{
	unsigned long long index = obj->index;
	const char *name;

	switch (obj->kind) {
	case VHDX_OBJECT_HEADER_SECTION:
		snprintf(buf, len, "the header section");
		break;
	case VHDX_OBJECT_LOG:
		snprintf(buf, len, "the log");
		break;
	case VHDX_OBJECT_REGION:
		name = vhdx_region_name(img, index);
		if (name)
			snprintf(buf, len, "%s", name);
		else
			snprintf(buf, len, "region %llu", index);
		break;
	case VHDX_OBJECT_PAYLOAD_BLOCK:
		snprintf(buf, len, "payload block %llu (BAT entry %llu)", index,
			 (unsigned long long)vhdx_bat_payload_index(&img->geo,
								   index));
		break;
	case VHDX_OBJECT_BITMAP_BLOCK:
		snprintf(buf, len, "sector bitmap block %llu (BAT entry %llu)",
			 index,
			 (unsigned long long)vhdx_bat_bitmap_index(&img->geo,
								  index));
		break;
	}
}

/* Adds the header section, the log and every region; returns the count. */
u32 vhdx_objects_add_fixed(const struct vhdx_image *img,
			   struct vhdx_object *objs)
{
	u32 i, n = 0;

	objs[n++] = (struct vhdx_object) {
		.offset = 0,
		.length = VHDX_HEADER_SECTION_SIZE,
		.kind = VHDX_OBJECT_HEADER_SECTION,
	};
	if (img->header.log_length)
		objs[n++] = (struct vhdx_object) {
			.offset = le64_to_cpu(img->header.log_offset),
			.length = le32_to_cpu(img->header.log_length),
			.kind = VHDX_OBJECT_LOG,
		};
	for (i = 0; i < img->region_count; i++)
		objs[n++] = (struct vhdx_object) {
			.offset = img->regions[i].offset,
			.length = img->regions[i].length,
			.index = i,
			.kind = VHDX_OBJECT_REGION,
		};
	return n;
}

static int vhdx_object_cmp(const void *a, const void *b)
{
	const struct vhdx_object *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* Objects must already lie inside the device; this checks only overlap. */
int vhdx_objects_check(struct vhdx_image *img, struct vhdx_object *objs,
		       u64 count)
{
	char first[64], second[64];
	u64 i;

	vhdx_sort(objs, count, sizeof(*objs), vhdx_object_cmp);
	for (i = 1; i < count; i++) {
		const struct vhdx_object *prev = &objs[i - 1];

		if (objs[i].offset >= prev->offset + prev->length)
			continue;
		vhdx_object_describe(img, prev, first, sizeof(first));
		vhdx_object_describe(img, &objs[i], second, sizeof(second));
		return vhdx_fail(img, -EINVAL,
				 "%s at %llu overlaps %s at %llu",
				 second, (unsigned long long)objs[i].offset,
				 first, (unsigned long long)prev->offset);
	}
	return 0;
}

/* MiB @mib of the file lies inside @obj. */
bool vhdx_object_holds(const struct vhdx_object *obj, u64 mib)
{
	u64 first = obj->offset / VHDX_OBJECT_ALIGN;

	return obj->length && mib >= first &&
	       mib - first < DIV_ROUND_UP(obj->length, VHDX_OBJECT_ALIGN);
}

/*
 * One bit for every MiB up to @end, the end of the last object.  Beyond
 * VHDX_OBJECT_MAP_MAX the image is refused rather than the map made larger:
 * the largest disk MS-VHDX allows, fully allocated with its sector bitmaps,
 * its BAT and a log, ends far below it.
 */
int vhdx_object_map_init(struct vhdx_image *img, struct vhdx_object_map *map,
			 u64 end)
{
	map->mibs = DIV_ROUND_UP(end, VHDX_OBJECT_ALIGN);
	if (map->mibs > VHDX_OBJECT_MAP_MAX / VHDX_OBJECT_ALIGN)
		return vhdx_fail(img, -EFBIG,
				 "an object ends at %llu bytes, beyond the %llu TiB this driver maps",
				 (unsigned long long)end,
				 (unsigned long long)(VHDX_OBJECT_MAP_MAX >> 40));
	map->bits = vhdx_alloc(DIV_ROUND_UP(map->mibs, 8));
	if (!map->bits)
		return vhdx_fail(img, -ENOMEM,
				 "out of memory for a map of %llu MiB",
				 (unsigned long long)map->mibs);
	return 0;
}

void vhdx_object_map_free(struct vhdx_object_map *map)
{
	vhdx_free(map->bits);
	map->bits = NULL;
	map->mibs = 0;
}

bool vhdx_object_map_test(const struct vhdx_object_map *map, u64 mib)
{
	return map->bits[mib / 8] & (1U << (mib % 8));
}

/*
 * Marks the MiBs of @obj, which lies below the end the map was made for.
 * Returns the first MiB that another object already holds, or U64_MAX.
 * A block shorter than a MiB (the last one of a disk whose size is not a
 * multiple of 1 MiB) holds its whole MiB: no other object can start there.
 */
u64 vhdx_object_map_claim(struct vhdx_object_map *map,
			  const struct vhdx_object *obj)
{
	u64 mib = obj->offset / VHDX_OBJECT_ALIGN;
	u64 end = DIV_ROUND_UP(obj->offset + obj->length, VHDX_OBJECT_ALIGN);

	for (; mib < end; mib++) {
		if (vhdx_object_map_test(map, mib))
			return mib;
		map->bits[mib / 8] |= 1U << (mib % 8);
	}
	return U64_MAX;
}
