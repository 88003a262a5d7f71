/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vhdxsetup's loop devices and device-mapper tables.  Kept apart from the
 * format code: <linux/loop.h> and libdevmapper bring the kernel's __le
 * types, which clash with tools/include/vhdx-user.h, so this interface uses
 * plain C types only.
 */
#ifndef VHDXSETUP_DM_H
#define VHDXSETUP_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The prefix of the dm uuid of every device vhdxsetup open makes. */
#define VHDXSETUP_UUID_PREFIX	"VHDX-"
#define VHDXSETUP_ERR_MAX	512

/* What the kernel says about a mapped device. */
struct vhdx_mapping {
	char uuid[130];
	bool read_only;
	bool suspended;
	int open_count;
	uint64_t sectors;
	char target[32];		/* of the first (only) target */
	char params[1024];		/* its table parameters */
	char status[512];		/* its status */
	char device[32];		/* major:minor of the image's device */
	char loop[64];			/* /dev/loopN, or "" if not a loop */
	char backing[4096];		/* the loop's backing file, or "" */
};

/*
 * Attaches @fd (the open image at @path) to a free loop device with
 * autoclear: it goes away when its last user closes it.  Read-only unless
 * @writable.  Returns the loop's open fd, its path in @dev; -1 with @err.
 */
int loop_attach(int fd, const char *path, bool writable, char *dev,
		size_t dev_len, char *err);

/* Waits up to @ms for loop @dev to lose its backing file; 0 once it has. */
int loop_wait_detached(const char *dev, int ms);

/*
 * Creates /dev/mapper/@name with one vhdx target of @sectors over @dev,
 * with the feature args "parent <dev>" for each of the @nr_parents
 * @parents (nearest first), and "commit_time:@commit_ms" unless
 * @commit_ms is negative.  Returns 0, or -1 with @err (the kernel's
 * reason is in its log).
 */
int dm_vhdx_create(const char *name, const char *uuid, uint64_t sectors,
		   const char *dev, const char *const *parents,
		   unsigned int nr_parents, bool read_only, int commit_ms,
		   char *err);

/* Fills @m; returns 0, 1 if there is no such device, -1 with @err. */
int dm_vhdx_query(const char *name, struct vhdx_mapping *m, char *err);

/*
 * The loop device behind block device @device (major:minor) and its
 * backing file; both "" when it is not a loop device.
 */
void dev_find_loop(const char *device, char *loop, size_t loop_len,
		   char *backing, size_t backing_len);

/*
 * Suspends the device (a writable vhdx table commits and empties its log:
 * nothing of it writes until it resumes), resumes it (with the table
 * loaded meanwhile, if any), or loads @params as its new inactive table
 * of @sectors.  0, or -1 with @err.
 */
int dm_vhdx_suspend(const char *name, char *err);
int dm_vhdx_resume(const char *name, char *err);
int dm_vhdx_reload(const char *name, uint64_t sectors, const char *params,
		   bool read_only, char *err);

/* Makes loop @dev take its backing file's current size (losetup -c). */
int loop_set_capacity(const char *dev, char *err);

/* Removes the device (the table commits and empties the log first). */
int dm_vhdx_remove(const char *name, char *err);

/*
 * Calls @fn with the name of every device-mapper device; stops at the
 * first nonzero return.  Returns 0, or -1 with @err.
 */
int dm_each_device(int (*fn)(const char *name, void *arg), void *arg,
		   char *err);

#endif /* VHDXSETUP_DM_H */
