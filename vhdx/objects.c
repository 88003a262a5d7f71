// SPDX-License-Identifier: GPL-2.0
/*
 * MS-VHDX requires that no two objects in the file overlap: the header
 * section, the log, every region and every allocated block.  Sorting all of
 * them by offset finds any overlap in n log n, which matters because a BAT
 * can describe millions of blocks.
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

/*
 * Where the next new object may go: past the end of every object, on the
 * 1 MiB alignment the spec requires of objects.
 */
u64 vhdx_objects_end(const struct vhdx_object *objs, u64 count)
{
	u64 end = VHDX_HEADER_SECTION_SIZE, i;

	for (i = 0; i < count; i++)
		end = max_t(u64, end, objs[i].offset + objs[i].length);
	return (end + VHDX_OBJECT_ALIGN - 1) & ~(VHDX_OBJECT_ALIGN - 1);
}
