/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the format code needs from its environment.  In the kernel that is
 * the kernel's own API; a userspace build (tools, fuzzing) provides the same
 * names through tools/include/vhdx-user.h, so vhdx/ compiles unchanged in
 * both, as fs/xfs/libxfs does.
 */
#ifndef VHDX_PLATFORM_H
#define VHDX_PLATFORM_H

#ifdef __KERNEL__
#include <linux/bits.h>
#include <linux/build_bug.h>
#include <linux/compiler.h>
#include <linux/crc32c.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/stdarg.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/uuid.h>
#include <asm/barrier.h>
#include <asm/byteorder.h>

static inline void *vhdx_alloc(size_t size)
{
	return kvzalloc(size, GFP_KERNEL);
}

/*
 * For memory a caller can do without for now: it may reclaim what needs
 * no I/O (the I/O may be queued behind the caller), and gives up rather
 * than retry.
 */
static inline void *vhdx_alloc_nowait(size_t size)
{
	return kzalloc(size, GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
}

static inline void vhdx_free(const void *p)
{
	kvfree(p);
}

/* The kernel's crc32c() applies neither the initial nor the final inversion. */
static inline u32 vhdx_crc32c(u32 seed, const void *buf, size_t len)
{
	return crc32c(seed, buf, len);
}

static inline void vhdx_guid_gen(guid_t *guid)
{
	guid_gen(guid);
}

/* Loops over on-disk structures of any size run in process context. */
static inline void vhdx_cond_resched(void)
{
	cond_resched();
}

/*
 * The sector bitmap cache's lock: map() takes it, so it never sleeps;
 * irqsave because a bio may be submitted from any context.
 */
struct vhdx_lock {
	spinlock_t lock;		/* see struct vhdx_bitmap_cache */
};

#define vhdx_lock_init(l)	spin_lock_init(&(l)->lock)
#define vhdx_lock(l, flags)	spin_lock_irqsave(&(l)->lock, flags)
#define vhdx_unlock(l, flags)	spin_unlock_irqrestore(&(l)->lock, flags)

static inline void vhdx_sort(void *base, size_t num, size_t size,
			     int (*cmp)(const void *, const void *))
{
	sort(base, num, size, cmp, NULL);
}
#else
#include "vhdx-user.h"
#endif

#endif /* VHDX_PLATFORM_H */
