// SPDX-License-Identifier: GPL-2.0
/*
 * /etc/vhdxtab: the images to map at boot, one "NAME IMAGE [OPTIONS]" a
 * line, as crypttab(5) does for dm-crypt.  systemd reads it through
 * tools/systemd/vhdx-generator; "open --all" and "close --all" are for
 * systems without systemd and for scripts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdxsetup.h"

int tab_parse_line(char *line, struct tab_entry *e, char *err, size_t len)
{
	char *opt, *save, *end;
	unsigned long ms;

	memset(e, 0, sizeof(*e));
	line[strcspn(line, "\n")] = 0;
	e->name = strtok_r(line, " \t", &save);
	if (!e->name || e->name[0] == '#')
		return 1;
	e->image = strtok_r(NULL, " \t", &save);
	e->options = strtok_r(NULL, " \t", &save);
	if (!e->image) {
		snprintf(err, len, "'%s' has no image", e->name);
		return -1;
	}
	if (strtok_r(NULL, " \t", &save)) {
		snprintf(err, len, "more than NAME IMAGE OPTIONS");
		return -1;
	}
	if (!*e->name || strchr(e->name, '/') || strlen(e->name) > 127) {
		snprintf(err, len, "bad device name '%s'", e->name);
		return -1;
	}
	e->commit_ms = -1;
	if (!e->options || !strcmp(e->options, "-"))
		return 0;
	for (opt = strtok_r(e->options, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		if (!strcmp(opt, "ro") || !strcmp(opt, "read-only")) {
			e->read_only = true;
		} else if (!strcmp(opt, "rw") || !strcmp(opt, "defaults") ||
			   !strcmp(opt, "discard")) {
			/* discard: the target passes discards down anyway */
		} else if (!strcmp(opt, "nofail")) {
			e->nofail = true;
		} else if (!strcmp(opt, "noauto")) {
			e->noauto = true;
		} else if (!strncmp(opt, "commit_time=", 12)) {
			errno = 0;
			ms = strtoul(opt + 12, &end, 10);
			if (errno || end == opt + 12 || *end ||
			    ms > 3600000) {
				snprintf(err, len,
					 "bad commit_time '%s' (ms, at most 3600000)",
					 opt + 12);
				return -1;
			}
			e->commit_ms = ms;
		} else {
			snprintf(err, len, "unknown option '%s'", opt);
			return -1;
		}
	}
	return 0;
}

/* Runs the real subcommand as if typed: its getopt starts afresh. */
static int run_sub(const char *cmd, char **args, int nargs)
{
	optind = 0;
	return find_command(cmd)->run(nargs, args);
}

static bool is_mapped(const char *name)
{
	char path[160];

	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	return !access(path, F_OK);
}

static int tab_entry_run(const char *cmd, const struct tab_entry *e)
{
	char ms[32], image[PATH_MAX], name[128];
	char *args[8];
	int n = 0;

	snprintf(image, sizeof(image), "%s", e->image);
	snprintf(name, sizeof(name), "%s", e->name);
	args[n++] = (char *)cmd;
	if (!strcmp(cmd, "open")) {
		if (e->read_only)
			args[n++] = "--read-only";
		if (e->commit_ms >= 0) {
			snprintf(ms, sizeof(ms), "--commit-time=%d",
				 e->commit_ms);
			args[n++] = ms;
		}
		args[n++] = image;
	}
	args[n++] = name;
	args[n] = NULL;
	return run_sub(cmd, args, n);
}

/*
 * open --all / close --all [--tab FILE]: every entry but the noauto ones;
 * an entry already open (or, for close, not open) is left alone, so both
 * can be run again.  close goes bottom up, in case a later image lives on
 * an earlier one.  The status is the worst of the entries without nofail.
 */
int tab_run(const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "tab", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tab = VHDXTAB_PATH;
	struct tab_entry *e = NULL;
	char **lines = NULL;
	char err[256], buf[PATH_MAX + 512];
	bool open_cmd = !strcmp(cmd, "open");
	int c, ret = EXIT_OK, r;
	size_t n = 0, i, k;
	bool all = false;
	FILE *f;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a') {
			all = true;
		} else if (c == 't') {
			tab = optarg;
		} else if (c == 'h') {
			printf("usage: %s %s --all [--tab FILE]\n", progname, cmd);
			return EXIT_OK;
		} else {
			return usage_error(cmd, "%s", "unknown option");
		}
	}
	if (!all || optind != argc)
		return usage_error(cmd, "%s",
				   "--all [--tab FILE] takes no other arguments");
	f = fopen(tab, "r");
	if (!f) {
		fprintf(stderr, "%s %s: %s: %s\n", progname, cmd, tab,
			strerror(errno));
		return EXIT_TROUBLE;
	}
	/* Parse all of it first: a bad line maps nothing. */
	while (fgets(buf, sizeof(buf), f)) {
		char **nl = realloc(lines, (n + 1) * sizeof(*lines));
		struct tab_entry *ne = realloc(e, (n + 1) * sizeof(*e));

		if (nl)
			lines = nl;
		if (ne)
			e = ne;
		if (!nl || !ne || !(lines[n] = strdup(buf))) {
			fprintf(stderr, "%s: out of memory\n", progname);
			ret = EXIT_TROUBLE;
			goto out;
		}
		r = tab_parse_line(lines[n], &e[n], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "%s %s: %s:%zu: %s\n", progname, cmd,
				tab, n + 1, err);
			ret = EXIT_TROUBLE;
		}
		n++;
		if (r > 0) {	/* comment or blank: keep no entry */
			free(lines[--n]);
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "%s %s: %s: read error\n", progname, cmd, tab);
		ret = EXIT_TROUBLE;
	}
	if (ret)
		goto out;
	for (k = 0; k < n; k++) {
		i = open_cmd ? k : n - 1 - k;
		if (e[i].noauto || is_mapped(e[i].name) != !open_cmd)
			continue;
		r = tab_entry_run(cmd, &e[i]);
		if (r && e[i].nofail)
			fprintf(stderr, "%s %s: %s failed (nofail): going on\n",
				progname, cmd, e[i].name);
		else if (r > ret)
			ret = r;
	}
out:
	fclose(f);
	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(e);
	return ret;
}

bool tab_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--all") || !strcmp(argv[i], "--tab") ||
		    !strncmp(argv[i], "--tab=", 6))
			return true;
	return false;
}
