// SPDX-License-Identifier: GPL-2.0
/*
 * Writing log entries (MS-VHDX 2.3.1).  Every entry is a sequence of its
 * own (its Tail points at itself), written right after the previous entry
 * in the ring, and no entry takes more than half the ring: so the entry
 * before it is never overwritten, and a torn entry still leaves that one
 * to be found and replayed again, which is harmless because its updates
 * were already applied, or are lost writes the replay does again.
 *
 * A Tail at the entry itself is right for a commit's entry because the
 * caller (txn.c) has written every earlier entry's updates in place before
 * it issues this one, and this one goes with a pre-flush: by the time it
 * is on disk, no earlier entry is needed any more.
 */
#include "vhdx.h"

#define VHDX_LOG_SECTOR		VHDX_LOG_SECTOR_SIZE

/* Bytes in the entry that carries @update_count data sectors. */
u32 vhdx_log_entry_length(u32 update_count)
{
	return (u32)(vhdx_log_descriptor_sectors(update_count) + update_count) *
	       VHDX_LOG_SECTOR;
}

static void vhdx_log_fill_header(struct vhdx_image *img, void *entry,
				 const guid_t *log_guid, u32 count, u32 length)
{
	struct vhdx_log_entry_header *h = entry;

	memcpy(h->signature, VHDX_SIGNATURE_LOG_ENTRY, sizeof(h->signature));
	h->entry_length = cpu_to_le32(length);
	h->tail = cpu_to_le32(img->txn.log_pos);
	h->sequence_number = cpu_to_le64(img->txn.log_sequence);
	h->descriptor_count = cpu_to_le32(count);
	h->log_guid = *log_guid;
	/*
	 * Everything the image uses lies inside the device, so a replay never
	 * has to grow anything.  data_end is rounded up to 1 MiB and can lie
	 * past the end of a device whose short last block ends unaligned (a
	 * fixed image of an odd size): a replay would then refuse the log.
	 */
	h->flushed_file_offset = cpu_to_le64(min_t(u64, img->data_end,
						   img->device_size));
	h->last_file_offset = h->flushed_file_offset;
}

/*
 * Descriptor i sits after the two slots the header takes; its data sector
 * keeps bytes 8..4091 of the target, the descriptor the first 8 and the
 * last 4, and both halves of the sequence number detect a torn sector.
 */
static void vhdx_log_fill_update(void *entry, u32 desc_sectors, u32 i,
				 u64 sequence,
				 const struct vhdx_log_update *u)
{
	struct vhdx_log_descriptor *d = entry;
	struct vhdx_log_data_sector *ds;
	const u8 *src = u->data;

	d += VHDX_LOG_HEADER_DESCRIPTOR_SLOTS + i;
	memcpy(d->signature, VHDX_SIGNATURE_LOG_DESC, sizeof(d->signature));
	memcpy(d->trailing_bytes, src + VHDX_LOG_SECTOR - 4, 4);
	memcpy(d->leading_bytes, src, 8);
	d->file_offset = cpu_to_le64(u->offset);
	d->sequence_number = cpu_to_le64(sequence);

	ds = (struct vhdx_log_data_sector *)((u8 *)entry +
					      (u64)(desc_sectors + i) *
					      VHDX_LOG_SECTOR);
	memcpy(ds->signature, VHDX_SIGNATURE_LOG_DATA, sizeof(ds->signature));
	ds->sequence_high = cpu_to_le32((u32)(sequence >> 32));
	memcpy(ds->data, src + 8, sizeof(ds->data));
	ds->sequence_low = cpu_to_le32((u32)sequence);
}

/* A FUA write, after a pre-flush if asked, emulated where io cannot. */
static int vhdx_log_write_fua(struct vhdx_image *img, u64 offset,
			      const void *buf, size_t len, bool preflush)
{
	const struct vhdx_io *io = img->io;
	int ret;

	if (io->write_fua)
		return io->write_fua(io->priv, offset, buf, len, preflush);
	ret = preflush ? io->flush(io->priv) : 0;
	if (!ret)
		ret = io->write(io->priv, offset, buf, len);
	if (!ret)
		ret = io->flush(io->priv);
	return ret;
}

/*
 * One write, or two where the entry wraps around the end of the ring.  A
 * stable entry is written with FUA in both parts, and the pre-flush goes
 * with the first part: the second is issued after it, so after it too.
 */
static int vhdx_log_put(struct vhdx_image *img, const u8 *entry, u32 length,
			bool stable)
{
	u64 ring = le64_to_cpu(img->header.log_offset);
	u32 size = le32_to_cpu(img->header.log_length);
	u32 pos = img->txn.log_pos;
	u32 first = min_t(u32, length, size - pos);
	int ret;

	if (stable)
		ret = vhdx_log_write_fua(img, ring + pos, entry, first, true);
	else
		ret = img->io->write(img->io->priv, ring + pos, entry, first);
	if (ret || first == length)
		return ret;
	if (stable)
		return vhdx_log_write_fua(img, ring, entry + first,
					  length - first, false);
	return img->io->write(img->io->priv, ring, entry + first,
			      length - first);
}

/*
 * Writes one entry at the current ring position and advances it.  A
 * stable entry goes with a pre-flush (the data its updates point at and
 * the previous entry's updates written in place are stable first) and
 * FUA, and is stable on return; otherwise the caller flushes.
 */
static int vhdx_log_write(struct vhdx_image *img, const guid_t *log_guid,
			  const struct vhdx_log_update *updates, u32 count,
			  bool stable)
{
	u32 size = le32_to_cpu(img->header.log_length);
	u32 desc_sectors = (u32)vhdx_log_descriptor_sectors(count);
	u32 length = vhdx_log_entry_length(count);
	u64 sequence = img->txn.log_sequence;
	u8 *entry;
	u32 i;
	int ret;

	/* Checking count first keeps the u32 length from wrapping. */
	if (count > size / 2 / VHDX_LOG_SECTOR || length > size / 2)
		return vhdx_fail(img, -EINVAL,
				 "log: an entry of %u updates does not fit in half the %u-byte log",
				 count, size);
	/* A session's entries use the buffer of vhdx_txn_init(), not reclaim. */
	entry = img->txn.entry;
	if (entry && length <= img->txn.entry_length)
		memset(entry, 0, length);
	else
		entry = vhdx_alloc(length);
	if (!entry)
		return vhdx_fail(img, -ENOMEM, "log: out of memory for an entry");
	vhdx_log_fill_header(img, entry, log_guid, count, length);
	for (i = 0; i < count; i++)
		vhdx_log_fill_update(entry, desc_sectors, i, sequence,
				     &updates[i]);
	vhdx_checksum_set(entry, length,
			  offsetof(struct vhdx_log_entry_header, checksum));
	ret = vhdx_log_put(img, entry, length, stable);
	if (entry != img->txn.entry)
		vhdx_free(entry);
	if (ret)
		return vhdx_fail(img, ret, "log: write error %d at ring offset %u",
				 ret, img->txn.log_pos);
	/* length <= size / 2 and log_pos < size: one subtraction wraps. */
	img->txn.log_pos = img->txn.log_pos >= size - length ?
			   img->txn.log_pos - (size - length) :
			   img->txn.log_pos + length;
	img->txn.log_sequence++;
	return 0;
}

int vhdx_log_write_entry(struct vhdx_image *img, const guid_t *log_guid,
			 const struct vhdx_log_update *updates, u32 count)
{
	return vhdx_log_write(img, log_guid, updates, count, false);
}

int vhdx_log_write_entry_stable(struct vhdx_image *img,
				const guid_t *log_guid,
				const struct vhdx_log_update *updates,
				u32 count)
{
	return vhdx_log_write(img, log_guid, updates, count, true);
}

/*
 * Turns the data sectors of a built entry of @count data descriptors back
 * into the sectors they log, in place: the descriptor keeps the 8 leading
 * and 4 trailing bytes that the sector's signature and sequence number
 * took.  After this the entry is no longer valid; the checkpoint (txn.c)
 * writes the sectors from here, which are exactly what the entry logged
 * whatever the in-memory BAT became since.
 */
void vhdx_log_entry_rebuild(u8 *entry, u32 count)
{
	u32 desc_sectors = (u32)vhdx_log_descriptor_sectors(count);
	const struct vhdx_log_descriptor *d;
	u8 *sector;
	u32 i;

	d = (const struct vhdx_log_descriptor *)entry +
	    VHDX_LOG_HEADER_DESCRIPTOR_SLOTS;
	for (i = 0; i < count; i++, d++) {
		sector = entry + (u64)(desc_sectors + i) * VHDX_LOG_SECTOR;
		memcpy(sector, d->leading_bytes, sizeof(d->leading_bytes));
		memcpy(sector + VHDX_LOG_SECTOR - sizeof(d->trailing_bytes),
		       d->trailing_bytes, sizeof(d->trailing_bytes));
	}
}
