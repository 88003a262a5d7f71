/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Differencing images: the parent locator (MS-VHDX 2.6.2.6) and the
 * metadata load that accepts HasParent, which vhdx_open() uses when its
 * caller sets accept_parent (the module and vhdxsetup, to build chains).
 */
#ifndef VHDX_PARENT_H
#define VHDX_PARENT_H

#include "vhdx.h"

/*
 * Limits of this implementation, far beyond the five keys the spec
 * defines: they bound the work a hostile locator can cause.
 */
#define VHDX_LOCATOR_MAX_ENTRIES	256
#define VHDX_LOCATOR_MAX_KEY_LENGTH	256	/* bytes of UTF-16 */

/* The keys of the VHDX locator type (MS-VHDX 2.6.2.6.3). */
#define VHDX_LOCATOR_PARENT_LINKAGE	"parent_linkage"
#define VHDX_LOCATOR_PARENT_LINKAGE2	"parent_linkage2"
#define VHDX_LOCATOR_RELATIVE_PATH	"relative_path"
#define VHDX_LOCATOR_VOLUME_PATH	"volume_path"
#define VHDX_LOCATOR_ABSOLUTE_PATH	"absolute_win32_path"

/* One key-value pair, decoded from UTF-16LE to NUL-terminated UTF-8. */
struct vhdx_locator_kv {
	const char *key;
	const char *value;
};

/*
 * A parsed and validated VHDX parent locator.  kv and the strings it points
 * to are one allocation; the path pointers are NULL for an absent key.
 */
struct vhdx_locator {
	guid_t type;
	u32 count;
	struct vhdx_locator_kv *kv;
	guid_t parent_linkage;
	guid_t parent_linkage2;
	bool has_parent_linkage2;
	const char *relative_path;
	const char *volume_path;
	const char *absolute_win32_path;
};

/*
 * Parses a parent locator item of @len bytes.  Every offset and length is
 * checked against @len; the item must be of the VHDX locator type, carry a
 * parent_linkage GUID and at least one path.  On error, img->error says why
 * and @loc holds nothing to free.
 */
int vhdx_locator_parse(struct vhdx_image *img, const void *item, u32 len,
		       struct vhdx_locator *loc);
void vhdx_locator_free(struct vhdx_locator *loc);
/* The value of @key, or NULL. */
const char *vhdx_locator_get(const struct vhdx_locator *loc, const char *key);

/*
 * As vhdx_metadata_parse() and vhdx_metadata_load(), but a differencing
 * image (HasParent) is accepted: its geometry has the differencing BAT
 * size and its parent locator is parsed into @loc, which the caller frees
 * with vhdx_locator_free().  For an image without a parent, @loc is left
 * empty (count 0).
 */
int vhdx_metadata_parse_any(struct vhdx_image *img, const void *region,
			    u64 len, struct vhdx_locator *loc);
int vhdx_metadata_load_any(struct vhdx_image *img, struct vhdx_locator *loc);

/* "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", any case, braces optional. */
int vhdx_guid_parse(const char *s, guid_t *guid);

#endif /* VHDX_PARENT_H */
