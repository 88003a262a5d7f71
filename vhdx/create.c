// SPDX-License-Identifier: GPL-2.0
/*
 * Creating an image.  The header section is written last, so an interrupted
 * create leaves a file that no reader mistakes for a VHDX image.
 */
#include "create.h"
#include "parent.h"

#define VHDX_CREATE_BAT_CHUNK	VHDX_MiB
/* The items before the parent locator: see vhdx_create_metadata_items(). */
#define VHDX_CREATE_SYSTEM_ITEMS_LENGTH	40
static_assert(sizeof(struct vhdx_file_parameters) + sizeof(__le64) +
	      sizeof(guid_t) + 2 * sizeof(__le32) ==
	      VHDX_CREATE_SYSTEM_ITEMS_LENGTH);
#define VHDX_CREATE_LOCATOR_MAX_PAIRS	3
#define VHDX_CREATE_UTF16_MAX		0xfffe	/* a u16 length, even */

static u64 vhdx_round_up_mib(u64 v)
{
	return (v + VHDX_MiB - 1) & ~(VHDX_MiB - 1);
}

static int vhdx_create_check_log(struct vhdx_image *img, u32 log_size)
{
	if (log_size < VHDX_MiB || log_size > VHDX_CREATE_LOG_SIZE_MAX ||
	    log_size % VHDX_MiB)
		return vhdx_fail(img, -EINVAL,
				 "log size %u is not a multiple of 1 MiB from 1 MiB to 256 MiB",
				 log_size);
	return 0;
}

static int vhdx_create_check_geometry(struct vhdx_image *img,
				      const struct vhdx_create_params *p)
{
	u32 bs = p->block_size;

	if (bs < VHDX_BLOCK_SIZE_MIN || bs > VHDX_BLOCK_SIZE_MAX ||
	    (bs & (bs - 1)))
		return vhdx_fail(img, -EINVAL,
				 "block size %u is not a power of two from 1 MiB to 256 MiB",
				 bs);
	if (p->logical_sector_size != 512 && p->logical_sector_size != 4096)
		return vhdx_fail(img, -EINVAL,
				 "logical sector size %u is neither 512 nor 4096",
				 p->logical_sector_size);
	if (p->physical_sector_size != 512 && p->physical_sector_size != 4096)
		return vhdx_fail(img, -EINVAL,
				 "physical sector size %u is neither 512 nor 4096",
				 p->physical_sector_size);
	if (!p->virtual_size || p->virtual_size > VHDX_VIRTUAL_SIZE_MAX ||
	    p->virtual_size % p->logical_sector_size)
		return vhdx_fail(img, -EINVAL,
				 "virtual size %llu is not a non-zero multiple of the %u byte logical sector up to 64 TiB",
				 (unsigned long long)p->virtual_size,
				 p->logical_sector_size);
	return 0;
}

/*
 * UTF-8 to UTF-16LE, into @out unless it is NULL; *len gets the bytes.
 * Invalid UTF-8 (overlong forms and surrogates included) is -EINVAL, a
 * string longer than a locator length can say is -E2BIG.
 */
static int vhdx_utf16_encode(const char *str, u8 *out, u32 *len)
{
	const u8 *s = (const u8 *)str;
	u32 c, n = 0, need, i;

	while (*s) {
		if (*s < 0x80) {
			c = *s++;
			need = 0;
		} else if ((*s & 0xe0) == 0xc0) {
			c = *s++ & 0x1f;
			need = 1;
		} else if ((*s & 0xf0) == 0xe0) {
			c = *s++ & 0x0f;
			need = 2;
		} else if ((*s & 0xf8) == 0xf0) {
			c = *s++ & 0x07;
			need = 3;
		} else {
			return -EINVAL;
		}
		for (i = 0; i < need; i++, s++) {
			if ((*s & 0xc0) != 0x80)
				return -EINVAL;
			c = c << 6 | (*s & 0x3f);
		}
		if ((need == 1 && c < 0x80) || (need == 2 && c < 0x800) ||
		    (need == 3 && c < 0x10000) || c > 0x10ffff ||
		    (c >= 0xd800 && c < 0xe000))
			return -EINVAL;
		if (c >= 0x10000) {
			if (n + 4 > VHDX_CREATE_UTF16_MAX)
				return -E2BIG;
			c -= 0x10000;
			if (out) {
				out[n] = (0xd800 | c >> 10) & 0xff;
				out[n + 1] = (0xd800 | c >> 10) >> 8;
				out[n + 2] = (0xdc00 | (c & 0x3ff)) & 0xff;
				out[n + 3] = (0xdc00 | (c & 0x3ff)) >> 8;
			}
			n += 4;
		} else {
			if (n + 2 > VHDX_CREATE_UTF16_MAX)
				return -E2BIG;
			if (out) {
				out[n] = c & 0xff;
				out[n + 1] = c >> 8;
			}
			n += 2;
		}
	}
	*len = n;
	return 0;
}

/* The pairs of the VHDX locator, linkage first; returns how many. */
static u32 vhdx_create_locator_pairs(const struct vhdx_create_parent *parent,
				     char *linkage,
				     struct vhdx_locator_kv *pairs)
{
	u32 n = 0;

	vhdx_locator_linkage_string(&parent->data_write_guid, linkage);
	pairs[n++] = (struct vhdx_locator_kv) {
		VHDX_LOCATOR_PARENT_LINKAGE, linkage };
	if (parent->relative_path)
		pairs[n++] = (struct vhdx_locator_kv) {
			VHDX_LOCATOR_RELATIVE_PATH, parent->relative_path };
	if (parent->absolute_win32_path)
		pairs[n++] = (struct vhdx_locator_kv) {
			VHDX_LOCATOR_ABSOLUTE_PATH,
			parent->absolute_win32_path };
	return n;
}

int vhdx_locator_build(struct vhdx_image *img,
		       const struct vhdx_locator_kv *pairs, u32 n, u8 *item,
		       u32 *len)
{
	struct vhdx_parent_locator_header *hdr = (void *)item;
	struct vhdx_parent_locator_entry *e;
	u32 i, kl, vl, off;
	int ret;

	if (n > VHDX_LOCATOR_MAX_ENTRIES)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: %u entries, more than %u",
				 n, VHDX_LOCATOR_MAX_ENTRIES);
	off = sizeof(*hdr) + n * sizeof(*e);
	if (item) {
		memset(hdr, 0, sizeof(*hdr));
		hdr->locator_type = vhdx_guid_parent_locator_type;
		hdr->key_value_count = cpu_to_le16(n);
	}
	e = item ? (void *)(hdr + 1) : NULL;
	for (i = 0; i < n; i++) {
		ret = vhdx_utf16_encode(pairs[i].key, item ? item + off : NULL,
					&kl);
		if (!ret)
			ret = vhdx_utf16_encode(pairs[i].value,
						item ? item + off + kl : NULL,
						&vl);
		if (ret == -E2BIG)
			return vhdx_fail(img, ret,
					 "parent locator: %s is longer than %u bytes of UTF-16",
					 pairs[i].key, VHDX_CREATE_UTF16_MAX);
		if (ret)
			return vhdx_fail(img, ret,
					 "parent locator: %s is not valid UTF-8",
					 pairs[i].key);
		if (e) {
			e[i].key_offset = cpu_to_le32(off);
			e[i].value_offset = cpu_to_le32(off + kl);
			e[i].key_length = cpu_to_le16(kl);
			e[i].value_length = cpu_to_le16(vl);
		}
		off += kl + vl;
	}
	*len = off;
	return 0;
}

void vhdx_locator_linkage_string(const guid_t *guid, char *out)
{
	char *c;

	/* The spec asks for lower case in braces. */
	out[0] = '{';
	vhdx_guid_to_string(guid, out + 1);
	for (c = out + 1; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c += 'a' - 'A';
	*c++ = '}';
	*c = 0;
}

/*
 * Builds the parent locator item into @item (NULL: only measure it) and
 * sets *len to its length.  Header, entries, then each key and its value.
 */
static int vhdx_create_locator(struct vhdx_image *img,
			       const struct vhdx_create_parent *parent,
			       u8 *item, u32 *len)
{
	struct vhdx_locator_kv pairs[VHDX_CREATE_LOCATOR_MAX_PAIRS];
	char linkage[VHDX_GUID_STRING_SIZE + 2];
	u32 n;

	n = vhdx_create_locator_pairs(parent, linkage, pairs);
	if (n < 2)
		return vhdx_fail(img, -EINVAL,
				 "parent locator: no path to the parent");
	return vhdx_locator_build(img, pairs, n, item, len);
}

/* Fills in the defaults, validates every size and places every object. */
int vhdx_create_plan(struct vhdx_image *img, struct vhdx_create_params *p,
		     struct vhdx_create_layout *layout)
{
	struct vhdx_geometry *geo = &layout->geo;
	int ret;

	if (!p->block_size)
		p->block_size = VHDX_CREATE_DEFAULT_BLOCK_SIZE;
	if (!p->logical_sector_size)
		p->logical_sector_size = 512;
	if (!p->physical_sector_size)
		p->physical_sector_size = VHDX_CREATE_DEFAULT_PHYSICAL_SECTOR;
	if (!p->log_size)
		p->log_size = VHDX_CREATE_DEFAULT_LOG_SIZE;
	layout->locator_length = 0;
	if (p->fixed && p->parent)
		return vhdx_fail(img, -EINVAL,
				 "a differencing image cannot be fixed");
	ret = vhdx_create_check_log(img, p->log_size);
	if (!ret)
		ret = vhdx_create_check_geometry(img, p);
	if (!ret && p->parent)
		ret = vhdx_create_locator(img, p->parent, NULL,
					  &layout->locator_length);
	if (ret)
		return ret;
	if (layout->locator_length > VHDX_MiB - VHDX_METADATA_TABLE_SIZE -
				     VHDX_CREATE_SYSTEM_ITEMS_LENGTH)
		return vhdx_fail(img, -EINVAL,
				 "parent locator of %u bytes does not fit in the metadata region",
				 layout->locator_length);
	ret = vhdx_geometry_init(geo, p->virtual_size, p->block_size,
				 p->logical_sector_size,
				 p->physical_sector_size, !!p->parent);
	if (ret)
		return vhdx_fail(img, ret, "invalid geometry");

	layout->log_offset = VHDX_HEADER_SECTION_SIZE;
	layout->log_length = p->log_size;
	layout->bat_offset = layout->log_offset + layout->log_length;
	layout->bat_length = vhdx_round_up_mib(geo->bat_entries *
					       sizeof(__le64));
	layout->metadata_offset = layout->bat_offset + layout->bat_length;
	layout->metadata_length = VHDX_MiB;
	layout->data_offset = layout->metadata_offset +
			      layout->metadata_length;
	layout->file_size = layout->data_offset;
	/* Whole blocks, also the last one: readers check blocks, not bytes. */
	if (p->fixed)
		layout->file_size += geo->payload_blocks << geo->block_shift;
	return 0;
}

static void vhdx_create_file_identifier(void *buf, const char *creator)
{
	struct vhdx_file_identifier *id = buf;
	size_t i;

	memcpy(id->signature, VHDX_SIGNATURE_FILE, sizeof(id->signature));
	for (i = 0; creator && creator[i] &&
	     i < ARRAY_SIZE(id->creator) - 1; i++)
		id->creator[i] = cpu_to_le16((u8)creator[i]);
}

static void vhdx_create_headers(u8 *section,
				const struct vhdx_create_layout *layout)
{
	struct vhdx_header *h1 = (void *)(section + VHDX_HEADER1_OFFSET);
	struct vhdx_header *h2 = (void *)(section + VHDX_HEADER2_OFFSET);

	memcpy(h1->signature, VHDX_SIGNATURE_HEADER, sizeof(h1->signature));
	h1->sequence_number = cpu_to_le64(1);
	vhdx_guid_gen(&h1->file_write_guid);
	vhdx_guid_gen(&h1->data_write_guid);
	/* The null LogGuid says the log is empty. */
	h1->log_version = cpu_to_le16(VHDX_LOG_VERSION);
	h1->version = cpu_to_le16(VHDX_HEADER_VERSION);
	h1->log_length = cpu_to_le32(layout->log_length);
	h1->log_offset = cpu_to_le64(layout->log_offset);
	/* Both valid, header 2 current: one damaged header still opens. */
	*h2 = *h1;
	h2->sequence_number = cpu_to_le64(2);
	vhdx_checksum_set(h1, sizeof(*h1),
			  offsetof(struct vhdx_header, checksum));
	vhdx_checksum_set(h2, sizeof(*h2),
			  offsetof(struct vhdx_header, checksum));
}

static void vhdx_create_region_table(void *table,
				     const struct vhdx_create_layout *layout)
{
	struct vhdx_region_table_header *hdr = table;
	struct vhdx_region_table_entry *e = (void *)(hdr + 1);

	memcpy(hdr->signature, VHDX_SIGNATURE_REGION, sizeof(hdr->signature));
	hdr->entry_count = cpu_to_le32(2);
	e[0].guid = vhdx_guid_bat_region;
	e[0].file_offset = cpu_to_le64(layout->bat_offset);
	e[0].length = cpu_to_le32(layout->bat_length);
	e[0].required = cpu_to_le32(VHDX_REGION_REQUIRED);
	e[1].guid = vhdx_guid_metadata_region;
	e[1].file_offset = cpu_to_le64(layout->metadata_offset);
	e[1].length = cpu_to_le32(layout->metadata_length);
	e[1].required = cpu_to_le32(VHDX_REGION_REQUIRED);
	vhdx_checksum_set(table, VHDX_REGION_TABLE_SIZE,
			  offsetof(struct vhdx_region_table_header, checksum));
}

static int vhdx_create_header_section(struct vhdx_image *img,
				      const struct vhdx_io *io,
				      const struct vhdx_create_params *p,
				      const struct vhdx_create_layout *layout)
{
	u8 *section;
	int ret;

	section = vhdx_alloc(VHDX_HEADER_SECTION_SIZE);
	if (!section)
		return vhdx_fail(img, -ENOMEM, "header section: out of memory");
	vhdx_create_file_identifier(section + VHDX_FILE_ID_OFFSET, p->creator);
	vhdx_create_headers(section, layout);
	vhdx_create_region_table(section + VHDX_REGION_TABLE1_OFFSET, layout);
	memcpy(section + VHDX_REGION_TABLE2_OFFSET,
	       section + VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE_SIZE);
	ret = io->write(io->priv, 0, section, VHDX_HEADER_SECTION_SIZE);
	vhdx_free(section);
	if (ret)
		return vhdx_fail(img, ret, "header section: write error %d",
				 ret);
	return 0;
}

struct vhdx_create_item {
	const guid_t *guid;
	u32 length;
	u32 flags;
};

/*
 * The system items, packed after the table in the order QEMU uses, then
 * the parent locator of a differencing image.
 */
static void vhdx_create_metadata_table(void *region, u32 locator_length)
{
	const u32 disk_flags = VHDX_METADATA_FLAG_IS_REQUIRED |
			       VHDX_METADATA_FLAG_IS_VIRTUAL_DISK;
	const struct vhdx_create_item items[] = {
		{ &vhdx_guid_file_parameters,
		  sizeof(struct vhdx_file_parameters),
		  VHDX_METADATA_FLAG_IS_REQUIRED },
		{ &vhdx_guid_virtual_disk_size, sizeof(__le64), disk_flags },
		{ &vhdx_guid_virtual_disk_id, sizeof(guid_t), disk_flags },
		{ &vhdx_guid_logical_sector_size, sizeof(__le32), disk_flags },
		{ &vhdx_guid_physical_sector_size, sizeof(__le32), disk_flags },
		{ &vhdx_guid_parent_locator, locator_length,
		  VHDX_METADATA_FLAG_IS_REQUIRED },
	};
	struct vhdx_metadata_table_header *hdr = region;
	struct vhdx_metadata_table_entry *e = (void *)(hdr + 1);
	u32 i, count = ARRAY_SIZE(items) - !locator_length;
	u32 offset = VHDX_METADATA_TABLE_SIZE;

	memcpy(hdr->signature, VHDX_SIGNATURE_METADATA, sizeof(hdr->signature));
	hdr->entry_count = cpu_to_le16(count);
	for (i = 0; i < count; i++) {
		e[i].item_id = *items[i].guid;
		e[i].offset = cpu_to_le32(offset);
		e[i].length = cpu_to_le32(items[i].length);
		e[i].flags = cpu_to_le32(items[i].flags);
		offset += items[i].length;
	}
}

static int vhdx_create_metadata_items(struct vhdx_image *img, u8 *region,
				      const struct vhdx_create_params *p,
				      const struct vhdx_create_layout *layout)
{
	struct vhdx_file_parameters params = {
		.block_size = cpu_to_le32(layout->geo.block_size),
		/* Hyper-V's mark of a fixed image: never free its blocks. */
		.flags = cpu_to_le32((p->fixed ?
				      VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED : 0) |
				     (p->parent ? VHDX_PARAMS_HAS_PARENT : 0)),
	};
	__le64 size = cpu_to_le64(layout->geo.virtual_size);
	__le32 lss = cpu_to_le32(layout->geo.logical_sector_size);
	__le32 pss = cpu_to_le32(layout->geo.physical_sector_size);
	u8 *item = region + VHDX_METADATA_TABLE_SIZE;
	guid_t id;
	u32 len;
	int ret;

	if (p->parent)
		id = p->parent->virtual_disk_id;
	else
		vhdx_guid_gen(&id);
	memcpy(item, &params, sizeof(params));
	item += sizeof(params);
	memcpy(item, &size, sizeof(size));
	item += sizeof(size);
	memcpy(item, &id, sizeof(id));
	item += sizeof(id);
	memcpy(item, &lss, sizeof(lss));
	item += sizeof(lss);
	memcpy(item, &pss, sizeof(pss));
	item += sizeof(pss);
	if (!p->parent)
		return 0;
	ret = vhdx_create_locator(img, p->parent, item, &len);
	if (!ret && len != layout->locator_length)
		ret = vhdx_fail(img, -EINVAL,
				"parent locator: %u bytes, planned %u", len,
				layout->locator_length);
	return ret;
}

static int vhdx_create_metadata(struct vhdx_image *img,
				const struct vhdx_io *io,
				const struct vhdx_create_params *p,
				const struct vhdx_create_layout *layout)
{
	u8 *region;
	int ret;

	region = vhdx_alloc(layout->metadata_length);
	if (!region)
		return vhdx_fail(img, -ENOMEM, "metadata: out of memory");
	vhdx_create_metadata_table(region, layout->locator_length);
	ret = vhdx_create_metadata_items(img, region, p, layout);
	if (ret) {
		vhdx_free(region);
		return ret;
	}
	ret = io->write(io->priv, layout->metadata_offset, region,
			layout->metadata_length);
	vhdx_free(region);
	if (ret)
		return vhdx_fail(img, ret, "metadata: write error %d", ret);
	return 0;
}

static __le64 vhdx_create_bat_entry(const struct vhdx_create_layout *layout,
				    u64 block)
{
	return cpu_to_le64((layout->data_offset +
			    (block << layout->geo.block_shift)) |
			   VHDX_PAYLOAD_FULLY_PRESENT);
}

/*
 * A dynamic image's BAT is all zeros (NOT_PRESENT); in a fixed one payload
 * block b is FULLY_PRESENT at data_offset + b * block_size.  Sector bitmap
 * entries and the slack after the last entry stay zero.
 */
static int vhdx_create_bat(struct vhdx_image *img, const struct vhdx_io *io,
			   const struct vhdx_create_params *p,
			   const struct vhdx_create_layout *layout)
{
	const u64 per_chunk = VHDX_CREATE_BAT_CHUNK / sizeof(__le64);
	const struct vhdx_geometry *geo = &layout->geo;
	u64 entries = layout->bat_length / sizeof(__le64);
	u64 first, count, index, block = 0;
	__le64 *bat;
	int ret = 0;

	bat = vhdx_alloc(VHDX_CREATE_BAT_CHUNK);
	if (!bat)
		return vhdx_fail(img, -ENOMEM, "BAT: out of memory");
	for (first = 0; first < entries && !ret; first += count) {
		count = min_t(u64, per_chunk, entries - first);
		memset(bat, 0, count * sizeof(*bat));
		for (; p->fixed && block < geo->payload_blocks; block++) {
			index = vhdx_bat_payload_index(geo, block);
			if (index >= first + count)
				break;
			bat[index - first] = vhdx_create_bat_entry(layout,
								   block);
		}
		ret = io->write(io->priv, layout->bat_offset +
				first * sizeof(*bat), bat,
				count * sizeof(*bat));
	}
	vhdx_free(bat);
	if (ret)
		return vhdx_fail(img, ret, "BAT: write error %d", ret);
	return 0;
}

static int vhdx_create_flush(struct vhdx_image *img, const struct vhdx_io *io)
{
	int ret;

	if (!io->flush)
		return 0;
	ret = io->flush(io->priv);
	if (ret)
		return vhdx_fail(img, ret, "create: flush error %d", ret);
	return 0;
}

int vhdx_create(struct vhdx_image *img, const struct vhdx_io *io,
		const struct vhdx_create_params *p,
		const struct vhdx_create_layout *layout)
{
	int ret;

	if (!io->write)
		return vhdx_fail(img, -EROFS, "create: the device is read-only");
	ret = vhdx_create_bat(img, io, p, layout);
	if (!ret)
		ret = vhdx_create_metadata(img, io, p, layout);
	/* The structures first: the signature makes the file an image. */
	if (!ret)
		ret = vhdx_create_flush(img, io);
	if (!ret)
		ret = vhdx_create_header_section(img, io, p, layout);
	if (!ret)
		ret = vhdx_create_flush(img, io);
	return ret;
}
