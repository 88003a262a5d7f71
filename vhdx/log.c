// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata log (MS-VHDX 2.3): finding the active sequence (2.3.3) and
 * replaying it, onto the device or, for a read-only open, into memory.
 *
 * The log is untrusted input read inside the kernel, so entries are read
 * and checked one 4 KiB sector at a time: memory stays at a few sectors
 * plus 20 bytes and a bit per log sector, whatever lengths the entries claim.
 */
#include "vhdx.h"

#define VHDX_LOG_SECTOR			VHDX_LOG_SECTOR_SIZE
#define VHDX_LOG_DESC_SIZE		sizeof(struct vhdx_log_descriptor)

/*
 * Entry lengths are 4 KiB multiples, so the two lowest values can mark a
 * position not yet examined and a position that holds no valid entry.
 */
#define VHDX_LOG_POS_UNKNOWN		0
#define VHDX_LOG_POS_INVALID		1

/* What the search learned about the entry starting at one log sector. */
struct vhdx_log_pos {
	u64 sequence;
	u32 length;			/* or VHDX_LOG_POS_* */
	u32 tail;
};

struct vhdx_log_entry_info {
	u64 sequence;
	u32 length;
	u32 tail;
	u32 descriptor_count;
	u32 descriptor_sectors;
	u64 flushed_file_offset;
	u64 last_file_offset;
};

struct vhdx_log {
	struct vhdx_image *img;
	u64 offset;			/* of the ring in the file */
	u32 length;
	u8 *sector;			/* VHDX_LOG_SECTOR bytes */
	u8 *desc;			/* VHDX_LOG_SECTOR bytes, collect only */
	const char *why;		/* why the last entry checked is invalid */
	/*
	 * The search only: the CRC-32C register (from 0, no inversions)
	 * after ring sectors [0, s), for s = 0 .. sectors; and x^(32768 *
	 * 2^k) mod the CRC polynomial, to move a register past k sectors.
	 */
	u32 *prefix;
	u32 sector_shift[32];
};

/* Bit-reflected, as crc32c() computes: bit 31 is the coefficient of x^0. */
#define VHDX_CRC32C_POLY		0x82f63b78U
#define VHDX_CRC32C_ONE			0x80000000U

/* The log is read in pieces of this size to compute log->prefix. */
#define VHDX_LOG_SCAN_CHUNK		(64 * 1024)

/* A run of entries with consecutive sequence numbers (2.3.3 step 3). */
struct vhdx_log_run {
	u32 start;
	u32 next;			/* ring offset just after the last entry */
	u32 head;			/* ring offset of the last entry */
	u32 count;
	u64 first_sequence;
	u64 head_sequence;
	u32 head_tail;			/* the Tail field of the last entry */
	u32 tail_index;			/* the entry at head_tail */
	bool full;			/* ended because the ring was full */
};

/*
 * What the search may spend, in entries visited, per sector of the ring.
 * A log as its writers leave it costs about one; see vhdx_log_search().
 */
#define VHDX_LOG_SEARCH_STEPS		64

/* The search's memory of positions, one bit per ring sector. */
struct vhdx_log_memo {
	struct vhdx_log_pos *pos;
	u8 *dead;			/* a run from here cannot be valid */
	u64 steps_left;
};

static u32 vhdx_log_advance(const struct vhdx_log *log, u32 pos, u64 bytes)
{
	u64 next = (u64)pos + bytes;

	/* Callers keep pos < length and bytes <= length. */
	if (next >= log->length)
		next -= log->length;
	return (u32)next;
}

/* Sector @index of the entry at @pos; entries may wrap around the ring. */
static int vhdx_log_read(struct vhdx_log *log, u32 pos, u64 index, void *buf)
{
	const struct vhdx_io *io = log->img->io;
	u32 ring = vhdx_log_advance(log, pos, index * VHDX_LOG_SECTOR);
	int ret;

	ret = io->read(io->priv, log->offset + ring, buf, VHDX_LOG_SECTOR);
	if (ret)
		return vhdx_fail(log->img, ret,
				 "log: read error %d at ring offset %u (file offset %llu)",
				 ret, ring,
				 (unsigned long long)(log->offset + ring));
	return 0;
}

static int vhdx_log_init(struct vhdx_image *img, struct vhdx_log *log,
			 unsigned int buffers)
{
	const struct vhdx_header *h = &img->header;

	memset(log, 0, sizeof(*log));
	log->img = img;
	log->offset = le64_to_cpu(h->log_offset);
	log->length = le32_to_cpu(h->log_length);
	if (guid_is_null(&h->log_guid))
		return vhdx_fail(img, -ENOENT,
				 "log: LogGuid is null: the log is empty");
	if (!log->length || log->length % VHDX_LOG_SECTOR ||
	    log->offset % VHDX_LOG_SECTOR)
		return vhdx_fail(img, -EINVAL,
				 "log: LogGuid is set but the log at %llu, length %u, is empty or not 4 KiB aligned",
				 (unsigned long long)log->offset, log->length);
	if (log->offset > img->device_size ||
	    log->length > img->device_size - log->offset)
		return vhdx_fail(img, -EINVAL,
				 "log: log at %llu, length %u, ends beyond the device (%llu bytes)",
				 (unsigned long long)log->offset, log->length,
				 (unsigned long long)img->device_size);
	log->sector = vhdx_alloc(buffers * VHDX_LOG_SECTOR);
	if (!log->sector)
		return vhdx_fail(img, -ENOMEM, "log: out of memory");
	if (buffers > 1)
		log->desc = log->sector + VHDX_LOG_SECTOR;
	return 0;
}

/* a * b modulo the CRC-32C polynomial, both bit-reflected. */
static u32 vhdx_crc_mulmod(u32 a, u32 b)
{
	u32 product = 0, bit;

	for (bit = VHDX_CRC32C_ONE; bit; bit >>= 1) {
		if (a & bit)
			product ^= b;
		b = (b & 1) ? (b >> 1) ^ VHDX_CRC32C_POLY : b >> 1;
	}
	return product;
}

/* The register @crc after @sectors 4 KiB sectors of zeros. */
static u32 vhdx_log_crc_shift(const struct vhdx_log *log, u32 crc, u32 sectors)
{
	unsigned int k;

	for (k = 0; sectors; k++, sectors >>= 1)
		if (sectors & 1)
			crc = vhdx_crc_mulmod(log->sector_shift[k], crc);
	return crc;
}

/*
 * The register, from 0, over @count ring sectors from sector @first,
 * wrapping: a register is linear in its start value, so this is one
 * prefix minus the other moved past the range.
 */
static u32 vhdx_log_range_crc(const struct vhdx_log *log, u32 first, u32 count)
{
	u32 sectors = log->length / VHDX_LOG_SECTOR, head;

	if (first + count <= sectors)
		return log->prefix[first + count] ^
		       vhdx_log_crc_shift(log, log->prefix[first], count);
	head = vhdx_log_range_crc(log, first, sectors - first);
	count -= sectors - first;
	return vhdx_log_crc_shift(log, head, count) ^ log->prefix[count];
}

/*
 * Every ring offset may start an entry that claims the whole ring: reading
 * each candidate whole would cost a crafted log a number of reads
 * quadratic in its length.  One pass over the ring instead gives the CRC
 * of any range in constant time.
 */
static int vhdx_log_prefix_init(struct vhdx_log *log)
{
	const struct vhdx_io *io = log->img->io;
	u32 sectors = log->length / VHDX_LOG_SECTOR, s, i, n;
	u8 *chunk;
	int ret = 0;

	memset(log->sector, 0, VHDX_LOG_SECTOR);
	log->sector_shift[0] = vhdx_crc32c(VHDX_CRC32C_ONE, log->sector,
					   VHDX_LOG_SECTOR);
	for (i = 1; i < ARRAY_SIZE(log->sector_shift); i++)
		log->sector_shift[i] = vhdx_crc_mulmod(log->sector_shift[i - 1],
						       log->sector_shift[i - 1]);
	log->prefix = vhdx_alloc(((size_t)sectors + 1) * sizeof(u32));
	chunk = vhdx_alloc(VHDX_LOG_SCAN_CHUNK);
	if (!log->prefix || !chunk) {
		ret = vhdx_fail(log->img, -ENOMEM, "log: out of memory");
		goto out;
	}
	for (s = 0; s < sectors; s += n) {
		n = min_t(u32, sectors - s, VHDX_LOG_SCAN_CHUNK / VHDX_LOG_SECTOR);
		ret = io->read(io->priv, log->offset + (u64)s * VHDX_LOG_SECTOR,
			       chunk, (size_t)n * VHDX_LOG_SECTOR);
		if (ret) {
			ret = vhdx_fail(log->img, ret,
					"log: read error %d at ring offset %llu",
					ret, (unsigned long long)s * VHDX_LOG_SECTOR);
			goto out;
		}
		for (i = 0; i < n; i++)
			log->prefix[s + i + 1] =
				vhdx_crc32c(log->prefix[s + i],
					    chunk + (size_t)i * VHDX_LOG_SECTOR,
					    VHDX_LOG_SECTOR);
		vhdx_cond_resched();
	}
out:
	vhdx_free(chunk);
	return ret;
}

static void vhdx_log_exit(struct vhdx_log *log)
{
	vhdx_free(log->prefix);
	log->prefix = NULL;
	vhdx_free(log->sector);
	log->sector = NULL;
	log->desc = NULL;
}

static const char *vhdx_log_check_header(const struct vhdx_log *log,
					 const struct vhdx_log_entry_header *h,
					 struct vhdx_log_entry_info *info)
{
	u64 desc_sectors;

	info->length = le32_to_cpu(h->entry_length);
	info->tail = le32_to_cpu(h->tail);
	info->sequence = le64_to_cpu(h->sequence_number);
	info->descriptor_count = le32_to_cpu(h->descriptor_count);
	info->flushed_file_offset = le64_to_cpu(h->flushed_file_offset);
	info->last_file_offset = le64_to_cpu(h->last_file_offset);

	if (memcmp(h->signature, VHDX_SIGNATURE_LOG_ENTRY,
		   sizeof(h->signature)))
		return "signature is not \"loge\"";
	if (info->length < VHDX_LOG_SECTOR ||
	    info->length % VHDX_LOG_SECTOR || info->length > log->length)
		return "EntryLength is not a 4 KiB multiple within the log";
	if (info->tail % VHDX_LOG_SECTOR || info->tail >= log->length)
		return "Tail is not a 4 KiB multiple within the log";
	if (!info->sequence)
		return "SequenceNumber is 0";
	if (!guid_equal(&h->log_guid, &log->img->header.log_guid))
		return "LogGuid differs from the header's";
	desc_sectors = vhdx_log_descriptor_sectors(info->descriptor_count);
	if (desc_sectors * VHDX_LOG_SECTOR > info->length)
		return "DescriptorCount does not fit in EntryLength";
	info->descriptor_sectors = (u32)desc_sectors;
	return NULL;
}

static const char *
vhdx_log_check_descriptor(const struct vhdx_log_descriptor *d, u64 sequence,
			  bool *is_data)
{
	u64 offset = le64_to_cpu(d->file_offset);
	u64 length = VHDX_LOG_SECTOR;

	*is_data = !memcmp(d->signature, VHDX_SIGNATURE_LOG_DESC,
			   sizeof(d->signature));
	if (!*is_data) {
		if (memcmp(d->signature, VHDX_SIGNATURE_LOG_ZERO,
			   sizeof(d->signature)))
			return "a descriptor signature is neither \"desc\" nor \"zero\"";
		length = le64_to_cpu(d->zero_length);
		if (!length || length % VHDX_LOG_SECTOR)
			return "a zero descriptor's ZeroLength is 0 or not a 4 KiB multiple";
	}
	if (le64_to_cpu(d->sequence_number) != sequence)
		return "a descriptor's SequenceNumber differs from the entry's";
	if (offset % VHDX_LOG_SECTOR)
		return "a descriptor's FileOffset is not 4 KiB aligned";
	if (length > U64_MAX - offset)
		return "a descriptor's FileOffset plus length overflows";
	return NULL;
}

static const char *vhdx_log_check_data_sector(const void *buf, u64 sequence)
{
	const struct vhdx_log_data_sector *s = buf;

	if (memcmp(s->signature, VHDX_SIGNATURE_LOG_DATA,
		   sizeof(s->signature)))
		return "a data sector signature is not \"data\"";
	if (le32_to_cpu(s->sequence_high) != (u32)(sequence >> 32) ||
	    le32_to_cpu(s->sequence_low) != (u32)sequence)
		return "a data sector's sequence number differs from the entry's";
	return NULL;
}

/* Checks the descriptors of descriptor sector @index; counts data ones. */
static const char *vhdx_log_check_desc_sector(const u8 *buf, u32 index,
					      const struct vhdx_log_entry_info *info,
					      u64 *data_count)
{
	const struct vhdx_log_descriptor *d = (const void *)buf;
	u64 first = (u64)index * VHDX_LOG_DESCRIPTORS_PER_SECTOR;
	u32 slot = index ? 0 : VHDX_LOG_HEADER_DESCRIPTOR_SLOTS;
	const char *why;
	bool is_data;

	for (; slot < VHDX_LOG_DESCRIPTORS_PER_SECTOR; slot++) {
		if (first + slot - VHDX_LOG_HEADER_DESCRIPTOR_SLOTS >=
		    info->descriptor_count)
			break;
		why = vhdx_log_check_descriptor(&d[slot], info->sequence,
						&is_data);
		if (why)
			return why;
		*data_count += is_data;
	}
	return NULL;
}

/*
 * Validates the entry at ring offset @pos: every header field, descriptor
 * and data sector, and the CRC over the whole entry, computed as the
 * sectors stream by or, in the search, from log->prefix; then the sectors
 * past the data are not read at all.  Returns 0 if valid, 1 if not
 * (log->why says why), or a negative errno for a read error.
 */
static int vhdx_log_check_entry(struct vhdx_log *log, u32 pos,
				struct vhdx_log_entry_info *info)
{
	const struct vhdx_log_entry_header *h = (const void *)log->sector;
	u32 stored, crc, index, sectors;
	u64 data_count = 0;
	int ret;

	ret = vhdx_log_read(log, pos, 0, log->sector);
	if (ret)
		return ret;
	log->why = vhdx_log_check_header(log, h, info);
	if (log->why)
		return 1;
	stored = le32_to_cpu(h->checksum);
	/* vhdx_checksum() inverts at the end; undo it to keep going. */
	crc = ~vhdx_checksum(log->sector, VHDX_LOG_SECTOR,
			     offsetof(struct vhdx_log_entry_header, checksum));
	sectors = info->length / VHDX_LOG_SECTOR;
	if (log->prefix) {
		if (sectors > 1)
			crc = vhdx_log_crc_shift(log, crc, sectors - 1) ^
			      vhdx_log_range_crc(log,
						 vhdx_log_advance(log, pos, VHDX_LOG_SECTOR) /
						 VHDX_LOG_SECTOR, sectors - 1);
		if (~crc != stored) {
			log->why = "checksum mismatch";
			return 1;
		}
	}
	for (index = 0; index < sectors; index++) {
		if (index && log->prefix &&
		    index >= info->descriptor_sectors + data_count)
			break;
		if (index) {
			ret = vhdx_log_read(log, pos, index, log->sector);
			if (ret)
				return ret;
			if (!log->prefix)
				crc = vhdx_crc32c(crc, log->sector,
						  VHDX_LOG_SECTOR);
		}
		if (index < info->descriptor_sectors)
			log->why = vhdx_log_check_desc_sector(log->sector,
							      index, info,
							      &data_count);
		else if (index - info->descriptor_sectors < data_count)
			log->why = vhdx_log_check_data_sector(log->sector,
							      info->sequence);
		if (log->why)
			return 1;
		if (index + 1 == info->descriptor_sectors &&
		    info->descriptor_sectors + data_count > sectors) {
			log->why = "the data sectors do not fit in EntryLength";
			return 1;
		}
	}
	if (!log->prefix && ~crc != stored) {
		log->why = "checksum mismatch";
		return 1;
	}
	return 0;
}

/* Each position is validated at most once however often the scan visits. */
static int vhdx_log_entry_at(struct vhdx_log *log, struct vhdx_log_pos *cache,
			     u32 pos, const struct vhdx_log_pos **out,
			     const char **first_why)
{
	struct vhdx_log_pos *p = &cache[pos / VHDX_LOG_SECTOR];
	struct vhdx_log_entry_info info;
	int ret;

	if (p->length == VHDX_LOG_POS_UNKNOWN) {
		ret = vhdx_log_check_entry(log, pos, &info);
		if (ret < 0)
			return ret;
		if (ret) {
			p->length = VHDX_LOG_POS_INVALID;
			if (!pos)
				*first_why = log->why;
		} else {
			p->length = info.length;
			p->sequence = info.sequence;
			p->tail = info.tail;
		}
	}
	*out = p;
	return 0;
}

/* 2.3.3 step 3: extend the run from @start while entries follow on. */
static int vhdx_log_extend(struct vhdx_log *log, struct vhdx_log_memo *memo,
			   u32 start, struct vhdx_log_run *run,
			   const char **first_why)
{
	const struct vhdx_log_pos *p;
	u32 pos = start;
	u64 used = 0;
	int ret;

	memset(run, 0, sizeof(*run));
	run->start = start;
	for (;;) {
		if (!memo->steps_left--)
			return vhdx_fail(log->img, -EINVAL,
					 "log: its entries chain so that finding the active sequence takes more than %u steps per sector; refused",
					 VHDX_LOG_SEARCH_STEPS);
		ret = vhdx_log_entry_at(log, memo->pos, pos, &p, first_why);
		if (ret)
			return ret;
		if (p->length == VHDX_LOG_POS_INVALID)
			break;
		if (run->count && p->sequence != run->head_sequence + 1)
			break;
		/* A run can never hold more than the whole ring. */
		if (used + p->length > log->length) {
			run->full = true;
			break;
		}
		if (!run->count)
			run->first_sequence = p->sequence;
		run->head = pos;
		run->head_sequence = p->sequence;
		run->head_tail = p->tail;
		run->count++;
		used += p->length;
		pos = vhdx_log_advance(log, pos, p->length);
		vhdx_cond_resched();
	}
	run->next = pos;
	return 0;
}

static bool vhdx_log_dead(const struct vhdx_log_memo *memo, u32 pos)
{
	u32 i = pos / VHDX_LOG_SECTOR;

	return memo->dead[i / 8] & (1U << (i % 8));
}

/*
 * A run that is not valid and ended where its entries stop following on,
 * not at the ring's size: a run from any of its later entries follows the
 * same entries to the same head, whose Tail is in none of them, so it
 * cannot be valid either.  Remembering that keeps a crafted log of short
 * entries from being followed again from every one of them.
 */
static void vhdx_log_bury(const struct vhdx_log *log,
			  struct vhdx_log_memo *memo,
			  const struct vhdx_log_run *run)
{
	u32 pos = run->start, i, n;

	if (run->full)
		return;
	for (n = 0; n < run->count; n++) {
		i = pos / VHDX_LOG_SECTOR;
		memo->dead[i / 8] |= 1U << (i % 8);
		pos = vhdx_log_advance(log, pos, memo->pos[i].length);
	}
}

/* 2.3.3 step 4: the head's Tail must be the start of one of the entries. */
static bool vhdx_log_tail_inside(const struct vhdx_log *log,
				 const struct vhdx_log_pos *cache,
				 struct vhdx_log_run *run)
{
	u32 pos = run->start, i;

	for (i = 0; i < run->count; i++) {
		if (pos == run->head_tail) {
			run->tail_index = i;
			return true;
		}
		pos = vhdx_log_advance(log, pos,
				       cache[pos / VHDX_LOG_SECTOR].length);
	}
	return false;
}

/*
 * Every run is followed once from each start the spec visits, except from
 * starts known to be dead; with a bound on the steps in total, so that
 * what no burial catches (runs as long as the ring, through padding
 * sectors no check reads) stays linear in the ring's size too.
 */
static int vhdx_log_search(struct vhdx_log *log, struct vhdx_log_memo *memo,
			   struct vhdx_log_run *candidate,
			   const char **first_why)
{
	struct vhdx_log_run run;
	u32 cur_tail = 0, old_tail = 0;
	bool valid;
	int ret;

	memset(candidate, 0, sizeof(*candidate));
	for (;;) {
		valid = false;
		if (!vhdx_log_dead(memo, cur_tail)) {
			ret = vhdx_log_extend(log, memo, cur_tail, &run,
					      first_why);
			if (ret)
				return ret;
			valid = run.count &&
				vhdx_log_tail_inside(log, memo->pos, &run);
			if (!valid)
				vhdx_log_bury(log, memo, &run);
		}
		if (valid && run.head_sequence > candidate->head_sequence)
			*candidate = run;
		if (valid) {
			cur_tail = run.next;
		} else {
			cur_tail += VHDX_LOG_SECTOR;
			if (cur_tail == log->length)
				cur_tail = 0;
		}
		/*
		 * The spec stops when the tail goes backwards.  A run that
		 * fills the whole ring brings it back to where it was, which
		 * the spec would rescan forever; that is a full scan too.
		 */
		if (cur_tail <= old_tail)
			return 0;
		old_tail = cur_tail;
		vhdx_cond_resched();
	}
}

static int vhdx_log_no_sequence(struct vhdx_log *log, const char *first_why)
{
	char guid[VHDX_GUID_STRING_SIZE];

	vhdx_guid_to_string(&log->img->header.log_guid, guid);
	return vhdx_fail(log->img, -EINVAL,
			 "log: no valid log sequence for LogGuid %s in the log at %llu, length %u (entry at ring offset 0: %s)",
			 guid, (unsigned long long)log->offset, log->length,
			 first_why ? first_why : "valid but not part of a valid sequence");
}

int vhdx_log_find_active(struct vhdx_image *img, struct vhdx_log_sequence *seq)
{
	struct vhdx_log_entry_info head;
	struct vhdx_log_run candidate;
	struct vhdx_log_memo memo = { 0 };
	const char *first_why = NULL;
	u32 sectors;
	struct vhdx_log log;
	int ret;

	ret = vhdx_log_init(img, &log, 1);
	if (ret)
		return ret;
	if (log.length > VHDX_LOG_LENGTH_MAX) {
		ret = vhdx_fail(img, -EFBIG,
				"log: %u bytes long; logs of more than %u MiB are not replayed",
				log.length, (unsigned int)(VHDX_LOG_LENGTH_MAX / VHDX_MiB));
		goto out;
	}
	ret = vhdx_log_prefix_init(&log);
	if (ret)
		goto out;
	sectors = log.length / VHDX_LOG_SECTOR;
	memo.pos = vhdx_alloc((size_t)sectors * sizeof(*memo.pos));
	memo.dead = vhdx_alloc(sectors / 8 + 1);
	memo.steps_left = (u64)sectors * VHDX_LOG_SEARCH_STEPS;
	if (!memo.pos || !memo.dead) {
		ret = vhdx_fail(img, -ENOMEM, "log: out of memory");
		goto out;
	}
	ret = vhdx_log_search(&log, &memo, &candidate, &first_why);
	if (ret)
		goto out;
	if (!candidate.count) {
		ret = vhdx_log_no_sequence(&log, first_why);
		goto out;
	}
	/* The cache keeps no file offsets; the head entry has them. */
	ret = vhdx_log_check_entry(&log, candidate.head, &head);
	if (ret > 0 || (!ret && head.sequence != candidate.head_sequence))
		ret = vhdx_fail(img, -EIO,
				"log: head entry at ring offset %u changed while the log was read",
				candidate.head);
	if (ret)
		goto out;
	seq->tail = candidate.head_tail;
	seq->head = candidate.head;
	seq->tail_sequence = candidate.first_sequence + candidate.tail_index;
	seq->head_sequence = candidate.head_sequence;
	seq->entry_count = candidate.count - candidate.tail_index;
	seq->flushed_file_offset = head.flushed_file_offset;
	seq->last_file_offset = head.last_file_offset;
out:
	vhdx_free(memo.dead);
	vhdx_free(memo.pos);
	vhdx_log_exit(&log);
	return ret;
}

/*
 * The log may only carry metadata: never the identifier or the headers
 * (those have their own update protocol), never the log itself, and never
 * past the end of the device, which cannot grow as a file would.
 */
static int vhdx_log_check_target(struct vhdx_log *log,
				 const struct vhdx_log_entry_info *info,
				 u32 index, u64 offset, u64 length)
{
	u64 end = offset + length;	/* checked not to wrap */

	if (offset < VHDX_REGION_TABLE1_OFFSET)
		return vhdx_fail(log->img, -EINVAL,
				 "log: entry %llu descriptor %u: update at %llu, length %llu, targets the file identifier or headers",
				 (unsigned long long)info->sequence, index,
				 (unsigned long long)offset,
				 (unsigned long long)length);
	if (offset < log->offset + log->length && log->offset < end)
		return vhdx_fail(log->img, -EINVAL,
				 "log: entry %llu descriptor %u: update at %llu, length %llu, overlaps the log at %llu, length %u",
				 (unsigned long long)info->sequence, index,
				 (unsigned long long)offset,
				 (unsigned long long)length,
				 (unsigned long long)log->offset, log->length);
	if (end > log->img->device_size)
		return vhdx_fail(log->img, -EINVAL,
				 "log: entry %llu descriptor %u: update at %llu, length %llu, ends beyond the device (%llu bytes): the image is truncated or the device too small",
				 (unsigned long long)info->sequence, index,
				 (unsigned long long)offset,
				 (unsigned long long)length,
				 (unsigned long long)log->img->device_size);
	return 0;
}

/* Rebuilds the 4 KiB target of a data descriptor in @sector. */
static void vhdx_log_rebuild_sector(u8 *sector,
				    const struct vhdx_log_descriptor *d)
{
	memcpy(sector, d->leading_bytes, sizeof(d->leading_bytes));
	memcpy(sector + VHDX_LOG_SECTOR - sizeof(d->trailing_bytes),
	       d->trailing_bytes, sizeof(d->trailing_bytes));
}

/* Adds the descriptors of an entry already validated at @pos. */
static int vhdx_log_collect_entry(struct vhdx_log *log, u32 pos,
				  const struct vhdx_log_entry_info *info,
				  struct vhdx_overlay *ov)
{
	const struct vhdx_log_descriptor *d;
	u64 slot, loaded = U64_MAX, data_index = 0, offset, length;
	bool is_data;
	u32 i;
	int ret;

	for (i = 0; i < info->descriptor_count; i++) {
		slot = (u64)i + VHDX_LOG_HEADER_DESCRIPTOR_SLOTS;
		if (slot / VHDX_LOG_DESCRIPTORS_PER_SECTOR != loaded) {
			loaded = slot / VHDX_LOG_DESCRIPTORS_PER_SECTOR;
			ret = vhdx_log_read(log, pos, loaded, log->desc);
			if (ret)
				return ret;
		}
		d = (const void *)(log->desc + (slot %
			VHDX_LOG_DESCRIPTORS_PER_SECTOR) * VHDX_LOG_DESC_SIZE);
		offset = le64_to_cpu(d->file_offset);
		is_data = !memcmp(d->signature, VHDX_SIGNATURE_LOG_DESC,
				  sizeof(d->signature));
		length = is_data ? VHDX_LOG_SECTOR : le64_to_cpu(d->zero_length);
		ret = vhdx_log_check_target(log, info, i, offset, length);
		if (ret)
			return ret;
		if (is_data) {
			ret = vhdx_log_read(log, pos, info->descriptor_sectors +
					    data_index++, log->sector);
			if (ret)
				return ret;
			vhdx_log_rebuild_sector(log->sector, d);
			ret = vhdx_overlay_add(ov, offset, length, log->sector);
		} else {
			ret = vhdx_overlay_add(ov, offset, length, NULL);
		}
		if (ret)
			return vhdx_fail(log->img, ret,
					 "log: entry %llu descriptor %u: cannot keep the update: error %d",
					 (unsigned long long)info->sequence, i,
					 ret);
	}
	return 0;
}

int vhdx_log_collect(struct vhdx_image *img,
		     const struct vhdx_log_sequence *seq,
		     struct vhdx_overlay *ov)
{
	struct vhdx_log_entry_info info;
	struct vhdx_log log;
	u32 pos, i;
	int ret;

	ret = vhdx_log_init(img, &log, 2);
	if (ret)
		return ret;
	if (!seq->entry_count || seq->tail % VHDX_LOG_SECTOR ||
	    seq->tail >= log.length || seq->head >= log.length) {
		ret = vhdx_fail(img, -EINVAL,
				"log: sequence with %u entries from ring offset %u to %u does not fit the log",
				seq->entry_count, seq->tail, seq->head);
		goto out;
	}
	pos = seq->tail;
	for (i = 0; i < seq->entry_count; i++) {
		/* The device is read again: check what is actually used. */
		ret = vhdx_log_check_entry(&log, pos, &info);
		if (ret < 0)
			goto out;
		if (ret || info.sequence != seq->tail_sequence + i) {
			ret = vhdx_fail(img, -EIO,
					"log: entry %llu at ring offset %u changed while the log was read: %s",
					(unsigned long long)(seq->tail_sequence + i),
					pos, ret ? log.why : "other sequence number");
			goto out;
		}
		ret = vhdx_log_collect_entry(&log, pos, &info, ov);
		if (ret)
			goto out;
		if (i + 1 < seq->entry_count)
			pos = vhdx_log_advance(&log, pos, info.length);
		vhdx_cond_resched();
	}
	if (pos != seq->head)
		ret = vhdx_fail(img, -EINVAL,
				"log: sequence ends at ring offset %u, not at its head %u",
				pos, seq->head);
out:
	vhdx_log_exit(&log);
	return ret;
}

/*
 * MS-VHDX 2.2.2.1 and 2.3.3: a new FileWriteGuid goes to the headers before
 * anything else is written, the updates are written and flushed, and only
 * then is the log marked empty.  A crash in between leaves a log that
 * replays again to the same result.  DataWriteGuid stays: replay restores
 * what the last session had already committed.
 */
static int vhdx_log_replay_to_device(struct vhdx_image *img)
{
	static const guid_t null_guid;
	guid_t file_write_guid, data_write_guid, log_guid;
	int ret;

	vhdx_guid_gen(&file_write_guid);
	data_write_guid = img->header.data_write_guid;
	log_guid = img->header.log_guid;
	ret = vhdx_header_update(img, &file_write_guid, &data_write_guid,
				 &log_guid);
	if (ret)
		return ret;
	ret = vhdx_overlay_write_back(&img->overlay, img->io);
	if (ret)
		return vhdx_fail(img, ret,
				 "log: write error %d while replaying the log",
				 ret);
	ret = img->io->flush(img->io->priv);
	if (ret)
		return vhdx_fail(img, ret,
				 "log: flush error %d after replaying the log",
				 ret);
	ret = vhdx_header_update(img, &file_write_guid, &data_write_guid,
				 &null_guid);
	if (ret)
		return ret;
	/* The device now holds every update: read it directly. */
	vhdx_overlay_free(&img->overlay);
	img->log_state = VHDX_LOG_REPLAYED;
	return 0;
}

int vhdx_log_replay(struct vhdx_image *img)
{
	struct vhdx_log_sequence seq;
	int ret;

	if (guid_is_null(&img->header.log_guid)) {
		img->log_state = VHDX_LOG_CLEAN;
		return 0;
	}
	ret = vhdx_log_find_active(img, &seq);
	if (ret)
		return ret;
	if (img->device_size < seq.flushed_file_offset)
		return vhdx_fail(img, -EINVAL,
				 "log: image is truncated: FlushedFileOffset %llu of entry %llu beyond device size %llu",
				 (unsigned long long)seq.flushed_file_offset,
				 (unsigned long long)seq.head_sequence,
				 (unsigned long long)img->device_size);
	ret = vhdx_log_collect(img, &seq, &img->overlay);
	if (ret)
		return ret;
	if (img->read_only) {
		/* Nothing is written; reads go through the overlay. */
		img->log_state = VHDX_LOG_REPLAYED_IN_MEMORY;
		return 0;
	}
	if (!img->io->write || !img->io->flush)
		return vhdx_fail(img, -EROFS,
				 "log: the log must be replayed but the device is read-only");
	return vhdx_log_replay_to_device(img);
}
