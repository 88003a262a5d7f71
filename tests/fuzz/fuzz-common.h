/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the libFuzzer targets: a memory device behind struct vhdx_io
 * and small helpers to build the structures the parsers expect.
 *
 * The device is a list of segments over a virtual size; bytes no segment
 * holds read as zero, so a target can present a multi-GiB device while
 * keeping only the few KiB the code under test looks at.  The device also
 * checks the vhdx_io contract: every offset and length 4 KiB aligned (a
 * violation aborts, so libFuzzer keeps the input) and nothing beyond the
 * device (an I/O error, as a block device gives; FUZZ_STRICT_IO=1 aborts
 * instead, to find reads the format code should have bounded first).
 */
#ifndef VHDX_FUZZ_COMMON_H
#define VHDX_FUZZ_COMMON_H

#include "../../vhdx/vhdx.h"

#define FUZZ_MAX_SEGMENTS	4

struct fuzz_segment {
	u64 offset;
	u8 *data;
	size_t len;
	bool owned;
};

struct fuzz_dev {
	struct fuzz_segment seg[FUZZ_MAX_SEGMENTS];
	unsigned int nseg;
	u64 size;			/* virtual device size */
	unsigned int reads, writes, flushes;
	struct vhdx_io io;
};

static bool fuzz_strict_io(void)
{
	static int strict = -1;

	if (strict < 0) {
		const char *s = getenv("FUZZ_STRICT_IO");

		strict = s && *s == '1';
	}
	return strict;
}

static void fuzz_check_call(const struct fuzz_dev *dev, const char *op,
			    u64 offset, size_t len)
{
	if (offset % VHDX_IO_ALIGN || len % VHDX_IO_ALIGN || !len) {
		fprintf(stderr, "fuzz: %s at %llu, length %zu: not 4 KiB aligned\n",
			op, (unsigned long long)offset, len);
		abort();
	}
}

static bool fuzz_in_device(const struct fuzz_dev *dev, const char *op,
			   u64 offset, size_t len)
{
	/* A device whose size is not 4 KiB aligned still reads its last unit. */
	u64 end = (dev->size + VHDX_IO_ALIGN - 1) & ~(u64)(VHDX_IO_ALIGN - 1);

	if (offset <= end && len <= end - offset)
		return true;
	if (fuzz_strict_io()) {
		fprintf(stderr, "fuzz: %s at %llu, length %zu: beyond the %llu byte device\n",
			op, (unsigned long long)offset, len,
			(unsigned long long)dev->size);
		abort();
	}
	return false;
}

static int fuzz_dev_read(void *priv, u64 offset, void *buf, size_t len)
{
	struct fuzz_dev *dev = priv;
	unsigned int i;

	dev->reads++;
	fuzz_check_call(dev, "read", offset, len);
	if (!fuzz_in_device(dev, "read", offset, len))
		return -EIO;
	memset(buf, 0, len);
	for (i = 0; i < dev->nseg; i++) {
		const struct fuzz_segment *s = &dev->seg[i];
		u64 lo = offset > s->offset ? offset : s->offset;
		u64 hi = offset + len < s->offset + s->len ?
			 offset + len : s->offset + s->len;

		if (lo < hi)
			memcpy((u8 *)buf + (lo - offset),
			       s->data + (lo - s->offset), hi - lo);
	}
	return 0;
}

/* Bytes outside every segment are dropped: targets that write use one
 * segment covering the whole device. */
static int fuzz_dev_write(void *priv, u64 offset, const void *buf, size_t len)
{
	struct fuzz_dev *dev = priv;
	unsigned int i;

	dev->writes++;
	fuzz_check_call(dev, "write", offset, len);
	if (!fuzz_in_device(dev, "write", offset, len))
		return -EIO;
	for (i = 0; i < dev->nseg; i++) {
		struct fuzz_segment *s = &dev->seg[i];
		u64 lo = offset > s->offset ? offset : s->offset;
		u64 hi = offset + len < s->offset + s->len ?
			 offset + len : s->offset + s->len;

		if (lo < hi)
			memcpy(s->data + (lo - s->offset),
			       (const u8 *)buf + (lo - offset), hi - lo);
	}
	return 0;
}

static int fuzz_dev_flush(void *priv)
{
	struct fuzz_dev *dev = priv;

	dev->flushes++;
	return 0;
}

static void fuzz_dev_init(struct fuzz_dev *dev, u64 size, bool writable)
{
	memset(dev, 0, sizeof(*dev));
	dev->size = size;
	dev->io.priv = dev;
	dev->io.read = fuzz_dev_read;
	if (writable) {
		dev->io.write = fuzz_dev_write;
		dev->io.flush = fuzz_dev_flush;
	}
}

/* Copies @len bytes of @data (zero-padded to @alloc) to @offset. */
static u8 *fuzz_dev_add(struct fuzz_dev *dev, u64 offset, const void *data,
			size_t len, size_t alloc)
{
	struct fuzz_segment *s;

	if (dev->nseg == FUZZ_MAX_SEGMENTS)
		abort();
	s = &dev->seg[dev->nseg++];
	s->offset = offset;
	s->len = alloc;
	s->owned = true;
	s->data = calloc(1, alloc ? alloc : 1);
	if (!s->data)
		abort();
	if (len)
		memcpy(s->data, data, len < alloc ? len : alloc);
	return s->data;
}

/*
 * Maps @data itself, not a copy: no copy of a large input per run.  The
 * device writes into it only if the device is writable.
 */
static void fuzz_dev_add_ref(struct fuzz_dev *dev, u64 offset, const void *data,
			     size_t len)
{
	struct fuzz_segment *s;

	if (dev->nseg == FUZZ_MAX_SEGMENTS)
		abort();
	s = &dev->seg[dev->nseg++];
	s->offset = offset;
	s->len = len;
	s->data = (u8 *)data;
}

static void fuzz_dev_free(struct fuzz_dev *dev)
{
	unsigned int i;

	for (i = 0; i < dev->nseg; i++)
		if (dev->seg[i].owned)
			free(dev->seg[i].data);
	dev->nseg = 0;
}

static u64 fuzz_le64(const u8 *p)
{
	u64 v;

	memcpy(&v, p, sizeof(v));
	return le64_to_cpu(v);
}

static u32 fuzz_le32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, sizeof(v));
	return le32_to_cpu(v);
}

static u16 fuzz_le16(const u8 *p)
{
	u16 v;

	memcpy(&v, p, sizeof(v));
	return le16_to_cpu(v);
}

/* @size bytes at @data into a @want byte buffer, truncated or zero-padded. */
static u8 *fuzz_fit(const u8 *data, size_t size, size_t want)
{
	u8 *buf = calloc(1, want ? want : 1);

	if (!buf)
		abort();
	memcpy(buf, data, size < want ? size : want);
	return buf;
}

static void fuzz_header_init(struct vhdx_header *h, u64 seq,
			     const guid_t *log_guid, u64 log_offset,
			     u32 log_length)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, VHDX_SIGNATURE_HEADER, sizeof(h->signature));
	h->sequence_number = cpu_to_le64(seq);
	memset(&h->file_write_guid, 0x11, sizeof(h->file_write_guid));
	memset(&h->data_write_guid, 0x22, sizeof(h->data_write_guid));
	if (log_guid)
		h->log_guid = *log_guid;
	h->log_version = cpu_to_le16(VHDX_LOG_VERSION);
	h->version = cpu_to_le16(VHDX_HEADER_VERSION);
	h->log_length = cpu_to_le32(log_length);
	h->log_offset = cpu_to_le64(log_offset);
	vhdx_checksum_set(h, sizeof(*h), offsetof(struct vhdx_header, checksum));
}

/*
 * A zeroed buffer of @len bytes kept from run to run: a fresh allocation of
 * many MiB costs more in page faults than the code under test takes.
 */
static u8 *fuzz_scratch(size_t len)
{
	static u8 *buf;
	static size_t cap;

	if (len > cap || !buf) {
		free(buf);
		buf = calloc(1, len ? len : 1);
		if (!buf)
			abort();
		cap = len;
	}
	memset(buf, 0, len);
	return buf;
}

/* A property of the code under test does not hold: keep the input. */
#define FUZZ_ASSERT(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__,	\
				__LINE__, #cond);			\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			abort();					\
		}							\
	} while (0)

#endif /* VHDX_FUZZ_COMMON_H */
