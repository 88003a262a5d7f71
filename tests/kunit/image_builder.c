// SPDX-License-Identifier: GPL-2.0
/*
 * In-memory VHDX images for the KUnit suites.  The layout arithmetic here
 * is done independently of vhdx/bat.c so that the tests do not inherit a
 * bug from the code they check.
 */
#include <kunit/test.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "image_builder.h"

static void vhdx_tb_kvfree(void *p)
{
	kvfree(p);
}

void *vhdx_tb_zalloc(struct kunit *test, size_t size)
{
	void *p = kvzalloc(size, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, vhdx_tb_kvfree, p),
			0);
	return p;
}

static void vhdx_tb_close_image(void *img)
{
	vhdx_close(img);
}

struct vhdx_image *vhdx_tb_new_image(struct kunit *test)
{
	struct vhdx_image *img = vhdx_tb_zalloc(test, sizeof(*img));

	KUNIT_ASSERT_EQ(test,
			kunit_add_action_or_reset(test, vhdx_tb_close_image,
						  img), 0);
	return img;
}

static u64 vhdx_tb_round_up(u64 v, u64 align)
{
	return (v + align - 1) / align * align;
}

void vhdx_tb_params_default(struct vhdx_tb_params *p)
{
	if (!p->virtual_size)
		p->virtual_size = 8 * VHDX_MiB;
	if (!p->block_size)
		p->block_size = VHDX_MiB;
	if (!p->logical_sector_size)
		p->logical_sector_size = 512;
	if (!p->physical_sector_size)
		p->physical_sector_size = 4096;
	if (!p->log_offset && !p->log_length) {
		p->log_offset = VHDX_MiB;
		p->log_length = VHDX_MiB;
	}
	if (!p->bat_offset)
		p->bat_offset = 2 * VHDX_MiB;
	if (!p->metadata_length)
		p->metadata_length = VHDX_MiB;
	if (!p->header_seq[0] && !p->header_seq[1]) {
		p->header_seq[0] = 10;
		p->header_seq[1] = 11;
	}
}

static void vhdx_tb_record(struct vhdx_tb *tb, char type, u64 offset,
			   size_t len)
{
	if (tb->nops < VHDX_TB_MAX_OPS)
		tb->ops[tb->nops] = (struct vhdx_tb_op) { type, offset, len };
	tb->nops++;
}

/* Fake device callbacks: bounds- and alignment-checked memcpy. */
static bool vhdx_tb_check_io(struct vhdx_tb *tb, u64 offset, size_t len)
{
	if (offset % VHDX_IO_ALIGN || len % VHDX_IO_ALIGN)
		tb->misaligned++;
	if (offset > tb->size || len > tb->size - offset) {
		tb->out_of_range++;
		return false;
	}
	return true;
}

static bool vhdx_tb_hits(u64 fail, u64 offset, size_t len)
{
	return fail != U64_MAX && fail >= offset && fail - offset < len;
}

static int vhdx_tb_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct vhdx_tb *tb = priv;

	tb->reads++;
	vhdx_tb_record(tb, 'r', offset, len);
	if (!vhdx_tb_check_io(tb, offset, len))
		return -EIO;
	if (vhdx_tb_hits(tb->fail_read_offset, offset, len))
		return tb->fail_errno;
	memcpy(buf, tb->dev + offset, len);
	return 0;
}

static int vhdx_tb_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct vhdx_tb *tb = priv;

	tb->writes++;
	vhdx_tb_record(tb, 'w', offset, len);
	if (!vhdx_tb_check_io(tb, offset, len))
		return -EIO;
	if (vhdx_tb_hits(tb->fail_write_offset, offset, len))
		return tb->fail_errno;
	memcpy(tb->dev + offset, buf, len);
	return 0;
}

static int vhdx_tb_flush(void *priv)
{
	struct vhdx_tb *tb = priv;

	tb->flushes++;
	vhdx_tb_record(tb, 'f', 0, 0);
	return 0;
}

void vhdx_tb_set_read_only(struct vhdx_tb *tb)
{
	tb->io.write = NULL;
	tb->io.flush = NULL;
}

void vhdx_tb_write_header(struct vhdx_header *h, u64 seq, u64 log_offset,
			  u32 log_length)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, VHDX_SIGNATURE_HEADER, sizeof(h->signature));
	h->sequence_number = cpu_to_le64(seq);
	h->file_write_guid = GUID_INIT(0x11111111, 0x2222, 0x3333, 0x44, 0x44,
				       1, 2, 3, 4, 5, 6);
	h->data_write_guid = GUID_INIT(0x55555555, 0x6666, 0x7777, 0x88, 0x88,
				       1, 2, 3, 4, 5, 6);
	h->log_version = cpu_to_le16(VHDX_LOG_VERSION);
	h->version = cpu_to_le16(VHDX_HEADER_VERSION);
	h->log_length = cpu_to_le32(log_length);
	h->log_offset = cpu_to_le64(log_offset);
	vhdx_checksum_set(h, sizeof(*h), offsetof(struct vhdx_header, checksum));
}

void vhdx_tb_write_region_table(void *table, const struct vhdx_tb_region *r,
				u32 count)
{
	struct vhdx_region_table_header *hdr = table;
	struct vhdx_region_table_entry *e = (void *)(hdr + 1);
	u32 i;

	memset(table, 0, VHDX_REGION_TABLE_SIZE);
	memcpy(hdr->signature, VHDX_SIGNATURE_REGION, sizeof(hdr->signature));
	hdr->entry_count = cpu_to_le32(count);
	for (i = 0; i < count; i++) {
		e[i].guid = *r[i].guid;
		e[i].file_offset = cpu_to_le64(r[i].offset);
		e[i].length = cpu_to_le32(r[i].length);
		e[i].required = cpu_to_le32(r[i].required);
	}
	vhdx_checksum_set(table, VHDX_REGION_TABLE_SIZE,
			  offsetof(struct vhdx_region_table_header, checksum));
}

void vhdx_tb_write_metadata(void *region, u64 len,
			    const struct vhdx_tb_metadata_item *items,
			    u32 count)
{
	struct vhdx_metadata_table_header *hdr = region;
	struct vhdx_metadata_table_entry *e = (void *)(hdr + 1);
	u32 i, next = VHDX_METADATA_TABLE_SIZE;

	memset(region, 0, len);
	memcpy(hdr->signature, VHDX_SIGNATURE_METADATA, sizeof(hdr->signature));
	hdr->entry_count = cpu_to_le16(count);
	for (i = 0; i < count; i++) {
		u32 length = items[i].length ? items[i].length :
			     items[i].data_len;
		/* MS-VHDX: an empty item has offset 0. */
		u32 offset = items[i].offset ? items[i].offset :
			     length ? next : 0;

		e[i].item_id = *items[i].guid;
		e[i].offset = cpu_to_le32(offset);
		e[i].length = cpu_to_le32(length);
		e[i].flags = cpu_to_le32(items[i].flags);
		if (items[i].data && (u64)offset + items[i].data_len <= len)
			memcpy((u8 *)region + offset, items[i].data,
			       items[i].data_len);
		if (!items[i].offset)
			next = offset + length;
	}
}

void vhdx_tb_system_items(struct vhdx_tb_metadata_item *items,
			  struct vhdx_tb_metadata_values *v,
			  u32 block_size, u32 file_flags, u64 virtual_size,
			  u32 lss, u32 pss)
{
	const u32 req = VHDX_METADATA_FLAG_IS_REQUIRED;
	const u32 vd = VHDX_METADATA_FLAG_IS_VIRTUAL_DISK;

	v->params.block_size = cpu_to_le32(block_size);
	v->params.flags = cpu_to_le32(file_flags);
	v->virtual_size = cpu_to_le64(virtual_size);
	v->virtual_disk_id = GUID_INIT(0xdeadbeef, 0x1234, 0x5678, 0x9a, 0xbc,
				       0xde, 0xf0, 0x12, 0x34, 0x56, 0x78);
	v->logical_sector_size = cpu_to_le32(lss);
	v->physical_sector_size = cpu_to_le32(pss);

	memset(items, 0, 5 * sizeof(*items));
	items[0] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_file_parameters, 0, 0, req,
		&v->params, sizeof(v->params) };
	items[1] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_virtual_disk_size, 0, 0, req | vd,
		&v->virtual_size, sizeof(v->virtual_size) };
	items[2] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_virtual_disk_id, 0, 0, req | vd,
		&v->virtual_disk_id, sizeof(v->virtual_disk_id) };
	items[3] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_logical_sector_size, 0, 0, req | vd,
		&v->logical_sector_size, sizeof(v->logical_sector_size) };
	items[4] = (struct vhdx_tb_metadata_item) {
		&vhdx_guid_physical_sector_size, 0, 0, req | vd,
		&v->physical_sector_size, sizeof(v->physical_sector_size) };
}

struct vhdx_header *vhdx_tb_header(struct vhdx_tb *tb, unsigned int slot)
{
	return (void *)(tb->dev + (slot ? VHDX_HEADER2_OFFSET :
					  VHDX_HEADER1_OFFSET));
}

void *vhdx_tb_region_table(struct vhdx_tb *tb, unsigned int copy)
{
	return tb->dev + (copy ? VHDX_REGION_TABLE2_OFFSET :
				 VHDX_REGION_TABLE1_OFFSET);
}

void *vhdx_tb_metadata(struct vhdx_tb *tb)
{
	return tb->dev + tb->p.metadata_offset;
}

void vhdx_tb_header_rechecksum(struct vhdx_tb *tb, unsigned int slot)
{
	vhdx_checksum_set(vhdx_tb_header(tb, slot), VHDX_HEADER_SIZE,
			  offsetof(struct vhdx_header, checksum));
}

void vhdx_tb_region_rechecksum(struct vhdx_tb *tb, unsigned int copy)
{
	vhdx_checksum_set(vhdx_tb_region_table(tb, copy),
			  VHDX_REGION_TABLE_SIZE,
			  offsetof(struct vhdx_region_table_header, checksum));
}

u64 vhdx_tb_payload_index(const struct vhdx_tb *tb, u64 block)
{
	return block + block / tb->chunk_ratio;
}

void vhdx_tb_set_bat(struct vhdx_tb *tb, u64 index, unsigned int state,
		     u64 offset)
{
	__le64 e = cpu_to_le64((offset & VHDX_BAT_OFFSET_MASK) | state);

	KUNIT_ASSERT_LT(tb->test, index, tb->bat_entries);
	memcpy(tb->dev + tb->p.bat_offset + index * 8, &e, sizeof(e));
}

u64 vhdx_tb_get_bat(const struct vhdx_tb *tb, u64 index)
{
	__le64 e;

	memcpy(&e, tb->dev + tb->p.bat_offset + index * 8, sizeof(e));
	return le64_to_cpu(e);
}

u64 vhdx_tb_bitmap_index(const struct vhdx_tb *tb, u64 chunk)
{
	return chunk * (tb->chunk_ratio + 1) + tb->chunk_ratio;
}

u64 vhdx_tb_alloc_bitmap(struct vhdx_tb *tb, u64 chunk, const void *bits)
{
	u64 offset = tb->next_free;

	KUNIT_ASSERT_LT(tb->test, chunk, tb->bitmap_blocks);
	KUNIT_ASSERT_LE(tb->test, offset + VHDX_BITMAP_BLOCK_SIZE, tb->size);
	if (bits)
		memcpy(tb->dev + offset, bits, VHDX_BITMAP_BLOCK_SIZE);
	else
		memset(tb->dev + offset, 0, VHDX_BITMAP_BLOCK_SIZE);
	vhdx_tb_set_bat(tb, vhdx_tb_bitmap_index(tb, chunk),
			VHDX_BITMAP_PRESENT, offset);
	tb->next_free += VHDX_BITMAP_BLOCK_SIZE;
	return offset;
}

u8 vhdx_tb_pattern(u64 voff)
{
	/* Differs between neighbouring sectors and blocks. */
	return (u8)((voff >> 9) * 31 + (voff >> 20) * 7 + (voff & 0xff) + 1);
}

u64 vhdx_tb_alloc_block(struct vhdx_tb *tb, u64 block)
{
	u64 offset = tb->next_free, i;
	u64 voff = block * tb->p.block_size;

	KUNIT_ASSERT_LT(tb->test, block, tb->payload_blocks);
	KUNIT_ASSERT_LE(tb->test, offset + tb->p.block_size, tb->size);
	for (i = 0; i < tb->p.block_size; i++)
		tb->dev[offset + i] = vhdx_tb_pattern(voff + i);
	vhdx_tb_set_bat(tb, vhdx_tb_payload_index(tb, block),
			VHDX_PAYLOAD_FULLY_PRESENT, offset);
	tb->next_free += tb->p.block_size;
	return offset;
}

static void vhdx_tb_layout(struct vhdx_tb *tb)
{
	struct vhdx_tb_params *p = &tb->p;

	tb->chunk_ratio = (u32)div64_u64(8 * VHDX_MiB * p->logical_sector_size,
					 p->block_size);
	tb->payload_blocks = div64_u64(p->virtual_size + p->block_size - 1,
				       p->block_size);
	tb->bitmap_blocks = div64_u64(tb->payload_blocks + tb->chunk_ratio - 1,
				      tb->chunk_ratio);
	if (p->file_flags & VHDX_PARAMS_HAS_PARENT)
		tb->bat_entries = tb->bitmap_blocks * (tb->chunk_ratio + 1);
	else
		tb->bat_entries = tb->payload_blocks +
			div64_u64(tb->payload_blocks - 1, tb->chunk_ratio);
	if (!p->bat_length)
		p->bat_length = vhdx_tb_round_up(tb->bat_entries * 8, VHDX_MiB);
	if (!p->metadata_offset)
		p->metadata_offset = p->bat_offset + p->bat_length;
	tb->data_offset = p->metadata_offset + p->metadata_length;
	tb->next_free = tb->data_offset;
	if (!p->device_size) {
		p->device_size = tb->data_offset +
				 tb->payload_blocks * p->block_size;
		if (p->file_flags & VHDX_PARAMS_HAS_PARENT)
			p->device_size += tb->bitmap_blocks *
					  VHDX_BITMAP_BLOCK_SIZE;
	}
	tb->size = p->device_size;
}

static void vhdx_tb_write_file_identifier(struct vhdx_tb *tb)
{
	struct vhdx_file_identifier *id = (void *)tb->dev;
	static const char creator[] = "dm-vhdx kunit";
	unsigned int i;

	memcpy(id->signature, VHDX_SIGNATURE_FILE, sizeof(id->signature));
	for (i = 0; i < sizeof(creator) - 1; i++)
		id->creator[i] = cpu_to_le16(creator[i]);
}

/* Bytes of UTF-16LE for ASCII @s, written at @out. */
static u32 vhdx_tb_utf16(u8 *out, const char *s)
{
	u32 i;

	for (i = 0; s[i]; i++) {
		out[2 * i] = s[i];
		out[2 * i + 1] = 0;
	}
	return 2 * i;
}

u32 vhdx_tb_write_locator(void *buf, u32 len, const struct vhdx_tb_kv *kv,
			  u32 count)
{
	struct vhdx_parent_locator_header *hdr = buf;
	struct vhdx_parent_locator_entry *e = (void *)(hdr + 1);
	u32 i, pos = sizeof(*hdr) + count * sizeof(*e), n;
	u8 *b = buf;

	memset(buf, 0, len);
	hdr->locator_type = vhdx_guid_parent_locator_type;
	hdr->key_value_count = cpu_to_le16(count);
	for (i = 0; i < count; i++) {
		WARN_ON(pos + 2 * (strlen(kv[i].key) + strlen(kv[i].value)) >
			len);
		n = vhdx_tb_utf16(b + pos, kv[i].key);
		e[i].key_offset = cpu_to_le32(pos);
		e[i].key_length = cpu_to_le16(n);
		pos += n;
		n = vhdx_tb_utf16(b + pos, kv[i].value);
		e[i].value_offset = cpu_to_le32(pos);
		e[i].value_length = cpu_to_le16(n);
		pos += n;
	}
	return pos;
}

#define VHDX_TB_LOCATOR_SIZE	512

static void vhdx_tb_write_metadata_region(struct vhdx_tb *tb)
{
	static const struct vhdx_tb_kv kv[] = {
		{ "parent_linkage", VHDX_TB_PARENT_LINKAGE_STRING },
		{ "relative_path", VHDX_TB_PARENT_PATH },
	};
	struct vhdx_tb_metadata_item items[6];
	struct vhdx_tb_metadata_values v;
	u32 count = 5;
	u8 *locator;

	vhdx_tb_system_items(items, &v, tb->p.block_size, tb->p.file_flags,
			     tb->p.virtual_size, tb->p.logical_sector_size,
			     tb->p.physical_sector_size);
	tb->virtual_disk_id = v.virtual_disk_id;
	if (tb->p.file_flags & VHDX_PARAMS_HAS_PARENT) {
		locator = vhdx_tb_zalloc(tb->test, VHDX_TB_LOCATOR_SIZE);
		items[count++] = (struct vhdx_tb_metadata_item) {
			&vhdx_guid_parent_locator, 0, 0,
			VHDX_METADATA_FLAG_IS_REQUIRED, locator,
			vhdx_tb_write_locator(locator, VHDX_TB_LOCATOR_SIZE,
					      kv, ARRAY_SIZE(kv)) };
	}
	vhdx_tb_write_metadata(vhdx_tb_metadata(tb), tb->p.metadata_length,
			       items, count);
}

struct vhdx_tb *vhdx_tb_build(struct kunit *test,
			      const struct vhdx_tb_params *params)
{
	struct vhdx_tb *tb = kunit_kzalloc(test, sizeof(*tb), GFP_KERNEL);
	u32 req;
	struct vhdx_tb_region regions[2];
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, tb);
	tb->test = test;
	if (params)
		tb->p = *params;
	vhdx_tb_params_default(&tb->p);
	vhdx_tb_layout(tb);
	tb->fail_read_offset = U64_MAX;
	tb->fail_write_offset = U64_MAX;
	tb->fail_errno = -EIO;
	tb->dev = vhdx_tb_zalloc(test, tb->size);
	tb->io = (struct vhdx_io) {
		.priv = tb,
		.read = vhdx_tb_read,
		.write = vhdx_tb_write,
		.flush = vhdx_tb_flush,
	};

	vhdx_tb_write_file_identifier(tb);
	for (i = 0; i < 2; i++)
		vhdx_tb_write_header(vhdx_tb_header(tb, i), tb->p.header_seq[i],
				     tb->p.log_offset, tb->p.log_length);
	tb->file_write_guid = vhdx_tb_header(tb, 0)->file_write_guid;
	tb->data_write_guid = vhdx_tb_header(tb, 0)->data_write_guid;

	req = tb->p.region_required ? VHDX_REGION_REQUIRED : 0;
	regions[0] = (struct vhdx_tb_region) {
		&vhdx_guid_bat_region, tb->p.bat_offset, tb->p.bat_length, req };
	regions[1] = (struct vhdx_tb_region) {
		&vhdx_guid_metadata_region, tb->p.metadata_offset,
		tb->p.metadata_length, req };
	for (i = 0; i < 2; i++)
		vhdx_tb_write_region_table(vhdx_tb_region_table(tb, i),
					   regions, ARRAY_SIZE(regions));
	vhdx_tb_write_metadata_region(tb);
	/* The BAT is all zeros: every block NOT_PRESENT, offset 0. */
	return tb;
}

static void vhdx_tb_overlay_free(void *ov)
{
	vhdx_overlay_free(ov);
}

struct vhdx_overlay *vhdx_tb_new_overlay(struct kunit *test)
{
	struct vhdx_overlay *ov = kunit_kzalloc(test, sizeof(*ov), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, ov);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							vhdx_tb_overlay_free,
							ov), 0);
	return ov;
}
