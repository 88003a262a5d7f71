/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-vhdx: what the target (dm-vhdx-target.c) and its writer
 * (dm-vhdx-writer.c) share.
 */
#ifndef DM_VHDX_H
#define DM_VHDX_H

#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/hashtable.h>
#include <linux/workqueue.h>

#include "vhdx/vhdx.h"

#define DM_MSG_PREFIX "vhdx"

/* Linux 6.5 replaced fmode_t with blk_mode_t in dm_table_get_mode(). */
#ifdef BLK_OPEN_WRITE
#define VHDX_MODE_WRITE BLK_OPEN_WRITE
#define VHDX_MODE_READ BLK_OPEN_READ
#else
#define VHDX_MODE_WRITE FMODE_WRITE
#define VHDX_MODE_READ FMODE_READ
#endif

/* Far deeper than Hyper-V's checkpoint trees go in practice. */
#define VHDX_MAX_PARENTS	32

struct vhdx_target;

/* One parent image of a differencing chain, opened read-only. */
struct vhdx_parent {
	struct vhdx_target *vt;
	struct dm_dev *dev;
	struct vhdx_io io;
	unsigned int block_sector_shift;
	struct vhdx_image img;
};

/* Where a run of virtual sectors lives (vhdx_resolve()). */
struct vhdx_extent {
	struct block_device *bdev;	/* NULL: the run reads as zeros */
	sector_t sector;		/* on bdev */
	sector_t len;
	unsigned int layer;		/* 0: the child */
	bool bad;			/* partially present without a parent */
	bool miss;			/* needs a bitmap page not cached */
	int err;			/* loading a bitmap page failed */
};

/* What map() and the worker record in each bio, for end_io. */
struct vhdx_bio_ctx {
	bool pinned;			/* counted in vhdx_target.pins[epoch] */
	u8 epoch;
	bool set_bits;			/* mark its sectors present when done */
	bool allocating;		/* its block's BAT entry waits for it */
	bool fua;			/* as submitted to us */
	sector_t sector;		/* virtual, for set_bits */
	unsigned int sectors;
	u64 index;			/* allocating: the BAT entry to set */
	u64 entry;			/* and its value */
	struct hlist_node pending;	/* in vhdx_target.allocating */
	struct bio_list waiters;	/* writes to its block meanwhile */
	/*
	 * allocating: its data write and the zeroing it needs run at once;
	 * the last of them to complete hands the bio to the worker.
	 */
	struct vhdx_target *vt;
	atomic_t parts;			/* still in flight */
	bool zero_failed;
	u64 bitmap_offset;		/* a new sector bitmap block, or 0 */
	u64 chunk;			/* and its chunk */
	struct hlist_node bitmap_pending;	/* in vhdx_target.bitmapping */
};

/* Bits in vhdx_target.flags. */
enum {
	VHDX_SESSION,		/* headers updated: map() may write in place */
	VHDX_NO_SPACE,		/* the last allocation found no room */
	VHDX_FAILED,		/* metadata I/O failed: no more writes */
	VHDX_COMMIT_DUE,	/* the periodic commit timer fired */
};

/* What tells one state of an image on disk from another: its current header. */
struct vhdx_header_id {
	u64 sequence_number;
	guid_t file_write_guid;
	guid_t data_write_guid;
	guid_t log_guid;
};

struct vhdx_target {
	struct dm_target *ti;
	struct dm_dev *dev;
	struct dm_io_client *io_client;
	struct vhdx_io io;
	unsigned int block_sector_shift;
	bool read_only;
	bool discards;			/* blocks may be given back */
	bool skip_linkage_check;	/* feature arg no_linkage_check */
	bool reopen;			/* opened read-only until preresume */
	bool published;			/* its parents may be looked at */
	bool suspended;			/* postsuspend ran: check on_disk */
	bool on_disk_known;		/* on_disk was read at postsuspend */
	struct vhdx_header_id on_disk;	/* the header when it was suspended */
	struct list_head node;		/* in the registry of all tables */
	unsigned int commit_ms;		/* 0: commit on flush only */
	unsigned long flags;

	/*
	 * Discarded blocks are reused once no bio that may have read their
	 * old BAT entry is in flight: bios pin the current epoch; a reuse
	 * starts a new one and waits for the old one's count to drain.
	 */
	unsigned int epoch;
	atomic_t pins[2];
	bool draining;			/* sealed space waits for pins[!epoch] */

	/* Writes that need the worker, and the worker itself. */
	spinlock_t lock;
	struct bio_list deferred;
	struct bio_list completed;	/* set_bits or allocating bios, done */
	struct bio_list no_space;	/* worker only: wait for recycled space */
	DECLARE_HASHTABLE(allocating, 6);	/* worker only: by BAT index */
	DECLARE_HASHTABLE(bitmapping, 4);	/* worker only: by chunk */
	/*
	 * Worker and preresume only: [zero_from, zero_end) reads as zeros
	 * because this target zeroed it and has not allocated it since.
	 */
	u64 zero_from;
	u64 zero_end;
	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work commit_work;

	/*
	 * Reads that need a sector bitmap page that is not cached: a worker
	 * loads it and serves them (dm-vhdx-chain.c), for read-only tables
	 * too.  Only differencing images have them.
	 */
	spinlock_t read_lock;
	struct bio_list read_deferred;
	struct workqueue_struct *read_wq;
	struct work_struct read_work;
	void *bounce;			/* VHDX_BOUNCE_SIZE, read worker only */

	/* The parents of a differencing child, nearest first. */
	unsigned int nr_parents;
	const char *parent_paths[VHDX_MAX_PARENTS];
	struct vhdx_parent *parents;

	struct vhdx_image img;
};

const char *vhdx_name(struct vhdx_target *vt);
__printf(2, 3) void vhdx_set_error(struct dm_target *ti, const char *fmt, ...);
int vhdx_dm_io(struct dm_io_client *client, struct block_device *bdev,
	       blk_opf_t opf, u64 offset, void *buf, size_t len);

/* dm-vhdx-chain.c */
int vhdx_chain_open(struct dm_target *ti, struct vhdx_target *vt);
void vhdx_chain_close(struct dm_target *ti, struct vhdx_target *vt);
void vhdx_resolve(struct vhdx_target *vt, sector_t sector, sector_t len,
		  bool load, struct vhdx_extent *ext);
int vhdx_reader_init(struct vhdx_target *vt);
void vhdx_reader_exit(struct vhdx_target *vt);
void vhdx_defer_read(struct vhdx_target *vt, struct bio *bio);
u64 vhdx_bitmap_budget(void);

/* dm-vhdx-writer.c */
int vhdx_writer_init(struct vhdx_target *vt);
void vhdx_writer_exit(struct vhdx_target *vt);
void vhdx_defer_bio(struct vhdx_target *vt, struct bio *bio);
bool vhdx_mark_present(struct vhdx_target *vt, struct bio *bio);
void vhdx_completed(struct vhdx_target *vt, struct bio *bio);
void vhdx_writer_stop(struct vhdx_target *vt);
void vhdx_writer_zero_tail(struct vhdx_target *vt);
void vhdx_alloc_part_done(struct vhdx_target *vt, struct bio *bio);
void vhdx_remap(struct vhdx_target *vt, struct bio *bio, u64 entry);
void vhdx_pin(struct vhdx_target *vt, struct bio *bio);
u64 vhdx_pin_entry(struct vhdx_target *vt, struct bio *bio, u64 index);
void vhdx_mark_on_completion(struct vhdx_target *vt, struct bio *bio);
void vhdx_unpin(struct vhdx_target *vt, struct bio *bio);

static inline struct vhdx_bio_ctx *vhdx_ctx(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct vhdx_bio_ctx));
}

static inline sector_t vhdx_bio_sector(struct vhdx_target *vt,
				       struct bio *bio)
{
	return dm_target_offset(vt->ti, bio->bi_iter.bi_sector);
}

/* The BAT entry of the payload block that holds @sector. */
static inline u64 vhdx_payload_index(struct vhdx_target *vt, sector_t sector)
{
	return vhdx_bat_payload_index(&vt->img.geo,
				      sector >> vt->block_sector_shift);
}

static inline u64 vhdx_bat_entry(struct vhdx_target *vt, u64 index)
{
	return vhdx_bat_get(&vt->img, index);
}

#endif /* DM_VHDX_H */
