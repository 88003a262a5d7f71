// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata region: a table of items, of which five describe the
 * virtual disk.  Every offset and length comes from the image and is
 * checked against the region before any item is read.
 */
#include "vhdx.h"

/* Far beyond what Hyper-V or QEMU write (1 MiB), small enough to read. */
#define VHDX_METADATA_REGION_MAX	(64 * VHDX_MiB)

enum vhdx_metadata_item {
	VHDX_ITEM_FILE_PARAMETERS,
	VHDX_ITEM_VIRTUAL_DISK_SIZE,
	VHDX_ITEM_VIRTUAL_DISK_ID,
	VHDX_ITEM_LOGICAL_SECTOR_SIZE,
	VHDX_ITEM_PHYSICAL_SECTOR_SIZE,
	VHDX_ITEM_PARENT_LOCATOR,
	VHDX_ITEM_COUNT,
};

static const struct {
	const guid_t *guid;
	const char *name;
	u32 length;		/* the least a valid item holds */
} vhdx_known_items[VHDX_ITEM_COUNT] = {
	[VHDX_ITEM_FILE_PARAMETERS] = {
		&vhdx_guid_file_parameters, "file parameters",
		sizeof(struct vhdx_file_parameters) },
	[VHDX_ITEM_VIRTUAL_DISK_SIZE] = {
		&vhdx_guid_virtual_disk_size, "virtual disk size",
		sizeof(__le64) },
	[VHDX_ITEM_VIRTUAL_DISK_ID] = {
		&vhdx_guid_virtual_disk_id, "virtual disk id",
		sizeof(guid_t) },
	[VHDX_ITEM_LOGICAL_SECTOR_SIZE] = {
		&vhdx_guid_logical_sector_size, "logical sector size",
		sizeof(__le32) },
	[VHDX_ITEM_PHYSICAL_SECTOR_SIZE] = {
		&vhdx_guid_physical_sector_size, "physical sector size",
		sizeof(__le32) },
	[VHDX_ITEM_PARENT_LOCATOR] = {
		&vhdx_guid_parent_locator, "parent locator",
		sizeof(struct vhdx_parent_locator_header) },
};

struct vhdx_item_extent {
	u32 offset;
	u32 length;
	u32 entry;
};

static int vhdx_item_extent_cmp(const void *a, const void *b)
{
	const struct vhdx_item_extent *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

static int vhdx_metadata_check_overlap(struct vhdx_image *img,
				       struct vhdx_item_extent *ext, u32 count)
{
	u32 i;

	vhdx_sort(ext, count, sizeof(*ext), vhdx_item_extent_cmp);
	for (i = 1; i < count; i++)
		if (ext[i].offset < ext[i - 1].offset + ext[i - 1].length)
			return vhdx_fail(img, -EINVAL,
					 "metadata: items of entries %u and %u overlap",
					 ext[i - 1].entry, ext[i].entry);
	return 0;
}

static int vhdx_metadata_entry_check(struct vhdx_image *img, u32 i,
				     const struct vhdx_metadata_table_entry *e,
				     u64 region_length)
{
	u32 offset = le32_to_cpu(e->offset);
	u32 length = le32_to_cpu(e->length);

	if (!length) {
		if (!offset)
			return 0;
		return vhdx_fail(img, -EINVAL,
				 "metadata: entry %u: empty item has offset %u, not 0",
				 i, offset);
	}
	if (offset < VHDX_METADATA_TABLE_SIZE ||
	    length > VHDX_METADATA_ITEM_MAX_LENGTH ||
	    (u64)offset + length > region_length)
		return vhdx_fail(img, -EINVAL,
				 "metadata: entry %u: item at offset %u, length %u is outside the item area of the %llu byte region",
				 i, offset, length,
				 (unsigned long long)region_length);
	return 0;
}

/* At most 2047 entries: a quadratic search is cheap here. */
static int vhdx_metadata_check_unique(struct vhdx_image *img,
				      const struct vhdx_metadata_table_entry *e,
				      u32 i)
{
	u32 user = le32_to_cpu(e[i].flags) & VHDX_METADATA_FLAG_IS_USER;
	u32 j;

	for (j = 0; j < i; j++)
		if (guid_equal(&e[j].item_id, &e[i].item_id) &&
		    (le32_to_cpu(e[j].flags) & VHDX_METADATA_FLAG_IS_USER) == user)
			return vhdx_fail(img, -EINVAL,
					 "metadata: entries %u and %u describe the same item",
					 j, i);
	return 0;
}

static int vhdx_metadata_known_item(const guid_t *id)
{
	int k;

	for (k = 0; k < VHDX_ITEM_COUNT; k++)
		if (guid_equal(id, vhdx_known_items[k].guid))
			return k;
	return -1;
}

/* Finds the system items, refusing unknown required ones and duplicates. */
static int vhdx_metadata_scan(struct vhdx_image *img, const u8 *region,
			      u64 len, const void **items)
{
	const struct vhdx_metadata_table_header *hdr = (const void *)region;
	const struct vhdx_metadata_table_entry *e = (const void *)(hdr + 1);
	u32 count = le16_to_cpu(hdr->entry_count);
	struct vhdx_item_extent *ext;
	u32 i, users = 0, extents = 0;
	int ret = 0;

	if (count > VHDX_METADATA_MAX_ENTRIES)
		return vhdx_fail(img, -EINVAL,
				 "metadata: EntryCount %u exceeds %u", count,
				 VHDX_METADATA_MAX_ENTRIES);
	ext = vhdx_alloc((count ? count : 1) * sizeof(*ext));
	if (!ext)
		return vhdx_fail(img, -ENOMEM, "metadata: out of memory");
	for (i = 0; i < count && !ret; i++) {
		u32 flags = le32_to_cpu(e[i].flags);
		u32 length = le32_to_cpu(e[i].length);
		bool user = flags & VHDX_METADATA_FLAG_IS_USER;
		int k = user ? -1 : vhdx_metadata_known_item(&e[i].item_id);
		char guid[VHDX_GUID_STRING_SIZE];

		ret = vhdx_metadata_entry_check(img, i, &e[i], len);
		if (!ret)
			ret = vhdx_metadata_check_unique(img, e, i);
		if (ret)
			break;
		if (length)
			ext[extents++] = (struct vhdx_item_extent) {
				le32_to_cpu(e[i].offset), length, i };
		if (user && ++users > VHDX_METADATA_MAX_USER_ENTRIES) {
			ret = vhdx_fail(img, -EINVAL,
					"metadata: more than %u user items",
					VHDX_METADATA_MAX_USER_ENTRIES);
		} else if (k < 0 && (flags & VHDX_METADATA_FLAG_IS_REQUIRED)) {
			vhdx_guid_to_string(&e[i].item_id, guid);
			ret = vhdx_fail(img, -EINVAL,
					"metadata: entry %u: unknown item %s is marked required",
					i, guid);
		} else if (k >= 0 && length < vhdx_known_items[k].length) {
			ret = vhdx_fail(img, -EINVAL,
					"metadata: entry %u: %s item is %u bytes, expected %u",
					i, vhdx_known_items[k].name, length,
					vhdx_known_items[k].length);
		} else if (k >= 0) {
			items[k] = region + le32_to_cpu(e[i].offset);
		}
	}
	if (!ret)
		ret = vhdx_metadata_check_overlap(img, ext, extents);
	vhdx_free(ext);
	return ret;
}

static u32 vhdx_get_le32(const void *p)
{
	__le32 v;

	memcpy(&v, p, sizeof(v));
	return le32_to_cpu(v);
}

static int vhdx_metadata_check_values(struct vhdx_image *img, u32 block_size,
				      u64 virtual_size, u32 lss, u32 pss)
{
	if (block_size < VHDX_BLOCK_SIZE_MIN ||
	    block_size > VHDX_BLOCK_SIZE_MAX || (block_size & (block_size - 1)))
		return vhdx_fail(img, -EINVAL,
				 "metadata: block size %u is not a power of two from 1 MiB to 256 MiB",
				 block_size);
	if (lss != 512 && lss != 4096)
		return vhdx_fail(img, -EINVAL,
				 "metadata: logical sector size %u is neither 512 nor 4096",
				 lss);
	if (pss != 512 && pss != 4096)
		return vhdx_fail(img, -EINVAL,
				 "metadata: physical sector size %u is neither 512 nor 4096",
				 pss);
	if (!virtual_size || virtual_size > VHDX_VIRTUAL_SIZE_MAX ||
	    virtual_size % lss)
		return vhdx_fail(img, -EINVAL,
				 "metadata: virtual disk size %llu is not a non-zero multiple of the %u byte sector up to 64 TiB",
				 (unsigned long long)virtual_size, lss);
	return 0;
}

static int vhdx_metadata_apply(struct vhdx_image *img, const void **items)
{
	struct vhdx_file_parameters params;
	__le64 size;
	u32 lss, pss;
	int k, ret;

	for (k = 0; k < VHDX_ITEM_PARENT_LOCATOR; k++)
		if (!items[k])
			return vhdx_fail(img, -EINVAL,
					 "metadata: required %s item is missing",
					 vhdx_known_items[k].name);
	memcpy(&params, items[VHDX_ITEM_FILE_PARAMETERS], sizeof(params));
	memcpy(&size, items[VHDX_ITEM_VIRTUAL_DISK_SIZE], sizeof(size));
	memcpy(&img->virtual_disk_id, items[VHDX_ITEM_VIRTUAL_DISK_ID],
	       sizeof(img->virtual_disk_id));
	lss = vhdx_get_le32(items[VHDX_ITEM_LOGICAL_SECTOR_SIZE]);
	pss = vhdx_get_le32(items[VHDX_ITEM_PHYSICAL_SECTOR_SIZE]);
	img->file_flags = le32_to_cpu(params.flags);

	if (img->file_flags & VHDX_PARAMS_HAS_PARENT)
		return vhdx_fail(img, -EOPNOTSUPP,
				 "metadata: HasParent is set: differencing images are not supported yet");
	ret = vhdx_metadata_check_values(img, le32_to_cpu(params.block_size),
					 le64_to_cpu(size), lss, pss);
	if (ret)
		return ret;
	return vhdx_geometry_init(&img->geo, le64_to_cpu(size),
				  le32_to_cpu(params.block_size), lss, pss,
				  false);
}

int vhdx_metadata_parse(struct vhdx_image *img, const void *region, u64 len)
{
	const struct vhdx_metadata_table_header *hdr = region;
	const void *items[VHDX_ITEM_COUNT] = { NULL };
	int ret;

	if (len < VHDX_METADATA_TABLE_SIZE)
		return vhdx_fail(img, -EINVAL,
				 "metadata: region of %llu bytes cannot hold the table",
				 (unsigned long long)len);
	if (memcmp(hdr->signature, VHDX_SIGNATURE_METADATA,
		   sizeof(hdr->signature)))
		return vhdx_fail(img, -EINVAL,
				 "metadata: table signature is not \"metadata\"");
	ret = vhdx_metadata_scan(img, region, len, items);
	if (!ret)
		ret = vhdx_metadata_apply(img, items);
	return ret;
}

int vhdx_metadata_load(struct vhdx_image *img)
{
	u64 len = img->metadata_region->length;
	void *region;
	int ret;

	if (len > VHDX_METADATA_REGION_MAX)
		return vhdx_fail(img, -EINVAL,
				 "metadata: region of %llu bytes is larger than the %llu this driver reads",
				 (unsigned long long)len,
				 (unsigned long long)VHDX_METADATA_REGION_MAX);
	region = vhdx_alloc(len);
	if (!region)
		return vhdx_fail(img, -ENOMEM, "metadata: out of memory");
	ret = vhdx_read(img, img->metadata_region->offset, region, len);
	if (ret)
		ret = vhdx_fail(img, ret, "metadata: read error %d", ret);
	else
		ret = vhdx_metadata_parse(img, region, len);
	vhdx_free(region);
	return ret;
}
