/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VHDX on-disk format (MS-VHDX v1.00).  Every structure the project reads or
 * writes is defined here and only here; the kernel target, the KUnit tests
 * and the userspace tools all include this file.
 *
 * All integers are little-endian.  Signatures are compared as byte strings
 * because the specification is inconsistent about their integer values.
 */
#ifndef VHDX_FORMAT_H
#define VHDX_FORMAT_H

#include "platform.h"

#define VHDX_KiB			1024ULL
#define VHDX_MiB			(1024 * VHDX_KiB)
#define VHDX_GiB			(1024 * VHDX_MiB)
#define VHDX_TiB			(1024 * VHDX_GiB)

/* The header section: five 64 KiB items in the first 1 MiB. */
#define VHDX_HEADER_SECTION_SIZE	VHDX_MiB
#define VHDX_FILE_ID_OFFSET		0
#define VHDX_HEADER1_OFFSET		(64 * VHDX_KiB)
#define VHDX_HEADER2_OFFSET		(128 * VHDX_KiB)
#define VHDX_REGION_TABLE1_OFFSET	(192 * VHDX_KiB)
#define VHDX_REGION_TABLE2_OFFSET	(256 * VHDX_KiB)

/* Every object after the header section is aligned to this. */
#define VHDX_OBJECT_ALIGN		VHDX_MiB

#define VHDX_SIGNATURE_FILE		"vhdxfile"
#define VHDX_SIGNATURE_HEADER		"head"
#define VHDX_SIGNATURE_REGION		"regi"
#define VHDX_SIGNATURE_METADATA		"metadata"
#define VHDX_SIGNATURE_LOG_ENTRY	"loge"
#define VHDX_SIGNATURE_LOG_ZERO		"zero"
#define VHDX_SIGNATURE_LOG_DESC		"desc"
#define VHDX_SIGNATURE_LOG_DATA		"data"

/* File type identifier, at offset 0.  Creator is diagnostic only. */
struct vhdx_file_identifier {
	u8	signature[8];
	__le16	creator[256];
} __packed;

#define VHDX_HEADER_SIZE		(4 * VHDX_KiB)
#define VHDX_HEADER_VERSION		1
#define VHDX_LOG_VERSION		0

struct vhdx_header {
	u8	signature[4];
	__le32	checksum;		/* CRC-32C over the 4 KiB, this field 0 */
	__le64	sequence_number;
	guid_t	file_write_guid;
	guid_t	data_write_guid;
	guid_t	log_guid;		/* null: the log is empty */
	__le16	log_version;
	__le16	version;
	__le32	log_length;
	__le64	log_offset;
	u8	reserved[4016];
} __packed;

#define VHDX_REGION_TABLE_SIZE		(64 * VHDX_KiB)
#define VHDX_REGION_MAX_ENTRIES		2047

struct vhdx_region_table_header {
	u8	signature[4];
	__le32	checksum;		/* CRC-32C over 64 KiB, this field 0 */
	__le32	entry_count;
	__le32	reserved;
} __packed;

struct vhdx_region_table_entry {
	guid_t	guid;
	__le64	file_offset;
	__le32	length;
	__le32	required;		/* bit 0: refuse the file if unknown */
} __packed;

#define VHDX_REGION_REQUIRED		1U

#define VHDX_METADATA_TABLE_SIZE	(64 * VHDX_KiB)
#define VHDX_METADATA_MAX_ENTRIES	2047
#define VHDX_METADATA_MAX_USER_ENTRIES	1024
#define VHDX_METADATA_ITEM_MAX_LENGTH	VHDX_MiB

struct vhdx_metadata_table_header {
	u8	signature[8];
	__le16	reserved;
	__le16	entry_count;
	u8	reserved2[20];
} __packed;

struct vhdx_metadata_table_entry {
	guid_t	item_id;
	__le32	offset;			/* from the start of the region */
	__le32	length;
	__le32	flags;
	__le32	reserved;
} __packed;

#define VHDX_METADATA_FLAG_IS_USER		BIT(0)
#define VHDX_METADATA_FLAG_IS_VIRTUAL_DISK	BIT(1)
#define VHDX_METADATA_FLAG_IS_REQUIRED		BIT(2)

struct vhdx_file_parameters {
	__le32	block_size;
	__le32	flags;
} __packed;

#define VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED	BIT(0)
#define VHDX_PARAMS_HAS_PARENT			BIT(1)

#define VHDX_BLOCK_SIZE_MIN		VHDX_MiB
#define VHDX_BLOCK_SIZE_MAX		(256 * VHDX_MiB)
#define VHDX_VIRTUAL_SIZE_MAX		(64 * VHDX_TiB)

struct vhdx_parent_locator_header {
	guid_t	locator_type;
	__le16	reserved;
	__le16	key_value_count;
} __packed;

struct vhdx_parent_locator_entry {
	__le32	key_offset;
	__le32	value_offset;
	__le16	key_length;
	__le16	value_length;
} __packed;

/* Log: a ring of entries, each made of 4 KiB sectors. */
#define VHDX_LOG_SECTOR_SIZE		(4 * VHDX_KiB)
#define VHDX_LOG_DESCRIPTORS_PER_SECTOR	128
/* The entry header takes the room of two descriptors in the first sector. */
#define VHDX_LOG_HEADER_DESCRIPTOR_SLOTS 2

struct vhdx_log_entry_header {
	u8	signature[4];
	__le32	checksum;		/* CRC-32C over entry_length bytes */
	__le32	entry_length;
	__le32	tail;			/* ring offset of the sequence's first entry */
	__le64	sequence_number;
	__le32	descriptor_count;
	__le32	reserved;
	guid_t	log_guid;
	__le64	flushed_file_offset;
	__le64	last_file_offset;
} __packed;

/*
 * A zero descriptor ("zero") zeroes zero_length bytes; a data descriptor
 * ("desc") carries the first 8 and last 4 bytes of a 4 KiB sector whose
 * other bytes are in the matching data sector.
 */
struct vhdx_log_descriptor {
	u8	signature[4];
	union {
		__le32	reserved;		/* zero descriptor */
		u8	trailing_bytes[4];	/* data descriptor */
	};
	union {
		__le64	zero_length;		/* zero descriptor */
		u8	leading_bytes[8];	/* data descriptor */
	};
	__le64	file_offset;
	__le64	sequence_number;
} __packed;

struct vhdx_log_data_sector {
	u8	signature[4];
	__le32	sequence_high;
	u8	data[4084];
	__le32	sequence_low;
} __packed;

/* BAT entries: state in bits 0-2, file offset in MiB in bits 20-63. */
#define VHDX_BAT_STATE_MASK		0x7ULL
#define VHDX_BAT_RESERVED_MASK		0xffff8ULL
#define VHDX_BAT_OFFSET_MASK		0xfffffffffff00000ULL

enum vhdx_payload_state {
	VHDX_PAYLOAD_NOT_PRESENT	= 0,
	VHDX_PAYLOAD_UNDEFINED		= 1,
	VHDX_PAYLOAD_ZERO		= 2,
	VHDX_PAYLOAD_UNMAPPED		= 3,
	VHDX_PAYLOAD_UNMAPPED_V095	= 5,	/* the 0.95 draft's value */
	VHDX_PAYLOAD_FULLY_PRESENT	= 6,
	VHDX_PAYLOAD_PARTIALLY_PRESENT	= 7,
};

enum vhdx_bitmap_state {
	VHDX_BITMAP_NOT_PRESENT		= 0,
	VHDX_BITMAP_PRESENT		= 6,
};

/* A sector bitmap block has one bit per logical sector of its chunk. */
#define VHDX_BITMAP_BLOCK_SIZE		VHDX_MiB
#define VHDX_SECTORS_PER_CHUNK		(8 * VHDX_BITMAP_BLOCK_SIZE)

/* The structures above must have exactly the specification's sizes. */
static_assert(sizeof(struct vhdx_file_identifier) == 520);
static_assert(sizeof(struct vhdx_header) == VHDX_HEADER_SIZE);
static_assert(sizeof(struct vhdx_region_table_header) == 16);
static_assert(sizeof(struct vhdx_region_table_entry) == 32);
static_assert(sizeof(struct vhdx_region_table_header) +
	      VHDX_REGION_MAX_ENTRIES * sizeof(struct vhdx_region_table_entry)
	      <= VHDX_REGION_TABLE_SIZE);
static_assert(sizeof(struct vhdx_metadata_table_header) == 32);
static_assert(sizeof(struct vhdx_metadata_table_entry) == 32);
static_assert(sizeof(struct vhdx_file_parameters) == 8);
static_assert(sizeof(struct vhdx_parent_locator_header) == 20);
static_assert(sizeof(struct vhdx_parent_locator_entry) == 12);
static_assert(sizeof(struct vhdx_log_entry_header) == 64);
static_assert(sizeof(struct vhdx_log_descriptor) == 32);
static_assert(sizeof(struct vhdx_log_data_sector) == VHDX_LOG_SECTOR_SIZE);
static_assert(VHDX_LOG_HEADER_DESCRIPTOR_SLOTS *
	      sizeof(struct vhdx_log_descriptor) ==
	      sizeof(struct vhdx_log_entry_header));

#endif /* VHDX_FORMAT_H */
