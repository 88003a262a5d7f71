// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup convert: raw to VHDX, VHDX (through its whole parent chain) to
 * raw, dynamic to fixed and back.  The output is a new file: on any error
 * it is removed, so no log is needed for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../vhdx/create.h"
#include "vhdxsetup.h"

static int link_read(struct chain *c, unsigned int i, u64 off, u8 *buf,
		     u64 len);

/* Reads [@off, @off + @len) of link @i's virtual disk, within one of its blocks. */
static int link_read_block(struct chain *c, unsigned int i, u64 off, u8 *buf,
			   u64 len)
{
	struct vhdx_image *img = &c->link[i].img;
	u32 lss = img->geo.logical_sector_size;
	u64 block = off >> img->geo.block_shift, e, within;

	e = vhdx_bat_get(img, vhdx_bat_payload_index(&img->geo, block));
	within = off & (img->geo.block_size - 1);
	switch (vhdx_bat_state(e)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		return vhdx_read(img, vhdx_bat_offset(e) + within, buf, len);
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		while (len) {
			bool present;
			u64 n = vhdx_bitmap_run(img, off / lss, len / lss,
						&present) * lss;
			int ret;

			if (!n)
				return -EIO;
			ret = present ?
			      vhdx_read(img, vhdx_bat_offset(e) +
					(off & (img->geo.block_size - 1)),
					buf, n) :
			      link_read(c, i + 1, off, buf, n);
			if (ret)
				return ret;
			off += n;
			buf += n;
			len -= n;
		}
		return 0;
	case VHDX_PAYLOAD_NOT_PRESENT:
	case VHDX_PAYLOAD_UNDEFINED:
		if (img->geo.has_parent)
			return link_read(c, i + 1, off, buf, len);
		/* fall through */
	default:
		memset(buf, 0, len);
		return 0;
	}
}

/*
 * Reads [@off, @off + @len) of link @i's virtual disk, split at its
 * blocks (a child's block may span several of its parent's).  Past the
 * end of a parent smaller than its child, the chain reads zeros, as
 * Hyper-V reads it and as the module does (vhdx_resolve()): that range
 * is no part of the parent's disk, whatever its BAT or deeper parents say.
 */
static int link_read(struct chain *c, unsigned int i, u64 off, u8 *buf,
		     u64 len)
{
	const struct vhdx_geometry *g;
	u64 n;
	int ret;

	if (i >= c->count) {
		memset(buf, 0, len);
		return 0;
	}
	g = &c->link[i].img.geo;
	if (off >= g->virtual_size) {
		memset(buf, 0, len);
		return 0;
	}
	if (len > g->virtual_size - off) {
		memset(buf + (g->virtual_size - off), 0,
		       len - (g->virtual_size - off));
		len = g->virtual_size - off;
	}
	while (len) {
		n = g->block_size - (off & (g->block_size - 1));
		if (n > len)
			n = len;
		ret = link_read_block(c, i, off, buf, n);
		if (ret)
			return ret;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

static int source_read(struct source *s, u64 off, u8 *buf, u64 len)
{
	ssize_t n;

	if (s->chain)
		return link_read(s->chain, 0, off, buf, len);
	n = pread(s->raw.fd, buf, len, off);
	if (n < 0)
		return -errno;
	memset(buf + n, 0, len - n);
	return 0;
}

static bool all_zero(const u8 *buf, u64 len)
{
	return !buf[0] && !memcmp(buf, buf + 1, len - 1);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress(struct progress *p, u64 done, u64 total)
{
	double t;

	if (!p->on)
		return;
	t = now();
	if (!p->start)
		p->start = t;
	if (done < total && t - p->last < 0.5)
		return;
	p->last = t;
	fprintf(stderr, "\r%s: %3u%% %.1f MiB/s", p->what,
		total ? (unsigned int)(done * 100 / total) : 100,
		t > p->start ? done / (t - p->start) / 1048576 : 0.0);
	if (done >= total)
		fputc('\n', stderr);
}

void progress_init(struct progress *p, const char *what, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->on = !quiet && isatty(STDERR_FILENO);
}

int convert(struct source *s, const char *dst, enum out_kind kind,
		   u32 block_size, bool quiet)
{
	struct vhdx_create_params p = { .creator = "vhdxsetup" };
	struct vhdx_create_layout layout;
	struct vhdx_image img = { 0 };
	struct image_file f;
	struct vhdx_io io;
	struct progress pr;
	__le64 *bat = NULL;
	u64 off, end, unit;
	u8 *buf = NULL;
	int ret = -1, err;

	if (kind != OUT_RAW) {
		p.virtual_size = s->size;
		p.block_size = block_size;
		p.fixed = kind == OUT_FIXED;
		if (s->chain) {
			const struct vhdx_geometry *g =
				&s->chain->link[0].img.geo;

			p.logical_sector_size = g->logical_sector_size;
			p.physical_sector_size = g->physical_sector_size;
			if (!block_size)
				p.block_size = g->block_size;
		}
		if (vhdx_create_plan(&img, &p, &layout)) {
			fprintf(stderr, "%s: %s: %s\n", progname, dst,
				img.error);
			return EXIT_TROUBLE;
		}
		unit = layout.geo.block_size;
	} else {
		unit = 1 << 20;
	}
	if (image_file_open(&f, dst, O_RDWR | O_CREAT | O_EXCL))
		return EXIT_TROUBLE;
	if (kind != OUT_RAW) {
		if (ftruncate(f.fd, layout.file_size))
			goto io_error;
		f.size = layout.file_size;
		image_io_init(&io, &f, true);
		if (vhdx_create(&img, &io, &p, &layout)) {
			fprintf(stderr, "%s: %s: %s\n", progname, dst,
				img.error);
			goto out;
		}
		bat = calloc(layout.geo.bat_entries, sizeof(*bat));
		if (!bat)
			goto nomem;
	}
	buf = malloc(unit);
	if (!buf)
		goto nomem;
	end = kind == OUT_RAW ? s->size : layout.file_size;
	progress_init(&pr, "convert", quiet);
	for (off = 0; off < s->size; off += unit) {
		u64 len = s->size - off < unit ? s->size - off : unit;
		u64 block = off / unit, where;

		err = source_read(s, off, buf, len);
		if (err) {
			fprintf(stderr, "%s: cannot read the source at %llu: %s\n",
				progname, (unsigned long long)off,
				strerror(-err));
			goto out;
		}
		progress(&pr, off + len, s->size);
		if (kind == OUT_RAW) {
			if (!all_zero(buf, len) &&
			    file_write(&f, off, buf, len))
				goto io_error;
			continue;
		}
		if (kind == OUT_FIXED) {
			/* create laid the blocks out in order, reading zeros. */
			where = layout.data_offset + block * unit;
		} else {
			if (all_zero(buf, len))
				continue;
			where = end;
			end += unit;
			bat[vhdx_bat_payload_index(&layout.geo, block)] =
				cpu_to_le64(where | VHDX_PAYLOAD_FULLY_PRESENT);
		}
		if (!all_zero(buf, len) && file_write(&f, where, buf, len))
			goto io_error;
	}
	if (kind == OUT_DYNAMIC &&
	    file_write(&f, layout.bat_offset, bat,
		       layout.geo.bat_entries * sizeof(*bat)))
		goto io_error;
	/* A block past the virtual size's end still owns its whole space. */
	if (ftruncate(f.fd, end) || fsync(f.fd))
		goto io_error;
	ret = 0;
	goto out;
nomem:
	fprintf(stderr, "%s: %s: out of memory\n", progname, dst);
	goto out;
io_error:
	fprintf(stderr, "%s: %s: cannot write: %s\n", progname, dst,
		strerror(errno));
out:
	free(buf);
	free(bat);
	close(f.fd);
	if (ret)
		unlink(dst);
	return ret ? EXIT_TROUBLE : EXIT_OK;
}

int cmd_convert(int argc, char **argv)
{
	enum { OPT_FIXED = 256, OPT_DYNAMIC, OPT_BS, OPT_TO };
	static const struct option opts[] = {
		{ "fixed", no_argument, NULL, OPT_FIXED },
		{ "dynamic", no_argument, NULL, OPT_DYNAMIC },
		{ "block-size", required_argument, NULL, OPT_BS },
		{ "to", required_argument, NULL, OPT_TO },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum out_kind kind = OUT_DYNAMIC;
	bool to_raw = false, to_vhdx = false, quiet = false, is_vhdx;
	struct source s = { 0 };
	const char *src, *dst;
	u32 bs = 0;
	char sig[8];
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FIXED:
			kind = OUT_FIXED;
			to_vhdx = true;
			break;
		case OPT_DYNAMIC:
			kind = OUT_DYNAMIC;
			to_vhdx = true;
			break;
		case OPT_BS:
			if (parse_u32_size(optarg, &bs) || !bs)
				return usage_error("convert",
						   "bad block size '%s'",
						   optarg);
			break;
		case OPT_TO:
			if (!strcmp(optarg, "raw"))
				to_raw = true;
			else if (!strcmp(optarg, "vhdx"))
				to_vhdx = true;
			else
				return usage_error("convert",
						   "--to expects raw or vhdx, not '%s'",
						   optarg);
			break;
		default:
			ret = common_option("convert", c, &quiet);
			if (ret)
				return ret;
		}
	}
	if (argc - optind != 2)
		return usage_error("convert", "%s", "expects SRC and DST");
	src = argv[optind];
	dst = argv[optind + 1];
	if (!to_vhdx && (ends_with(dst, ".raw") || ends_with(dst, ".img")))
		to_raw = true;
	if (to_raw && to_vhdx)
		return usage_error("convert", "%s",
				   "a raw output cannot be --fixed or --dynamic");
	if (to_raw)
		kind = OUT_RAW;
	if (image_file_open(&s.raw, src, O_RDONLY))
		return EXIT_TROUBLE;
	is_vhdx = pread(s.raw.fd, sig, 8, 0) == 8 && !memcmp(sig, "vhdxfile", 8);
	if (is_vhdx) {
		close(s.raw.fd);
		ret = chain_open(&s.chain, src, true);
		if (ret) {
			chain_free(s.chain);
			return ret;
		}
		s.size = s.chain->link[0].img.geo.virtual_size;
	} else {
		s.size = s.raw.size;
		if (!s.size || s.size % 512) {
			fprintf(stderr, "%s: %s: a raw source must be a non-empty multiple of 512 bytes\n",
				progname, src);
			close(s.raw.fd);
			return EXIT_TROUBLE;
		}
	}
	ret = convert(&s, dst, kind, bs, quiet);
	if (s.chain)
		chain_free(s.chain);
	else
		close(s.raw.fd);
	return ret;
}
