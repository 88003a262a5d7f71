// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup compact: moves the blocks of an image down into the holes that
 * discarded and never used space left between its objects, then cuts the
 * file after the last object.
 *
 * No interruption may lose data, so every move is: copy the block into a
 * hole that no BAT entry names, make the copy stable, commit the BAT entry
 * that points at it through the log and make that stable; only then is
 * the old place free.  Blocks move from the end of the file down into the
 * lowest hole below them, so a place left by a move lies above every
 * block still to move and is never reused: it is only cut off at the end,
 * once the session has ended and the log is empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vhdxsetup.h"

/* <linux/fs.h> would clash with the __le types of vhdx-user.h. */
struct compact_fstrim_range {
	unsigned long long start, len, minlen;
};

#ifndef FITRIM
#define FITRIM	_IOWR('X', 121, struct compact_fstrim_range)
#endif

/* Bytes copied at a time, and between two commits. */
#define COMPACT_COPY_CHUNK	(4 * VHDX_MiB)
#define COMPACT_BATCH_BYTES	(256ULL * VHDX_MiB)

struct compact_move {
	u64 index;			/* BAT entry */
	u64 from, to, length;		/* length: what the block uses */
};

struct compact {
	struct image_file f;
	struct vhdx_io io;
	struct vhdx_image img;
	struct vhdx_object *objs;	/* fixed ones first, then blocks */
	u64 count, fixed;
	struct compact_move *moves;
	u64 nr_moves;
	u8 *buf;
	bool quiet;
};

static u64 align_mib(u64 v)
{
	return (v + VHDX_OBJECT_ALIGN - 1) & ~(VHDX_OBJECT_ALIGN - 1);
}

static int object_cmp(const void *a, const void *b)
{
	const struct vhdx_object *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return 0;
}

/* The BAT entry of a payload or sector bitmap block object. */
static u64 object_bat_index(const struct vhdx_image *img,
			    const struct vhdx_object *o)
{
	return o->kind == VHDX_OBJECT_BITMAP_BLOCK ?
	       vhdx_bat_bitmap_index(&img->geo, o->index) :
	       vhdx_bat_payload_index(&img->geo, o->index);
}

/*
 * Every object of the image, and the entries of blocks without data that
 * still name a place (states 0 to 3, whose FileOffsetMB the spec calls
 * reserved): vhdx_bat_check() counted that place as free, and a block
 * moved there must not be named twice, so those offsets are cleared.
 * Returns how many were cleared, or -1.
 */
static bool entry_allocated(u64 e, bool bitmap)
{
	unsigned int state = vhdx_bat_state(e);

	if (bitmap)
		return state == VHDX_BITMAP_PRESENT;
	return state == VHDX_PAYLOAD_FULLY_PRESENT ||
	       state == VHDX_PAYLOAD_PARTIALLY_PRESENT;
}

static long long compact_collect(struct compact *c)
{
	struct vhdx_image *img = &c->img;
	u64 ratio = img->geo.chunk_ratio, i, e, unit, blocks = 0;
	long long cleared = 0;
	struct vhdx_object o;

	/* Room for the blocks there are, not for every entry of a huge BAT. */
	for (i = 0; i < img->geo.bat_entries; i++)
		blocks += entry_allocated(le64_to_cpu(img->bat[i]),
					  i % (ratio + 1) == ratio);
	c->objs = calloc(blocks + img->region_count + 2, sizeof(*c->objs));
	if (!c->objs)
		return -1;
	c->fixed = vhdx_objects_add_fixed(img, c->objs);
	c->count = c->fixed;
	for (i = 0; i < img->geo.bat_entries; i++) {
		e = le64_to_cpu(img->bat[i]);
		unit = i / (ratio + 1);
		memset(&o, 0, sizeof(o));
		o.offset = vhdx_bat_offset(e);
		if (i % (ratio + 1) == ratio) {
			o.kind = VHDX_OBJECT_BITMAP_BLOCK;
			o.index = unit;
			if (entry_allocated(e, true))
				o.length = VHDX_BITMAP_BLOCK_SIZE;
		} else {
			o.kind = VHDX_OBJECT_PAYLOAD_BLOCK;
			o.index = i - unit;
			/* vhdx_bat_check() refused one past the disk's end. */
			if (entry_allocated(e, false))
				o.length = vhdx_block_used_length(&img->geo,
								  o.index);
		}
		if (o.length) {
			c->objs[c->count++] = o;
		} else if (o.offset) {
			vhdx_bat_update(img, i, vhdx_bat_state(e));
			cleared++;
		}
	}
	vhdx_sort(c->objs, c->count, sizeof(*c->objs), object_cmp);
	return cleared;
}

/*
 * Plans every move: the blocks from the last one down, each into the
 * lowest hole below it that holds it.  Moves are recorded from the top
 * of the file down, the order they are made in.
 */
static int compact_plan(struct compact *c)
{
	struct vhdx_free_extent *holes;
	u64 nr_holes = 0, first = 0, i, h, start, end, need;

	holes = calloc(c->count + 1, sizeof(*holes));
	c->moves = calloc(c->count + 1, sizeof(*c->moves));
	if (!holes || !c->moves) {
		free(holes);
		return -1;
	}
	for (i = 1; i < c->count; i++) {
		start = align_mib(c->objs[i - 1].offset +
				  c->objs[i - 1].length);
		end = c->objs[i].offset & ~(VHDX_OBJECT_ALIGN - 1);
		if (end > start) {
			holes[nr_holes].offset = start;
			holes[nr_holes++].length = end - start;
		}
	}
	for (i = c->count; i-- > 0; ) {
		struct vhdx_object *o = &c->objs[i];

		if (o->kind != VHDX_OBJECT_PAYLOAD_BLOCK &&
		    o->kind != VHDX_OBJECT_BITMAP_BLOCK)
			continue;
		need = align_mib(o->length);
		while (first < nr_holes && !holes[first].length)
			first++;
		for (h = first; h < nr_holes && holes[h].offset < o->offset;
		     h++) {
			if (holes[h].length < need)
				continue;
			c->moves[c->nr_moves++] = (struct compact_move) {
				.index = object_bat_index(&c->img, o),
				.from = o->offset,
				.to = holes[h].offset,
				.length = o->length,
			};
			o->offset = holes[h].offset;
			holes[h].offset += need;
			holes[h].length -= need;
			break;
		}
	}
	free(holes);
	return 0;
}

static int compact_copy(struct compact *c, const struct compact_move *m)
{
	u64 done, n;
	int ret;

	for (done = 0; done < m->length; done += n) {
		n = min_t(u64, m->length - done, COMPACT_COPY_CHUNK);
		ret = c->io.read(c->io.priv, m->from + done, c->buf, n);
		if (!ret)
			ret = c->io.write(c->io.priv, m->to + done, c->buf, n);
		if (ret) {
			fprintf(stderr, "%s compact: %s: copying %llu bytes from %llu to %llu: %s\n",
				progname, c->f.path,
				(unsigned long long)m->length,
				(unsigned long long)m->from,
				(unsigned long long)m->to, strerror(-ret));
			return -1;
		}
	}
	return 0;
}

static int compact_commit(struct compact *c)
{
	/* It flushes first: the copies are stable before the log names them. */
	if (vhdx_commit(&c->img)) {
		fprintf(stderr, "%s compact: %s: %s\n", progname, c->f.path,
			c->img.error);
		return -1;
	}
	return 0;
}

/* Copies a batch, then commits its BAT entries; the next batch follows. */
static int compact_move_all(struct compact *c)
{
	struct vhdx_image *img = &c->img;
	struct progress pr;
	u64 i, j, batch = 0;

	progress_init(&pr, "compact", c->quiet);
	for (i = j = 0; i < c->nr_moves; i++) {
		if (compact_copy(c, &c->moves[i]))
			return -1;
		batch += c->moves[i].length;
		if (batch < COMPACT_BATCH_BYTES && i + 1 < c->nr_moves)
			continue;
		for (; j <= i; j++) {
			u64 e = le64_to_cpu(img->bat[c->moves[j].index]);

			vhdx_bat_update(img, c->moves[j].index,
					c->moves[j].to | vhdx_bat_state(e));
		}
		if (compact_commit(c))
			return -1;
		batch = 0;
		progress(&pr, i + 1, c->nr_moves);
	}
	return 0;
}

/* What a fixed image is, and QEMU's with LeaveBlockAllocated, keeps. */
static bool compact_refused(const struct compact *c)
{
	const struct vhdx_image *img = &c->img;

	if (img->geo.has_parent ||
	    !(img->file_flags & VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED))
		return false;
	fprintf(stderr,
		"%s compact: %s: a fixed image (LeaveBlockAllocated) keeps room for every block; MS-VHDX forbids shrinking it (convert --dynamic makes a dynamic copy)\n",
		progname, c->f.path);
	return true;
}

static u64 disk_usage(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (u64)st.st_blocks * 512;
}

/* Where the file may end: past every object, on the spec's 1 MiB alignment. */
static u64 compact_objects_end(const struct vhdx_object *objs, u64 count)
{
	u64 end = VHDX_HEADER_SECTION_SIZE, i;

	for (i = 0; i < count; i++)
		end = max_t(u64, end, objs[i].offset + objs[i].length);
	return (end + VHDX_OBJECT_ALIGN - 1) & ~(u64)(VHDX_OBJECT_ALIGN - 1);
}


static int compact_image(const char *path, bool quiet)
{
	struct compact c = { .quiet = quiet };
	u64 before, used_before, end;
	long long cleared;
	struct stat st;
	int ret = EXIT_TROUBLE, err;

	if (image_file_open(&c.f, path, O_RDWR))
		return EXIT_TROUBLE;
	if (fstat(c.f.fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s compact: %s: not a regular file: only a file can shrink\n",
			progname, path);
		goto out_close;
	}
	if (image_lock_for_change(path, c.f.fd))
		goto out_close;
	before = c.f.size;
	used_before = disk_usage(c.f.fd);
	image_io_init(&c.io, &c.f, true);
	/* A dirty log is replayed onto the file here, as open does. */
	err = image_open(&c.img, &c.io, c.f.size, false);
	if (err) {
		fprintf(stderr, "%s compact: %s: %s\n", progname, path,
			c.img.error);
		ret = open_error_status(err);
		goto out_close;
	}
	if (compact_refused(&c))
		goto out_image;
	if (vhdx_txn_init(&c.img)) {
		fprintf(stderr, "%s compact: %s: %s\n", progname, path,
			c.img.error);
		goto out_image;
	}
	c.img.txn.keep_data_write_guid = true;
	c.buf = malloc(COMPACT_COPY_CHUNK);
	cleared = c.buf ? compact_collect(&c) : -1;
	if (cleared < 0 || compact_plan(&c)) {
		fprintf(stderr, "%s: out of memory\n", progname);
		goto out_txn;
	}
	if (cleared || c.nr_moves) {
		if (vhdx_session_begin(&c.img)) {
			fprintf(stderr, "%s compact: %s: %s\n", progname, path,
				c.img.error);
			goto out_txn;
		}
		/*
		 * The cleared offsets first: the holes they named take
		 * blocks only once no entry names them, even after a crash.
		 */
		if (cleared && compact_commit(&c))
			goto out_txn;
		if (compact_move_all(&c))
			goto out_txn;
		if (vhdx_session_end(&c.img)) {
			fprintf(stderr, "%s compact: %s: %s\n", progname, path,
				c.img.error);
			goto out_txn;
		}
	}
	/* The log is empty: nothing refers past the last object now. */
	end = compact_objects_end(c.objs, c.count);
	if (end < c.f.size && (ftruncate(c.f.fd, end) || fsync(c.f.fd))) {
		fprintf(stderr, "%s compact: %s: cannot cut to %llu bytes: %s\n",
			progname, path, (unsigned long long)end,
			strerror(errno));
		goto out_txn;
	}
	if (end < c.f.size)
		c.f.size = end;
	printf("%s: %llu bytes before, %llu after (%llu allocated on disk before, %llu after); %llu blocks moved\n",
	       path, (unsigned long long)before,
	       (unsigned long long)c.f.size, (unsigned long long)used_before,
	       (unsigned long long)disk_usage(c.f.fd),
	       (unsigned long long)c.nr_moves);
	ret = EXIT_OK;
out_txn:
	vhdx_txn_free(&c.img);
out_image:
	vhdx_close(&c.img);
out_close:
	free(c.buf);
	free(c.objs);
	free(c.moves);
	close(c.f.fd);
	return ret;
}

/* The mount point of block device @rdev, from /proc/self/mountinfo. */
static int mount_point_of(dev_t rdev, char *out, size_t len)
{
	char line[4096], dev[32], mnt[PATH_MAX], want[32];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int found = -1;

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%u:%u", major(rdev), minor(rdev));
	while (found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %31s %*s %4095s", dev, mnt) != 2 ||
		    strcmp(dev, want))
			continue;
		/* Octal escapes (\040 for a space) are left: rare, refused. */
		if (strchr(mnt, '\\'))
			continue;
		snprintf(out, len, "%s", mnt);
		found = 0;
	}
	fclose(f);
	return found;
}

/*
 * --trim NAME: the file system on /dev/mapper/NAME gives its free space
 * back (FITRIM, as fstrim does), so the device discards those blocks and
 * the image frees them.  Moving blocks needs the image closed, so this
 * is the first of two steps: then unmount, close and compact.
 */
static int compact_trim(const char *name, const char *image)
{
	struct compact_fstrim_range range = { .len = ~0ULL };
	char dev[PATH_MAX], mnt[PATH_MAX];
	struct vhdx_mapping m;
	struct stat st, ist;
	int fd, ret;

	ret = check_name("compact", name);
	if (!ret)
		ret = find_mapping(name, &m, true);
	if (ret)
		return ret;
	if (stat(image, &ist) || !m.backing[0] || stat(m.backing, &st) ||
	    st.st_dev != ist.st_dev || st.st_ino != ist.st_ino) {
		fprintf(stderr, "%s compact: /dev/mapper/%s does not map %s (it maps %s)\n",
			progname, name, image, m.backing[0] ? m.backing : m.device);
		return EXIT_TROUBLE;
	}
	if (m.read_only) {
		fprintf(stderr, "%s compact: /dev/mapper/%s is read-only: it cannot discard\n",
			progname, name);
		return EXIT_TROUBLE;
	}
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", name);
	if (stat(dev, &st) || !S_ISBLK(st.st_mode) ||
	    mount_point_of(st.st_rdev, mnt, sizeof(mnt))) {
		fprintf(stderr, "%s compact: %s is not mounted: --trim needs its file system mounted\n",
			progname, dev);
		return EXIT_TROUBLE;
	}
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, FITRIM, &range)) {
		fprintf(stderr, "%s compact: fstrim %s: %s\n", progname, mnt,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_TROUBLE;
	}
	close(fd);
	printf("%s: %llu bytes trimmed on %s\n", mnt, range.len, dev);
	fprintf(stderr,
		"%s compact: the blocks are free in the image now; to move the rest down and shrink the file: umount %s; %s close %s; %s compact %s\n",
		progname, mnt, progname, name, progname, image);
	return EXIT_OK;
}

int cmd_compact(int argc, char **argv)
{
	enum { OPT_TRIM = 256 };
	static const struct option opts[] = {
		{ "trim", required_argument, NULL, OPT_TRIM },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *trim = NULL;
	bool quiet = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TRIM:
			trim = optarg;
			break;
		default:
			ret = common_option("compact", c, &quiet);
			if (ret)
				return ret;
		}
	}
	if (argc - optind != 1)
		return usage_error("compact", "%s", "expects IMAGE");
	if (trim)
		return compact_trim(trim, argv[optind]);
	return compact_image(argv[optind], quiet);
}
