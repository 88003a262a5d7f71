// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup list: every device-mapper device with a vhdx target, whoever
 * made it, so that an administrator sees images mapped by hand too.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include "vhdxsetup.h"

/* The health word of the target's status line, or "?" */
static const char *health_of(const struct vhdx_mapping *m, char *buf,
			     size_t len)
{
	char f[6][32];

	if (m->suspended)
		return "suspended";
	if (sscanf(m->status, "%31s %31s %31s %31s %31s %31s %31s", f[0], f[1],
		   f[2], f[3], f[4], f[5], buf) != 7 || len < 32)
		return "?";
	return buf;
}

static void print_one(const char *name, const struct vhdx_mapping *m,
		      const struct mapping_parents *mp, bool json, bool first)
{
	const char *mode = m->read_only ? "ro" : "rw";
	const char *image = m->backing[0] ? m->backing : m->device;
	char hbuf[32];
	const char *health = health_of(m, hbuf, sizeof(hbuf));
	unsigned int i;

	if (!json) {
		printf("%-16s %-4s %-10s %-12s %s", name, mode, health,
		       m->loop[0] ? m->loop : "-", image);
		for (i = 0; i < mp->count; i++)
			printf(" < %s", mp->backing[i][0] ? mp->backing[i] :
			       mp->device[i]);
		putchar('\n');
		return;
	}
	printf("%s\n  {\"name\": ", first ? "" : ",");
	json_string(name);
	printf(", \"uuid\": ");
	json_string(m->uuid);
	printf(", \"image\": ");
	json_string(image);
	printf(", \"loop\": ");
	json_string(m->loop);
	printf(", \"mode\": \"%s\", \"health\": ", mode);
	json_string(health);
	printf(", \"size\": %llu, \"parents\": [",
	       (unsigned long long)m->sectors << 9);
	for (i = 0; i < mp->count; i++) {
		printf("%s{\"image\": ", i ? ", " : "");
		json_string(mp->backing[i]);
		printf(", \"loop\": ");
		json_string(mp->loop[i]);
		printf(", \"device\": ");
		json_string(mp->device[i]);
		putchar('}');
	}
	printf("]}");
}

struct list_ctx {
	bool json, first;
	struct mapping_parents mp;
};

static int list_one(const char *name, void *arg)
{
	struct list_ctx *ctx = arg;
	char err[VHDXSETUP_ERR_MAX];
	struct vhdx_mapping m;

	/* A device gone between the listing and the query is no error. */
	if (dm_vhdx_query(name, &m, err) || strcmp(m.target, "vhdx"))
		return 0;
	mapping_parents(&m, &ctx->mp);
	print_one(name, &m, &ctx->mp, ctx->json, ctx->first);
	ctx->first = false;
	return 0;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[VHDXSETUP_ERR_MAX];
	struct list_ctx *ctx;
	int c, ret;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return EXIT_TROUBLE;
	ctx->first = true;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j') {
			ctx->json = true;
		} else if (c == 'h') {
			printf("usage: %s list [--json]\n", progname);
			free(ctx);
			return EXIT_OK;
		} else {
			free(ctx);
			return usage_error("list", "bad option%s", "");
		}
	}
	if (optind != argc) {
		free(ctx);
		return usage_error("list", "unexpected argument '%s'",
				   argv[optind]);
	}
	if (ctx->json)
		printf("[");
	ret = dm_each_device(list_one, ctx, err);
	if (ctx->json)
		printf("%s]\n", ctx->first ? "" : "\n");
	if (ret) {
		fprintf(stderr, "%s list: %s\n", progname, err);
		ret = EXIT_TROUBLE;
	}
	free(ctx);
	return ret;
}

/* ------------------------------------------------------------------ */

struct busy_ctx {
	const struct chain *c;
	bool read_only;
	char name[256];
	char why[64];
	const char *path;
	struct mapping_parents mp;
};

static bool same_file(const char *backing, const struct chain_link *l)
{
	struct stat st;

	return backing[0] && !stat(backing, &st) && st.st_dev == l->st_dev &&
	       st.st_ino == l->st_ino;
}

static int busy_one(const char *name, void *arg)
{
	struct busy_ctx *ctx = arg;
	char err[VHDXSETUP_ERR_MAX];
	struct vhdx_mapping m;
	unsigned int i, j;

	if (dm_vhdx_query(name, &m, err) || strcmp(m.target, "vhdx"))
		return 0;
	mapping_parents(&m, &ctx->mp);
	for (i = 0; i < ctx->c->count; i++) {
		const struct chain_link *l = &ctx->c->link[i];
		/* Our link 0 is written unless read-only; parents never. */
		bool we_write = !i && !ctx->read_only;

		if (!l->regular)
			continue;
		/*
		 * Two writers, or a writer under a reader, corrupt the image
		 * or what the reader sees; a parent shared by readers is
		 * what differencing images are for.
		 */
		if (same_file(m.backing, l) && (we_write || !m.read_only ||
						!i)) {
			snprintf(ctx->why, sizeof(ctx->why), "the image");
			goto busy;
		}
		for (j = 0; we_write && j < ctx->mp.count; j++) {
			if (same_file(ctx->mp.backing[j], l)) {
				snprintf(ctx->why, sizeof(ctx->why),
					 "parent %u", j + 1);
				goto busy;
			}
		}
	}
	return 0;
busy:
	snprintf(ctx->name, sizeof(ctx->name), "%s", name);
	ctx->path = ctx->c->link[i].path;
	return 1;
}

int refuse_mapped(const struct chain *c, bool read_only, const char *cmd)
{
	char err[VHDXSETUP_ERR_MAX];
	struct busy_ctx *ctx;
	int ret = 0;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return EXIT_TROUBLE;
	ctx->c = c;
	ctx->read_only = read_only;
	/* Without a device-mapper, open fails later with a better reason. */
	if (!dm_each_device(busy_one, ctx, err) && ctx->name[0]) {
		fprintf(stderr,
			"%s%s%s: %s is already mapped as %s of /dev/mapper/%s (vhdxsetup close %s first)\n",
			progname, *cmd ? " " : "", cmd, ctx->path, ctx->why,
			ctx->name, ctx->name);
		ret = EXIT_TROUBLE;
	}
	free(ctx);
	return ret;
}

int open_refuse_mapped(const struct chain *c, bool read_only)
{
	return refuse_mapped(c, read_only, "open");
}
