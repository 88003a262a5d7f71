// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup merge: the content of a differencing image's whole chain into
 * a new standalone dynamic image (--flatten OUT), or a differencing
 * image's own sectors into its parent in place (--into PARENT, what
 * Hyper-V's Merge-VHD does to the immediate parent).
 *
 * --into writes each block of the child that holds data over the
 * parent's virtual disk: in place where the parent has the block, else
 * in a new block past the end of the parent's file that only the BAT
 * entry, logged at the commit after the data is stable, makes visible.
 * Overwriting the parent's present blocks in place is not atomic, so the
 * parent keeps its DataWriteGuid until the very end: the child still
 * links to it and still holds every sector it had, and each sector the
 * parent gets is one that the child hides from the chain.  An interrupted
 * merge therefore leaves a chain that reads as before (a dirty log in the
 * parent is replayed by the next open), and merging again finishes it.
 * Only once everything is merged, stable and the log empty does the
 * parent get a new DataWriteGuid, one header update that invalidates the
 * child: Merge-VHD's order, where the child is removed at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdxsetup.h"

static u64 round_up(u64 v, u64 to)
{
	return (v + to - 1) / to * to;
}

static bool all_zero(const u8 *buf, u64 len)
{
	return !buf[0] && (len < 2 || !memcmp(buf, buf + 1, len - 1));
}

/* A new, zeroed, 1 MiB aligned extent past the end of @e's file. */
static int grow_file(struct edit *e, u64 len, u64 *off)
{
	struct vhdx_image *img = &e->img;

	*off = round_up(max_t(u64, img->data_end, e->f.size),
			VHDX_OBJECT_ALIGN);
	if (ftruncate(e->f.fd, *off + len))
		return vhdx_fail(img, -errno, "cannot extend the file: %s",
				 strerror(errno));
	e->f.size = *off + len;
	img->device_size = e->f.size;
	img->data_end = e->f.size;
	return 0;
}

/* The sector bitmap of @chunk of a differencing @e, made if absent. */
static int bitmap_ensure(struct edit *e, u64 chunk)
{
	struct vhdx_image *img = &e->img;
	u64 index = vhdx_bat_bitmap_index(&img->geo, chunk), off;
	int ret;

	if (vhdx_bitmap_present(img, chunk))
		return 0;
	ret = grow_file(e, VHDX_BITMAP_BLOCK_SIZE, &off);
	if (ret)
		return ret;
	vhdx_bitmap_attach(img, chunk);
	vhdx_bat_update(img, index, off | VHDX_BITMAP_PRESENT);
	return 0;
}

/*
 * Writes @len bytes at @voff of @e's virtual disk, within one of its
 * blocks; the BAT and bitmap changes wait for the next commit.
 */
static int write_block(struct edit *e, u64 voff, const u8 *buf, u64 len,
		       u8 *scratch)
{
	struct vhdx_image *img = &e->img;
	const struct vhdx_geometry *g = &img->geo;
	u64 block = voff >> g->block_shift;
	u64 index = vhdx_bat_payload_index(g, block);
	u64 entry = vhdx_bat_get(img, index), within = voff & (g->block_size - 1);
	u64 used = vhdx_block_used_length(g, block), off;
	u32 lss = g->logical_sector_size;
	unsigned int state = vhdx_bat_state(entry);
	bool differencing = g->has_parent;
	int ret;

	if (state == VHDX_PAYLOAD_FULLY_PRESENT ||
	    state == VHDX_PAYLOAD_PARTIALLY_PRESENT) {
		ret = e->io.write(e->io.priv, vhdx_bat_offset(entry) + within,
				  buf, len);
		if (ret)
			return vhdx_fail(img, ret, "write error");
		if (state == VHDX_PAYLOAD_PARTIALLY_PRESENT)
			return vhdx_bitmap_set(img, voff / lss, len / lss);
		return 0;
	}
	/* The block reads zeros here (or the parent's, for NOT_PRESENT). */
	if (differencing && state != VHDX_PAYLOAD_ZERO &&
	    state != VHDX_PAYLOAD_UNMAPPED) {
		ret = bitmap_ensure(e, block >> g->chunk_ratio_shift);
		if (!ret)
			ret = grow_file(e, g->block_size, &off);
		if (!ret)
			ret = e->io.write(e->io.priv, off + within, buf, len);
		if (ret)
			return vhdx_fail(img, ret, "write error");
		ret = vhdx_bitmap_set(img, voff / lss, len / lss);
		if (ret)
			return ret;
		vhdx_bat_update(img, index,
				off | VHDX_PAYLOAD_PARTIALLY_PRESENT);
		return 0;
	}
	if (all_zero(buf, len))
		return 0;
	ret = grow_file(e, g->block_size, &off);
	if (ret)
		return ret;
	memset(scratch, 0, used);
	memcpy(scratch + within, buf, len);
	ret = e->io.write(e->io.priv, off, scratch, used);
	if (ret)
		return vhdx_fail(img, ret, "write error");
	vhdx_bat_update(img, index, off | VHDX_PAYLOAD_FULLY_PRESENT);
	return 0;
}

/* @len bytes at @voff of the parent's disk, split at its blocks. */
static int write_disk(struct edit *e, u64 voff, const u8 *buf, u64 len,
		      u8 *scratch)
{
	u64 bs = e->img.geo.block_size;

	while (len) {
		u64 n = bs - (voff & (bs - 1));
		int ret;

		if (n > len)
			n = len;
		ret = write_block(e, voff, buf, n, scratch);
		if (ret)
			return ret;
		voff += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * Copies what block @block of @child holds (its present sectors; zeros
 * for a block it says reads zero) over the parent's disk.
 */
static int merge_block(struct vhdx_image *child, struct edit *p, u64 block,
		       u8 *buf, u8 *scratch)
{
	const struct vhdx_geometry *g = &child->geo;
	u64 entry = vhdx_bat_get(child, vhdx_bat_payload_index(g, block));
	u64 start = block << g->block_shift, used;
	u64 lss = g->logical_sector_size, s, count, n;
	bool present;
	int ret;

	used = vhdx_block_used_length(g, block);
	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		ret = vhdx_read(child, vhdx_bat_offset(entry), buf, used);
		return ret ? vhdx_fail(child, ret, "read error") :
			     write_disk(p, start, buf, used, scratch);
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		s = start / lss;
		count = used / lss;
		while (count) {
			n = vhdx_bitmap_run(child, s, count, &present);
			if (!n)
				return vhdx_fail(child, -EIO, "bitmap");
			if (present) {
				ret = vhdx_read(child, vhdx_bat_offset(entry) +
						(s * lss - start), buf, n * lss);
				if (ret)
					return vhdx_fail(child, ret,
							 "read error");
				ret = write_disk(p, s * lss, buf, n * lss,
						 scratch);
				if (ret)
					return ret;
			}
			s += n;
			count -= n;
		}
		return 0;
	case VHDX_PAYLOAD_ZERO:
	case VHDX_PAYLOAD_UNMAPPED:
	case VHDX_PAYLOAD_UNMAPPED_V095:
		memset(buf, 0, used);
		return write_disk(p, start, buf, used, scratch);
	default:
		return 0;
	}
}

/*
 * The parent holds the child's data now, stable, its log empty: a new
 * DataWriteGuid says that its content changed, which also unlinks the
 * child and any other child of the parent (their view is no longer what
 * they were made over).  One header update: before it the chain reads as
 * before, after it the parent reads as the chain did.
 */
static int merge_commit(struct edit *p)
{
	static const guid_t null_guid;
	struct vhdx_image *img = &p->img;
	guid_t fwg = img->header.file_write_guid, dwg;

	vhdx_guid_gen(&dwg);
	return vhdx_header_update(img, &fwg, &dwg, &null_guid);
}

static int merge_into(struct chain *c, const char *into, bool quiet)
{
	struct vhdx_image *child = &c->link[0].img;
	u64 bs = child->geo.block_size, block;
	u8 *buf = NULL, *scratch = NULL;
	struct progress pr;
	struct stat st;
	struct edit p;
	int ret;

	if (stat(into, &st)) {
		fprintf(stderr, "%s: %s: %s\n", progname, into, strerror(errno));
		return EXIT_TROUBLE;
	}
	if (st.st_dev != c->link[1].st_dev || st.st_ino != c->link[1].st_ino) {
		fprintf(stderr,
			"%s: %s: its parent is %s, not %s; merge goes into the immediate parent only\n",
			progname, c->link[0].path, c->link[1].path, into);
		return EXIT_TROUBLE;
	}
	/* The child must not change under the merge either. */
	if (image_lock_for_change(c->link[0].path, c->link[0].f.fd))
		return EXIT_TROUBLE;
	/* The new DataWriteGuid comes last, from merge_commit(). */
	ret = edit_open(&p, c->link[1].path, true);
	if (ret)
		return ret;
	ret = EXIT_TROUBLE;
	if (p.img.geo.virtual_size != child->geo.virtual_size) {
		fprintf(stderr,
			"%s: %s: %llu bytes, not the %llu of %s; merge --flatten OUT makes a standalone image of the chain instead\n",
			progname, into,
			(unsigned long long)p.img.geo.virtual_size,
			(unsigned long long)child->geo.virtual_size,
			c->link[0].path);
		goto out;
	}
	buf = malloc(bs);
	scratch = malloc(p.img.geo.block_size);
	if (!buf || !scratch) {
		fprintf(stderr, "%s: out of memory\n", progname);
		goto out;
	}
	if (vhdx_session_begin(&p.img)) {
		edit_fail(&p, -EIO);
		goto out;
	}
	progress_init(&pr, "merge", quiet);
	for (block = 0; block < child->geo.payload_blocks; block++) {
		if (merge_block(child, &p, block, buf, scratch)) {
			fprintf(stderr, "%s: %s: %s\n", progname,
				c->link[0].path, child->error);
			fprintf(stderr, "%s: %s: %s\n", progname, into,
				p.img.error);
			goto out;
		}
		/* Bounded memory of dirty state, and progress that sticks. */
		if (vhdx_txn_dirty(&p.img) && (block % 64 == 63) &&
		    vhdx_commit(&p.img)) {
			edit_fail(&p, -EIO);
			goto out;
		}
		progress(&pr, block + 1, child->geo.payload_blocks);
	}
	if (edit_end(&p) || merge_commit(&p)) {
		edit_fail(&p, -EIO);
		goto out;
	}
	if (!quiet)
		printf("%s: merged into %s\n"
		       "%s: is no longer valid (its parent's DataWriteGuid changed); delete it, or make a new differencing image with: %s create --parent %s NEW\n",
		       c->link[0].path, into, c->link[0].path, progname, into);
	ret = EXIT_OK;
out:
	free(buf);
	free(scratch);
	edit_close(&p);
	return ret;
}

int cmd_merge(int argc, char **argv)
{
	enum { OPT_FLATTEN = 256, OPT_INTO };
	static const struct option opts[] = {
		{ "flatten", required_argument, NULL, OPT_FLATTEN },
		{ "into", required_argument, NULL, OPT_INTO },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *into = NULL;
	struct source s = { 0 };
	bool quiet = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FLATTEN:
			out = optarg;
			break;
		case OPT_INTO:
			into = optarg;
			break;
		default:
			ret = common_option("merge", c, &quiet);
			if (ret)
				return ret;
		}
	}
	if (argc - optind != 1)
		return usage_error("merge", "%s", "expects CHILD");
	if (out && into)
		return usage_error("merge", "%s",
				   "--flatten and --into exclude each other");
	if (!out && !into)
		return usage_error("merge", "%s",
				   "expects --flatten OUT or --into PARENT");
	ret = chain_open(&s.chain, argv[optind], true);
	if (ret) {
		chain_free(s.chain);
		return ret;
	}
	if (!s.chain->link[0].img.geo.has_parent) {
		fprintf(stderr, "%s: %s: not a differencing image; nothing to merge (convert copies it)\n",
			progname, argv[optind]);
		chain_free(s.chain);
		return EXIT_TROUBLE;
	}
	if (into) {
		ret = merge_into(s.chain, into, quiet);
		chain_free(s.chain);
		return ret;
	}
	s.size = s.chain->link[0].img.geo.virtual_size;
	ret = convert(&s, out, OUT_DYNAMIC, 0, quiet);
	chain_free(s.chain);
	return ret;
}
