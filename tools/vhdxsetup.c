// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup: create, inspect and check VHDX images with the same vhdx/ code
 * the dm-vhdx module runs.  Every subcommand is one entry of the command
 * table below; see Documentation/vhdxsetup.rst for the user's view.
 */
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vhdx/create.h"
#include "../vhdx/parent.h"
#include "vhdxsetup.h"

/* Linux's values; glibc shows them only with _GNU_SOURCE. */
#ifndef SEEK_DATA
#define SEEK_DATA	3
#define SEEK_HOLE	4
#endif

/* <linux/fs.h> would clash with the __le types of vhdx-user.h. */
#ifndef BLKGETSIZE64
#define BLKGETSIZE64	_IOR(0x12, 114, size_t)
#endif

#define VHDXSETUP_CREATOR	"vhdxsetup"

const char *progname = "vhdxsetup";


/* ------------------------------------------------------------------ */
/* The device behind struct vhdx_io: a file or block device. */


static int file_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct image_file *f = priv;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(f->fd, (u8 *)buf + done, len - done,
				  offset + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			break;
		done += n;
	}
	/* A file may end inside the last 4 KiB unit: that tail reads zero. */
	memset((u8 *)buf + done, 0, len - done);
	return 0;
}

/*
 * VHDXSETUP_CRASH_AFTER=N: _exit() right after the Nth write to any
 * image, as if the machine had stopped there, so that tests can walk an
 * interruption through every step of a command.  Every write of every
 * command goes through file_write(), so each command gets this for free.
 * Nothing is flushed on the way out; the page cache keeps what was
 * written, so this models a killed process, not lost unflushed writes.
 */
void crash_point(void)
{
	static long long left = -1;
	const char *s;

	if (left < 0) {
		s = getenv("VHDXSETUP_CRASH_AFTER");
		left = s && *s ? strtoll(s, NULL, 10) : 0;
		if (left < 0)
			left = 0;
	}
	if (left && !--left) {
		fprintf(stderr, "%s: VHDXSETUP_CRASH_AFTER: stopping here\n",
			progname);
		_exit(EXIT_CRASHED);
	}
}

int file_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct image_file *f = priv;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(f->fd, (const u8 *)buf + done, len - done,
				   offset + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	crash_point();
	return 0;
}

static int file_flush(void *priv)
{
	struct image_file *f = priv;

	return fsync(f->fd) ? -errno : 0;
}

int image_file_open(struct image_file *f, const char *path, int flags)
{
	struct stat st;

	f->path = path;
	f->fd = open(path, flags | O_CLOEXEC, 0644);
	if (f->fd < 0)
		goto fail;
	if (fstat(f->fd, &st))
		goto fail;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(f->fd, BLKGETSIZE64, &f->size))
			goto fail;
	} else {
		f->size = st.st_size;
	}
	return 0;
fail:
	fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	return -1;
}

void image_io_init(struct vhdx_io *io, struct image_file *f,
			  bool writable)
{
	memset(io, 0, sizeof(*io));
	io->priv = f;
	io->read = file_read;
	if (writable) {
		io->write = file_write;
		io->flush = file_flush;
	}
}

/*
 * vhdx_open() as the module runs it, differencing images included: then
 * img->locator holds the parsed parent locator (empty, count 0, for an
 * image without a parent) until vhdx_close().  @img must be zeroed.
 */
int image_open(struct vhdx_image *img, const struct vhdx_io *io,
		      u64 size, bool read_only)
{
	img->accept_parent = true;
	return vhdx_open(img, io, size, read_only);
}

int image_lock(const char *path, int fd, bool wait)
{
	/* open and close hold it for well under a second each. */
	int tries = wait ? 100 : 1;

	while (tries--) {
		if (!flock(fd, LOCK_EX | LOCK_NB))
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (tries)
			usleep(100000);
	}
	if (errno == EWOULDBLOCK)
		fprintf(stderr,
			"%s: %s: in use: another vhdxsetup (or a program that flock()s it) holds its lock\n",
			progname, path);
	else
		fprintf(stderr, "%s: %s: cannot lock: %s\n", progname, path,
			strerror(errno));
	return -1;
}

int image_lock_for_change(const char *path, int fd)
{
	struct chain *c;
	struct stat st;
	int ret = EXIT_TROUBLE;

	if (fstat(fd, &st)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
		return EXIT_TROUBLE;
	}
	/* refuse_mapped() looks at link 0 of a chain: this file alone. */
	c = calloc(1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_TROUBLE;
	}
	snprintf(c->link[0].path, sizeof(c->link[0].path), "%s", path);
	c->link[0].st_dev = st.st_dev;
	c->link[0].st_ino = st.st_ino;
	c->link[0].regular = S_ISREG(st.st_mode);
	c->count = 1;
	/*
	 * A mapping is named even when the lock is taken: a table made by
	 * dmsetup, or one whose loop device holds the file, takes no lock.
	 */
	if (!refuse_mapped(c, false, "") && !image_lock(path, fd, false))
		ret = EXIT_OK;
	free(c);
	return ret;
}

/* The image is damaged, or the device failed us: tell which. */
int open_error_status(int err)
{
	return err == -EIO || err == -ENOMEM || err == -EOPNOTSUPP ?
	       EXIT_TROUBLE : EXIT_PROBLEMS;
}

/* ------------------------------------------------------------------ */
/* Argument helpers. */

int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	const struct command *c = find_command(cmd);

	fprintf(stderr, "%s %s: ", progname, cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: %s %s %s\n", progname, cmd,
		c ? c->usage : "");
	return EXIT_TROUBLE;
}

/*
 * The options the commands that write images share, as getopt_long()
 * returns them: -q or --quiet ('q'), --help ('h'); any other is refused.
 * Returns 0, or the exit status for the caller to return.
 */
int common_option(const char *cmd, int opt, bool *quiet)
{
	switch (opt) {
	case 'q':
		*quiet = true;
		return EXIT_OK;
	case 'h':
		printf("usage: %s %s %s\n", progname, cmd,
		       find_command(cmd)->usage);
		exit(EXIT_OK);
	default:
		return usage_error(cmd, "%s", "unknown option");
	}
}

/* A byte count with an optional binary K, M, G or T suffix. */
int parse_size(const char *s, u64 *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	case 't': case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (shift) {
		end++;
		/* Also accept KiB, MB and the like: all binary. */
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end || (shift && v > (U64_MAX >> shift)))
		return -1;
	*out = (u64)v << shift;
	return 0;
}

int parse_u32_size(const char *s, u32 *out)
{
	u64 v;

	if (parse_size(s, &v) || v > UINT32_MAX)
		return -1;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* create */

/* Long options only: their values start past every character. */
enum {
	OPT_FIXED = 256,
	OPT_BLOCK_SIZE,
	OPT_LSS,
	OPT_PSS,
	OPT_LOG_SIZE,
	OPT_PARENT,
	OPT_NO_SPARSE,
	OPT_JSON,
	OPT_REPAIR,
	OPT_READ_ONLY,
	OPT_HELP,
	OPT_COMMIT_TIME,
};

static int create_parse(int argc, char **argv, struct vhdx_create_params *p,
			const char **parent, bool *no_sparse)
{
	static const struct option opts[] = {
		{ "fixed", no_argument, NULL, OPT_FIXED },
		{ "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
		{ "logical-sector-size", required_argument, NULL, OPT_LSS },
		{ "physical-sector-size", required_argument, NULL, OPT_PSS },
		{ "log-size", required_argument, NULL, OPT_LOG_SIZE },
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "no-sparse", no_argument, NULL, OPT_NO_SPARSE },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FIXED:
			p->fixed = true;
			break;
		case OPT_BLOCK_SIZE:
			if (parse_u32_size(optarg, &p->block_size) ||
			    !p->block_size)
				return usage_error("create", "bad block size '%s'",
						   optarg);
			break;
		case OPT_LSS:
			if (parse_u32_size(optarg, &p->logical_sector_size) ||
			    !p->logical_sector_size)
				return usage_error("create", "bad logical sector size '%s'",
						   optarg);
			break;
		case OPT_PSS:
			if (parse_u32_size(optarg, &p->physical_sector_size) ||
			    !p->physical_sector_size)
				return usage_error("create", "bad physical sector size '%s'",
						   optarg);
			break;
		case OPT_LOG_SIZE:
			if (parse_u32_size(optarg, &p->log_size) ||
			    !p->log_size)
				return usage_error("create", "bad log size '%s'",
						   optarg);
			break;
		case OPT_PARENT:
			*parent = optarg;
			break;
		case OPT_NO_SPARSE:
			*no_sparse = true;
			break;
		case OPT_HELP:
			printf("usage: %s create %s\n", progname,
			       find_command("create")->usage);
			exit(EXIT_OK);
		default:
			return usage_error("create", "%s", "unknown option");
		}
	}
	if (*parent ? argc - optind < 1 || argc - optind > 2 :
		      argc - optind != 2)
		return usage_error("create", "%s", *parent ?
				   "expects IMAGE and, optionally, SIZE" :
				   "expects IMAGE and SIZE");
	if (argc - optind == 2 &&
	    parse_size(argv[optind + 1], &p->virtual_size))
		return usage_error("create", "bad size '%s'", argv[optind + 1]);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Parent locator paths, from Linux paths to the spec's Windows forms. */

/*
 * Splits a canonical absolute path in place into its components; returns
 * their count.  A component holding a backslash cannot be written in the
 * locator's Windows form.
 */
static int path_split(char *path, char **comp, int max)
{
	char *save, *c;
	int n = 0;

	for (c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strchr(c, '\\') || n == max)
			return -1;
		comp[n++] = c;
	}
	return n;
}

/* dst gets src, or fails when it would not fit in size bytes. */
static int path_append(char *dst, size_t size, const char *src)
{
	size_t len = strlen(dst), add = strlen(src);

	if (len + add >= size)
		return -1;
	memcpy(dst + len, src, add + 1);
	return 0;
}

/*
 * The relative_path of @to (a file) from directory @from, both canonical:
 * ..\..\dir\parent.vhdx, as MS-VHDX 2.6.2.6.3 shows it.
 */
int relative_win_path(const char *from, const char *to, char *out,
			     size_t size)
{
	char f[PATH_MAX], t[PATH_MAX], *fc[PATH_MAX / 2], *tc[PATH_MAX / 2];
	int nf, nt, k = 0, i;

	snprintf(f, sizeof(f), "%s", from);
	snprintf(t, sizeof(t), "%s", to);
	nf = path_split(f, fc, ARRAY_SIZE(fc));
	nt = path_split(t, tc, ARRAY_SIZE(tc));
	if (nf < 0 || nt < 1)
		return -1;
	while (k < nf && k < nt - 1 && !strcmp(fc[k], tc[k]))
		k++;
	*out = 0;
	for (i = k; i < nf; i++)
		if (path_append(out, size, "..\\"))
			return -1;
	for (i = k; i < nt; i++)
		if (path_append(out, size, tc[i]) ||
		    (i + 1 < nt && path_append(out, size, "\\")))
			return -1;
	return 0;
}

/*
 * The absolute_win32_path of a Linux path: \\?\Z:\dir\parent.vhdx, with
 * Z: standing for the root as Wine has it.
 */
int absolute_win_path(const char *path, char *out, size_t size)
{
	char t[PATH_MAX], *tc[PATH_MAX / 2];
	int n, i;

	snprintf(t, sizeof(t), "%s", path);
	n = path_split(t, tc, ARRAY_SIZE(tc));
	if (n < 1)
		return -1;
	snprintf(out, size, "\\\\?\\Z:");
	for (i = 0; i < n; i++)
		if (path_append(out, size, "\\") ||
		    path_append(out, size, tc[i]))
			return -1;
	return 0;
}

struct create_parent_info {
	struct vhdx_create_parent parent;
	char relative[PATH_MAX];
	char absolute[PATH_MAX + 8];
};

/*
 * Reads the parent, fills in what the child takes from it (virtual size,
 * sector sizes, and the block size unless given) and the locator.
 */
static int create_from_parent(const char *parent, const char *child,
			      struct vhdx_create_params *p,
			      struct create_parent_info *info)
{
	char parent_abs[PATH_MAX], child_dir[PATH_MAX], tmp[PATH_MAX];
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	int ret;

	if (image_file_open(&f, parent, O_RDONLY))
		return EXIT_TROUBLE;
	image_io_init(&io, &f, false);
	ret = image_open(&img, &io, f.size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: cannot be a parent: %s\n", progname,
			parent, img.error);
		close(f.fd);
		return EXIT_TROUBLE;
	}
	ret = EXIT_TROUBLE;
	if (img.log_state != VHDX_LOG_CLEAN) {
		fprintf(stderr,
			"%s: %s: cannot be a parent: its log is not empty; run %s check --repair on it first\n",
			progname, parent, progname);
		goto out;
	}
	if (p->virtual_size && p->virtual_size != img.geo.virtual_size) {
		fprintf(stderr,
			"%s: %s: a differencing image has its parent's size, %llu bytes, not %llu\n",
			progname, child,
			(unsigned long long)img.geo.virtual_size,
			(unsigned long long)p->virtual_size);
		goto out;
	}
	if ((p->logical_sector_size &&
	     p->logical_sector_size != img.geo.logical_sector_size) ||
	    (p->physical_sector_size &&
	     p->physical_sector_size != img.geo.physical_sector_size)) {
		fprintf(stderr,
			"%s: %s: a differencing image has its parent's sector sizes, %u logical and %u physical\n",
			progname, child, img.geo.logical_sector_size,
			img.geo.physical_sector_size);
		goto out;
	}
	p->virtual_size = img.geo.virtual_size;
	p->logical_sector_size = img.geo.logical_sector_size;
	p->physical_sector_size = img.geo.physical_sector_size;
	/* The parent's blocks: a chain then maps whole blocks to one file. */
	if (!p->block_size)
		p->block_size = img.geo.block_size;
	info->parent.data_write_guid = img.header.data_write_guid;
	info->parent.virtual_disk_id = img.virtual_disk_id;

	if (!realpath(parent, parent_abs)) {
		fprintf(stderr, "%s: %s: %s\n", progname, parent,
			strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s", child);
	if (!realpath(dirname(tmp), child_dir)) {
		fprintf(stderr, "%s: %s: its directory: %s\n", progname, child,
			strerror(errno));
		goto out;
	}
	if (relative_win_path(child_dir, parent_abs, info->relative,
			      sizeof(info->relative)) ||
	    absolute_win_path(parent_abs, info->absolute,
			      sizeof(info->absolute))) {
		fprintf(stderr,
			"%s: %s: the path has a backslash or is too long for a parent locator\n",
			progname, parent_abs);
		goto out;
	}
	info->parent.relative_path = info->relative;
	info->parent.absolute_win32_path = info->absolute;
	p->parent = &info->parent;
	ret = EXIT_OK;
out:
	vhdx_close(&img);
	close(f.fd);
	return ret;
}

/*
 * Reads back what was written through the parser the module uses (and,
 * for a differencing image, checks the locator that the parser returns).
 */
static int create_verify(struct image_file *f,
			 const struct vhdx_create_params *p)
{
	struct vhdx_image img = { 0 };
	struct vhdx_io io;
	int ret;

	image_io_init(&io, f, false);
	ret = image_open(&img, &io, f->size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: the new image does not open: %s\n",
			progname, f->path, img.error);
		return EXIT_TROUBLE;
	}
	if (p->parent &&
	    (!img.geo.has_parent ||
	     !guid_equal(&img.locator->parent_linkage,
			 &p->parent->data_write_guid))) {
		fprintf(stderr, "%s: %s: the new image has the wrong parent linkage\n",
			progname, f->path);
		ret = EXIT_TROUBLE;
	}
	vhdx_close(&img);
	return ret ? EXIT_TROUBLE : EXIT_OK;
}

/*
 * Windows refuses to attach a VHDX file marked sparse on NTFS, and a copy
 * of a sparse file may not keep its holes anyway: write real zeros into
 * every hole so that the file owns all of its space.  Done before the
 * image's structures are written, so only zeros go through here.
 */
static int fill_holes(const struct image_file *f, u64 size)
{
	static const size_t chunk = 1 << 20;
	off_t pos = 0, end;
	char *zeros;
	int ret = 0;

	zeros = calloc(1, chunk);
	if (!zeros) {
		fprintf(stderr, "%s: %s: out of memory\n", progname, f->path);
		return -1;
	}
	while ((u64)pos < size) {
		pos = lseek(f->fd, pos, SEEK_HOLE);
		if (pos < 0 || (u64)pos >= size)
			break;
		end = lseek(f->fd, pos, SEEK_DATA);
		if (end < 0 || (u64)end > size)
			end = size;
		while (pos < end) {
			size_t n = end - pos < (off_t)chunk ? end - pos : chunk;
			ssize_t w = pwrite(f->fd, zeros, n, pos);

			if (w <= 0) {
				fprintf(stderr, "%s: %s: cannot write zeros at %llu: %s\n",
					progname, f->path,
					(unsigned long long)pos,
					w < 0 ? strerror(errno) : "short write");
				ret = -1;
				goto out;
			}
			pos += w;
		}
	}
	if (pos < 0 && errno != ENXIO) {
		fprintf(stderr, "%s: %s: cannot look for holes: %s\n",
			progname, f->path, strerror(errno));
		ret = -1;
	}
out:
	free(zeros);
	return ret;
}

static int cmd_create(int argc, char **argv)
{
	struct vhdx_create_params p = { .creator = VHDXSETUP_CREATOR };
	struct create_parent_info parent_info;
	struct vhdx_create_layout layout;
	struct vhdx_image img = { 0 };
	const char *path, *parent = NULL;
	struct image_file f;
	struct vhdx_io io;
	bool no_sparse = false;
	int ret;

	ret = create_parse(argc, argv, &p, &parent, &no_sparse);
	if (ret)
		return ret;
	path = argv[optind];
	if (parent && p.fixed)
		return usage_error("create", "%s",
				   "--fixed and --parent exclude each other");
	if (parent) {
		ret = create_from_parent(parent, path, &p, &parent_info);
		if (ret)
			return ret;
	}
	if (vhdx_create_plan(&img, &p, &layout)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, img.error);
		return EXIT_TROUBLE;
	}
	if (image_file_open(&f, path, O_RDWR | O_CREAT | O_EXCL))
		return EXIT_TROUBLE;
	/* A sparse file: a fixed image's blocks read as zeros, cost nothing. */
	if (ftruncate(f.fd, layout.file_size)) {
		fprintf(stderr, "%s: %s: cannot extend to %llu bytes: %s\n",
			progname, path, (unsigned long long)layout.file_size,
			strerror(errno));
		ret = EXIT_TROUBLE;
		goto out;
	}
	if (no_sparse && fill_holes(&f, layout.file_size)) {
		ret = EXIT_TROUBLE;
		goto out;
	}
	f.size = layout.file_size;
	image_io_init(&io, &f, true);
	if (vhdx_create(&img, &io, &p, &layout)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, img.error);
		ret = EXIT_TROUBLE;
		goto out;
	}
	ret = create_verify(&f, &p);
out:
	close(f.fd);
	if (ret)
		unlink(path);
	return ret;
}

/* ------------------------------------------------------------------ */
/* info */

static const char *log_state_name(enum vhdx_log_state state)
{
	return state == VHDX_LOG_CLEAN ? "clean" :
	       state == VHDX_LOG_REPLAYED ? "replayed" : "dirty";
}

/* Fixed means every payload block owns its space in the file. */
bool image_is_fixed(const struct vhdx_image *img)
{
	u64 b;

	for (b = 0; b < img->geo.payload_blocks; b++) {
		u64 e = le64_to_cpu(img->bat[vhdx_bat_payload_index(&img->geo,
								    b)]);

		if (vhdx_bat_state(e) != VHDX_PAYLOAD_FULLY_PRESENT)
			return false;
	}
	return true;
}

void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

struct info_field {
	const char *key;
	bool is_string;
	const char *s;
	unsigned long long n;
};

/*
 * The fields, then the parent locator's pairs in their order: a nested
 * object in JSON (keys are unique, the parser checks it).
 */
static void info_print(const struct info_field *fields, size_t count,
		       const struct vhdx_locator *loc, bool json)
{
	size_t i;
	u32 k;

	if (json)
		printf("{\n");
	for (i = 0; i < count; i++) {
		const struct info_field *fl = &fields[i];

		if (json) {
			printf("    ");
			json_string(fl->key);
			printf(": ");
			if (fl->is_string)
				json_string(fl->s);
			else
				printf("%llu", fl->n);
			printf("%s\n", i + 1 < count || loc->count ? "," : "");
		} else if (fl->is_string) {
			printf("%-22s %s\n", fl->key, fl->s);
		} else {
			printf("%-22s %llu\n", fl->key, fl->n);
		}
	}
	if (loc->count)
		printf(json ? "    \"parent-locator\": {\n" : "parent-locator:\n");
	for (k = 0; k < loc->count; k++) {
		if (!json) {
			printf("  %-20s %s\n", loc->kv[k].key, loc->kv[k].value);
			continue;
		}
		printf("        ");
		json_string(loc->kv[k].key);
		printf(": ");
		json_string(loc->kv[k].value);
		printf("%s\n", k + 1 < loc->count ? "," : "");
	}
	if (json)
		printf("%s}\n", loc->count ? "    }\n" : "");
}

#define STR(k, v)	{ .key = (k), .is_string = true, .s = (v) }
#define NUM(k, v)	{ .key = (k), .n = (v) }

static const char *image_type(const struct vhdx_image *img)
{
	if (img->geo.has_parent)
		return "differencing";
	/*
	 * As Hyper-V says it: the mark, not the BAT.  A dynamic image whose
	 * blocks were all written is still dynamic.
	 */
	return img->file_flags & VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED ?
	       "fixed" : "dynamic";
}

static void info_show(const struct image_file *f, const struct vhdx_image *img,
		      const struct vhdx_locator *loc, bool json)
{
	char disk_id[VHDX_GUID_STRING_SIZE], data_guid[VHDX_GUID_STRING_SIZE];
	char file_guid[VHDX_GUID_STRING_SIZE];
	const struct vhdx_header *h = &img->header;
	const struct info_field fields[] = {
		STR("filename", f->path),
		STR("format", "vhdx"),
		STR("type", image_type(img)),
		NUM("virtual-size", img->geo.virtual_size),
		NUM("block-size", img->geo.block_size),
		NUM("logical-sector-size", img->geo.logical_sector_size),
		NUM("physical-sector-size", img->geo.physical_sector_size),
		STR("virtual-disk-id", disk_id),
		STR("data-write-guid", data_guid),
		STR("file-write-guid", file_guid),
		NUM("header-sequence", le64_to_cpu(h->sequence_number)),
		NUM("current-header", img->header_slot + 1),
		STR("log-state", log_state_name(img->log_state)),
		NUM("log-offset", le64_to_cpu(h->log_offset)),
		NUM("log-length", le32_to_cpu(h->log_length)),
		NUM("leave-blocks-allocated",
		    !!(img->file_flags & VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED)),
		NUM("payload-blocks", img->geo.payload_blocks),
		NUM("allocated-blocks", img->allocated_blocks),
		NUM("file-size", f->size),
	};

	vhdx_guid_to_string(&img->virtual_disk_id, disk_id);
	vhdx_guid_to_string(&h->data_write_guid, data_guid);
	vhdx_guid_to_string(&h->file_write_guid, file_guid);
	info_print(fields, ARRAY_SIZE(fields), loc, json);
}

static int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_JSON) {
			json = true;
		} else if (c == OPT_HELP) {
			printf("usage: %s info %s\n", progname,
			       find_command("info")->usage);
			return EXIT_OK;
		} else {
			return usage_error("info", "%s", "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error("info", "%s", "expects IMAGE");
	if (image_file_open(&f, argv[optind], O_RDONLY))
		return EXIT_TROUBLE;
	image_io_init(&io, &f, false);
	ret = image_open(&img, &io, f.size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: %s\n", progname, f.path, img.error);
		close(f.fd);
		return open_error_status(ret);
	}
	info_show(&f, &img, img.locator, json);
	vhdx_close(&img);
	close(f.fd);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* check */

static void problem(const struct image_file *f, const char *what,
		    unsigned int *problems)
{
	printf("%s: %s\n", f->path, what);
	(*problems)++;
}

/*
 * vhdx_open needs only one valid header and one usable region table; a
 * check reports a damaged second copy too, because the next damage to the
 * other one would make the image unreadable.
 */
static int check_headers(struct vhdx_image *img, const struct image_file *f,
			 bool *bad, unsigned int *problems)
{
	static const u64 offsets[2] = {
		VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET,
	};
	struct vhdx_header *h;
	char msg[VHDX_ERROR_MAX + 32];
	const char *why;
	unsigned int i;
	int ret = 0;

	h = vhdx_alloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (i = 0; i < 2 && !ret; i++) {
		bad[i] = false;
		ret = img->io->read(img->io->priv, offsets[i], h, sizeof(*h));
		if (ret || !vhdx_header_check(h, &why))
			continue;
		snprintf(msg, sizeof(msg), "header %u: %s", i + 1, why);
		problem(f, msg, problems);
		bad[i] = true;
	}
	vhdx_free(h);
	return ret;
}

static int check_region_tables(struct vhdx_image *img,
			       const struct image_file *f,
			       unsigned int *problems)
{
	static const u64 offsets[2] = {
		VHDX_REGION_TABLE1_OFFSET, VHDX_REGION_TABLE2_OFFSET,
	};
	struct vhdx_image scratch;
	unsigned int i;
	void *table;
	int ret = 0;

	table = vhdx_alloc(VHDX_REGION_TABLE_SIZE);
	if (!table)
		return -ENOMEM;
	for (i = 0; i < 2 && !ret; i++) {
		ret = vhdx_read(img, offsets[i], table, VHDX_REGION_TABLE_SIZE);
		if (ret)
			break;
		/* A scratch image: parsing replaces the region list. */
		memset(&scratch, 0, sizeof(scratch));
		scratch.io = img->io;
		scratch.device_size = img->device_size;
		scratch.read_only = true;
		scratch.header = img->header;
		scratch.header_slot = img->header_slot;
		if (vhdx_region_table_parse(&scratch, table, i))
			problem(f, scratch.error, problems);
		vhdx_close(&scratch);
	}
	vhdx_free(table);
	return ret;
}

/* Rewrites both headers from the current one (MS-VHDX 2.2.2.1). */
static int repair_headers(struct vhdx_image *img, const struct image_file *f)
{
	guid_t file_write_guid;
	static const guid_t null_guid;
	int ret;

	vhdx_guid_gen(&file_write_guid);
	ret = vhdx_header_update(img, &file_write_guid,
				 &img->header.data_write_guid, &null_guid);
	if (ret)
		fprintf(stderr, "%s: %s: %s\n", progname, f->path, img->error);
	else
		printf("%s: headers rewritten from the current header\n",
		       f->path);
	return ret;
}

static int check_image(struct image_file *f, bool repair)
{
	unsigned int problems = 0;
	struct vhdx_image img = { 0 };
	char guid[VHDX_GUID_STRING_SIZE];
	char msg[VHDX_ERROR_MAX + 64];
	struct vhdx_io io;
	bool bad_header[2];
	int ret;

	image_io_init(&io, f, repair);
	ret = image_open(&img, &io, f->size, !repair);
	if (ret) {
		if (open_error_status(ret) == EXIT_TROUBLE) {
			fprintf(stderr, "%s: %s: %s\n", progname, f->path,
				img.error);
			return EXIT_TROUBLE;
		}
		problem(f, img.error, &problems);
		return EXIT_PROBLEMS;
	}
	if (img.log_state == VHDX_LOG_REPLAYED) {
		printf("%s: log replayed\n", f->path);
	} else if (img.log_state == VHDX_LOG_REPLAYED_IN_MEMORY) {
		vhdx_guid_to_string(&img.header.log_guid, guid);
		snprintf(msg, sizeof(msg),
			 "log: not empty (LogGuid %s): it must be replayed; run %s check --repair",
			 guid, progname);
		problem(f, msg, &problems);
	}
	ret = check_headers(&img, f, bad_header, &problems);
	if (!ret)
		ret = check_region_tables(&img, f, &problems);
	if (!ret && repair && (bad_header[0] || bad_header[1])) {
		ret = repair_headers(&img, f);
		if (!ret)
			problems--;
	}
	vhdx_close(&img);
	if (ret) {
		fprintf(stderr, "%s: %s: read error: %s\n", progname, f->path,
			strerror(-ret));
		return EXIT_TROUBLE;
	}
	if (problems)
		return EXIT_PROBLEMS;
	printf("%s: no problems found\n", f->path);
	return EXIT_OK;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repair", no_argument, NULL, OPT_REPAIR },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct image_file f;
	bool repair = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == OPT_REPAIR) {
			repair = true;
		} else if (c == OPT_HELP) {
			printf("usage: %s check %s\n", progname,
			       find_command("check")->usage);
			return EXIT_OK;
		} else {
			return usage_error("check", "%s", "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error("check", "%s", "expects IMAGE");
	if (image_file_open(&f, argv[optind], repair ? O_RDWR : O_RDONLY))
		return EXIT_TROUBLE;
	/* A repair writes headers and replays the log: a change in place. */
	if (repair && image_lock_for_change(argv[optind], f.fd)) {
		close(f.fd);
		return EXIT_TROUBLE;
	}
	ret = check_image(&f, repair);
	close(f.fd);
	return ret;
}

/* ------------------------------------------------------------------ */
/* open, close, status */

/* Device-mapper names: no slash, at most 127 bytes. */
int check_name(const char *cmd, const char *name)
{
	if (!*name || strchr(name, '/') || strlen(name) > 127 ||
	    !strcmp(name, ".") || !strcmp(name, ".."))
		return usage_error(cmd, "bad device name '%s'", name);
	return EXIT_OK;
}

/*
 * Parses a subcommand's options: --help and the flags in @opts; --read-only
 * sets *@read_only, --commit-time *@commit_ms (ms), for the commands that
 * take them.
 */
static int parse_flags(const char *cmd, int argc, char **argv,
		       const struct option *opts, bool *read_only,
		       int *commit_ms, int nargs, const char *args)
{
	int c;

	while ((c = getopt_long(argc, argv, "r", opts, NULL)) != -1) {
		if ((c == OPT_READ_ONLY || c == 'r') && read_only) {
			*read_only = true;
		} else if (c == OPT_COMMIT_TIME && commit_ms) {
			char *end;
			long ms;

			/* In a long: an int would wrap 2^32 + 500 to 500. */
			errno = 0;
			ms = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end ||
			    ms < 0 || ms > 3600000)
				return usage_error(cmd,
						   "bad --commit-time '%s' (ms, at most 3600000)",
						   optarg);
			*commit_ms = ms;
		} else if (c == OPT_HELP) {
			printf("usage: %s %s %s\n", progname, cmd,
			       find_command(cmd)->usage);
			exit(EXIT_OK);
		} else {
			return usage_error(cmd, "%s", "unknown option");
		}
	}
	if (argc - optind != nargs)
		return usage_error(cmd, "expects %s", args);
	return EXIT_OK;
}

/*
 * A writable mapping allocates blocks past the last object, on a loop
 * device that cannot grow: make room for every payload block that is not
 * allocated yet and, for a differencing image, for every sector bitmap
 * block not present yet (one per chunk, written before its chunk's first
 * partially present block).  The file stays sparse, so this costs no
 * space.
 */
int open_extend(struct image_file *f, const struct vhdx_image *img,
		u64 *old_size)
{
	u64 need = img->data_end +
		   ((img->geo.payload_blocks - img->allocated_blocks) <<
		    img->geo.block_shift);
	u64 chunk;

	if (img->geo.has_parent && img->bitmaps)
		for (chunk = 0; chunk < img->geo.bitmap_blocks; chunk++)
			if (!vhdx_bitmap_present(img, chunk))
				need += VHDX_BITMAP_BLOCK_SIZE;
	*old_size = f->size;
	if (need <= f->size)
		return 0;
	if (ftruncate(f->fd, need)) {
		fprintf(stderr, "%s: %s: cannot extend to %llu bytes: %s\n",
			progname, f->path, (unsigned long long)need,
			strerror(errno));
		return -1;
	}
	f->size = need;
	return 0;
}


/* Opens link @l's file (already in l->path) and its image, read-only. */
static int link_open(struct chain_link *l, int flags)
{
	struct stat st;
	int ret;

	l->lfd = -1;
	if (image_file_open(&l->f, l->path, flags))
		return EXIT_TROUBLE;
	if (fstat(l->f.fd, &st)) {
		fprintf(stderr, "%s: %s: %s\n", progname, l->path,
			strerror(errno));
		return EXIT_TROUBLE;
	}
	l->st_dev = st.st_dev;
	l->st_ino = st.st_ino;
	l->regular = S_ISREG(st.st_mode);
	image_io_init(&l->io, &l->f, false);
	/* Read-only: a dirty log is replayed in memory, the module replays it. */
	ret = image_open(&l->img, &l->io, l->f.size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: %s\n", progname, l->path,
			l->img.error);
		return open_error_status(ret);
	}
	l->opened = true;
	return EXIT_OK;
}

void chain_free(struct chain *c)
{
	unsigned int i;

	for (i = 0; i < c->count; i++) {
		struct chain_link *l = &c->link[i];

		/* The table holds the loops now; or autoclear detaches them. */
		if (l->lfd >= 0)
			close(l->lfd);
		if (l->opened)
			vhdx_close(&l->img);
		if (l->f.fd >= 0)
			close(l->f.fd);
	}
	free(c);
}

static bool linked(const struct vhdx_locator *loc, const struct vhdx_image *p)
{
	const guid_t *dwg = &p->header.data_write_guid;

	return guid_equal(&loc->parent_linkage, dwg) ||
	       (loc->has_parent_linkage2 &&
		guid_equal(&loc->parent_linkage2, dwg));
}

/* Windows separators to Linux ones, in place. */
static void path_unwin(char *s)
{
	for (; *s; s++)
		if (*s == '\\')
			*s = '/';
}

/*
 * Where the locator of @child says its parent is, in the order tried:
 * relative_path from the child's directory, then absolute_win32_path with
 * \\?\Z:\ (the root, as create writes it) back to /.  A path that cannot
 * be resolved on Linux is explained in @why.  Returns the count.
 */
static int parent_candidates(const struct chain_link *child,
			     char cand[2][PATH_MAX], char *why, size_t why_len)
{
	const struct vhdx_locator *loc = child->img.locator;
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *a;
	int n = 0;

	why[0] = 0;
	if (loc->relative_path) {
		snprintf(tmp, sizeof(tmp), "%s", child->path);
		if (!realpath(dirname(tmp), dir)) {
			snprintf(tmp, sizeof(tmp), "%s", child->path);
			snprintf(dir, sizeof(dir), "%s", dirname(tmp));
		}
		if (loc->relative_path[0] == '\\' || loc->relative_path[0] == '/')
			snprintf(cand[n], PATH_MAX, "%s", loc->relative_path);
		else if (snprintf(cand[n], PATH_MAX, "%s/%s",
				  strcmp(dir, "/") ? dir : "",
				  loc->relative_path) >= PATH_MAX)
			cand[n][0] = 0;
		path_unwin(cand[n]);
		if (cand[n][0])
			n++;
	}
	a = loc->absolute_win32_path;
	if (a) {
		if (!strncmp(a, "\\\\?\\", 4))
			a += 4;
		if ((a[0] == 'Z' || a[0] == 'z') && a[1] == ':' &&
		    (a[2] == '\\' || a[2] == '/')) {
			snprintf(cand[n], PATH_MAX, "%s", a + 2);
			path_unwin(cand[n++]);
		} else {
			snprintf(why, why_len,
				 "; absolute_win32_path %s is not on Z: (the root directory), so not looked for",
				 loc->absolute_win32_path);
		}
	}
	return n;
}

/*
 * Finds, opens and checks the parent of c->link[c->count - 1] as the next
 * link: the first candidate path that is a VHDX image whose DataWriteGuid
 * the child's parent_linkage names.
 */
static int chain_add_parent(struct chain *c)
{
	struct chain_link *child = &c->link[c->count - 1];
	struct chain_link *l = &c->link[c->count];
	char cand[2][PATH_MAX], why[PATH_MAX + 96], looked[3 * PATH_MAX + 64];
	char want[VHDX_GUID_STRING_SIZE], have[VHDX_GUID_STRING_SIZE];
	char stale[PATH_MAX] = "";
	struct stat st;
	unsigned int i;
	int n, k, ret;

	n = parent_candidates(child, cand, why, sizeof(why));
	looked[0] = 0;
	for (k = 0; k < n; k++) {
		if (k && !strcmp(cand[k], cand[0]))
			continue;
		if (stat(cand[k], &st)) {
			snprintf(looked + strlen(looked),
				 sizeof(looked) - strlen(looked), "%s%s (%s)",
				 looked[0] ? ", " : "", cand[k], strerror(errno));
			continue;
		}
		for (i = 0; i < c->count; i++)
			if (c->link[i].st_dev == st.st_dev &&
			    c->link[i].st_ino == st.st_ino) {
				fprintf(stderr,
					"%s: %s: its parent %s is already in the chain (a loop)\n",
					progname, child->path, cand[k]);
				return EXIT_PROBLEMS;
			}
		if (!realpath(cand[k], l->path))
			snprintf(l->path, sizeof(l->path), "%s", cand[k]);
		c->count++;
		ret = link_open(l, O_RDONLY);
		if (ret) {
			fprintf(stderr, "%s: %s: its parent %s cannot be used\n",
				progname, child->path, l->path);
			return ret;
		}
		if (linked(child->img.locator, &l->img))
			break;
		/* A stale parent here: another candidate may be the right one. */
		vhdx_guid_to_string(&child->img.locator->parent_linkage, want);
		vhdx_guid_to_string(&l->img.header.data_write_guid, have);
		snprintf(stale, sizeof(stale), "%s", l->path);
		vhdx_close(&l->img);
		l->opened = false;
		close(l->f.fd);
		l->f.fd = -1;
		c->count--;
	}
	if (k == n && stale[0]) {
		fprintf(stderr,
			"%s: %s: parent_linkage %s does not match DataWriteGuid %s of its parent %s: the parent was written after %s was made; the chain is broken\n",
			progname, child->path, want, have, stale,
			child->path);
		return EXIT_PROBLEMS;
	}
	if (k == n) {
		fprintf(stderr, "%s: %s: parent not found: looked for %s%s\n",
			progname, child->path,
			looked[0] ? looked : "nothing (no usable path in the parent locator)",
			why);
		return EXIT_TROUBLE;
	}
	/*
	 * The virtual sizes may differ (a child grown by resize, as Hyper-V
	 * allows): past its parent's end a child reads zeros, and a larger
	 * parent is read only as far as the child reaches.
	 */
	if (l->img.geo.logical_sector_size !=
	    child->img.geo.logical_sector_size) {
		fprintf(stderr,
			"%s: %s: its parent %s has %u-byte sectors, not %u-byte sectors\n",
			progname, child->path, l->path,
			l->img.geo.logical_sector_size,
			child->img.geo.logical_sector_size);
		return EXIT_PROBLEMS;
	}
	return EXIT_OK;
}

/*
 * Opens @path and, for a differencing image, its parents up the chain
 * from the parent locators, checking each link as the module does.
 */
int chain_open(struct chain **out, const char *path, bool read_only)
{
	struct chain *c = calloc(1, sizeof(*c));
	unsigned int i;
	int ret;

	*out = c;
	if (!c) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_TROUBLE;
	}
	for (i = 0; i < ARRAY_SIZE(c->link); i++) {
		c->link[i].f.fd = -1;
		c->link[i].lfd = -1;
	}
	snprintf(c->link[0].path, sizeof(c->link[0].path), "%s", path);
	c->count = 1;
	ret = link_open(&c->link[0], read_only ? O_RDONLY : O_RDWR);
	while (!ret && c->link[c->count - 1].img.geo.has_parent) {
		if (c->count == ARRAY_SIZE(c->link)) {
			fprintf(stderr,
				"%s: %s: a chain of more than %u parents (dm-vhdx maps at most %u)\n",
				progname, path, OPEN_MAX_PARENTS,
				OPEN_MAX_PARENTS);
			return EXIT_TROUBLE;
		}
		ret = chain_add_parent(c);
	}
	return ret;
}

/* Attaches every regular file of the chain to a loop device. */
static int chain_attach(struct chain *c, bool read_only)
{
	char abs[PATH_MAX], err[VHDXSETUP_ERR_MAX];
	unsigned int i;

	for (i = 0; i < c->count; i++) {
		struct chain_link *l = &c->link[i];

		memcpy(l->dev, l->path, sizeof(l->dev));
		if (!l->regular)
			continue;
		if (!realpath(l->path, abs))
			snprintf(abs, sizeof(abs), "%s", l->path);
		/* Parents are never written: their loop devices are read-only. */
		l->lfd = loop_attach(l->f.fd, abs, !i && !read_only, l->dev,
				     sizeof(l->dev), err);
		if (l->lfd < 0) {
			fprintf(stderr, "%s: %s: %s\n", progname, l->path, err);
			return EXIT_TROUBLE;
		}
	}
	return EXIT_OK;
}

static int cmd_open(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "read-only", no_argument, NULL, OPT_READ_ONLY },
		{ "commit-time", required_argument, NULL, OPT_COMMIT_TIME },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	char disk_id[VHDX_GUID_STRING_SIZE], uuid[129], err[VHDXSETUP_ERR_MAX];
	const char *parents[OPEN_MAX_PARENTS];
	int lock_fd[1 + OPEN_MAX_PARENTS];
	struct chain_link *child;
	bool read_only = false;
	int commit_ms = -1;	/* none: the module's default */
	struct chain *c = NULL;
	u64 old_size = 0;
	const char *name;
	unsigned int i;
	int ret;

	if (tab_wanted(argc, argv))
		return tab_run("open", argc, argv);
	ret = parse_flags("open", argc, argv, opts, &read_only, &commit_ms,
			  2, "IMAGE and NAME");
	if (!ret)
		ret = check_name("open", argv[optind + 1]);
	if (ret)
		return ret;
	name = argv[optind + 1];
	for (i = 0; i < ARRAY_SIZE(lock_fd); i++)
		lock_fd[i] = -1;
	/*
	 * The lock, on descriptors of its own that the loop devices do not
	 * keep: no compact or other change runs on the image or a parent
	 * while this reads and maps them, and none starts before the table
	 * exists, which it then refuses.  The image's is taken before it is
	 * read, so that open_extend() sees its current size.
	 */
	ret = EXIT_TROUBLE;
	lock_fd[0] = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (lock_fd[0] >= 0 && image_lock(argv[optind], lock_fd[0], true))
		goto out;
	ret = chain_open(&c, argv[optind], read_only);
	if (ret)
		goto out;
	child = &c->link[0];
	ret = EXIT_TROUBLE;
	for (i = 1; i < c->count; i++) {
		lock_fd[i] = open(c->link[i].path, O_RDONLY | O_CLOEXEC);
		if (lock_fd[i] >= 0 &&
		    image_lock(c->link[i].path, lock_fd[i], true))
			goto out;
	}
	ret = open_refuse_mapped(c, read_only);
	if (ret)
		goto out;
	ret = EXIT_TROUBLE;
	if (!read_only && child->regular &&
	    open_extend(&child->f, &child->img, &old_size))
		goto out;
	if (chain_attach(c, read_only))
		goto out;
	for (i = 1; i < c->count; i++)
		parents[i - 1] = c->link[i].dev;
	vhdx_guid_to_string(&child->img.virtual_disk_id, disk_id);
	snprintf(uuid, sizeof(uuid), "%s%s-%s", VHDXSETUP_UUID_PREFIX,
		 disk_id, name);
	if (dm_vhdx_create(name, uuid, child->img.geo.virtual_size >> 9,
			   child->dev, parents, c->count - 1, read_only,
			   commit_ms, err)) {
		fprintf(stderr, "%s: %s: %s: %s%s\n", progname, name,
			child->path, err, strstr(err, "ioctl") ?
			" (the kernel log says why)" : "");
		goto out;
	}
	printf("/dev/mapper/%s\n", name);
	ret = EXIT_OK;
out:
	if (c && ret && old_size && old_size < c->link[0].f.size &&
	    ftruncate(c->link[0].f.fd, old_size))
		fprintf(stderr, "%s: %s: cannot trim back to %llu bytes: %s\n",
			progname, c->link[0].path,
			(unsigned long long)old_size, strerror(errno));
	if (c)
		chain_free(c);
	for (i = 0; i < ARRAY_SIZE(lock_fd); i++)
		if (lock_fd[i] >= 0)
			close(lock_fd[i]);
	return ret;
}

/* Looks NAME up; only devices that open made, unless @any_vhdx. */
int find_mapping(const char *name, struct vhdx_mapping *m,
			bool any_vhdx)
{
	char err[VHDXSETUP_ERR_MAX];
	int ret = dm_vhdx_query(name, m, err);

	if (ret < 0) {
		fprintf(stderr, "%s: %s: %s\n", progname, name, err);
		return EXIT_TROUBLE;
	}
	if (ret > 0) {
		fprintf(stderr, "%s: %s: no such device-mapper device\n",
			progname, name);
		return EXIT_TROUBLE;
	}
	if (strcmp(m->target, "vhdx") ||
	    (!any_vhdx && strncmp(m->uuid, VHDXSETUP_UUID_PREFIX,
				  strlen(VHDXSETUP_UUID_PREFIX)))) {
		fprintf(stderr, "%s: %s: not a dm-vhdx device made by %s open\n",
			progname, name, progname);
		return EXIT_TROUBLE;
	}
	return EXIT_OK;
}

/*
 * After a writable mapping or a shrink: cut the file back to the end of
 * the last object its BAT and regions use, read from the closed image.  A log that
 * is not empty may refer to space beyond: then the file is left alone.
 * So is a file with LeaveBlockAllocated (MS-VHDX 2.6.2.1: a fixed image
 * keeps room for every block; QEMU's have ZERO blocks and preallocated
 * space that no BAT entry names): open only grew it to that room.
 */
void image_trim(const char *path)
{
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	struct stat st;

	if (image_file_open(&f, path, O_RDWR))
		return;
	if (fstat(f.fd, &st) || !S_ISREG(st.st_mode))
		goto out;
	/* Not while a change (compact) has the file: it trims it itself. */
	if (image_lock(path, f.fd, true)) {
		fprintf(stderr, "%s: %s: not trimmed\n", progname, path);
		goto out;
	}
	image_io_init(&io, &f, false);
	if (image_open(&img, &io, f.size, true)) {
		fprintf(stderr, "%s: %s: not trimmed: %s\n", progname, path,
			img.error);
		goto out;
	}
	if (img.log_state != VHDX_LOG_CLEAN)
		fprintf(stderr, "%s: %s: not trimmed: the log is not empty\n",
			progname, path);
	else if (!(img.file_flags & VHDX_PARAMS_LEAVE_BLOCK_ALLOCATED) &&
		 img.data_end < f.size && ftruncate(f.fd, img.data_end))
		fprintf(stderr, "%s: %s: cannot trim to %llu bytes: %s\n",
			progname, path, (unsigned long long)img.data_end,
			strerror(errno));
	vhdx_close(&img);
out:
	close(f.fd);
}

/* The loop devices and files of a mapping's parents, nearest first. */
/* From the table: <device> <#feature args> parent <device>... */
void mapping_parents(const struct vhdx_mapping *m,
		     struct mapping_parents *mp)
{
	char params[sizeof(m->params)], *save, *t;
	unsigned int i;

	mp->count = 0;
	snprintf(params, sizeof(params), "%s", m->params);
	t = strtok_r(params, " ", &save);	/* the image's device */
	t = t ? strtok_r(NULL, " ", &save) : NULL;	/* the count */
	while (t && (t = strtok_r(NULL, " ", &save))) {
		if (strcmp(t, "parent"))
			continue;
		t = strtok_r(NULL, " ", &save);
		if (!t || mp->count == OPEN_MAX_PARENTS)
			break;
		snprintf(mp->device[mp->count], sizeof(mp->device[0]), "%s", t);
		mp->count++;
	}
	for (i = 0; i < mp->count; i++)
		dev_find_loop(mp->device[i], mp->loop[i], sizeof(mp->loop[0]),
			      mp->backing[i], sizeof(mp->backing[0]));
}

static int cmd_close(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	char err[VHDXSETUP_ERR_MAX];
	struct mapping_parents *mp;
	struct vhdx_mapping m;
	const char *name;
	unsigned int i;
	int ret;

	if (tab_wanted(argc, argv))
		return tab_run("close", argc, argv);
	ret = parse_flags("close", argc, argv, opts, NULL, NULL, 1, "NAME");
	if (!ret)
		ret = check_name("close", argv[optind]);
	if (ret)
		return ret;
	name = argv[optind];
	ret = find_mapping(name, &m, false);
	if (ret)
		return ret;
	mp = calloc(1, sizeof(*mp));
	if (!mp) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_TROUBLE;
	}
	mapping_parents(&m, mp);
	/* Suspend and removal commit the BAT and empty the log. */
	if (dm_vhdx_remove(name, err)) {
		fprintf(stderr, "%s: %s: %s%s\n", progname, name, err,
			m.open_count ? " (is it mounted or open?)" : "");
		free(mp);
		return EXIT_TROUBLE;
	}
	/* The parents' loop devices go with the table too (autoclear). */
	for (i = 0; i < mp->count; i++)
		if (mp->loop[i][0] && loop_wait_detached(mp->loop[i], 5000))
			fprintf(stderr,
				"%s: %s: removed, but %s still holds the parent %s (open elsewhere?)\n",
				progname, name, mp->loop[i], mp->backing[i]);
	free(mp);
	if (!m.loop[0])
		return EXIT_OK;
	if (loop_wait_detached(m.loop, 5000)) {
		fprintf(stderr,
			"%s: %s: removed, but %s still holds %s (open elsewhere?); the file is not trimmed\n",
			progname, name, m.loop, m.backing);
		return EXIT_OK;
	}
	if (!m.read_only && m.backing[0])
		image_trim(m.backing);
	return EXIT_OK;
}

/* The target's status line in words (Documentation/dm-vhdx.rst). */
static void status_words(const struct vhdx_mapping *m)
{
	unsigned long long bs, alloc, total;
	char log[32], mode[8], health[32];
	unsigned int lss, pss;

	if (sscanf(m->status, "%u %u %llu %llu/%llu %31s %7s %31s", &lss, &pss,
		   &bs, &alloc, &total, log, mode, health) != 8) {
		printf("%-20s %s\n", "status", m->status);
		return;
	}
	printf("%-20s %u bytes logical, %u physical\n", "sectors", lss, pss);
	printf("%-20s %llu of %llu allocated, %llu KiB each\n", "blocks",
	       alloc, total, bs / 2);
	printf("%-20s %s\n", "log",
	       !strcmp(log, "clean") ? "was empty at open" :
	       !strcmp(log, "replayed") ? "was replayed onto the image at open" :
	       !strcmp(log, "replayed-in-memory") ?
	       "is replayed in memory only (read-only)" : log);
	printf("%-20s %s\n", "health",
	       !strcmp(health, "ok") ? "ok" :
	       !strcmp(health, "no_space") ?
	       "no space: the last allocation found no room on the device" :
	       !strcmp(health, "fail") ?
	       "failed: a metadata write failed, writes are refused" : health);
}

/* A differencing image's chain: its parents, nearest first. */
static void status_parents(const struct vhdx_mapping *m)
{
	struct mapping_parents *mp = calloc(1, sizeof(*mp));
	char what[32];
	unsigned int i;

	if (!mp)
		return;
	mapping_parents(m, mp);
	if (mp->count)
		printf("%-20s %u\n", "parents", mp->count);
	for (i = 0; i < mp->count; i++) {
		snprintf(what, sizeof(what), "parent %u", i + 1);
		if (mp->loop[i][0])
			printf("%-20s %s (%s, read-only)\n", what,
			       mp->backing[i][0] ? mp->backing[i] : "?",
			       mp->loop[i]);
		else
			printf("%-20s device %s\n", what, mp->device[i]);
	}
	free(mp);
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct vhdx_mapping m;
	const char *name;
	int ret;

	ret = parse_flags("status", argc, argv, opts, NULL, NULL, 1,
			  "NAME");
	if (!ret)
		ret = check_name("status", argv[optind]);
	if (ret)
		return ret;
	name = argv[optind];
	ret = find_mapping(name, &m, true);
	if (ret)
		return ret;
	printf("%-20s /dev/mapper/%s\n", "device", name);
	printf("%-20s %s\n", "image", m.backing[0] ? m.backing : m.device);
	if (m.loop[0])
		printf("%-20s %s\n", "loop device", m.loop);
	printf("%-20s %s%s\n", "mode", m.read_only ? "read-only" : "read-write",
	       m.suspended ? ", suspended" : "");
	printf("%-20s %llu bytes\n", "size",
	       (unsigned long long)m.sectors << 9);
	printf("%-20s %d\n", "open count", m.open_count);
	status_parents(&m);
	if (m.suspended)
		printf("%-20s %s\n", "status", "not available while suspended");
	else
		status_words(&m);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */

static const struct command commands[] = {
	{ "create", cmd_create,
	  "[--fixed] [--no-sparse] [--block-size SIZE] [--logical-sector-size 512|4096] [--physical-sector-size 512|4096] [--log-size SIZE] [--parent PARENT] IMAGE [SIZE]",
	  "make a new, empty image (SIZE takes K, M, G, T suffixes); with --parent, a differencing image of PARENT's size" },
	{ "info", cmd_info, "[--json] IMAGE",
	  "show the geometry, ids, log state, allocation and parent locator of an image" },
	{ "check", cmd_check, "[--repair] IMAGE",
	  "validate every structure; --repair replays a dirty log" },
	{ "open", cmd_open, "[--read-only] [--commit-time MS] IMAGE NAME | --all [--tab FILE]",
	  "map IMAGE as /dev/mapper/NAME through dm-vhdx (a loop device for a file); a differencing IMAGE with its parent chain, found through its parent locators (parents read-only); --all: every entry of /etc/vhdxtab" },
	{ "close", cmd_close, "NAME | --all [--tab FILE]",
	  "remove /dev/mapper/NAME and its loop devices; trim the file back; --all: every entry of /etc/vhdxtab" },
	{ "status", cmd_status, "NAME",
	  "show the image, parents, mode and state of /dev/mapper/NAME" },
	{ "list", cmd_list, "[--json]",
	  "show every dm-vhdx device: name, image, loop devices, parents, mode, health" },
	{ "convert", cmd_convert,
	  "[--fixed] [--dynamic] [--to raw|vhdx] [--block-size SIZE] [--quiet] SRC DST",
	  "copy a raw file or a VHDX chain into a new raw or VHDX file" },
	{ "merge", cmd_merge, "--flatten OUT [--quiet] CHILD | --into PARENT [--quiet] CHILD",
	  "write a differencing image's chain into a new dynamic image (--flatten), or commit CHILD into its parent PARENT in place (--into; CHILD is then no longer valid)" },
	{ "resize", cmd_resize, "[--shrink] [--quiet] IMAGE SIZE",
	  "change the virtual size in place (SIZE takes K, M, G, T suffixes); shrinking needs --shrink and never drops data" },
	{ "set-parent", cmd_set_parent, "[--ignore-id-mismatch] [--quiet] CHILD PARENT",
	  "rewrite the parent locator of a differencing image to find PARENT; --ignore-id-mismatch: link to a PARENT whose DataWriteGuid differs" },
	{ "compact", cmd_compact, "[--trim NAME] [--quiet] IMAGE",
	  "move blocks down into free space and shrink the file (not while mapped); --trim NAME: fstrim the mounted /dev/mapper/NAME of IMAGE first, a step of its own" },
};

const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_help(FILE *out)
{
	size_t i;

	fprintf(out, "usage: %s COMMAND [OPTIONS] ARGS\n\ncommands:\n", progname);
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %s %s\n      %s\n", commands[i].name,
			commands[i].usage, commands[i].summary);
	fprintf(out,
		"\nexit status: 0 success (check: no problems), 1 problems found or not a valid VHDX image\n"
		"(open: or a broken parent chain), 2 bad arguments, or a file (open: a parent) cannot be\n"
		"found, read or written\n");
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		print_help(stderr);
		return EXIT_TROUBLE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		print_help(stdout);
		return EXIT_OK;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\n", progname,
			argv[1]);
		print_help(stderr);
		return EXIT_TROUBLE;
	}
	/* The subcommand parses its own options, as if it were argv[0]. */
	return c->run(argc - 1, argv + 1);
}
