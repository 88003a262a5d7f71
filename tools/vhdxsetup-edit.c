// SPDX-License-Identifier: GPL-2.0
/*
 * What the commands that change an image in place share (resize,
 * set-parent, merge --into): opening it for writing, and changing any set
 * of 4 KiB metadata sectors at once through one log entry.
 *
 * One log entry is all or nothing: a reader that finds it replays every
 * sector of it, one that finds it torn replays none (MS-VHDX 2.3.3).  So a
 * command writes whatever no reader can see yet (new space, BAT entries
 * past the current end) directly and flushes, then logs the sectors that
 * switch to it, then writes them in place and empties the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdxsetup.h"

#define METADATA_REGION_READ_MAX	(64 * VHDX_MiB)

static int edit_open_as(struct edit *e, const char *path,
			bool keep_data_write_guid, bool suspended)
{
	int ret;

	memset(e, 0, sizeof(*e));
	e->path = path;
	if (image_file_open(&e->f, path, O_RDWR))
		return EXIT_TROUBLE;
	/*
	 * Before the open, which may replay a log: no one else is changing
	 * it.  A suspended mapping of it writes nothing until its caller
	 * loads a new table (resize of a mapped image).
	 */
	if (suspended ? image_lock(path, e->f.fd, false) :
			image_lock_for_change(path, e->f.fd)) {
		close(e->f.fd);
		return EXIT_TROUBLE;
	}
	image_io_init(&e->io, &e->f, true);
	ret = image_open(&e->img, &e->io, e->f.size, false);
	if (ret) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, e->img.error);
		close(e->f.fd);
		return open_error_status(ret);
	}
	ret = vhdx_txn_init(&e->img);
	if (ret) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, e->img.error);
		vhdx_close(&e->img);
		close(e->f.fd);
		return EXIT_TROUBLE;
	}
	e->img.txn.keep_data_write_guid = keep_data_write_guid;
	e->opened = true;
	return EXIT_OK;
}

int edit_open(struct edit *e, const char *path, bool keep_data_write_guid)
{
	return edit_open_as(e, path, keep_data_write_guid, false);
}

int edit_open_suspended(struct edit *e, const char *path)
{
	return edit_open_as(e, path, false, true);
}

void edit_close(struct edit *e)
{
	if (!e->opened)
		return;
	vhdx_txn_free(&e->img);
	vhdx_close(&e->img);
	close(e->f.fd);
	e->opened = false;
}

int edit_fail(struct edit *e, int err)
{
	fprintf(stderr, "%s: %s: %s\n", progname, e->path,
		e->img.error[0] ? e->img.error : strerror(-err));
	return EXIT_TROUBLE;
}

int edit_flush(struct edit *e)
{
	int ret = e->io.flush(e->io.priv);

	if (ret)
		vhdx_fail(&e->img, ret, "flush: %s", strerror(-ret));
	return ret;
}

/*
 * Sets the @n sectors of @u in one log entry: stable data first (the
 * entry may point at it), the entry, stable again, then in place.  Until
 * the session ends, a crash leaves the entry for the next open to replay.
 */
int edit_log(struct edit *e, const struct vhdx_log_update *u, u32 n)
{
	struct vhdx_image *img = &e->img;
	u32 i;
	int ret;

	if (!n)
		return 0;
	if (n > img->txn.max_updates)
		return vhdx_fail(img, -E2BIG,
				 "%u metadata sectors change, more than one entry of the %u-byte log holds (%u)",
				 n, le32_to_cpu(img->header.log_length),
				 img->txn.max_updates);
	ret = vhdx_session_begin(img);
	if (!ret)
		ret = edit_flush(e);
	if (!ret)
		ret = vhdx_log_write_entry(img, &img->header.log_guid, u, n);
	if (!ret)
		ret = edit_flush(e);
	for (i = 0; !ret && i < n; i++) {
		ret = e->io.write(e->io.priv, u[i].offset, u[i].data,
				  VHDX_LOG_SECTOR_SIZE);
		if (ret)
			vhdx_fail(img, ret, "write error at %llu",
				  (unsigned long long)u[i].offset);
	}
	return ret;
}

/* Flushes what edit_log() wrote in place and empties the log. */
int edit_end(struct edit *e)
{
	return vhdx_session_end(&e->img);
}

/* A copy of the metadata region (bounded as the parser bounds it). */
int metadata_read(struct edit *e, u8 **region, u64 *len)
{
	const struct vhdx_region *r = e->img.metadata_region;
	int ret;

	*region = NULL;
	if (r->length > METADATA_REGION_READ_MAX ||
	    r->length < VHDX_METADATA_TABLE_SIZE)
		return vhdx_fail(&e->img, -EINVAL,
				 "metadata region of %llu bytes",
				 (unsigned long long)r->length);
	*region = malloc(r->length);
	if (!*region)
		return vhdx_fail(&e->img, -ENOMEM, "out of memory");
	ret = vhdx_read(&e->img, r->offset, *region, r->length);
	if (ret) {
		free(*region);
		*region = NULL;
		return vhdx_fail(&e->img, ret, "metadata: read error");
	}
	*len = r->length;
	return 0;
}

/*
 * The table entry of item @id in @region, or NULL.  The open already
 * validated the table; the bounds are checked again all the same.
 */
struct vhdx_metadata_table_entry *metadata_find(u8 *region, u64 len,
						const guid_t *id)
{
	struct vhdx_metadata_table_header *h = (void *)region;
	struct vhdx_metadata_table_entry *t = (void *)(h + 1);
	u32 i, count = le16_to_cpu(h->entry_count);

	if (count > VHDX_METADATA_MAX_ENTRIES)
		return NULL;
	for (i = 0; i < count; i++) {
		u64 off = le32_to_cpu(t[i].offset);
		u64 n = le32_to_cpu(t[i].length);

		if (memcmp(&t[i].item_id, id, sizeof(*id)))
			continue;
		if (off > len || n > len - off)
			return NULL;
		return &t[i];
	}
	return NULL;
}

/*
 * Adds to @u, for one log entry, every 4 KiB sector of @new (the region
 * at file offset @base, @len bytes) that differs from @old.
 */
u32 edit_diff_sectors(u64 base, const u8 *old, const u8 *new, u64 len,
		      struct vhdx_log_update *u, u32 n, u32 max)
{
	u64 s;

	for (s = 0; s < len; s += VHDX_LOG_SECTOR_SIZE) {
		if (!memcmp(old + s, new + s, VHDX_LOG_SECTOR_SIZE))
			continue;
		if (n == max)
			return max + 1;
		u[n].offset = base + s;
		u[n++].data = new + s;
	}
	return n;
}
