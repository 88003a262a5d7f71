/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dm-vhdx: what the target (dm-vhdx-target.c) and its writer
 * (dm-vhdx-writer.c) share.
 */
#ifndef DM_VHDX_H
#define DM_VHDX_H

#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/workqueue.h>

#include "vhdx/vhdx.h"

#define DM_MSG_PREFIX "vhdx"

/* Bits in vhdx_target.flags. */
enum {
	VHDX_SESSION,		/* headers updated: map() may write in place */
	VHDX_NO_SPACE,		/* the last allocation found no room */
	VHDX_FAILED,		/* metadata I/O failed: no more writes */
	VHDX_COMMIT_DUE,	/* the periodic commit timer fired */
};

struct vhdx_target {
	struct dm_target *ti;
	struct dm_dev *dev;
	struct dm_io_client *io_client;
	struct vhdx_io io;
	unsigned int block_sector_shift;
	bool read_only;
	bool discards;			/* blocks may be given back */
	bool reopen;			/* opened read-only until preresume */
	struct list_head node;		/* in the registry of all tables */
	unsigned int commit_ms;		/* 0: commit on flush only */
	unsigned long flags;
	atomic_t inflight;		/* bios mapped to a block, not done */

	/* Writes that need the worker, and the worker itself. */
	spinlock_t lock;
	struct bio_list deferred;
	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work commit_work;

	struct vhdx_image img;
};

const char *vhdx_name(struct vhdx_target *vt);

/* dm-vhdx-writer.c */
int vhdx_writer_init(struct vhdx_target *vt);
void vhdx_writer_exit(struct vhdx_target *vt);
void vhdx_defer_bio(struct vhdx_target *vt, struct bio *bio);
void vhdx_writer_stop(struct vhdx_target *vt);
void vhdx_remap(struct vhdx_target *vt, struct bio *bio, u64 entry);
u64 vhdx_pin_entry(struct vhdx_target *vt, struct bio *bio, u64 index);
void vhdx_unpin(struct vhdx_target *vt, struct bio *bio);

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
	return le64_to_cpu(READ_ONCE(vt->img.bat[index]));
}

#endif /* DM_VHDX_H */
