/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel names vhdx/ uses, for a userspace build.  Only what the format
 * code needs lives here; the __le types are plain integers because sparse
 * checks the kernel build.
 */
#ifndef VHDX_USER_H
#define VHDX_USER_H

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef uint16_t __le16;
typedef uint32_t __le32;
typedef uint64_t __le64;

#define __packed	__attribute__((packed))
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#define BIT(n)		(1UL << (n))
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define U64_MAX		UINT64_MAX
#define min_t(type, a, b) ((type)(a) < (type)(b) ? (type)(a) : (type)(b))
#define max_t(type, a, b) ((type)(a) > (type)(b) ? (type)(a) : (type)(b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
/* The tools are single-threaded: plain accesses stand in for the kernel's. */
#define READ_ONCE(x)	(x)
#define WRITE_ONCE(x, v) ((x) = (v))
#define smp_store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define smp_load_acquire(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)

#define le16_to_cpu(x)	le16toh(x)
#define le32_to_cpu(x)	le32toh(x)
#define le64_to_cpu(x)	le64toh(x)
#define cpu_to_le16(x)	htole16(x)
#define cpu_to_le32(x)	htole32(x)
#define cpu_to_le64(x)	htole64(x)

typedef struct {
	u8 b[16];
} guid_t;

#define GUID_INIT(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7)		\
((guid_t){{ (a) & 0xff, ((a) >> 8) & 0xff, ((a) >> 16) & 0xff,		\
	    ((a) >> 24) & 0xff, (b) & 0xff, ((b) >> 8) & 0xff,		\
	    (c) & 0xff, ((c) >> 8) & 0xff,					\
	    (d0), (d1), (d2), (d3), (d4), (d5), (d6), (d7) }})

static inline bool guid_equal(const guid_t *a, const guid_t *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static inline bool guid_is_null(const guid_t *g)
{
	static const guid_t null_guid;

	return guid_equal(g, &null_guid);
}

static inline void *vhdx_alloc(size_t size)
{
	return calloc(1, size ? size : 1);
}

/* The kernel's memchr_inv(): the first byte that is not @c, or NULL. */
static inline void *memchr_inv(const void *start, int c, size_t bytes)
{
	const unsigned char *p = start;

	for (; bytes; p++, bytes--)
		if (*p != (unsigned char)c)
			return (void *)p;
	return NULL;
}

static inline void *vhdx_alloc_nowait(size_t size)
{
	return vhdx_alloc(size);
}

static inline void vhdx_free(const void *p)
{
	free((void *)p);
}

u32 vhdx_crc32c(u32 seed, const void *buf, size_t len);
void vhdx_guid_gen(guid_t *guid);

static inline void vhdx_sort(void *base, size_t num, size_t size,
			     int (*cmp)(const void *, const void *))
{
	qsort(base, num, size, cmp);
}

/* The format code is used by one thread at a time in userspace. */
struct vhdx_lock {
	int unused;
};

#define vhdx_lock_init(l)	((void)(l))
#define vhdx_lock(l, flags)	((void)(l), (flags) = 0)
#define vhdx_unlock(l, flags)	((void)(l), (void)(flags))

/* A userspace process is preempted anyway. */
static inline void vhdx_cond_resched(void)
{
}

#endif /* VHDX_USER_H */
