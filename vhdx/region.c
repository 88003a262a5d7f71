// SPDX-License-Identifier: GPL-2.0
/*
 * The region table: where the BAT and the metadata live.  The spec keeps two
 * copies but does not say how to choose; use the first valid one, so a
 * damaged first copy does not make the image unreadable.
 */
#include "vhdx.h"

static const u64 vhdx_region_table_offsets[2] = {
	VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET,
};

static int vhdx_region_entry_check(struct vhdx_image *img, unsigned int copy,
				   u32 i, const struct vhdx_region *r)
{
	bool known = guid_equal(&r->guid, &vhdx_guid_bat_region) ||
		     guid_equal(&r->guid, &vhdx_guid_metadata_region);
	char guid[VHDX_GUID_STRING_SIZE];

	vhdx_guid_to_string(&r->guid, guid);
	if (!known && r->required)
		return vhdx_fail(img, -EINVAL,
				 "region table %u: entry %u: unknown region %s is marked required",
				 copy + 1, i, guid);
	if (r->offset % VHDX_OBJECT_ALIGN || r->length % VHDX_OBJECT_ALIGN ||
	    !r->length)
		return vhdx_fail(img, -EINVAL,
				 "region table %u: entry %u (%s): offset %llu, length %llu: not a non-empty 1 MiB aligned range",
				 copy + 1, i, guid,
				 (unsigned long long)r->offset,
				 (unsigned long long)r->length);
	if (r->offset > img->device_size ||
	    r->length > img->device_size - r->offset)
		return vhdx_fail(img, -EINVAL,
				 "region table %u: entry %u (%s): offset %llu, length %llu: ends beyond the device (%llu bytes)",
				 copy + 1, i, guid,
				 (unsigned long long)r->offset,
				 (unsigned long long)r->length,
				 (unsigned long long)img->device_size);
	return 0;
}

static const struct vhdx_region *vhdx_region_find(const struct vhdx_image *img,
						  const guid_t *guid)
{
	u32 i;

	for (i = 0; i < img->region_count; i++)
		if (guid_equal(&img->regions[i].guid, guid))
			return &img->regions[i];
	return NULL;
}

static int vhdx_region_entries_parse(struct vhdx_image *img,
				     const struct vhdx_region_table_entry *e,
				     unsigned int copy)
{
	u32 i, j;
	int ret;

	for (i = 0; i < img->region_count; i++) {
		struct vhdx_region *r = &img->regions[i];

		r->guid = e[i].guid;
		r->offset = le64_to_cpu(e[i].file_offset);
		r->length = le32_to_cpu(e[i].length);
		r->required = le32_to_cpu(e[i].required) & VHDX_REGION_REQUIRED;
		ret = vhdx_region_entry_check(img, copy, i, r);
		if (ret)
			return ret;
		/* At most 2047 entries: a quadratic search is cheap here. */
		for (j = 0; j < i; j++)
			if (guid_equal(&img->regions[j].guid, &r->guid))
				return vhdx_fail(img, -EINVAL,
						 "region table %u: entries %u and %u have the same GUID",
						 copy + 1, j, i);
	}
	img->bat_region = vhdx_region_find(img, &vhdx_guid_bat_region);
	img->metadata_region = vhdx_region_find(img, &vhdx_guid_metadata_region);
	if (!img->bat_region)
		return vhdx_fail(img, -EINVAL, "region table %u: no BAT region",
				 copy + 1);
	if (!img->metadata_region)
		return vhdx_fail(img, -EINVAL,
				 "region table %u: no metadata region", copy + 1);
	return 0;
}

static int vhdx_regions_check_overlap(struct vhdx_image *img,
				      unsigned int copy)
{
	struct vhdx_object *objs;
	u32 count;
	int ret;

	objs = vhdx_alloc((img->region_count + 2) * sizeof(*objs));
	if (!objs)
		return vhdx_fail(img, -ENOMEM, "region table: out of memory");
	count = vhdx_objects_add_fixed(img, objs);
	ret = vhdx_objects_check(img, objs, count);
	vhdx_free(objs);
	if (ret) {
		char why[VHDX_ERROR_MAX];

		memcpy(why, img->error, sizeof(why));
		ret = vhdx_fail(img, ret, "region table %u: %s", copy + 1, why);
	}
	return ret;
}

static void vhdx_regions_free(struct vhdx_image *img)
{
	vhdx_free(img->regions);
	img->regions = NULL;
	img->region_count = 0;
	img->bat_region = NULL;
	img->metadata_region = NULL;
}

int vhdx_region_table_parse(struct vhdx_image *img, const void *table,
			    unsigned int copy)
{
	const struct vhdx_region_table_header *hdr = table;
	u32 count = le32_to_cpu(hdr->entry_count);
	int ret;

	vhdx_regions_free(img);
	if (memcmp(hdr->signature, VHDX_SIGNATURE_REGION,
		   sizeof(hdr->signature)))
		return vhdx_fail(img, -EINVAL,
				 "region table %u: signature is not \"regi\"",
				 copy + 1);
	if (!vhdx_checksum_ok(table, VHDX_REGION_TABLE_SIZE,
			      offsetof(struct vhdx_region_table_header,
				       checksum)))
		return vhdx_fail(img, -EINVAL,
				 "region table %u: checksum mismatch", copy + 1);
	if (count > VHDX_REGION_MAX_ENTRIES)
		return vhdx_fail(img, -EINVAL,
				 "region table %u: EntryCount %u exceeds %u",
				 copy + 1, count, VHDX_REGION_MAX_ENTRIES);
	img->regions = vhdx_alloc((count ? count : 1) * sizeof(*img->regions));
	if (!img->regions)
		return vhdx_fail(img, -ENOMEM, "region table: out of memory");
	img->region_count = count;
	ret = vhdx_region_entries_parse(img, (const void *)(hdr + 1), copy);
	if (!ret)
		ret = vhdx_regions_check_overlap(img, copy);
	if (ret)
		vhdx_regions_free(img);
	else
		img->region_table_copy = copy;
	return ret;
}

int vhdx_region_table_load(struct vhdx_image *img)
{
	char first_error[VHDX_ERROR_MAX];
	unsigned int copy;
	void *table;
	int ret = 0;

	table = vhdx_alloc(VHDX_REGION_TABLE_SIZE);
	if (!table)
		return vhdx_fail(img, -ENOMEM, "region table: out of memory");
	for (copy = 0; copy < ARRAY_SIZE(vhdx_region_table_offsets); copy++) {
		ret = vhdx_read(img, vhdx_region_table_offsets[copy], table,
				VHDX_REGION_TABLE_SIZE);
		if (ret)
			ret = vhdx_fail(img, ret,
					"region table %u: read error %d",
					copy + 1, ret);
		else
			ret = vhdx_region_table_parse(img, table, copy);
		if (!ret)
			break;
		if (!copy)
			memcpy(first_error, img->error, sizeof(first_error));
	}
	vhdx_free(table);
	if (ret) {
		char second_error[VHDX_ERROR_MAX];

		memcpy(second_error, img->error, sizeof(second_error));
		ret = vhdx_fail(img, ret, "no usable region table: %s; %s",
				first_error, second_error);
	}
	return ret;
}
