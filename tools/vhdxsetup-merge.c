// SPDX-License-Identifier: GPL-2.0
/*
 * vhdxsetup merge: the content of a differencing image's whole chain.
 * Only --flatten (a new standalone dynamic image) so far; committing a
 * child into its parent in place is not done yet and is refused.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "vhdxsetup.h"

int cmd_merge(int argc, char **argv)
{
	enum { OPT_FLATTEN = 256, OPT_INTO, OPT_QUIET, OPT_HELP };
	static const struct option opts[] = {
		{ "flatten", required_argument, NULL, OPT_FLATTEN },
		{ "into", optional_argument, NULL, OPT_INTO },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	struct source s = { 0 };
	bool quiet = false, into = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1) {
		switch (c) {
		case OPT_FLATTEN:
			out = optarg;
			break;
		case OPT_INTO:
			into = true;
			break;
		case 'q':
		case OPT_QUIET:
			quiet = true;
			break;
		case OPT_HELP:
			printf("usage: %s merge %s\n", progname,
			       find_command("merge")->usage);
			exit(EXIT_OK);
		default:
			return usage_error("merge", "%s", "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error("merge", "%s", "expects CHILD");
	if (out && into)
		return usage_error("merge", "%s",
				   "--flatten and --into exclude each other");
	if (!out)
		return usage_error("merge", "%s",
				   "merging into the parent is not implemented yet; use --flatten OUT");
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
	s.size = s.chain->link[0].img.geo.virtual_size;
	ret = convert(&s, out, OUT_DYNAMIC, 0, quiet);
	chain_free(s.chain);
	return ret;
}
