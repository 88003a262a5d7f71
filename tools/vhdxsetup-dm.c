// SPDX-License-Identifier: GPL-2.0
/*
 * Loop devices and device-mapper tables for vhdxsetup open, close and
 * status.  libdevmapper does the ioctls and, where udev runs, waits for it;
 * without udev (a minimal initramfs) it makes the /dev/mapper node itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libdevmapper.h>
#include <linux/loop.h>

#include "vhdxsetup-dm.h"

#define LOOP_TRIES	16	/* another program may take the free loop first */

static void set_err(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, VHDXSETUP_ERR_MAX, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Loop devices */

static int loop_configure(int lfd, int fd, const char *path, bool writable)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = fd;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR |
			    (writable ? 0 : LO_FLAGS_READ_ONLY);
	snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", path);
	if (!ioctl(lfd, LOOP_CONFIGURE, &cfg))
		return 0;
	if (errno != EINVAL && errno != ENOTTY)
		return -1;
	/* Before Linux 5.8: the two-step setup. */
	if (ioctl(lfd, LOOP_SET_FD, fd))
		return -1;
	if (!ioctl(lfd, LOOP_SET_STATUS64, &cfg.info))
		return 0;
	ioctl(lfd, LOOP_CLR_FD, 0);
	return -1;
}

int loop_attach(int fd, const char *path, bool writable, char *dev,
		size_t dev_len, char *err)
{
	int ctl, n, lfd, tries;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		set_err(err, "/dev/loop-control: %s (is the loop module loaded?)",
			strerror(errno));
		return -1;
	}
	for (tries = 0; tries < LOOP_TRIES; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			set_err(err, "no free loop device: %s", strerror(errno));
			break;
		}
		snprintf(dev, dev_len, "/dev/loop%d", n);
		lfd = open(dev, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (lfd < 0) {
			set_err(err, "%s: %s", dev, strerror(errno));
			break;
		}
		if (!loop_configure(lfd, fd, path, writable)) {
			close(ctl);
			return lfd;
		}
		set_err(err, "%s: cannot attach the image: %s", dev,
			strerror(errno));
		close(lfd);
		if (errno != EBUSY)
			break;
	}
	close(ctl);
	return -1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int loop_wait_detached(const char *dev, int ms)
{
	char path[PATH_MAX];
	const char *base = strrchr(dev, '/');

	snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
		 base ? base + 1 : dev);
	for (; ms > 0; ms -= 20) {
		if (access(path, F_OK))
			return 0;
		sleep_ms(20);
	}
	return access(path, F_OK) ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* libdevmapper */

static char dm_last_error[VHDXSETUP_ERR_MAX];

/* Keeps libdevmapper's last error for our message; drops the rest. */
__attribute__((format(printf, 5, 6)))
static void dm_log_capture(int level, const char *file, int line,
			   int dm_errno_or_class, const char *f, ...)
{
	va_list ap;

	if ((level & 7) > 3)	/* _LOG_ERR: errors and fatal ones only */
		return;
	va_start(ap, f);
	vsnprintf(dm_last_error, sizeof(dm_last_error), f, ap);
	va_end(ap);
}

static void dm_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	dm_log_with_errno_init(dm_log_capture);
}

/* Runs @dmt, waiting for udev where it runs, as dmsetup does. */
static int dm_run(struct dm_task *dmt, bool udev)
{
	uint32_t cookie = 0;
	int ok;

	dm_last_error[0] = 0;
	if (udev && !dm_task_set_cookie(dmt, &cookie, 0))
		return 0;
	ok = dm_task_run(dmt);
	if (udev)
		dm_udev_wait(cookie);
	return ok;
}

static void dm_err(char *err, const char *what)
{
	set_err(err, "%s failed: %s", what,
		dm_last_error[0] ? dm_last_error : "libdevmapper error");
}

/* A task; NULL with @err when device-mapper cannot be reached. */
static struct dm_task *dm_task_new(int type, char *err)
{
	struct dm_task *dmt;

	dm_setup();
	dm_last_error[0] = 0;
	dmt = dm_task_create(type);
	if (!dmt)
		set_err(err, "device-mapper: %s", dm_last_error[0] ?
			dm_last_error : "out of memory");
	return dmt;
}

int dm_vhdx_create(const char *name, const char *uuid, uint64_t sectors,
		   const char *dev, const char *const *parents,
		   unsigned int nr_parents, bool read_only, int commit_ms,
		   char *err)
{
	struct dm_task *dmt;
	size_t len = strlen(dev) + 40, used;
	unsigned int i;
	char *params;
	int ok;

	for (i = 0; i < nr_parents; i++)
		len += strlen(parents[i]) + 8;
	params = malloc(len);
	if (!params) {
		set_err(err, "out of memory");
		return -1;
	}
	used = snprintf(params, len, "%s", dev);
	if (nr_parents || commit_ms >= 0)
		used += snprintf(params + used, len - used, " %u",
				 2 * nr_parents + (commit_ms >= 0));
	for (i = 0; i < nr_parents; i++)
		used += snprintf(params + used, len - used, " parent %s",
				 parents[i]);
	if (commit_ms >= 0)
		used += snprintf(params + used, len - used, " commit_time:%d",
				 commit_ms);
	dmt = dm_task_new(DM_DEVICE_CREATE, err);
	if (!dmt) {
		free(params);
		return -1;
	}
	ok = dm_task_set_name(dmt, name) && dm_task_set_uuid(dmt, uuid) &&
	     dm_task_add_target(dmt, 0, sectors, "vhdx", params) &&
	     (!read_only || dm_task_set_ro(dmt));
	if (ok)
		ok = dm_run(dmt, true);
	if (!ok)
		dm_err(err, "creating the device-mapper device");
	dm_task_destroy(dmt);
	free(params);
	return ok ? 0 : -1;
}

void dev_find_loop(const char *device, char *loop, size_t loop_len,
		   char *backing, size_t backing_len)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;
	FILE *f;

	loop[0] = 0;
	backing[0] = 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%s", device);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = 0;
	if (strncmp(basename(link), "loop", 4))
		return;
	snprintf(loop, loop_len, "/dev/%s", basename(link));
	snprintf(path, sizeof(path), "/sys/dev/block/%s/loop/backing_file",
		 device);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(backing, backing_len, f))
		backing[strcspn(backing, "\n")] = 0;
	fclose(f);
}

/* One of INFO, TABLE, STATUS; returns 1 for no such device. */
static int dm_query_one(const char *name, int type, struct vhdx_mapping *m,
			char *err)
{
	uint64_t start, length;
	char *target, *params;
	struct dm_task *dmt;
	struct dm_info info;
	const char *uuid;
	int ret = -1;

	dmt = dm_task_new(type, err);
	if (!dmt)
		return -1;
	if (!dm_task_set_name(dmt, name) || !dm_run(dmt, false) ||
	    !dm_task_get_info(dmt, &info)) {
		dm_err(err, "asking device-mapper");
		goto out;
	}
	ret = 1;
	if (!info.exists)
		goto out;
	ret = 0;
	if (type == DM_DEVICE_INFO) {
		uuid = dm_task_get_uuid(dmt);
		snprintf(m->uuid, sizeof(m->uuid), "%s", uuid ? uuid : "");
		m->read_only = info.read_only;
		m->suspended = info.suspended;
		m->open_count = info.open_count;
		goto out;
	}
	dm_get_next_target(dmt, NULL, &start, &length, &target, &params);
	if (!target)
		goto out;
	if (type == DM_DEVICE_TABLE) {
		m->sectors = length;
		snprintf(m->target, sizeof(m->target), "%s", target);
		snprintf(m->params, sizeof(m->params), "%s", params ? params : "");
		if (sscanf(m->params, "%31s", m->device) != 1)
			m->device[0] = 0;
	} else {
		snprintf(m->status, sizeof(m->status), "%s", params ? params : "");
	}
out:
	dm_task_destroy(dmt);
	return ret;
}

int dm_vhdx_query(const char *name, struct vhdx_mapping *m, char *err)
{
	int ret;

	memset(m, 0, sizeof(*m));
	ret = dm_query_one(name, DM_DEVICE_INFO, m, err);
	if (!ret)
		ret = dm_query_one(name, DM_DEVICE_TABLE, m, err);
	if (!ret && !strcmp(m->target, "vhdx") && !m->suspended)
		ret = dm_query_one(name, DM_DEVICE_STATUS, m, err);
	if (!ret && m->device[0])
		dev_find_loop(m->device, m->loop, sizeof(m->loop), m->backing,
			      sizeof(m->backing));
	return ret;
}

static int dm_simple(int type, const char *name, bool udev, const char *what,
		     char *err)
{
	struct dm_task *dmt;
	int ok;

	dmt = dm_task_new(type, err);
	if (!dmt)
		return -1;
	ok = dm_task_set_name(dmt, name) && dm_run(dmt, udev);
	if (!ok)
		dm_err(err, what);
	dm_task_destroy(dmt);
	return ok ? 0 : -1;
}

int dm_vhdx_suspend(const char *name, char *err)
{
	return dm_simple(DM_DEVICE_SUSPEND, name, false,
			 "suspending the device-mapper device", err);
}

int dm_vhdx_resume(const char *name, char *err)
{
	/* A new size changes the device node's size: udev hears of it. */
	return dm_simple(DM_DEVICE_RESUME, name, true,
			 "resuming the device-mapper device", err);
}

int dm_vhdx_reload(const char *name, uint64_t sectors, const char *params,
		   bool read_only, char *err)
{
	struct dm_task *dmt;
	int ok;

	dmt = dm_task_new(DM_DEVICE_RELOAD, err);
	if (!dmt)
		return -1;
	ok = dm_task_set_name(dmt, name) &&
	     dm_task_add_target(dmt, 0, sectors, "vhdx", params) &&
	     (!read_only || dm_task_set_ro(dmt)) && dm_run(dmt, false);
	if (!ok)
		dm_err(err, "loading the new table");
	dm_task_destroy(dmt);
	return ok ? 0 : -1;
}

int loop_set_capacity(const char *dev, char *err)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, LOOP_SET_CAPACITY, 0)) {
		set_err(err, "%s: cannot update its size: %s", dev,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int dm_vhdx_remove(const char *name, char *err)
{
	struct dm_task *dmt;
	int ok;

	dmt = dm_task_new(DM_DEVICE_REMOVE, err);
	if (!dmt)
		return -1;
	/* udev's probes may hold the device for a moment: retry then. */
	ok = dm_task_set_name(dmt, name) && dm_task_retry_remove(dmt) &&
	     dm_run(dmt, true);
	if (!ok)
		dm_err(err, "removing the device-mapper device");
	dm_task_destroy(dmt);
	return ok ? 0 : -1;
}

int dm_each_device(int (*fn)(const char *name, void *arg), void *arg,
		   char *err)
{
	struct dm_names *names;
	struct dm_task *dmt;
	unsigned int next;
	int ret = -1;

	dmt = dm_task_new(DM_DEVICE_LIST, err);
	if (!dmt)
		return -1;
	if (!dm_run(dmt, false)) {
		dm_err(err, "listing device-mapper devices (root? dm_mod loaded?)");
		goto out;
	}
	ret = 0;
	names = dm_task_get_names(dmt);
	while (names && names->dev) {
		next = names->next;
		if (fn(names->name, arg))
			break;
		if (!next)
			break;
		names = (struct dm_names *)((char *)names + next);
	}
out:
	dm_task_destroy(dmt);
	return ret;
}
