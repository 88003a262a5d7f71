// SPDX-License-Identifier: GPL-2.0
/*
 * Changing an image: sessions, BAT updates and commits through the log.
 *
 * A commit writes one log entry holding every BAT sector changed since the
 * last commit, as one write with a pre-flush (the data the new entries
 * point at must be stable first) and FUA (the entry is stable when the
 * commit returns): one device flush per commit, where QEMU spends about
 * eight per allocated block.
 *
 * The sectors are then written in place by a checkpoint, without a flush
 * of its own: the caller runs vhdx_checkpoint() once it has told the user
 * the commit is done, and the next commit runs it first if the caller did
 * not.  So every entry's checkpoint has completed before the next entry is
 * issued, and that entry's pre-flush makes it stable before the entry is:
 * each entry's Tail can point at itself (log_write.c), and no entry ever
 * needs the log space of an earlier one that still has to be replayed.
 * Until the next commit's pre-flush, or the flush that ends the session,
 * a crash replays the last entry, which redoes a lost checkpoint.
 */
#include "vhdx.h"

#define VHDX_BAT_SECTOR			VHDX_LOG_SECTOR_SIZE
#define VHDX_BAT_ENTRIES_PER_SECTOR	(VHDX_BAT_SECTOR / sizeof(__le64))

/*
 * A commit's log entry is built in a buffer allocated at open (see
 * vhdx_txn_init()); this bounds it to about 1 MiB whatever the log size.
 */
#define VHDX_TXN_MAX_UPDATES	256

/* Largest n whose entry fits in half the ring (see log_write.c). */
static u32 vhdx_txn_max_updates(u32 log_length)
{
	u32 n = log_length / 2 / VHDX_LOG_SECTOR_SIZE;

	while (n && vhdx_log_entry_length(n) > log_length / 2)
		n--;
	return min_t(u32, n, VHDX_TXN_MAX_UPDATES);
}

int vhdx_txn_init(struct vhdx_image *img)
{
	struct vhdx_txn *txn = &img->txn;
	u64 bat_bytes = img->geo.bat_entries * sizeof(__le64);

	memset(txn, 0, sizeof(*txn));
	txn->bat_sectors = (u32)((bat_bytes + VHDX_BAT_SECTOR - 1) /
				 VHDX_BAT_SECTOR);
	txn->max_updates =
		vhdx_txn_max_updates(le32_to_cpu(img->header.log_length));
	if (!txn->max_updates)
		return vhdx_fail(img, -EINVAL,
				 "log: %u bytes are too few to log one BAT sector",
				 le32_to_cpu(img->header.log_length));
	txn->dirty = vhdx_alloc(txn->bat_sectors / 8 + 1);
	/*
	 * A commit may run while reclaim writes through this very device:
	 * what it needs is allocated here, not then.
	 */
	txn->updates = vhdx_alloc(txn->max_updates * sizeof(*txn->updates));
	txn->entry_length = vhdx_log_entry_length(txn->max_updates);
	txn->entry = vhdx_alloc(txn->entry_length);
	if (!txn->dirty || !txn->updates || !txn->entry) {
		vhdx_txn_free(img);
		return vhdx_fail(img, -ENOMEM, "out of memory for the BAT's dirty map");
	}
	return 0;
}

void vhdx_txn_free(struct vhdx_image *img)
{
	vhdx_free(img->txn.dirty);
	img->txn.dirty = NULL;
	vhdx_free(img->txn.updates);
	img->txn.updates = NULL;
	vhdx_free(img->txn.entry);
	img->txn.entry = NULL;
}

static bool vhdx_txn_test(const struct vhdx_txn *txn, u32 sector)
{
	return txn->dirty[sector / 8] & (1U << (sector % 8));
}

void vhdx_bat_update(struct vhdx_image *img, u64 index, u64 entry)
{
	struct vhdx_txn *txn = &img->txn;
	u32 sector = (u32)(index / VHDX_BAT_ENTRIES_PER_SECTOR);

	if (!vhdx_txn_test(txn, sector)) {
		txn->dirty[sector / 8] |= 1U << (sector % 8);
		WRITE_ONCE(txn->dirty_count, txn->dirty_count + 1);
	}
	/*
	 * Whoever sees the new entry (vhdx_bat_get()) also sees the commit
	 * it is waiting for: a FUA write through it must not skip that.
	 */
	smp_store_release(&img->bat[index], cpu_to_le64(entry));
}

static int vhdx_txn_flush(struct vhdx_image *img, const char *when)
{
	int ret = img->io->flush(img->io->priv);

	if (ret)
		return vhdx_fail(img, ret, "flush error %d %s", ret, when);
	return 0;
}

/*
 * MS-VHDX says to set a new LogGuid before overwriting log space.  The
 * log is empty here (LogGuid null), so nothing in it can be lost; writing
 * the first entry before the header that names its GUID means that no
 * crash can leave a header whose LogGuid has no valid entry, which the
 * spec calls a corrupt file.
 */
int vhdx_session_begin(struct vhdx_image *img)
{
	struct vhdx_txn *txn = &img->txn;
	guid_t log_guid;
	int ret;

	if (txn->session)
		return 0;
	vhdx_guid_gen(&txn->file_write_guid);
	if (txn->keep_data_write_guid)
		txn->data_write_guid = img->header.data_write_guid;
	else
		vhdx_guid_gen(&txn->data_write_guid);
	vhdx_guid_gen(&log_guid);
	txn->log_pos = 0;
	txn->log_sequence = 1;
	ret = vhdx_log_write_entry(img, &log_guid, NULL, 0);
	if (!ret)
		ret = vhdx_txn_flush(img, "after the first log entry");
	if (!ret)
		ret = vhdx_header_update(img, &txn->file_write_guid,
					 &txn->data_write_guid, &log_guid);
	if (!ret)
		txn->session = true;
	return ret;
}

/*
 * Dirty page @i of the commit: the BAT sectors first, then the 4 KiB pages
 * of the sector bitmaps of a differencing image, chunk by chunk.
 */
static bool vhdx_txn_page(struct vhdx_image *img, u64 i,
			  struct vhdx_log_update *u)
{
	struct vhdx_txn *txn = &img->txn;
	const u8 *data;
	u64 chunk, entry;
	u32 page;

	if (i < txn->bat_sectors) {
		if (!vhdx_txn_test(txn, (u32)i))
			return false;
		u->offset = img->bat_region->offset + i * VHDX_BAT_SECTOR;
		u->data = (const u8 *)img->bat + i * VHDX_BAT_SECTOR;
		return true;
	}
	chunk = (i - txn->bat_sectors) / VHDX_BITMAP_PAGES;
	page = (u32)((i - txn->bat_sectors) % VHDX_BITMAP_PAGES);
	if (!vhdx_bitmap_dirty_page(img, chunk, page, &data))
		return false;
	entry = le64_to_cpu(img->bat[vhdx_bat_bitmap_index(&img->geo, chunk)]);
	u->offset = vhdx_bat_offset(entry) + (u64)page * VHDX_LOG_SECTOR_SIZE;
	u->data = data;
	return true;
}

static u64 vhdx_txn_pages(const struct vhdx_image *img)
{
	return img->txn.bat_sectors +
	       (img->bitmaps ? img->geo.bitmap_blocks * VHDX_BITMAP_PAGES : 0);
}

/*
 * Up to max_updates dirty pages, going down from the one before @end;
 * returns how many.  Downwards, because a chunk's sector bitmap entry
 * follows the payload entries of its blocks in the BAT: when a commit
 * takes several log entries, the entry that gives a chunk its bitmap
 * block is logged, and replayed, no later than one that makes a block of
 * that chunk partially present.  (A bitmap block without partially
 * present blocks is valid; the converse is not.)
 */
static u32 vhdx_txn_gather(struct vhdx_image *img, u64 *end,
			   struct vhdx_log_update *updates)
{
	u64 bat = img->txn.bat_sectors, i;
	u32 n = 0;

	while (*end && n < img->txn.max_updates) {
		i = *end - 1;
		/* Chunks without a dirty page are skipped whole. */
		if (i >= bat &&
		    (i - bat) % VHDX_BITMAP_PAGES == VHDX_BITMAP_PAGES - 1 &&
		    !vhdx_bitmap_chunk_dirty(img, (i - bat) /
						  VHDX_BITMAP_PAGES)) {
			*end -= VHDX_BITMAP_PAGES;
			vhdx_cond_resched();
			continue;
		}
		n += vhdx_txn_page(img, i, &updates[n]);
		(*end)--;
	}
	return n;
}

static void vhdx_txn_clean(struct vhdx_image *img)
{
	struct vhdx_txn *txn = &img->txn;

	memset(txn->dirty, 0, txn->bat_sectors / 8 + 1);
	vhdx_bitmaps_logged(img);
	WRITE_ONCE(txn->dirty_count, 0);
}

/*
 * Writes in place what the last entry logged, from the entry itself: a
 * sector of the in-memory BAT may have changed since, and such a change,
 * uncommitted, must not reach the disk where no entry undoes it.
 */
int vhdx_checkpoint(struct vhdx_image *img)
{
	struct vhdx_txn *txn = &img->txn;
	const struct vhdx_log_descriptor *d;
	u32 count = txn->ckpt_count;
	u32 desc_sectors, i;
	u64 offset;
	int ret;

	if (!count)
		return 0;
	desc_sectors = (u32)vhdx_log_descriptor_sectors(count);
	d = (const struct vhdx_log_descriptor *)txn->entry +
	    VHDX_LOG_HEADER_DESCRIPTOR_SLOTS;
	/* Doing this again after a failed write gives the same sectors. */
	vhdx_log_entry_rebuild(txn->entry, count);
	for (i = 0; i < count; i++) {
		offset = le64_to_cpu(d[i].file_offset);
		ret = img->io->write(img->io->priv, offset,
				     txn->entry + (u64)(desc_sectors + i) *
						  VHDX_LOG_SECTOR_SIZE,
				     VHDX_LOG_SECTOR_SIZE);
		if (ret)
			return vhdx_fail(img, ret,
					 "BAT or sector bitmap: write error %d at %llu",
					 ret, (unsigned long long)offset);
	}
	txn->ckpt_count = 0;
	/* The bitmap pages logged are in place: they may be dropped now. */
	vhdx_bitmaps_checkpointed(img);
	return 0;
}

/*
 * The sectors are logged straight from the in-memory BAT: the caller is
 * the only writer of the BAT, so it cannot change under the commit.  More
 * dirty sectors than one entry holds take several entries, each one
 * checkpointed before the next is written (the entry buffer is reused).
 */
int vhdx_commit(struct vhdx_image *img)
{
	struct vhdx_txn *txn = &img->txn;
	struct vhdx_log_update *updates = txn->updates;
	u64 end = vhdx_txn_pages(img);
	u32 count;
	int ret = 0;

	if (!vhdx_txn_dirty(img))
		return 0;
	if (!txn->session)
		return vhdx_fail(img, -EINVAL, "commit outside a session");
	vhdx_bitmaps_gathering(img, true);
	while ((count = vhdx_txn_gather(img, &end, updates))) {
		ret = vhdx_checkpoint(img);
		if (!ret)
			ret = vhdx_log_write_entry_stable(img,
							  &img->header.log_guid,
							  updates, count);
		if (ret)
			break;
		txn->ckpt_count = count;
	}
	if (ret) {
		vhdx_bitmaps_gathering(img, false);
		return ret;
	}
	vhdx_txn_clean(img);
	return 0;
}

/* After this the log is empty and any reader opens the image as it is. */
int vhdx_session_end(struct vhdx_image *img)
{
	static const guid_t null_guid;
	struct vhdx_txn *txn = &img->txn;
	int ret;

	if (!txn->session)
		return 0;
	ret = vhdx_commit(img);
	if (!ret)
		ret = vhdx_checkpoint(img);
	/* The checkpoint must be stable before no entry replays it. */
	if (!ret)
		ret = vhdx_txn_flush(img, "before emptying the log");
	if (!ret)
		ret = vhdx_header_update(img, &txn->file_write_guid,
					 &txn->data_write_guid, &null_guid);
	if (!ret)
		txn->session = false;
	return ret;
}
