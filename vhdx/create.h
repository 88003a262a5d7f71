/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Making a new, empty VHDX image: the layout and every structure but the
 * payload.  Used by vhdxsetup; kept in vhdx/ so the structures are written
 * by the same code that defines and parses them.
 */
#ifndef VHDX_CREATE_H
#define VHDX_CREATE_H

#include "vhdx.h"

#define VHDX_CREATE_DEFAULT_BLOCK_SIZE		(32 * VHDX_MiB)
#define VHDX_CREATE_DEFAULT_LOG_SIZE		VHDX_MiB
#define VHDX_CREATE_DEFAULT_PHYSICAL_SECTOR	4096
#define VHDX_CREATE_LOG_SIZE_MAX		VHDX_LOG_LENGTH_MAX

/*
 * The parent of a differencing image: its DataWriteGuid (the linkage), its
 * VirtualDiskId (a fork keeps the virtual disk's items, MS-VHDX 2.6.1.2)
 * and where to find it, as UTF-8 strings in the spec's Windows forms
 * (NULL: key left out; at least one path is needed).
 */
struct vhdx_create_parent {
	guid_t data_write_guid;
	guid_t virtual_disk_id;
	const char *relative_path;
	const char *absolute_win32_path;
};

/*
 * What the user asks for.  A zero size field picks the default, which
 * vhdx_create_plan() writes back so the caller can report it.
 */
struct vhdx_create_params {
	u64 virtual_size;
	u32 block_size;
	u32 logical_sector_size;
	u32 physical_sector_size;
	u32 log_size;
	bool fixed;
	const char *creator;		/* ASCII, stored as UTF-16; may be NULL */
	/*
	 * Non-NULL: a differencing image, every block NOT_PRESENT.  The
	 * caller copies the virtual size and sector sizes from the parent.
	 */
	const struct vhdx_create_parent *parent;
};

/*
 * Where everything goes: the log at 1 MiB, then the BAT, then the metadata,
 * then (fixed images) every payload block in order.  file_size is where the
 * last object ends.
 */
struct vhdx_create_layout {
	struct vhdx_geometry geo;
	u64 log_offset;
	u64 log_length;
	u64 bat_offset;
	u64 bat_length;
	u64 metadata_offset;
	u64 metadata_length;
	u64 data_offset;
	u64 file_size;
	u32 locator_length;		/* 0: no parent */
};

struct vhdx_locator_kv;

/*
 * Builds a VHDX parent locator item of the @n key-value pairs into @item
 * (NULL: only measure it); *@len gets its length.
 */
int vhdx_locator_build(struct vhdx_image *img,
		       const struct vhdx_locator_kv *pairs, u32 n, u8 *item,
		       u32 *len);
/* "{guid}" in lower case, as parent_linkage holds it: 39 bytes. */
void vhdx_locator_linkage_string(const guid_t *guid, char *out);

int vhdx_create_plan(struct vhdx_image *img, struct vhdx_create_params *p,
		     struct vhdx_create_layout *layout);

/*
 * Writes the file identifier, both headers, both region tables, the BAT and
 * the metadata of the planned image through io.  The payload blocks of a
 * fixed image are not written: the device must already be at least
 * layout->file_size bytes long and read as zeros there (a new sparse file).
 * Errors are described in img->error.
 */
int vhdx_create(struct vhdx_image *img, const struct vhdx_io *io,
		const struct vhdx_create_params *p,
		const struct vhdx_create_layout *layout);

#endif /* VHDX_CREATE_H */
