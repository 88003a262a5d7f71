/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What vhdxsetup's subcommands share: exit statuses, the image file behind
 * struct vhdx_io, argument parsing and parent chains.  Each subcommand
 * beyond the first few lives in its own vhdxsetup-<name>.c.
 */
#ifndef VHDXSETUP_H
#define VHDXSETUP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "vhdx-user.h"
#include "../vhdx/vhdx.h"
#include "vhdxsetup-dm.h"

/* Exit statuses; documented in the man page, keep them stable. */
#define EXIT_OK		0	/* done; check: no problems */
#define EXIT_PROBLEMS	1	/* the image is damaged or not a VHDX image */
#define EXIT_TROUBLE	2	/* bad usage, or the file cannot be read/written */
/* VHDXSETUP_CRASH_AFTER stopped the command (tests only). */
#define EXIT_CRASHED	99

extern const char *progname;

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
	const char *summary;
};

const struct command *find_command(const char *name);

/* The device behind struct vhdx_io: a file or block device. */
struct image_file {
	const char *path;
	int fd;
	u64 size;
};

/* Opens @path with @flags; on failure says why on stderr, returns -1. */
int image_file_open(struct image_file *f, const char *path, int flags);
/* All of @len bytes at @offset of the image_file @priv, or -errno. */
int file_write(void *priv, u64 offset, const void *buf, size_t len);
void image_io_init(struct vhdx_io *io, struct image_file *f, bool writable);
int image_open(struct vhdx_image *img, const struct vhdx_io *io, u64 size,
	       bool read_only);
int open_error_status(int err);
bool image_is_fixed(const struct vhdx_image *img);

int usage_error(const char *cmd, const char *fmt, const char *arg);
int common_option(const char *cmd, int opt, bool *quiet);
int parse_size(const char *s, u64 *out);
int parse_u32_size(const char *s, u32 *out);
int check_name(const char *cmd, const char *name);
void json_string(const char *s);

/* The module's limit (VHDX_MAX_PARENTS in dm-vhdx.h). */
#define OPEN_MAX_PARENTS	32

/* One image of a chain: the child (link 0), then its parents. */
struct chain_link {
	char path[PATH_MAX];		/* as given; a parent's as resolved */
	struct image_file f;
	struct vhdx_io io;
	struct vhdx_image img;
	dev_t st_dev;
	ino_t st_ino;
	bool regular;
	bool opened;			/* img is open */
	int lfd;			/* the loop device, or -1 */
	char dev[PATH_MAX];		/* what the table names */
};

struct chain {
	unsigned int count;		/* links with an open file */
	struct chain_link link[1 + OPEN_MAX_PARENTS];
};

/*
 * Opens @path and, for a differencing image, its parents up the chain
 * (read-only); *@out is set even on failure and goes to chain_free().
 */
int chain_open(struct chain **out, const char *path, bool read_only);
void chain_free(struct chain *c);

/* Looks NAME up; only devices that open made, unless @any_vhdx. */
int find_mapping(const char *name, struct vhdx_mapping *m, bool any_vhdx);

struct mapping_parents {
	unsigned int count;
	char device[OPEN_MAX_PARENTS][32];	/* major:minor */
	char loop[OPEN_MAX_PARENTS][64];
	char backing[OPEN_MAX_PARENTS][PATH_MAX];
};

/* The parents named in @m's table, nearest first, with their loops. */
void mapping_parents(const struct vhdx_mapping *m, struct mapping_parents *mp);

int cmd_list(int argc, char **argv);

/*
 * Extends the file of a writable mapping's image @img so that the loop
 * device has room for every block not allocated yet; *@old_size: the
 * size before.  0, or -1 with a message.
 */
int open_extend(struct image_file *f, const struct vhdx_image *img,
		u64 *old_size);
/*
 * Cuts the file of the closed, clean image @path to the end of its last
 * object (not one with LeaveBlockAllocated, nor one with a log to
 * replay); says why not on stderr.
 */
void image_trim(const char *path);

/*
 * EXIT_TROUBLE, with a message naming the mapping, if a file of @c is in
 * a dm-vhdx table already in a way that opening it again would corrupt.
 */
int open_refuse_mapped(const struct chain *c, bool read_only);
/* The same for subcommand @cmd (named in the message). */
int refuse_mapped(const struct chain *c, bool read_only, const char *cmd);

/*
 * An exclusive flock on the image file @fd (opened from @path): open,
 * close and every command that changes an image in place take it, so
 * that none of them works on a file another one is changing.  Without
 * @wait it fails at once when taken; with it, it tries for a few
 * seconds (open and close are short).  0, or -1 with a message.
 */
int image_lock(const char *path, int fd, bool wait);

/*
 * For a command that changes the image @path (open as @fd) in place:
 * image_lock() without waiting, and a refusal when a device-mapper table
 * uses the file, as the image or as a parent (the kernel holds its BAT in
 * memory).  EXIT_OK, or EXIT_TROUBLE with a message naming the mapping.
 */
int image_lock_for_change(const char *path, int fd);

/*
 * Test hook: with VHDXSETUP_CRASH_AFTER=N in the environment the program
 * _exit()s right after its Nth write to an image file (file_write()),
 * so that tests can interrupt a change at every point.
 */
void crash_point(void);

/* crypttab-like: NAME IMAGE [OPTIONS] (Documentation/vhdxtab.rst) */
#define VHDXTAB_PATH	"/etc/vhdxtab"

struct tab_entry {
	char *name, *image, *options;	/* point into the line */
	bool read_only, nofail, noauto;
	int commit_ms;			/* -1: the module's default */
};

/*
 * Splits @line (changed in place) into @e; 1 for a comment or a blank
 * line, -1 with @err for a bad one.
 */
int tab_parse_line(char *line, struct tab_entry *e, char *err, size_t len);
/* "open --all", "close --all", with "--tab FILE"? */
bool tab_wanted(int argc, char **argv);
int tab_run(const char *cmd, int argc, char **argv);
/* Progress of long work on stderr: only on a tty, never with --quiet. */
struct progress {
	const char *what;
	bool on;
	double start, last;
};

void progress_init(struct progress *p, const char *what, bool quiet);
void progress(struct progress *p, u64 done, u64 total);

/* What convert and merge --flatten copy from. */
struct source {
	struct chain *chain;		/* NULL: a raw file */
	struct image_file raw;
	u64 size;
};

enum out_kind { OUT_DYNAMIC, OUT_FIXED, OUT_RAW };

/* Copies @s into the new file @dst; an exit status. */
int convert(struct source *s, const char *dst, enum out_kind kind,
	    u32 block_size, bool quiet);

int cmd_convert(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_set_parent(int argc, char **argv);

/* Parent locator paths in the spec's Windows forms; -1: cannot be said. */
int relative_win_path(const char *from, const char *to, char *out,
		      size_t size);
int absolute_win_path(const char *path, char *out, size_t size);

/* An image opened read-write for a change in place (vhdxsetup-edit.c). */
struct edit {
	const char *path;
	struct image_file f;
	struct vhdx_io io;
	struct vhdx_image img;
	bool opened;
};

/*
 * Opens @path read-write, replaying a dirty log; @keep_data_write_guid
 * for a change that leaves the virtual disk's content alone.
 */
int edit_open(struct edit *e, const char *path, bool keep_data_write_guid);
/*
 * The same for an image whose only mapping, of it as the image, the
 * caller has suspended (its log is empty then): no refusal for it.
 */
int edit_open_suspended(struct edit *e, const char *path);
void edit_close(struct edit *e);
/* Prints e->img.error (or @err); returns EXIT_TROUBLE. */
int edit_fail(struct edit *e, int err);
int edit_flush(struct edit *e);
/* The @n 4 KiB sectors of @u, all or none, through one log entry. */
int edit_log(struct edit *e, const struct vhdx_log_update *u, u32 n);
/* Ends the session: everything stable, the log empty. */
int edit_end(struct edit *e);
int metadata_read(struct edit *e, u8 **region, u64 *len);
struct vhdx_metadata_table_entry *metadata_find(u8 *region, u64 len,
						const guid_t *id);
/* Appends the sectors where @new differs from @old; > @max: too many. */
u32 edit_diff_sectors(u64 base, const u8 *old, const u8 *new, u64 len,
		      struct vhdx_log_update *u, u32 n, u32 max);

#endif /* VHDXSETUP_H */
