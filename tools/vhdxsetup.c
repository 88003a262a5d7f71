// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup: create, inspect and check VHDX images with the same vhdx/ code
 * the dm-vhdx module runs.  Every subcommand is one entry of the command
 * table below; see Documentation/vhdxsetup.rst for the user's view.
 */
#include <fcntl.h>
#include <getopt.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vhdx/create.h"

/* <linux/fs.h> would clash with the __le types of vhdx-user.h. */
#ifndef BLKGETSIZE64
#define BLKGETSIZE64	_IOR(0x12, 114, size_t)
#endif

/* Exit statuses; documented in the man page, keep them stable. */
#define EXIT_OK		0	/* done; check: no problems */
#define EXIT_PROBLEMS	1	/* the image is damaged or not a VHDX image */
#define EXIT_TROUBLE	2	/* bad usage, or the file cannot be read/written */

#define VHDXSETUP_CREATOR	"vhdxsetup"

static const char *progname = "vhdxsetup";

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
	const char *summary;
};

static const struct command *find_command(const char *name);

/* ------------------------------------------------------------------ */
/* The device behind struct vhdx_io: a file or block device. */

struct image_file {
	const char *path;
	int fd;
	u64 size;
};

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

static int file_write(void *priv, u64 offset, const void *buf, size_t len)
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
	return 0;
}

static int file_flush(void *priv)
{
	struct image_file *f = priv;

	return fsync(f->fd) ? -errno : 0;
}

static int image_file_open(struct image_file *f, const char *path, int flags)
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

static void image_io_init(struct vhdx_io *io, struct image_file *f,
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

/* The image is damaged, or the device failed us: tell which. */
static int open_error_status(int err)
{
	return err == -EIO || err == -ENOMEM || err == -EOPNOTSUPP ?
	       EXIT_TROUBLE : EXIT_PROBLEMS;
}

/* ------------------------------------------------------------------ */
/* Argument helpers. */

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	const struct command *c = find_command(cmd);

	fprintf(stderr, "%s %s: ", progname, cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: %s %s %s\n", progname, cmd,
		c ? c->usage : "");
	return EXIT_TROUBLE;
}

/* A byte count with an optional binary K, M, G or T suffix. */
static int parse_size(const char *s, u64 *out)
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

static int parse_u32_size(const char *s, u32 *out)
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
	OPT_JSON,
	OPT_REPAIR,
	OPT_HELP,
};

static int create_parse(int argc, char **argv, struct vhdx_create_params *p)
{
	static const struct option opts[] = {
		{ "fixed", no_argument, NULL, OPT_FIXED },
		{ "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
		{ "logical-sector-size", required_argument, NULL, OPT_LSS },
		{ "physical-sector-size", required_argument, NULL, OPT_PSS },
		{ "log-size", required_argument, NULL, OPT_LOG_SIZE },
		{ "parent", required_argument, NULL, OPT_PARENT },
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
			fprintf(stderr,
				"%s create: --parent %s: differencing images are not supported yet; they come with the differencing-image issue\n",
				progname, optarg);
			return EXIT_TROUBLE;
		case OPT_HELP:
			printf("usage: %s create %s\n", progname,
			       find_command("create")->usage);
			exit(EXIT_OK);
		default:
			return usage_error("create", "%s", "unknown option");
		}
	}
	if (argc - optind != 2)
		return usage_error("create", "%s", "expects IMAGE and SIZE");
	if (parse_size(argv[optind + 1], &p->virtual_size))
		return usage_error("create", "bad size '%s'", argv[optind + 1]);
	return EXIT_OK;
}

/* Reads back what was written through the parser the module uses. */
static int create_verify(struct image_file *f)
{
	struct vhdx_image img = { 0 };
	struct vhdx_io io;
	int ret;

	image_io_init(&io, f, false);
	ret = vhdx_open(&img, &io, f->size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: the new image does not open: %s\n",
			progname, f->path, img.error);
		return EXIT_TROUBLE;
	}
	vhdx_close(&img);
	return EXIT_OK;
}

static int cmd_create(int argc, char **argv)
{
	struct vhdx_create_params p = { .creator = VHDXSETUP_CREATOR };
	struct vhdx_create_layout layout;
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	const char *path;
	int ret;

	ret = create_parse(argc, argv, &p);
	if (ret)
		return ret;
	path = argv[optind];
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
	f.size = layout.file_size;
	image_io_init(&io, &f, true);
	if (vhdx_create(&img, &io, &p, &layout)) {
		fprintf(stderr, "%s: %s: %s\n", progname, path, img.error);
		ret = EXIT_TROUBLE;
		goto out;
	}
	ret = create_verify(&f);
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
static bool image_is_fixed(const struct vhdx_image *img)
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

static void json_string(const char *s)
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

static void info_print(const struct info_field *fields, size_t count,
		       bool json)
{
	size_t i;

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
			printf("%s\n", i + 1 < count ? "," : "");
		} else if (fl->is_string) {
			printf("%-22s %s\n", fl->key, fl->s);
		} else {
			printf("%-22s %llu\n", fl->key, fl->n);
		}
	}
	if (json)
		printf("}\n");
}

#define STR(k, v)	{ .key = (k), .is_string = true, .s = (v) }
#define NUM(k, v)	{ .key = (k), .n = (v) }

static void info_show(const struct image_file *f, const struct vhdx_image *img,
		      bool json)
{
	char disk_id[VHDX_GUID_STRING_SIZE], data_guid[VHDX_GUID_STRING_SIZE];
	char file_guid[VHDX_GUID_STRING_SIZE];
	const struct vhdx_header *h = &img->header;
	const struct info_field fields[] = {
		STR("filename", f->path),
		STR("format", "vhdx"),
		STR("type", image_is_fixed(img) ? "fixed" : "dynamic"),
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
	info_print(fields, ARRAY_SIZE(fields), json);
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
	ret = vhdx_open(&img, &io, f.size, true);
	if (ret) {
		fprintf(stderr, "%s: %s: %s\n", progname, f.path, img.error);
		close(f.fd);
		return open_error_status(ret);
	}
	info_show(&f, &img, json);
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
	ret = vhdx_open(&img, &io, f->size, !repair);
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
	ret = check_image(&f, repair);
	close(f.fd);
	return ret;
}

/* ------------------------------------------------------------------ */

static const struct command commands[] = {
	{ "create", cmd_create,
	  "[--fixed] [--block-size SIZE] [--logical-sector-size 512|4096] [--physical-sector-size 512|4096] [--log-size SIZE] IMAGE SIZE",
	  "make a new, empty image (SIZE takes K, M, G, T suffixes)" },
	{ "info", cmd_info, "[--json] IMAGE",
	  "show the geometry, ids, log state and allocation of an image" },
	{ "check", cmd_check, "[--repair] IMAGE",
	  "validate every structure; --repair replays a dirty log" },
};

static const struct command *find_command(const char *name)
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
		"\nexit status: 0 success (check: no problems), 1 problems found or not a valid VHDX image,\n"
		"2 bad arguments, or the file cannot be read or written\n");
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
