// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup set-parent: point a differencing image at its parent where it
 * is now (the parent was moved or renamed), or, with --ignore-id-mismatch,
 * at a parent whose DataWriteGuid differs from the child's parent_linkage
 * (a parent written to since, or a copy): then the linkage takes the new
 * parent's DataWriteGuid.
 *
 * The new locator is built in a copy of the metadata region, in the old
 * item's place when it fits and past the last item otherwise; every 4 KiB
 * sector that differs goes into one log entry, so an interruption leaves
 * the old locator or the new one.  The child's content does not change:
 * its DataWriteGuid stays, and children of its own still link to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../vhdx/create.h"
#include "../vhdx/parent.h"
#include "vhdxsetup.h"

struct new_parent {
	guid_t data_write_guid;
	u64 virtual_size;
	u32 logical_sector_size;
	char relative[PATH_MAX];
	char absolute[PATH_MAX + 8];
	char linkage[VHDX_GUID_STRING_SIZE + 2];
};

/* What the locator takes from @path, a clean VHDX image. */
static int read_parent(const char *path, const char *child,
		       struct new_parent *np)
{
	char abs[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	int ret;

	if (image_file_open(&f, path, O_RDONLY))
		return EXIT_TROUBLE;
	image_io_init(&io, &f, false);
	ret = image_open(&img, &io, f.size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: cannot be a parent: %s\n", progname,
			path, img.error);
		close(f.fd);
		return open_error_status(ret);
	}
	ret = EXIT_TROUBLE;
	if (img.log_state != VHDX_LOG_CLEAN) {
		fprintf(stderr,
			"%s: %s: cannot be a parent: its log is not empty; run %s check --repair on it first\n",
			progname, path, progname);
		goto out;
	}
	np->data_write_guid = img.header.data_write_guid;
	np->virtual_size = img.geo.virtual_size;
	np->logical_sector_size = img.geo.logical_sector_size;
	snprintf(tmp, sizeof(tmp), "%s", child);
	if (!realpath(path, abs) || !realpath(dirname(tmp), dir)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path,
			strerror(errno));
		goto out;
	}
	if (relative_win_path(dir, abs, np->relative, sizeof(np->relative)) ||
	    absolute_win_path(abs, np->absolute, sizeof(np->absolute))) {
		fprintf(stderr,
			"%s: %s: the path has a backslash or is too long for a parent locator\n",
			progname, abs);
		goto out;
	}
	ret = EXIT_OK;
out:
	vhdx_close(&img);
	close(f.fd);
	return ret;
}

/*
 * The new pairs: the old ones in their order with the paths replaced;
 * volume_path goes (it names the old parent's volume, which Linux cannot
 * name), and so does parent_linkage2 when the linkage changes (it is an
 * alternative DataWriteGuid of the old parent).  Others are kept as they
 * are.  Returns how many.
 */
static u32 new_pairs(const struct vhdx_locator *loc, struct new_parent *np,
		     bool relink, struct vhdx_locator_kv *kv)
{
	bool rel = false, abs = false;
	u32 i, n = 0;

	for (i = 0; i < loc->count; i++) {
		const char *key = loc->kv[i].key;
		const char *value = loc->kv[i].value;

		if (!strcmp(key, VHDX_LOCATOR_VOLUME_PATH) ||
		    (relink && !strcmp(key, VHDX_LOCATOR_PARENT_LINKAGE2)))
			continue;
		if (!strcmp(key, VHDX_LOCATOR_PARENT_LINKAGE) && relink) {
			value = np->linkage;
		} else if (!strcmp(key, VHDX_LOCATOR_RELATIVE_PATH)) {
			value = np->relative;
			rel = true;
		} else if (!strcmp(key, VHDX_LOCATOR_ABSOLUTE_PATH)) {
			value = np->absolute;
			abs = true;
		}
		kv[n++] = (struct vhdx_locator_kv){ key, value };
	}
	if (!rel)
		kv[n++] = (struct vhdx_locator_kv){
			VHDX_LOCATOR_RELATIVE_PATH, np->relative };
	if (!abs)
		kv[n++] = (struct vhdx_locator_kv){
			VHDX_LOCATOR_ABSOLUTE_PATH, np->absolute };
	return n;
}

/*
 * Where the new item of @len bytes goes: its old place if it fits, else
 * 8-byte aligned past every item (past the 64 KiB table at least).
 */
static int place_item(u8 *region, u64 rlen,
		      const struct vhdx_metadata_table_entry *loc_entry,
		      u32 len, u64 *off)
{
	struct vhdx_metadata_table_header *h = (void *)region;
	struct vhdx_metadata_table_entry *t = (void *)(h + 1);
	u32 i, count = le16_to_cpu(h->entry_count);
	u64 end = VHDX_METADATA_TABLE_SIZE;

	if (len <= le32_to_cpu(loc_entry->length)) {
		*off = le32_to_cpu(loc_entry->offset);
		return 0;
	}
	for (i = 0; i < count && i < VHDX_METADATA_MAX_ENTRIES; i++) {
		u64 e = (u64)le32_to_cpu(t[i].offset) + le32_to_cpu(t[i].length);

		if (le32_to_cpu(t[i].length) && e > end)
			end = e;
	}
	end = (end + 7) & ~7ULL;
	if (end > rlen || len > rlen - end)
		return -ENOSPC;
	*off = end;
	return 0;
}

static int set_parent(struct edit *e, struct new_parent *np, bool relink,
		      const char *parent)
{
	struct vhdx_image *img = &e->img;
	struct vhdx_locator_kv kv[VHDX_LOCATOR_MAX_ENTRIES + 2];
	struct vhdx_metadata_table_entry *t;
	struct vhdx_log_update *u = NULL;
	u8 *old = NULL, *new = NULL, *item = NULL;
	u64 rlen, off;
	u32 n, len;
	int ret;

	n = new_pairs(img->locator, np, relink, kv);
	ret = vhdx_locator_build(img, kv, n, NULL, &len);
	if (ret)
		return ret;
	item = calloc(1, len);
	u = calloc(img->txn.max_updates + 1, sizeof(*u));
	if (!item || !u) {
		ret = vhdx_fail(img, -ENOMEM, "out of memory");
		goto out;
	}
	ret = vhdx_locator_build(img, kv, n, item, &len);
	if (!ret)
		ret = metadata_read(e, &old, &rlen);
	if (ret)
		goto out;
	new = malloc(rlen);
	if (!new) {
		ret = vhdx_fail(img, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(new, old, rlen);
	t = metadata_find(new, rlen, &vhdx_guid_parent_locator);
	if (!t) {
		ret = vhdx_fail(img, -EINVAL, "metadata: no parent locator item");
		goto out;
	}
	if (place_item(new, rlen, t, len, &off)) {
		ret = vhdx_fail(img, -ENOSPC,
				"a parent locator of %u bytes for %s does not fit in the metadata region",
				len, parent);
		goto out;
	}
	/* The old item's bytes are cleared where the new one leaves them. */
	if (off == le32_to_cpu(t->offset))
		memset(new + off, 0, le32_to_cpu(t->length));
	memcpy(new + off, item, len);
	t->offset = cpu_to_le32((u32)off);
	t->length = cpu_to_le32(len);
	n = edit_diff_sectors(img->metadata_region->offset, old, new, rlen, u,
			      0, img->txn.max_updates);
	ret = edit_log(e, u, n);
	if (!ret)
		ret = edit_end(e);
out:
	free(item);
	free(u);
	free(old);
	free(new);
	return ret;
}

int cmd_set_parent(int argc, char **argv)
{
	enum { OPT_IGNORE = 256 };
	static const struct option opts[] = {
		{ "ignore-id-mismatch", no_argument, NULL, OPT_IGNORE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char want[VHDX_GUID_STRING_SIZE], have[VHDX_GUID_STRING_SIZE];
	bool ignore = false, quiet = false, relink;
	const char *child, *parent;
	struct new_parent np;
	struct edit e;
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_IGNORE:
			ignore = true;
			break;
		default:
			ret = common_option("set-parent", c, &quiet);
			if (ret)
				return ret;
		}
	}
	if (argc - optind != 2)
		return usage_error("set-parent", "%s", "expects CHILD and PARENT");
	child = argv[optind];
	parent = argv[optind + 1];
	ret = read_parent(parent, child, &np);
	if (ret)
		return ret;
	ret = edit_open(&e, child, true);
	if (ret)
		return ret;
	ret = EXIT_TROUBLE;
	if (!e.img.geo.has_parent) {
		fprintf(stderr, "%s: %s: not a differencing image; it has no parent to set\n",
			progname, child);
		goto out;
	}
	if (np.logical_sector_size != e.img.geo.logical_sector_size ||
	    np.virtual_size > e.img.geo.virtual_size) {
		fprintf(stderr,
			"%s: %s: %llu bytes of %u-byte sectors cannot be the parent of %s, %llu bytes of %u-byte sectors\n",
			progname, parent, (unsigned long long)np.virtual_size,
			np.logical_sector_size, child,
			(unsigned long long)e.img.geo.virtual_size,
			e.img.geo.logical_sector_size);
		goto out;
	}
	relink = !guid_equal(&e.img.locator->parent_linkage,
			     &np.data_write_guid) &&
		 !(e.img.locator->has_parent_linkage2 &&
		   guid_equal(&e.img.locator->parent_linkage2,
			      &np.data_write_guid));
	vhdx_guid_to_string(&e.img.locator->parent_linkage, want);
	vhdx_guid_to_string(&np.data_write_guid, have);
	if (relink && !ignore) {
		fprintf(stderr,
			"%s: %s: its DataWriteGuid %s is not the parent_linkage %s of %s: it is not the image %s was made from, or it was written since; --ignore-id-mismatch links to it anyway (only if its content is what %s was made over)\n",
			progname, parent, have, want, child, child, child);
		goto out;
	}
	vhdx_locator_linkage_string(&np.data_write_guid, np.linkage);
	if (set_parent(&e, &np, relink, parent)) {
		edit_fail(&e, -EIO);
		goto out;
	}
	if (!quiet) {
		printf("%s: parent %s (relative_path %s, absolute_win32_path %s)\n",
		       child, parent, np.relative, np.absolute);
		if (relink)
			printf("%s: parent_linkage was %s, now %s\n", child,
			       want, have);
	}
	ret = EXIT_OK;
out:
	edit_close(&e);
	return ret;
}
