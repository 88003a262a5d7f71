// SPDX-License-Identifier: GPL-2.0
/*
 * Creating an image.  The header section is written last, so an interrupted
 * create leaves a file that no reader mistakes for a VHDX image.
 */
#include "create.h"

#define VHDX_CREATE_BAT_CHUNK	VHDX_MiB

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
	ret = vhdx_create_check_log(img, p->log_size);
	if (!ret)
		ret = vhdx_create_check_geometry(img, p);
	if (ret)
		return ret;
	ret = vhdx_geometry_init(geo, p->virtual_size, p->block_size,
				 p->logical_sector_size,
				 p->physical_sector_size, false);
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

/* The system items, packed after the table in the order QEMU uses. */
static void vhdx_create_metadata_table(void *region)
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
	};
	struct vhdx_metadata_table_header *hdr = region;
	struct vhdx_metadata_table_entry *e = (void *)(hdr + 1);
	u32 i, offset = VHDX_METADATA_TABLE_SIZE;

	memcpy(hdr->signature, VHDX_SIGNATURE_METADATA, sizeof(hdr->signature));
	hdr->entry_count = cpu_to_le16(ARRAY_SIZE(items));
	for (i = 0; i < ARRAY_SIZE(items); i++) {
		e[i].item_id = *items[i].guid;
		e[i].offset = cpu_to_le32(offset);
		e[i].length = cpu_to_le32(items[i].length);
		e[i].flags = cpu_to_le32(items[i].flags);
		offset += items[i].length;
	}
}

static void vhdx_create_metadata_items(u8 *region,
				       const struct vhdx_create_params *p,
				       const struct vhdx_create_layout *layout)
{
	struct vhdx_file_parameters params = {
		.block_size = cpu_to_le32(layout->geo.block_size),
		/* Hyper-V's mark of a fixed image: never free its blocks. */
		.flags = cpu_to_le32(p->fixed ?
				     VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED : 0),
	};
	__le64 size = cpu_to_le64(layout->geo.virtual_size);
	__le32 lss = cpu_to_le32(layout->geo.logical_sector_size);
	__le32 pss = cpu_to_le32(layout->geo.physical_sector_size);
	u8 *item = region + VHDX_METADATA_TABLE_SIZE;
	guid_t id;

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
	vhdx_create_metadata_table(region);
	vhdx_create_metadata_items(region, p, layout);
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
