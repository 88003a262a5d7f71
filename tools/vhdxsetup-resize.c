// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup resize: change the virtual size of an image in place.
 *
 * The order, so that an interruption anywhere leaves an image that opens
 * with either the old size or the new one and the same data:
 *
 *  1. Everything no reader of the old size can see is written directly:
 *     the tail of the old last block past the old size (zeroed, so that
 *     the grown disk reads zeros there), the BAT sectors wholly past the
 *     old last entry, the new blocks of a fixed image, or, when the BAT
 *     region is too small for the new size, a whole new BAT at the end
 *     of the file.  Moving the BAT is cheaper and simpler to make safe
 *     than moving the payload blocks that follow it: nothing else moves.
 *  2. One log entry switches to the new size: the metadata sector with
 *     VirtualDiskSize, the BAT sector shared by old and new entries, and,
 *     when the BAT moved, both region tables.  vhdx_session_begin() and
 *     edit_log() flush 1. before the entry is written.
 *  3. The entry is applied in place and the log emptied (edit_end()).
 *  4. A shrink zeroes the BAT entries past the new end last: no reader
 *     sees them any more, and a later grow must find them clear.  Then
 *     the file is cut after its last object (image_trim()): the blocks
 *     past the new end that only held zeros are free space now.
 *
 * A differencing image may be resized as Hyper-V allows: what lies past
 * its parent's size reads zeros (sectors not in the child, with no parent
 * sector behind them).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdxsetup.h"

#define SECTOR		VHDX_LOG_SECTOR_SIZE
#define ZERO_CHUNK	VHDX_MiB

static u64 round_up(u64 v, u64 to)
{
	return (v + to - 1) / to * to;
}

static u64 bat_entry(const struct vhdx_image *img, u64 block)
{
	return le64_to_cpu(img->bat[vhdx_bat_payload_index(&img->geo, block)]);
}

/* Whether [@off, @off + @len) of the file reads all zero; -errno. */
static int file_range_zero(struct edit *e, u64 off, u64 len, u8 *buf)
{
	while (len) {
		u64 n = len < ZERO_CHUNK ? len : ZERO_CHUNK;
		int ret = vhdx_read(&e->img, off, buf, n);

		if (ret)
			return ret;
		if (buf[0] || (n > 1 && memcmp(buf, buf + 1, n - 1)))
			return 0;
		off += n;
		len -= n;
	}
	return 1;
}

/*
 * Whether bytes [@from, @to) of block @block hold data that a shrink
 * would drop: non-zero bytes in a present block, or any sector of a
 * partially present one (its data may be the parent's, and a set bit
 * left past the end would come back on a later grow).
 */
static int block_tail_used(struct edit *e, u64 block, u64 from, u64 to,
			   u8 *buf)
{
	struct vhdx_image *img = &e->img;
	u64 entry = bat_entry(img, block), first, count;
	u32 lss = img->geo.logical_sector_size;
	bool present;
	int ret;

	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		ret = file_range_zero(e, vhdx_bat_offset(entry) + from,
				      to - from, buf);
		return ret < 0 ? ret : !ret;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		first = ((block << img->geo.block_shift) + from) / lss;
		count = (to - from) / lss;
		while (count) {
			u64 n = vhdx_bitmap_run(img, first, count, &present);

			if (!n || present)
				return 1;
			first += n;
			count -= n;
		}
		return 0;
	default:
		return 0;
	}
}

/*
 * A shrink to @ng drops nothing: every block past the new end reads zero
 * (or is absent), and so do the bytes of the new last block past the new
 * size.  Says which block is in the way and the smallest size allowed.
 */
static int shrink_check(struct edit *e, const struct vhdx_geometry *ng)
{
	const struct vhdx_geometry *og = &e->img.geo;
	u64 bs = og->block_size, b, hi = U64_MAX, from, to;
	u8 *buf = malloc(ZERO_CHUNK);
	int used = 0;

	if (!buf)
		return vhdx_fail(&e->img, -ENOMEM, "out of memory");
	for (b = og->payload_blocks; b-- > ng->virtual_size / bs; ) {
		from = b == ng->virtual_size / bs ? ng->virtual_size % bs : 0;
		to = vhdx_block_used_length(og, b);
		if (from >= to)
			continue;
		used = block_tail_used(e, b, from, to, buf);
		if (used) {
			hi = b;
			break;
		}
	}
	free(buf);
	if (used < 0)
		return vhdx_fail(&e->img, used, "read error %d", used);
	if (!used)
		return 0;
	from = (hi + 1) * bs;
	if (from > og->virtual_size)
		from = og->virtual_size;
	return vhdx_fail(&e->img, -ENOTEMPTY,
			 "block %llu (bytes %llu-%llu of the disk) holds data that a shrink to %llu bytes would drop; the smallest size that keeps it is %llu bytes",
			 (unsigned long long)hi,
			 (unsigned long long)(hi * bs),
			 (unsigned long long)(from - 1),
			 (unsigned long long)ng->virtual_size,
			 (unsigned long long)from);
}

/* Zeroes [@off, @off + @len) of the file. */
static int file_zero(struct edit *e, u64 off, u64 len)
{
	u8 *zero = calloc(1, ZERO_CHUNK);
	int ret = 0;

	if (!zero)
		return -ENOMEM;
	while (!ret && len) {
		u64 n = len < ZERO_CHUNK ? len : ZERO_CHUNK;

		ret = e->io.write(e->io.priv, off, zero, n);
		off += n;
		len -= n;
	}
	free(zero);
	return ret;
}

/*
 * Step 1 of a grow for the old last block: if it is partly past the old
 * size and present here, what it holds past the old size becomes part of
 * the disk, so it is zeroed first (nothing reads it yet).
 */
static int grow_zero_tail(struct edit *e)
{
	const struct vhdx_geometry *og = &e->img.geo;
	u64 last, entry, used;

	if (!(og->virtual_size & (og->block_size - 1)))
		return 0;
	last = og->payload_blocks - 1;
	entry = bat_entry(&e->img, last);
	if (vhdx_bat_state(entry) != VHDX_PAYLOAD_FULLY_PRESENT &&
	    vhdx_bat_state(entry) != VHDX_PAYLOAD_PARTIALLY_PRESENT)
		return 0;
	used = vhdx_block_used_length(og, last);
	return file_zero(e, vhdx_bat_offset(entry) + used,
			 og->block_size - used);
}

/* The region table copy in use, with the BAT's entry moved; 0 or -errno. */
static int region_table_move_bat(struct edit *e, u8 *table, u64 offset,
				 u64 length)
{
	struct vhdx_region_table_header *h = (void *)table;
	struct vhdx_region_table_entry *t = (void *)(h + 1);
	u32 i, count;
	int ret;

	ret = vhdx_read(&e->img, VHDX_REGION_TABLE1_OFFSET +
			(u64)e->img.region_table_copy * VHDX_REGION_TABLE_SIZE,
			table, VHDX_REGION_TABLE_SIZE);
	if (ret)
		return vhdx_fail(&e->img, ret, "region table: read error");
	count = le32_to_cpu(h->entry_count);
	if (count > VHDX_REGION_MAX_ENTRIES)
		return vhdx_fail(&e->img, -EINVAL, "region table: %u entries",
				 count);
	for (i = 0; i < count; i++)
		if (!memcmp(&t[i].guid, &vhdx_guid_bat_region,
			    sizeof(guid_t)))
			break;
	if (i == count)
		return vhdx_fail(&e->img, -EINVAL, "region table: no BAT");
	t[i].file_offset = cpu_to_le64(offset);
	t[i].length = cpu_to_le32((u32)length);
	vhdx_checksum_set(table, VHDX_REGION_TABLE_SIZE,
			  offsetof(struct vhdx_region_table_header, checksum));
	return 0;
}

struct resize {
	struct edit *e;
	struct vhdx_geometry ng;
	u8 *meta_old, *meta_new, *table;
	u64 meta_len;
	__le64 *bat;			/* the new BAT, bat_bytes rounded up */
	u64 bat_bytes, bat_alloc;
	struct vhdx_log_update *u;
	u32 n, cap;
	bool moved;
};

/* The metadata sectors holding the new VirtualDiskSize. */
static int resize_metadata(struct resize *r)
{
	struct edit *e = r->e;
	struct vhdx_metadata_table_entry *t;
	__le64 size = cpu_to_le64(r->ng.virtual_size);
	int ret;

	ret = metadata_read(e, &r->meta_old, &r->meta_len);
	if (ret)
		return ret;
	r->meta_new = malloc(r->meta_len);
	if (!r->meta_new)
		return vhdx_fail(&e->img, -ENOMEM, "out of memory");
	memcpy(r->meta_new, r->meta_old, r->meta_len);
	t = metadata_find(r->meta_new, r->meta_len,
			  &vhdx_guid_virtual_disk_size);
	if (!t || le32_to_cpu(t->length) < sizeof(size))
		return vhdx_fail(&e->img, -EINVAL,
				 "metadata: no virtual disk size item");
	memcpy(r->meta_new + le32_to_cpu(t->offset), &size, sizeof(size));
	r->n = edit_diff_sectors(e->img.metadata_region->offset, r->meta_old,
				 r->meta_new, r->meta_len, r->u, r->n,
				 r->cap - 1);
	return 0;
}

/*
 * The new BAT in memory: the old entries that stay, zeros for the rest,
 * and for a fixed image its new blocks, laid out past the end of the file
 * (a sparse extension reads zeros).
 */
static int resize_build_bat(struct resize *r, bool fixed)
{
	struct vhdx_image *img = &r->e->img;
	const struct vhdx_geometry *og = &img->geo, *ng = &r->ng;
	u64 keep = min_t(u64, og->bat_entries, ng->bat_entries), b, end;

	r->bat_bytes = ng->bat_entries * sizeof(__le64);
	r->bat_alloc = round_up(r->bat_bytes, VHDX_OBJECT_ALIGN);
	r->bat = calloc(1, r->bat_alloc);
	if (!r->bat)
		return vhdx_fail(img, -ENOMEM, "out of memory for the BAT");
	memcpy(r->bat, img->bat, keep * sizeof(__le64));
	if (!fixed || ng->payload_blocks <= og->payload_blocks)
		return 0;
	end = round_up(max_t(u64, img->data_end, r->e->f.size),
		       VHDX_OBJECT_ALIGN);
	for (b = og->payload_blocks; b < ng->payload_blocks; b++) {
		r->bat[vhdx_bat_payload_index(ng, b)] =
			cpu_to_le64(end | VHDX_PAYLOAD_FULLY_PRESENT);
		end += ng->block_size;
	}
	if (ftruncate(r->e->f.fd, end))
		return vhdx_fail(img, -errno, "cannot extend the file: %s",
				 strerror(errno));
	r->e->f.size = end;
	img->device_size = end;
	img->data_end = end;
	return 0;
}

/* Steps 1 and 2 for the BAT of a grow (see the top of this file). */
static int resize_grow_bat(struct resize *r)
{
	struct edit *e = r->e;
	struct vhdx_image *img = &e->img;
	const struct vhdx_region *br = img->bat_region;
	u64 old_bytes = img->geo.bat_entries * sizeof(__le64);
	u64 whole = round_up(old_bytes, SECTOR), off, len;
	int ret;

	if (r->bat_alloc <= br->length) {
		/* In place: the sectors only the new size reads, directly. */
		len = round_up(r->bat_bytes, SECTOR);
		if (len > whole) {
			ret = e->io.write(e->io.priv, br->offset + whole,
					  (u8 *)r->bat + whole, len - whole);
			if (ret)
				return vhdx_fail(img, ret, "BAT: write error");
		}
		if (old_bytes % SECTOR) {
			r->u[r->n].offset = br->offset + whole - SECTOR;
			r->u[r->n++].data = (u8 *)r->bat + whole - SECTOR;
		}
		return 0;
	}
	/* A new BAT region at the end of the file; the old one is a gap. */
	if (r->bat_alloc > 0xffffffffULL - VHDX_OBJECT_ALIGN + 1)
		return vhdx_fail(img, -EFBIG, "BAT of %llu bytes",
				 (unsigned long long)r->bat_alloc);
	off = round_up(max_t(u64, img->data_end, e->f.size),
		       VHDX_OBJECT_ALIGN);
	ret = e->io.write(e->io.priv, off, r->bat, r->bat_alloc);
	if (ret)
		return vhdx_fail(img, ret, "BAT: write error at %llu",
				 (unsigned long long)off);
	e->f.size = off + r->bat_alloc;
	/* The log entry's FlushedFileOffset must cover the new BAT. */
	img->device_size = e->f.size;
	img->data_end = e->f.size;
	r->table = malloc(VHDX_REGION_TABLE_SIZE);
	if (!r->table)
		return vhdx_fail(img, -ENOMEM, "out of memory");
	ret = region_table_move_bat(e, r->table, off, r->bat_alloc);
	if (ret)
		return ret;
	/* Both copies, every sector: the checksum covers all 64 KiB. */
	for (len = 0; len < 2 * VHDX_REGION_TABLE_SIZE; len += SECTOR) {
		r->u[r->n].offset = VHDX_REGION_TABLE1_OFFSET + len;
		r->u[r->n++].data = r->table + len % VHDX_REGION_TABLE_SIZE;
	}
	r->moved = true;
	return 0;
}

static int resize_run(struct resize *r, bool fixed)
{
	struct edit *e = r->e;
	struct vhdx_image *img = &e->img;
	const struct vhdx_geometry og = img->geo;
	bool grow = r->ng.virtual_size > og.virtual_size;
	u64 old_bytes = og.bat_entries * sizeof(__le64), first;
	int ret;

	/* Both region tables, a BAT sector, the metadata; checked below. */
	r->cap = img->txn.max_updates + 2 * VHDX_REGION_TABLE_SIZE / SECTOR + 2;
	r->u = calloc(r->cap, sizeof(*r->u));
	if (!r->u)
		return vhdx_fail(img, -ENOMEM, "out of memory");
	ret = resize_build_bat(r, fixed && grow);
	if (!ret && grow)
		ret = grow_zero_tail(e);
	if (!ret && grow)
		ret = resize_grow_bat(r);
	if (!ret && !grow && r->bat_bytes % SECTOR) {
		/* The sector shared by the last kept and the first dropped. */
		first = r->bat_bytes / SECTOR * SECTOR;
		r->u[r->n].offset = img->bat_region->offset + first;
		r->u[r->n++].data = (u8 *)r->bat + first;
	}
	if (!ret)
		ret = resize_metadata(r);
	if (!ret && r->n > img->txn.max_updates)
		ret = vhdx_fail(img, -E2BIG,
				"the change takes more sectors than one entry of this image's %u-byte log holds",
				le32_to_cpu(img->header.log_length));
	if (!ret)
		ret = edit_log(e, r->u, r->n);
	if (!ret)
		ret = edit_end(e);
	if (ret || grow)
		return ret;
	/* 4. Entries past the new end, in sectors no reader sees now. */
	first = round_up(r->bat_bytes, SECTOR);
	if (old_bytes > first) {
		ret = file_zero(e, img->bat_region->offset + first,
				old_bytes - first);
		if (!ret)
			ret = edit_flush(e);
		if (ret)
			vhdx_fail(img, ret, "BAT: cannot clear the entries past the end");
	}
	return ret;
}

/*
 * Resizes @path in place; @online: its mapping is suspended, and @e is
 * opened without refusing it.  An exit status.
 */
static int resize_image(const char *path, u64 size, bool shrink, bool quiet,
			bool online)
{
	struct resize r = { 0 };
	struct edit e;
	bool fixed;
	u64 old;
	int ret;

	ret = online ? edit_open_suspended(&e, path) :
		       edit_open(&e, path, false);
	if (ret)
		return ret;
	r.e = &e;
	old = e.img.geo.virtual_size;
	ret = EXIT_TROUBLE;
	if (vhdx_geometry_init(&r.ng, size, e.img.geo.block_size,
			       e.img.geo.logical_sector_size,
			       e.img.geo.physical_sector_size,
			       e.img.geo.has_parent)) {
		fprintf(stderr,
			"%s: %s: %llu bytes is not a valid size for this image: a multiple of its %u-byte sectors, at most 64 TiB\n",
			progname, path, (unsigned long long)size,
			e.img.geo.logical_sector_size);
		goto out;
	}
	if (size == old) {
		if (!quiet)
			printf("%s: already %llu bytes\n", path,
			       (unsigned long long)size);
		ret = EXIT_OK;
		goto out;
	}
	if (size < old && !shrink) {
		fprintf(stderr,
			"%s: %s: %llu bytes is smaller than its %llu; shrinking needs --shrink%s\n",
			progname, path, (unsigned long long)size,
			(unsigned long long)old,
			online ? ", and the image must not be mapped" : "");
		goto out;
	}
	fixed = image_is_fixed(&e.img);
	if (size < old && shrink_check(&e, &r.ng)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, e.img.error);
		goto out;
	}
	if (resize_run(&r, fixed)) {
		edit_fail(&e, -EIO);
		goto out;
	}
	if (!quiet) {
		printf("%s: %llu bytes, was %llu%s\n", path,
		       (unsigned long long)size, (unsigned long long)old,
		       r.moved ? " (the BAT moved to the end of the file)" : "");
		if (e.img.geo.has_parent)
			printf("%s: a differencing image: what lies past its parent's size reads zeros\n",
			       path);
	}
	ret = EXIT_OK;
out:
	free(r.meta_old);
	free(r.meta_new);
	free(r.table);
	free(r.bat);
	free(r.u);
	edit_close(&e);
	/*
	 * The blocks past the new end are no longer in the BAT, stable (see
	 * resize_run()): the file ends where its last object does now, as
	 * after compact.  Once the lock is given back: image_trim() takes it.
	 */
	if (!ret && size < old)
		image_trim(path);
	return ret;
}

/* How @path is mapped, if it is. */
struct resize_mapping {
	struct stat st;
	char name[256];			/* mapped as the image, read-write */
	struct vhdx_mapping m;
	bool refused;			/* said why it cannot be resized */
};

static bool same_inode(const char *backing, const struct stat *st)
{
	struct stat b;

	return backing[0] && !stat(backing, &b) && b.st_dev == st->st_dev &&
	       b.st_ino == st->st_ino;
}

static int resize_mapping_one(const char *name, void *arg)
{
	struct resize_mapping *rm = arg;
	char err[VHDXSETUP_ERR_MAX];
	struct mapping_parents mp;
	struct vhdx_mapping m;
	unsigned int i;

	if (dm_vhdx_query(name, &m, err) || strcmp(m.target, "vhdx"))
		return 0;
	mapping_parents(&m, &mp);
	for (i = 0; i < mp.count; i++) {
		if (same_inode(mp.backing[i], &rm->st)) {
			fprintf(stderr,
				"%s resize: the image is parent %u of /dev/mapper/%s: a parent cannot change under its children (vhdxsetup close %s first)\n",
				progname, i + 1, name, name);
			rm->refused = true;
			return 1;
		}
	}
	if (!same_inode(m.backing, &rm->st))
		return 0;
	if (m.read_only || m.suspended || rm->name[0]) {
		fprintf(stderr,
			"%s resize: the image is mapped by /dev/mapper/%s%s: only a single read-write mapping is resized online (vhdxsetup close %s first)\n",
			progname, name,
			m.read_only ? " read-only" :
			m.suspended ? ", which is suspended" : " and another",
			name);
		rm->refused = true;
		return 1;
	}
	snprintf(rm->name, sizeof(rm->name), "%s", name);
	rm->m = m;
	return 0;
}

/*
 * The table's length follows the image, and the loop device the file:
 * the file gets the room a writable mapping needs (open_extend()), the
 * loop its new size, then the new table, with the old one's parameters
 * and the new length, is loaded.
 */
static int resize_grow_mapping(const char *path, struct resize_mapping *rm,
			       char *err)
{
	struct image_file f;
	struct vhdx_image img = { 0 };
	struct vhdx_io io;
	u64 old_size, vs;
	int ret = -1;

	if (image_file_open(&f, path, O_RDWR))
		return snprintf(err, VHDXSETUP_ERR_MAX, "cannot open it again"), -1;
	image_io_init(&io, &f, false);
	if (image_open(&img, &io, f.size, true)) {
		snprintf(err, VHDXSETUP_ERR_MAX, "cannot open it again: %s",
			 img.error);
		close(f.fd);
		return -1;
	}
	vs = img.geo.virtual_size;
	if (open_extend(&f, &img, &old_size))
		snprintf(err, VHDXSETUP_ERR_MAX, "cannot extend the file");
	else if (!loop_set_capacity(rm->m.loop, err) &&
		 !dm_vhdx_reload(rm->name, vs >> 9, rm->m.params, false, err))
		ret = 0;
	vhdx_close(&img);
	close(f.fd);
	return ret;
}

/*
 * Online grow of an image mapped read-write: suspended, the table has
 * committed and emptied the log and writes nothing; the resize is the
 * same logged change as offline; the new table opens the image afresh at
 * its preresume.  Should anything fail, the old table is resumed: its
 * preresume refuses if the image changed under it after all (a resize
 * that failed after its log entry), and then a table of the image's
 * current size is loaded instead.
 */
static int resize_online(const char *path, u64 size, bool quiet,
			 struct resize_mapping *rm)
{
	char err[VHDXSETUP_ERR_MAX];
	int ret;

	if (!rm->m.loop[0]) {
		fprintf(stderr,
			"%s resize: %s: mapped by /dev/mapper/%s, but not on a loop device: cannot grow it online\n",
			progname, path, rm->name);
		return EXIT_TROUBLE;
	}
	if (dm_vhdx_suspend(rm->name, err)) {
		fprintf(stderr, "%s resize: %s: %s\n", progname, rm->name, err);
		return EXIT_TROUBLE;
	}
	ret = resize_image(path, size, false, quiet, true);
	if (!ret && resize_grow_mapping(path, rm, err)) {
		fprintf(stderr, "%s resize: %s: %s\n", progname, rm->name, err);
		ret = EXIT_TROUBLE;
	}
	if (!dm_vhdx_resume(rm->name, err)) {
		if (!ret && !quiet)
			printf("/dev/mapper/%s: %llu bytes\n", rm->name,
			       (unsigned long long)size);
		return ret;
	}
	fprintf(stderr, "%s resize: %s: %s\n", progname, rm->name, err);
	/* The image changed under the old table: a new one, of its size. */
	if (!resize_grow_mapping(path, rm, err) &&
	    !dm_vhdx_resume(rm->name, err)) {
		fprintf(stderr, "%s resize: %s: mapped again with a new table\n",
			progname, rm->name);
		return EXIT_TROUBLE;
	}
	fprintf(stderr,
		"%s resize: %s: %s; the device stays suspended: vhdxsetup close %s, then open it again\n",
		progname, rm->name, err, rm->name);
	return EXIT_TROUBLE;
}

int cmd_resize(int argc, char **argv)
{
	enum { OPT_SHRINK = 256 };
	static const struct option opts[] = {
		{ "shrink", no_argument, NULL, OPT_SHRINK },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct resize_mapping *rm;
	bool shrink = false, quiet = false;
	char err[VHDXSETUP_ERR_MAX];
	const char *path;
	u64 size;
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SHRINK:
			shrink = true;
			break;
		default:
			ret = common_option("resize", c, &quiet);
			if (ret)
				return ret;
		}
	}
	if (argc - optind != 2)
		return usage_error("resize", "%s", "expects IMAGE and SIZE");
	path = argv[optind];
	if (parse_size(argv[optind + 1], &size) || !size)
		return usage_error("resize", "bad size '%s'", argv[optind + 1]);
	rm = calloc(1, sizeof(*rm));
	if (!rm) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_TROUBLE;
	}
	/* Without device-mapper (no root, no dm_mod) nothing can be mapped. */
	if (!stat(path, &rm->st) && S_ISREG(rm->st.st_mode))
		dm_each_device(resize_mapping_one, rm, err);
	if (rm->refused) {
		ret = EXIT_TROUBLE;
	} else if (!rm->name[0]) {
		ret = resize_image(path, size, shrink, quiet, false);
	} else if (size == rm->m.sectors << 9) {
		if (!quiet)
			printf("%s: already %llu bytes\n", path,
			       (unsigned long long)size);
		ret = EXIT_OK;
	} else if (shrink || size < rm->m.sectors << 9) {
		fprintf(stderr,
			"%s resize: %s: mapped by /dev/mapper/%s: an online shrink is refused (the file system on it would lose its end); vhdxsetup close %s first\n",
			progname, path, rm->name, rm->name);
		ret = EXIT_TROUBLE;
	} else {
		ret = resize_online(path, size, quiet, rm);
	}
	free(rm);
	return ret;
}
