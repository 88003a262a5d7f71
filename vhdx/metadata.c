// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata region: a table of items, of which five describe the
 * virtual disk.  Every offset and length comes from the image and is
 * checked against the region before any item is read.
 */
#include "parent.h"

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

/* The system items found in the table, with their lengths. */
struct vhdx_items {
	const void *item[VHDX_ITEM_COUNT];
	u32 length[VHDX_ITEM_COUNT];
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
			      u64 len, struct vhdx_items *items)
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
			items->item[k] = region + le32_to_cpu(e[i].offset);
			items->length[k] = length;
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

/* The most UTF-8 bytes @len bytes of UTF-16 decode to, with the NUL. */
static u64 vhdx_utf8_size(u32 len)
{
	return (u64)len / 2 * 3 + 1;
}

/*
 * UTF-16LE to NUL-terminated UTF-8; @out holds vhdx_utf8_size(len) bytes.
 * An unpaired surrogate becomes U+FFFD; a NUL unit is an error, as the
 * spec forbids them.
 */
static int vhdx_utf16_decode(const u8 *in, u32 len, char *out)
{
	u32 i, n = len / 2, c, c2;
	u8 *o = (u8 *)out;

	for (i = 0; i < n; i++) {
		c = in[2 * i] | in[2 * i + 1] << 8;
		if (!c)
			return -EINVAL;
		if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
			c2 = in[2 * i + 2] | in[2 * i + 3] << 8;
			if (c2 >= 0xdc00 && c2 < 0xe000) {
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (c2 - 0xdc00);
				i++;
			}
		}
		if (c >= 0xd800 && c < 0xe000)
			c = 0xfffd;
		if (c < 0x80) {
			*o++ = c;
		} else if (c < 0x800) {
			*o++ = 0xc0 | c >> 6;
			*o++ = 0x80 | (c & 0x3f);
		} else if (c < 0x10000) {
			*o++ = 0xe0 | c >> 12;
			*o++ = 0x80 | ((c >> 6) & 0x3f);
			*o++ = 0x80 | (c & 0x3f);
		} else {
			*o++ = 0xf0 | c >> 18;
			*o++ = 0x80 | ((c >> 12) & 0x3f);
			*o++ = 0x80 | ((c >> 6) & 0x3f);
			*o++ = 0x80 | (c & 0x3f);
		}
	}
	*o = 0;
	return 0;
}

/* Bounds of every key and value; returns the UTF-8 bytes they need. */
static int vhdx_locator_check_entries(struct vhdx_image *img,
				      const struct vhdx_parent_locator_entry *e,
				      u32 count, u32 len, u64 *utf8)
{
	u64 total = 0;
	u32 i;

	*utf8 = 0;
	for (i = 0; i < count; i++) {
		u32 ko = le32_to_cpu(e[i].key_offset);
		u32 vo = le32_to_cpu(e[i].value_offset);
		u16 kl = le16_to_cpu(e[i].key_length);
		u16 vl = le16_to_cpu(e[i].value_length);

		if (!ko || !vo || !kl || !vl)
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u: an offset or length is 0",
					 i);
		if ((kl | vl) & 1)
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u: key length %u or value length %u is odd, not UTF-16",
					 i, kl, vl);
		if (kl > VHDX_LOCATOR_MAX_KEY_LENGTH)
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u: key of %u bytes is longer than the %u this driver reads",
					 i, kl, VHDX_LOCATOR_MAX_KEY_LENGTH);
		if ((u64)ko + kl > len || (u64)vo + vl > len)
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u: key at %u (%u bytes) or value at %u (%u bytes) ends beyond the %u byte item",
					 i, ko, kl, vo, vl, len);
		total += kl + vl;
		*utf8 += vhdx_utf8_size(kl) + vhdx_utf8_size(vl);
	}
	/* Shared or overlapping strings must not multiply the work. */
	if (total > len)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: keys and values total %llu bytes, more than the %u byte item",
				 (unsigned long long)total, len);
	return 0;
}

static int vhdx_locator_decode(struct vhdx_image *img, const u8 *item,
			       const struct vhdx_parent_locator_entry *e,
			       struct vhdx_locator *loc)
{
	char *str = (char *)(loc->kv + loc->count);
	u32 i, j;

	for (i = 0; i < loc->count; i++) {
		u16 kl = le16_to_cpu(e[i].key_length);
		u16 vl = le16_to_cpu(e[i].value_length);

		loc->kv[i].key = str;
		if (vhdx_utf16_decode(item + le32_to_cpu(e[i].key_offset), kl,
				      str))
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u: the key holds a NUL character",
					 i);
		str += vhdx_utf8_size(kl);
		loc->kv[i].value = str;
		if (vhdx_utf16_decode(item + le32_to_cpu(e[i].value_offset),
				      vl, str))
			return vhdx_fail(img, -EINVAL,
					 "parent locator: entry %u (%s): the value holds a NUL character",
					 i, loc->kv[i].key);
		str += vhdx_utf8_size(vl);
		for (j = 0; j < i; j++)
			if (!strcmp(loc->kv[j].key, loc->kv[i].key))
				return vhdx_fail(img, -EINVAL,
						 "parent locator: entries %u and %u have the same key %s",
						 j, i, loc->kv[i].key);
	}
	return 0;
}

const char *vhdx_locator_get(const struct vhdx_locator *loc, const char *key)
{
	u32 i;

	for (i = 0; i < loc->count; i++)
		if (!strcmp(loc->kv[i].key, key))
			return loc->kv[i].value;
	return NULL;
}

/* The keys of the VHDX locator type that this code interprets. */
static int vhdx_locator_interpret(struct vhdx_image *img,
				  struct vhdx_locator *loc)
{
	const char *linkage = vhdx_locator_get(loc, VHDX_LOCATOR_PARENT_LINKAGE);
	const char *linkage2 = vhdx_locator_get(loc,
						VHDX_LOCATOR_PARENT_LINKAGE2);

	if (!linkage)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: the parent_linkage key is missing");
	if (vhdx_guid_parse(linkage, &loc->parent_linkage))
		return vhdx_fail(img, -EINVAL,
				 "parent locator: parent_linkage \"%.40s\" is not a GUID",
				 linkage);
	if (linkage2) {
		if (vhdx_guid_parse(linkage2, &loc->parent_linkage2))
			return vhdx_fail(img, -EINVAL,
					 "parent locator: parent_linkage2 \"%.40s\" is not a GUID",
					 linkage2);
		loc->has_parent_linkage2 = true;
	}
	loc->relative_path = vhdx_locator_get(loc, VHDX_LOCATOR_RELATIVE_PATH);
	loc->volume_path = vhdx_locator_get(loc, VHDX_LOCATOR_VOLUME_PATH);
	loc->absolute_win32_path = vhdx_locator_get(loc,
						    VHDX_LOCATOR_ABSOLUTE_PATH);
	if (!loc->relative_path && !loc->volume_path &&
	    !loc->absolute_win32_path)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: none of relative_path, volume_path and absolute_win32_path is present");
	return 0;
}

int vhdx_locator_parse(struct vhdx_image *img, const void *item, u32 len,
		       struct vhdx_locator *loc)
{
	const struct vhdx_parent_locator_header *hdr = item;
	const struct vhdx_parent_locator_entry *e = (const void *)(hdr + 1);
	char type[VHDX_GUID_STRING_SIZE];
	u64 utf8;
	u32 count;
	int ret;

	memset(loc, 0, sizeof(*loc));
	if (len < sizeof(*hdr))
		return vhdx_fail(img, -EINVAL,
				 "parent locator: item of %u bytes is shorter than its header",
				 len);
	loc->type = hdr->locator_type;
	if (!guid_equal(&loc->type, &vhdx_guid_parent_locator_type)) {
		vhdx_guid_to_string(&loc->type, type);
		return vhdx_fail(img, -EINVAL,
				 "parent locator: type %s is not the VHDX locator type",
				 type);
	}
	count = le16_to_cpu(hdr->key_value_count);
	if (count > VHDX_LOCATOR_MAX_ENTRIES)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: %u entries, more than the %u this driver reads",
				 count, VHDX_LOCATOR_MAX_ENTRIES);
	if (sizeof(*hdr) + (u64)count * sizeof(*e) > len)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: %u entries do not fit in the %u byte item",
				 count, len);
	ret = vhdx_locator_check_entries(img, e, count, len, &utf8);
	if (ret)
		return ret;
	loc->kv = vhdx_alloc(count * sizeof(*loc->kv) + utf8);
	if (!loc->kv)
		return vhdx_fail(img, -ENOMEM, "parent locator: out of memory");
	loc->count = count;
	ret = vhdx_locator_decode(img, item, e, loc);
	if (!ret)
		ret = vhdx_locator_interpret(img, loc);
	if (ret)
		vhdx_locator_free(loc);
	return ret;
}

void vhdx_locator_free(struct vhdx_locator *loc)
{
	vhdx_free(loc->kv);
	memset(loc, 0, sizeof(*loc));
}

/* A differencing image must have a parent locator, and a valid one. */
static int vhdx_metadata_parent(struct vhdx_image *img,
				const struct vhdx_items *items,
				struct vhdx_locator *loc)
{
	int ret;

	if (!items->item[VHDX_ITEM_PARENT_LOCATOR])
		return vhdx_fail(img, -EINVAL,
				 "metadata: HasParent is set but the parent locator item is missing");
	ret = vhdx_locator_parse(img, items->item[VHDX_ITEM_PARENT_LOCATOR],
				 items->length[VHDX_ITEM_PARENT_LOCATOR], loc);
	if (ret) {
		char why[VHDX_ERROR_MAX];

		memcpy(why, img->error, sizeof(why));
		return vhdx_fail(img, ret, "metadata: %s", why);
	}
	return 0;
}

static int vhdx_metadata_apply(struct vhdx_image *img,
			       const struct vhdx_items *items,
			       struct vhdx_locator *loc)
{
	struct vhdx_file_parameters params;
	bool has_parent;
	__le64 size;
	u32 lss, pss;
	int k, ret;

	for (k = 0; k < VHDX_ITEM_PARENT_LOCATOR; k++)
		if (!items->item[k])
			return vhdx_fail(img, -EINVAL,
					 "metadata: required %s item is missing",
					 vhdx_known_items[k].name);
	memcpy(&params, items->item[VHDX_ITEM_FILE_PARAMETERS], sizeof(params));
	memcpy(&size, items->item[VHDX_ITEM_VIRTUAL_DISK_SIZE], sizeof(size));
	memcpy(&img->virtual_disk_id, items->item[VHDX_ITEM_VIRTUAL_DISK_ID],
	       sizeof(img->virtual_disk_id));
	lss = vhdx_get_le32(items->item[VHDX_ITEM_LOGICAL_SECTOR_SIZE]);
	pss = vhdx_get_le32(items->item[VHDX_ITEM_PHYSICAL_SECTOR_SIZE]);
	img->file_flags = le32_to_cpu(params.flags);
	has_parent = img->file_flags & VHDX_PARAMS_HAS_PARENT;

	/* Only a caller that can take the locator accepts a parent. */
	if (has_parent && !loc)
		return vhdx_fail(img, -EOPNOTSUPP,
				 "metadata: HasParent is set: differencing images are not supported yet");
	ret = vhdx_metadata_check_values(img, le32_to_cpu(params.block_size),
					 le64_to_cpu(size), lss, pss);
	if (!ret && has_parent)
		ret = vhdx_metadata_parent(img, items, loc);
	if (ret)
		return ret;
	ret = vhdx_geometry_init(&img->geo, le64_to_cpu(size),
				 le32_to_cpu(params.block_size), lss, pss,
				 has_parent);
	if (ret && has_parent)
		vhdx_locator_free(loc);
	return ret;
}

static int vhdx_metadata_parse_items(struct vhdx_image *img,
				     const void *region, u64 len,
				     struct vhdx_locator *loc)
{
	const struct vhdx_metadata_table_header *hdr = region;
	struct vhdx_items items;
	int ret;

	memset(&items, 0, sizeof(items));

	if (len < VHDX_METADATA_TABLE_SIZE)
		return vhdx_fail(img, -EINVAL,
				 "metadata: region of %llu bytes cannot hold the table",
				 (unsigned long long)len);
	if (memcmp(hdr->signature, VHDX_SIGNATURE_METADATA,
		   sizeof(hdr->signature)))
		return vhdx_fail(img, -EINVAL,
				 "metadata: table signature is not \"metadata\"");
	ret = vhdx_metadata_scan(img, region, len, &items);
	if (!ret)
		ret = vhdx_metadata_apply(img, &items, loc);
	return ret;
}

int vhdx_metadata_parse(struct vhdx_image *img, const void *region, u64 len)
{
	return vhdx_metadata_parse_items(img, region, len, NULL);
}

int vhdx_metadata_parse_any(struct vhdx_image *img, const void *region,
			    u64 len, struct vhdx_locator *loc)
{
	memset(loc, 0, sizeof(*loc));
	return vhdx_metadata_parse_items(img, region, len, loc);
}

static int vhdx_metadata_read(struct vhdx_image *img, struct vhdx_locator *loc)
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
		ret = vhdx_metadata_parse_items(img, region, len, loc);
	vhdx_free(region);
	return ret;
}

int vhdx_metadata_load(struct vhdx_image *img)
{
	return vhdx_metadata_read(img, NULL);
}

int vhdx_metadata_load_any(struct vhdx_image *img, struct vhdx_locator *loc)
{
	memset(loc, 0, sizeof(*loc));
	return vhdx_metadata_read(img, loc);
}
