/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The in-memory view of a VHDX image and the functions that build it.
 *
 * Nothing here knows about bios, workqueues or files: the caller supplies a
 * struct vhdx_io whose callbacks move bytes, so the kernel target, KUnit
 * tests and userspace tools share this code.
 */
#ifndef VHDX_VHDX_H
#define VHDX_VHDX_H

#include "format.h"

#define VHDX_ERROR_MAX	256

/*
 * Byte access to the device holding the image.  The format code only ever
 * asks for 4 KiB aligned offsets and lengths.  write and flush are NULL for
 * a read-only open.  Each returns 0 or a negative errno.
 *
 * write_fua is optional: a write that is stable when it returns (FUA) and,
 * with @preflush, is written only after everything that completed before it
 * is stable (a pre-flush), as one request so that the device can do both
 * with one flush.  Without it the caller falls back to flush, write, flush.
 */
struct vhdx_io {
	void *priv;
	int (*read)(void *priv, u64 offset, void *buf, size_t len);
	int (*write)(void *priv, u64 offset, const void *buf, size_t len);
	int (*flush)(void *priv);
	int (*write_fua)(void *priv, u64 offset, const void *buf, size_t len,
			 bool preflush);
};

#define VHDX_IO_ALIGN	VHDX_LOG_SECTOR_SIZE

/*
 * The longest log replayed (Hyper-V and QEMU write 1 MiB logs).  Finding
 * its active sequence reads it once and keeps 20 bytes per 4 KiB of it:
 * at most 1.25 MiB, for a moment, at open.
 */
#define VHDX_LOG_LENGTH_MAX	(256 * VHDX_MiB)

/* The sizes that define a virtual disk and everything derived from them. */
struct vhdx_geometry {
	u64 virtual_size;		/* bytes */
	u32 block_size;			/* bytes, power of two */
	u32 logical_sector_size;	/* 512 or 4096 */
	u32 physical_sector_size;	/* 512 or 4096 */
	bool has_parent;
	u32 chunk_ratio;		/* payload blocks per sector bitmap block */
	unsigned int block_shift;	/* log2(block_size) */
	unsigned int chunk_ratio_shift;	/* log2(chunk_ratio) */
	u64 payload_blocks;
	u64 bitmap_blocks;
	u64 bat_entries;
};

struct vhdx_region {
	guid_t guid;
	u64 offset;
	u64 length;
	bool required;
};

/*
 * Replayed log updates kept in memory: extents in log order, later ones
 * overriding earlier ones.  data is NULL for a zero descriptor.
 */
struct vhdx_overlay_extent {
	u64 offset;
	u64 length;
	void *data;
};

struct vhdx_overlay {
	struct vhdx_overlay_extent *extents;
	u32 count;
	u32 capacity;
};

enum vhdx_log_state {
	VHDX_LOG_CLEAN,			/* LogGuid was null at open */
	VHDX_LOG_REPLAYED,		/* replayed onto the device */
	VHDX_LOG_REPLAYED_IN_MEMORY,	/* replayed into the overlay only */
};

/*
 * The write side (txn.c): BAT sectors changed since the last commit, and
 * where the next log entry goes.  Only one thread at a time may call the
 * txn functions; readers of the BAT only need READ_ONCE.
 *
 * ckpt_count is the checkpoint still to do: the updates of the last entry
 * written, still in the entry buffer, that are not yet written in place.
 */
struct vhdx_txn {
	u8 *dirty;			/* one bit per 4 KiB BAT sector */
	struct vhdx_log_update *updates;	/* max_updates, for a commit */
	u8 *entry;			/* a log entry of max_updates */
	u32 entry_length;
	u32 bat_sectors;
	u32 dirty_count;		/* 0: everything is on stable storage */
	u32 max_updates;		/* BAT sectors in one log entry */
	u32 log_pos;			/* ring offset of the next entry */
	u64 log_sequence;		/* of the next entry */
	u32 ckpt_count;			/* updates in entry not yet in place */
	bool session;			/* headers updated, LogGuid set */
	/*
	 * Set by a caller whose change leaves what the disk reads alone
	 * (moving blocks, a new parent locator): DataWriteGuid stays, and
	 * the parent linkage of a child of this image still holds.
	 */
	bool keep_data_write_guid;
	guid_t file_write_guid;
	guid_t data_write_guid;
};

/* Free space in the file, in 1 MiB aligned extents (alloc.c). */
struct vhdx_free_extent {
	u64 offset;
	u64 length;
};

struct vhdx_free_space {
	struct vhdx_free_extent *extents;
	u32 count;
	u32 capacity;
};

struct vhdx_locator;
struct vhdx_log_update;

/*
 * Sector bitmaps in memory (bitmap.c): a cache of their 4 KiB pages, each
 * 32768 sector bits, loaded on demand and dropped least recently used
 * first once the cache holds more than its budget.  Pages changed since
 * the last commit (dirty), or logged but not yet written in place by a
 * checkpoint, are held: never dropped, so the budget may be exceeded by
 * them until the next checkpoint.
 */
#define VHDX_BITMAP_PAGES	(VHDX_BITMAP_BLOCK_SIZE / VHDX_LOG_SECTOR_SIZE)
#define VHDX_BITMAP_PAGE_BITS	(VHDX_LOG_SECTOR_SIZE * 8)
#define VHDX_BITMAP_CACHE_DEFAULT	(16 * VHDX_MiB)
/*
 * Pages kept aside at open for loads that find memory exhausted and no
 * clean page to take over: one load at a time runs in each of the two
 * threads that load (the reader and the writer of a table).
 */
#define VHDX_BITMAP_RESERVE	2

struct vhdx_bitmap_page {
	u8 *bits;			/* VHDX_LOG_SECTOR_SIZE bytes */
	struct vhdx_bitmap_page *prev, *next;	/* in lru, held or reserve */
	struct vhdx_bitmap_page *hash_next;	/* in its bucket, if cached */
	u64 chunk;
	u32 index;			/* page in its chunk */
	bool dirty;			/* changed since the last commit */
	bool held;			/* dirty, or logged and not in place */
};

/* What the cache knows of each chunk, cached or not: 8 bytes. */
struct vhdx_bitmap {
	u32 dirty;			/* cached pages that are dirty */
	bool zero;			/* new block: absent pages are zeros */
};

/*
 * Everything in it is under lock: map() looks a page up and reads its run
 * with the lock held, so a page is never freed under a reader.  Loads read
 * outside the lock and insert afterwards; gen changes whenever held pages
 * were written in place, so a load that raced with that reads again.
 * Pages are found through a hash of (chunk, page) whose size follows the
 * budget, so a miss needs memory for the page only.
 */
struct vhdx_bitmap_cache {
	struct vhdx_lock lock;
	struct vhdx_bitmap_page **hash;
	u32 hash_bits;
	struct vhdx_bitmap_page lru;	/* clean pages, oldest first */
	struct vhdx_bitmap_page held;	/* dirty or not yet checkpointed */
	struct vhdx_bitmap_page reserve;	/* not cached, see above */
	u32 reserved;			/* pages in reserve */
	u32 dirty_pages;		/* for the next commit */
	bool gathering;			/* a commit reads the dirty pages */
	bool alloc_fails;		/* tests: no memory without waiting */
	u64 budget;			/* bytes */
	u64 used;			/* bytes of cached pages */
	u64 gen;
	u64 hits;
	u64 loads;
	u64 evictions;
	u64 taken;			/* loads that found no free memory */
};

struct vhdx_image {
	const struct vhdx_io *io;
	u64 device_size;
	bool read_only;
	bool accept_parent;		/* set by the caller: chains allowed */

	struct vhdx_header header;	/* the current header */
	unsigned int header_slot;	/* 0: at 64 KiB, 1: at 128 KiB */

	unsigned int region_table_copy;	/* 0: at 192 KiB, 1: at 256 KiB */
	struct vhdx_region *regions;
	u32 region_count;
	const struct vhdx_region *bat_region;
	const struct vhdx_region *metadata_region;

	struct vhdx_geometry geo;
	u32 file_flags;			/* VHDX_PARAMS_* */
	guid_t virtual_disk_id;

	__le64 *bat;			/* geo.bat_entries, as on disk */
	u64 allocated_blocks;		/* payload blocks that own data */
	u64 data_end;			/* 1 MiB aligned end of the last object */
	struct vhdx_free_space free_space;	/* between objects, reusable */
	struct vhdx_free_space released_space;	/* discarded, not yet */
	u32 released_sealed;		/* of those: stable, I/O may be in flight */

	enum vhdx_log_state log_state;
	struct vhdx_overlay overlay;
	struct vhdx_txn txn;

	/* Differencing images only. */
	struct vhdx_locator *locator;
	struct vhdx_bitmap *bitmaps;	/* per chunk */
	struct vhdx_bitmap_cache bmc;
	u64 bitmap_budget;		/* set by the caller; 0: the default */

	char error[VHDX_ERROR_MAX];
};

/* image.c: opening, closing, reading through the replayed log. */
int vhdx_open(struct vhdx_image *img, const struct vhdx_io *io,
	      u64 device_size, bool read_only);
void vhdx_close(struct vhdx_image *img);
int vhdx_read(struct vhdx_image *img, u64 offset, void *buf, size_t len);
__printf(3, 4)
int vhdx_fail(struct vhdx_image *img, int err, const char *fmt, ...);

/* checksum.c */
u32 vhdx_checksum(const void *buf, size_t len, size_t checksum_offset);
bool vhdx_checksum_ok(const void *buf, size_t len, size_t checksum_offset);
void vhdx_checksum_set(void *buf, size_t len, size_t checksum_offset);

/* guid.c: the GUIDs the format defines. */
extern const guid_t vhdx_guid_bat_region;
extern const guid_t vhdx_guid_metadata_region;
extern const guid_t vhdx_guid_file_parameters;
extern const guid_t vhdx_guid_virtual_disk_size;
extern const guid_t vhdx_guid_virtual_disk_id;
extern const guid_t vhdx_guid_logical_sector_size;
extern const guid_t vhdx_guid_physical_sector_size;
extern const guid_t vhdx_guid_parent_locator;
extern const guid_t vhdx_guid_parent_locator_type;

/* guid.c: GUID_STRING_LEN + 1 bytes, the canonical upper-case form. */
#define VHDX_GUID_STRING_SIZE	37
void vhdx_guid_to_string(const guid_t *guid, char *buf);

/*
 * objects.c: everything that occupies space in the file, for the check that
 * no two objects overlap.  n log n in the number of objects.
 */
enum vhdx_object_kind {
	VHDX_OBJECT_HEADER_SECTION,
	VHDX_OBJECT_LOG,
	VHDX_OBJECT_REGION,		/* index: into img->regions */
	VHDX_OBJECT_PAYLOAD_BLOCK,	/* index: block number */
	VHDX_OBJECT_BITMAP_BLOCK,	/* index: chunk number */
};

struct vhdx_object {
	u64 offset;
	u64 length;
	u64 index;
	enum vhdx_object_kind kind;
};

void vhdx_object_describe(const struct vhdx_image *img,
			  const struct vhdx_object *obj, char *buf, size_t len);
u32 vhdx_objects_add_fixed(const struct vhdx_image *img,
			   struct vhdx_object *objs);
int vhdx_objects_check(struct vhdx_image *img, struct vhdx_object *objs,
		       u64 count);

/*
 * Which MiBs of the file the objects hold, one bit each, while the BAT is
 * checked at open; VHDX_OBJECT_MAP_MAX bounds it to 32 MiB of memory.
 */
#define VHDX_OBJECT_MAP_MAX	(256ULL << 40)

struct vhdx_object_map {
	u8 *bits;
	u64 mibs;
};

bool vhdx_object_holds(const struct vhdx_object *obj, u64 mib);
int vhdx_object_map_init(struct vhdx_image *img, struct vhdx_object_map *map,
			 u64 end);
void vhdx_object_map_free(struct vhdx_object_map *map);
bool vhdx_object_map_test(const struct vhdx_object_map *map, u64 mib);
u64 vhdx_object_map_claim(struct vhdx_object_map *map,
			  const struct vhdx_object *obj);

/* header.c */
int vhdx_file_identifier_check(struct vhdx_image *img, const void *buf);
int vhdx_header_check(const struct vhdx_header *h, const char **why);
int vhdx_header_select(struct vhdx_image *img, const struct vhdx_header *h1,
		       const struct vhdx_header *h2);
int vhdx_header_load(struct vhdx_image *img);
int vhdx_header_update(struct vhdx_image *img, const guid_t *file_write_guid,
		       const guid_t *data_write_guid, const guid_t *log_guid);

/* region.c */
int vhdx_region_table_parse(struct vhdx_image *img, const void *table,
			    unsigned int copy);
int vhdx_region_table_load(struct vhdx_image *img);

/* metadata.c */
int vhdx_metadata_parse(struct vhdx_image *img, const void *region, u64 len);
int vhdx_metadata_load(struct vhdx_image *img);

/* bat.c: geometry, index math and the table itself. */
int vhdx_geometry_init(struct vhdx_geometry *geo, u64 virtual_size,
		       u32 block_size, u32 logical_sector_size,
		       u32 physical_sector_size, bool has_parent);

static inline u64 vhdx_bat_payload_index(const struct vhdx_geometry *geo,
					 u64 block)
{
	return block + (block >> geo->chunk_ratio_shift);
}

static inline u64 vhdx_bat_bitmap_index(const struct vhdx_geometry *geo,
					u64 chunk)
{
	return (chunk << geo->chunk_ratio_shift) + chunk + geo->chunk_ratio;
}

static inline unsigned int vhdx_bat_state(u64 entry)
{
	return entry & VHDX_BAT_STATE_MASK;
}

static inline u64 vhdx_bat_offset(u64 entry)
{
	return entry & VHDX_BAT_OFFSET_MASK;
}

/* Bytes of payload block @block that hold virtual disk data. */
u64 vhdx_block_used_length(const struct vhdx_geometry *geo, u64 block);
int vhdx_bat_check(struct vhdx_image *img);
int vhdx_bat_load(struct vhdx_image *img);

/* overlay.c */
int vhdx_overlay_add(struct vhdx_overlay *ov, u64 offset, u64 length,
		     const void *data);
void vhdx_overlay_apply(const struct vhdx_overlay *ov, u64 offset, void *buf,
			size_t len);
bool vhdx_overlay_covered_by(const struct vhdx_overlay *ov,
			     const struct vhdx_region *allowed, u32 count,
			     u64 *bad_offset);
int vhdx_overlay_write_back(const struct vhdx_overlay *ov,
			    const struct vhdx_io *io);
void vhdx_overlay_free(struct vhdx_overlay *ov);

/* log.c */
struct vhdx_log_sequence {
	u32 tail;			/* ring offset of the first entry */
	u32 head;			/* ring offset of the last entry */
	u64 tail_sequence;
	u64 head_sequence;
	u32 entry_count;
	u64 flushed_file_offset;	/* from the head entry */
	u64 last_file_offset;		/* from the head entry */
};

int vhdx_log_find_active(struct vhdx_image *img, struct vhdx_log_sequence *seq);
int vhdx_log_collect(struct vhdx_image *img,
		     const struct vhdx_log_sequence *seq,
		     struct vhdx_overlay *ov);
int vhdx_log_replay(struct vhdx_image *img);

/* Descriptor sectors of an entry: the header takes two descriptor slots. */
static inline u64 vhdx_log_descriptor_sectors(u64 descriptor_count)
{
	return (descriptor_count + VHDX_LOG_HEADER_DESCRIPTOR_SLOTS +
		VHDX_LOG_DESCRIPTORS_PER_SECTOR - 1) /
	       VHDX_LOG_DESCRIPTORS_PER_SECTOR;
}

/* log_write.c: one 4 KiB sector of metadata to be written through the log. */
struct vhdx_log_update {
	u64 offset;			/* in the file, 4 KiB aligned */
	const void *data;		/* VHDX_LOG_SECTOR_SIZE bytes */
};

u32 vhdx_log_entry_length(u32 update_count);
int vhdx_log_write_entry(struct vhdx_image *img, const guid_t *log_guid,
			 const struct vhdx_log_update *updates, u32 count);
int vhdx_log_write_entry_stable(struct vhdx_image *img,
				const guid_t *log_guid,
				const struct vhdx_log_update *updates,
				u32 count);
void vhdx_log_entry_rebuild(u8 *entry, u32 count);

/*
 * txn.c: changing the image.  A session starts with the first change
 * (new FileWriteGuid, DataWriteGuid and LogGuid in the headers); BAT
 * changes stay in memory until vhdx_commit() writes them through the log;
 * vhdx_checkpoint() then writes them in place, which the next commit does
 * first if the caller did not; vhdx_session_end() commits and empties the
 * log so that any reader can open the image without replaying it.
 */
int vhdx_txn_init(struct vhdx_image *img);
void vhdx_txn_free(struct vhdx_image *img);
int vhdx_session_begin(struct vhdx_image *img);
int vhdx_session_end(struct vhdx_image *img);
void vhdx_bat_update(struct vhdx_image *img, u64 index, u64 entry);
int vhdx_commit(struct vhdx_image *img);
int vhdx_checkpoint(struct vhdx_image *img);

/*
 * BAT sectors and sector bitmap pages the next commit has to log.  The
 * two counts have different writers: the BAT's is the txn caller's, the
 * bitmaps' is under the cache's lock (vhdx_bitmap_set_cached()).
 */
static inline u32 vhdx_txn_dirty_pages(const struct vhdx_image *img)
{
	return READ_ONCE(img->txn.dirty_count) +
	       READ_ONCE(img->bmc.dirty_pages);
}

static inline bool vhdx_txn_dirty(const struct vhdx_image *img)
{
	return vhdx_txn_dirty_pages(img) != 0;
}

/* Whether BAT changes wait for a commit (the bitmaps aside). */
static inline bool vhdx_txn_bat_dirty(const struct vhdx_image *img)
{
	return READ_ONCE(img->txn.dirty_count) != 0;
}

/*
 * A BAT entry as another thread than the BAT's one writer sees it: with
 * whatever vhdx_bat_update() did before publishing it.
 */
static inline u64 vhdx_bat_get(const struct vhdx_image *img, u64 index)
{
	/* Pairs with the release in vhdx_bat_update(). */
	return le64_to_cpu(smp_load_acquire(&img->bat[index]));
}

/*
 * bitmap.c: the sector bitmaps of a differencing image, one bit per
 * logical sector: set, the sector is in this image; clear, in the parent.
 * vhdx_bitmap_lookup() with @load false never blocks and returns -EAGAIN
 * for a page that is not cached; with @load true (and every other
 * function here that may load a page) it may block on a read.
 * vhdx_bitmap_run() is the loading lookup that returns 0 on any error.
 */
int vhdx_bitmaps_load(struct vhdx_image *img);
void vhdx_bitmaps_free(struct vhdx_image *img);
bool vhdx_bitmap_present(const struct vhdx_image *img, u64 chunk);
int vhdx_bitmap_lookup(struct vhdx_image *img, u64 sector, u64 count,
		       bool load, bool *present, u64 *run);
u64 vhdx_bitmap_run(struct vhdx_image *img, u64 sector, u64 count,
		    bool *present);
void vhdx_bitmap_attach(struct vhdx_image *img, u64 chunk);
int vhdx_bitmap_set(struct vhdx_image *img, u64 sector, u64 count);
int vhdx_bitmap_set_nowait(struct vhdx_image *img, u64 sector, u64 count);
bool vhdx_bitmap_set_cached(struct vhdx_image *img, u64 sector, u64 count);
int vhdx_bitmap_read_page(struct vhdx_image *img, u64 chunk, u32 page,
			  u8 *buf);
bool vhdx_bitmap_page_cached(struct vhdx_image *img, u64 chunk, u32 page,
			     bool *dirty);
/* For txn.c. */
u32 vhdx_bitmap_chunk_dirty(struct vhdx_image *img, u64 chunk);
bool vhdx_bitmap_dirty_page(struct vhdx_image *img, u64 chunk, u32 page,
			    const u8 **data);
void vhdx_bitmaps_gathering(struct vhdx_image *img, bool gathering);
void vhdx_bitmaps_logged(struct vhdx_image *img);
void vhdx_bitmaps_checkpointed(struct vhdx_image *img);

/* alloc.c: room for new blocks, where no object of the image lies. */
void vhdx_space_add_gaps(struct vhdx_image *img,
			 const struct vhdx_object_map *map);
int vhdx_space_alloc(struct vhdx_image *img, u64 length, u64 *offset);
void vhdx_space_return(struct vhdx_image *img, u64 offset, u64 length);
void vhdx_space_release(struct vhdx_image *img, u64 offset, u64 length);
bool vhdx_space_released(const struct vhdx_image *img);
void vhdx_space_seal(struct vhdx_image *img);
void vhdx_space_recycle(struct vhdx_image *img);
void vhdx_space_free(struct vhdx_image *img);

#endif /* VHDX_VHDX_H */
