// SPDX-License-Identifier: GPL-2.0
/*
 * The log: the search for the active sequence, collecting its updates and
 * replaying them, in memory (read-only) and onto the device (read-write).
 *
 * Input: a 20 byte prefix, then the log itself (zero-padded):
 *   bytes 0-15  LogGuid of the header (a real log's entries carry it)
 *   byte 16     log length: (byte + 1) * 4 KiB, 4 KiB to 1 MiB
 *   byte 17     the device extends (byte % 64) MiB beyond the log
 *   byte 18     bit 0: make the checksum of every entry valid, so that
 *               mutations reach the checks behind the CRC
 *   byte 19     reserved
 * The log is at 1 MiB as QEMU writes it.  Properties checked: collected
 * updates never touch the headers or the log and stay inside the device;
 * a read-only replay succeeds exactly when a read-write one does; after
 * the read-write replay the headers load with a null LogGuid and the log
 * is untouched; and every byte the in-memory replay shows equals what the
 * read-write replay wrote.
 */
#include "fuzz-common.h"

#define PREFIX_SIZE	20
#define LOG_OFFSET	VHDX_MiB
/* Past this, the read-write device drops writes and is not compared. */
#define RW_BACKING_MAX	(16 * VHDX_MiB)
#define COMPARE_SECTORS	512

struct setup {
	struct vhdx_header header;
	const u8 *log;
	size_t log_size;		/* bytes of input log */
	u32 log_length;
	u64 device_size;
};

static void check_collected(const struct setup *s,
			    const struct vhdx_overlay *ov)
{
	u32 i;

	for (i = 0; i < ov->count; i++) {
		const struct vhdx_overlay_extent *e = &ov->extents[i];

		FUZZ_ASSERT(e->offset % VHDX_IO_ALIGN == 0 &&
			    e->length % VHDX_IO_ALIGN == 0 &&
			    e->offset >= VHDX_REGION_TABLE1_OFFSET &&
			    e->offset <= s->device_size &&
			    e->length <= s->device_size - e->offset &&
			    (e->offset >= LOG_OFFSET + s->log_length ||
			     e->offset + e->length <= LOG_OFFSET),
			    "update %u at %llu, length %llu", i,
			    (unsigned long long)e->offset,
			    (unsigned long long)e->length);
	}
}

static void ro_dev(struct fuzz_dev *dev, const struct setup *s)
{
	fuzz_dev_init(dev, s->device_size, false);
	fuzz_dev_add(dev, VHDX_HEADER1_OFFSET, &s->header, sizeof(s->header),
		     sizeof(s->header));
	fuzz_dev_add(dev, LOG_OFFSET, s->log, s->log_size, s->log_length);
}

static void find_and_collect(const struct setup *s)
{
	struct vhdx_overlay ov = { 0 };
	struct vhdx_log_sequence seq;
	struct vhdx_image img = { 0 };
	struct fuzz_dev dev;

	ro_dev(&dev, s);
	img.io = &dev.io;
	img.device_size = s->device_size;
	img.read_only = true;
	img.header = s->header;
	if (!vhdx_log_find_active(&img, &seq)) {
		FUZZ_ASSERT(seq.entry_count && seq.tail < s->log_length &&
			    seq.head < s->log_length &&
			    seq.head_sequence - seq.tail_sequence + 1 ==
			    seq.entry_count,
			    "sequence %u entries, tail %u, head %u",
			    seq.entry_count, seq.tail, seq.head);
		if (!vhdx_log_collect(&img, &seq, &ov))
			check_collected(s, &ov);
	}
	vhdx_overlay_free(&ov);
	vhdx_close(&img);
	fuzz_dev_free(&dev);
}

/*
 * Every byte the in-memory replay shows equals the device after replay.
 * Each read walks the whole overlay, so the sectors compared are bounded.
 */
static void compare(struct vhdx_image *ro, const u8 *rw, u64 rw_len)
{
	unsigned int budget = COMPARE_SECTORS;
	u8 buf[VHDX_IO_ALIGN];
	u64 off, end;
	u32 i;

	for (i = 0; i < ro->overlay.count && budget; i++) {
		const struct vhdx_overlay_extent *e = &ro->overlay.extents[i];

		end = e->offset + e->length < rw_len ?
		      e->offset + e->length : rw_len;
		for (off = e->offset; off < end && budget;
		     off += sizeof(buf), budget--) {
			FUZZ_ASSERT(!vhdx_read(ro, off, buf, sizeof(buf)),
				    "read %llu", (unsigned long long)off);
			FUZZ_ASSERT(!memcmp(buf, rw + off, sizeof(buf)),
				    "in-memory replay differs from the device at %llu",
				    (unsigned long long)off);
		}
	}
}

static void replay(const struct setup *s)
{
	struct vhdx_image ro = { 0 }, rw = { 0 }, again = { 0 };
	struct fuzz_dev ro_d, rw_d;
	int ro_ret, rw_ret;
	u64 backing;
	u8 *flat;

	ro_dev(&ro_d, s);
	ro.io = &ro_d.io;
	ro.device_size = s->device_size;
	ro.read_only = true;
	ro.header = s->header;
	ro_ret = vhdx_log_replay(&ro);
	FUZZ_ASSERT(ro_d.writes == 0, "read-only replay wrote");
	if (!ro_ret)
		FUZZ_ASSERT(ro.log_state == VHDX_LOG_REPLAYED_IN_MEMORY,
			    "state %d", ro.log_state);

	backing = s->device_size < RW_BACKING_MAX ? s->device_size :
		  RW_BACKING_MAX;
	fuzz_dev_init(&rw_d, s->device_size, true);
	flat = fuzz_scratch(backing);
	fuzz_dev_add_ref(&rw_d, 0, flat, backing);
	memcpy(flat + VHDX_HEADER1_OFFSET, &s->header, sizeof(s->header));
	memcpy(flat + LOG_OFFSET, s->log,
	       s->log_size < s->log_length ? s->log_size : s->log_length);
	rw.io = &rw_d.io;
	rw.device_size = s->device_size;
	rw.header = s->header;
	rw_ret = vhdx_log_replay(&rw);
	FUZZ_ASSERT(!ro_ret == !rw_ret,
		    "read-only replay %s, read-write replay %s: %s",
		    ro_ret ? "failed" : "succeeded",
		    rw_ret ? "failed" : "succeeded",
		    ro_ret ? ro.error : rw.error);
	if (!rw_ret) {
		FUZZ_ASSERT(rw.log_state == VHDX_LOG_REPLAYED &&
			    guid_is_null(&rw.header.log_guid) &&
			    !rw.overlay.count, "state after replay");
		FUZZ_ASSERT(!memcmp(flat + LOG_OFFSET, s->log,
				    s->log_size < s->log_length ?
				    s->log_size : s->log_length),
			    "replay wrote into the log");
		/* vhdx_header_load wants a 1 MiB log; this one need not be. */
		FUZZ_ASSERT(!vhdx_header_select(&again,
				(void *)(flat + VHDX_HEADER1_OFFSET),
				(void *)(flat + VHDX_HEADER2_OFFSET)) &&
			    guid_is_null(&again.header.log_guid) &&
			    le64_to_cpu(again.header.sequence_number) == 5,
			    "headers after replay: %s", again.error);
		compare(&ro, flat, backing);
	}
	vhdx_close(&again);
	vhdx_close(&rw);
	vhdx_close(&ro);
	fuzz_dev_free(&rw_d);
	fuzz_dev_free(&ro_d);
}

/* Gives every sector that starts like an entry a valid entry checksum. */
static void fix_checksums(u8 *log, u32 length)
{
	u32 pos, i, entry_length, crc;
	__le32 v;

	for (pos = 0; pos < length; pos += VHDX_LOG_SECTOR_SIZE) {
		if (memcmp(log + pos, VHDX_SIGNATURE_LOG_ENTRY, 4))
			continue;
		entry_length = fuzz_le32(log + pos + 8);
		if (!entry_length || entry_length % VHDX_LOG_SECTOR_SIZE ||
		    entry_length > length)
			continue;
		memset(log + pos + 4, 0, 4);
		crc = ~0U;
		for (i = 0; i < entry_length; i += VHDX_LOG_SECTOR_SIZE)
			crc = vhdx_crc32c(crc, log + (pos + i) % length,
					  VHDX_LOG_SECTOR_SIZE);
		v = cpu_to_le32(~crc);
		memcpy(log + pos + 4, &v, sizeof(v));
	}
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	u8 prefix[PREFIX_SIZE] = { 0 };
	struct setup s;
	guid_t log_guid;
	u64 log_span;
	u8 *log;

	memcpy(prefix, data, size < PREFIX_SIZE ? size : PREFIX_SIZE);
	data += size < PREFIX_SIZE ? size : PREFIX_SIZE;
	size -= size < PREFIX_SIZE ? size : PREFIX_SIZE;

	memcpy(&log_guid, prefix, sizeof(log_guid));
	if (guid_is_null(&log_guid))
		log_guid.b[0] = 1;
	s.log_length = (prefix[16] + 1) * VHDX_LOG_SECTOR_SIZE;
	log = fuzz_fit(data, size, s.log_length);
	if (prefix[18] & 1)
		fix_checksums(log, s.log_length);
	s.log = log;
	s.log_size = s.log_length;
	log_span = (s.log_length + VHDX_MiB - 1) & ~(VHDX_MiB - 1);
	s.device_size = LOG_OFFSET + log_span + (prefix[17] % 64) * VHDX_MiB;
	fuzz_header_init(&s.header, 1, &log_guid, LOG_OFFSET, s.log_length);

	find_and_collect(&s);
	replay(&s);
	free(log);
	return 0;
}
