/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test helper shared by the KUnit suites: builds a complete VHDX image in
 * memory (file identifier, two headers, two region tables, metadata, BAT,
 * payload blocks) and exposes it through a fake struct vhdx_io.
 *
 * Everything allocated here is released automatically when the test ends
 * (KUnit deferred actions), so suites never free builder memory themselves.
 *
 * Default layout, the one QEMU's create writes for a small image:
 *   0       header section (identifier, headers, region tables)
 *   1 MiB   log, 1 MiB
 *   2 MiB   BAT, 1 MiB
 *   3 MiB   metadata, 1 MiB (table at 0, items packed from 64 KiB)
 *   4 MiB   payload blocks, allocated in order by vhdx_tb_alloc_block()
 *           (and sector bitmap blocks, by vhdx_tb_alloc_bitmap())
 *
 * A HasParent image (file_flags) also gets a parent locator item naming
 * VHDX_TB_PARENT_LINKAGE and VHDX_TB_PARENT_PATH, and its default device
 * has room for one sector bitmap block per chunk.
 */
#ifndef VHDX_KUNIT_IMAGE_BUILDER_H
#define VHDX_KUNIT_IMAGE_BUILDER_H

#include <kunit/test.h>

#include "../../vhdx/vhdx.h"

struct vhdx_tb_params {
	u64 virtual_size;		/* default 8 MiB */
	u32 block_size;			/* default 1 MiB */
	u32 logical_sector_size;	/* default 512 */
	u32 physical_sector_size;	/* default 4096 */
	u32 file_flags;			/* VHDX_PARAMS_*, default 0 */
	u64 log_offset;			/* default 1 MiB */
	u32 log_length;			/* default 1 MiB; 0 with log_offset 0: no log */
	u64 bat_offset;			/* default 2 MiB */
	u32 bat_length;			/* default: entries rounded up to 1 MiB */
	u64 metadata_offset;		/* default bat_offset + bat_length */
	u32 metadata_length;		/* default 1 MiB */
	bool region_required;		/* Required bit on BAT/metadata entries */
	u64 header_seq[2];		/* default 10, 11: header 2 current */
	u64 device_size;		/* default: room for every payload block */
};

/* One device call: 'r'ead, 'w'rite or 'f'lush. */
struct vhdx_tb_op {
	char type;
	u64 offset;
	size_t len;
};

#define VHDX_TB_MAX_OPS	64

/* The fake device and everything the builder placed on it. */
struct vhdx_tb {
	struct kunit *test;
	struct vhdx_tb_params p;

	u8 *dev;			/* device contents */
	u64 size;			/* device size in bytes */
	struct vhdx_io io;		/* io.priv == this builder */

	/* Derived by the builder independently of vhdx/bat.c. */
	u32 chunk_ratio;
	u64 payload_blocks;
	u64 bitmap_blocks;		/* chunks */
	u64 bat_entries;
	u64 data_offset;		/* first payload block */
	u64 next_free;			/* where the next allocated block goes */

	guid_t file_write_guid;
	guid_t data_write_guid;
	guid_t virtual_disk_id;

	/* I/O accounting, for "read-only never writes" and alignment. */
	unsigned int reads;
	unsigned int writes;
	unsigned int flushes;
	unsigned int misaligned;	/* calls not 4 KiB aligned */
	unsigned int out_of_range;	/* calls beyond the device */
	/* Fail any read/write touching [fail_offset, fail_offset + 1). */
	u64 fail_read_offset;		/* U64_MAX: none */
	u64 fail_write_offset;		/* U64_MAX: none */
	int fail_errno;
	/* The first VHDX_TB_MAX_OPS calls, in order, for ordering checks. */
	struct vhdx_tb_op ops[VHDX_TB_MAX_OPS];
	unsigned int nops;
};

/* The parent locator of a HasParent image: the GUID and its string. */
#define VHDX_TB_PARENT_LINKAGE \
	GUID_INIT(0x12345678, 0x9abc, 0xdef0, \
		  0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88)
#define VHDX_TB_PARENT_LINKAGE_STRING \
	"{12345678-9ABC-DEF0-1122-334455667788}"
#define VHDX_TB_PARENT_PATH		"parent.vhdx"

/* Fills unset (zero) fields of @p with the defaults above. */
void vhdx_tb_params_default(struct vhdx_tb_params *p);

/*
 * Builds a complete clean image (empty log, every BAT entry NOT_PRESENT).
 * Fails the test (KUNIT_ASSERT) on allocation errors or a bad @p.
 */
struct vhdx_tb *vhdx_tb_build(struct kunit *test,
			      const struct vhdx_tb_params *p);

/* kvzalloc()ed memory freed at test end; asserts on failure. */
void *vhdx_tb_zalloc(struct kunit *test, size_t size);

/* A zeroed struct vhdx_image whose allocations vhdx_close() at test end. */
struct vhdx_image *vhdx_tb_new_image(struct kunit *test);

/* Makes the fake device read-only: io.write and io.flush become NULL. */
void vhdx_tb_set_read_only(struct vhdx_tb *tb);

/* BAT entries, written in place on the device. */
u64 vhdx_tb_payload_index(const struct vhdx_tb *tb, u64 block);
void vhdx_tb_set_bat(struct vhdx_tb *tb, u64 index, unsigned int state,
		     u64 offset);
u64 vhdx_tb_get_bat(const struct vhdx_tb *tb, u64 index);
/* Allocates @block at next_free, fills it with vhdx_tb_pattern(). */
u64 vhdx_tb_alloc_block(struct vhdx_tb *tb, u64 block);
/* Sector bitmap entries: chunk @chunk's index, computed independently. */
u64 vhdx_tb_bitmap_index(const struct vhdx_tb *tb, u64 chunk);
/*
 * Allocates the sector bitmap block of @chunk at next_free, with @bits
 * (VHDX_BITMAP_BLOCK_SIZE bytes) or zeros, and marks it present.
 */
u64 vhdx_tb_alloc_bitmap(struct vhdx_tb *tb, u64 chunk, const void *bits);
/* The byte the builder stores at virtual offset @voff. */
u8 vhdx_tb_pattern(u64 voff);

/* Recomputes the checksums after a test changed a structure. */
void vhdx_tb_header_rechecksum(struct vhdx_tb *tb, unsigned int slot);
void vhdx_tb_region_rechecksum(struct vhdx_tb *tb, unsigned int copy);

/* Pointers into the device at the structures. */
struct vhdx_header *vhdx_tb_header(struct vhdx_tb *tb, unsigned int slot);
void *vhdx_tb_region_table(struct vhdx_tb *tb, unsigned int copy);
void *vhdx_tb_metadata(struct vhdx_tb *tb);

/*
 * Stand-alone structure writers, for suites that parse one structure
 * from a buffer.  They set valid checksums.
 */
struct vhdx_tb_region {
	const guid_t *guid;
	u64 offset;
	u32 length;
	u32 required;
};

void vhdx_tb_write_header(struct vhdx_header *h, u64 seq, u64 log_offset,
			  u32 log_length);
/* @table is VHDX_REGION_TABLE_SIZE bytes. */
void vhdx_tb_write_region_table(void *table, const struct vhdx_tb_region *r,
				u32 count);

struct vhdx_tb_metadata_item {
	const guid_t *guid;
	u32 offset;			/* 0: packed after the previous item */
	u32 length;			/* 0 with data NULL: use data_len */
	u32 flags;
	const void *data;
	u32 data_len;
};

/*
 * Writes a metadata table and its items into @region (@len bytes, zeroed
 * first).  Items with offset 0 are packed from 64 KiB on.
 */
void vhdx_tb_write_metadata(void *region, u64 len,
			    const struct vhdx_tb_metadata_item *items,
			    u32 count);

/*
 * The five system items for the given geometry, as QEMU orders and flags
 * them.  @items must hold 5 entries; @values backs their data.
 */
struct vhdx_tb_metadata_values {
	struct vhdx_file_parameters params;
	__le64 virtual_size;
	guid_t virtual_disk_id;
	__le32 logical_sector_size;
	__le32 physical_sector_size;
};

void vhdx_tb_system_items(struct vhdx_tb_metadata_item *items,
			  struct vhdx_tb_metadata_values *values,
			  u32 block_size, u32 file_flags, u64 virtual_size,
			  u32 lss, u32 pss);

/* One key-value pair of a parent locator, ASCII. */
struct vhdx_tb_kv {
	const char *key;
	const char *value;
};

/*
 * Writes a parent locator of the VHDX type holding @kv, encoded as
 * UTF-16LE, into @buf (@len bytes, zeroed first); returns its length.
 */
u32 vhdx_tb_write_locator(void *buf, u32 len, const struct vhdx_tb_kv *kv,
			  u32 count);

/* An empty overlay, freed when the test ends. */
struct vhdx_overlay *vhdx_tb_new_overlay(struct kunit *test);

#endif /* VHDX_KUNIT_IMAGE_BUILDER_H */
