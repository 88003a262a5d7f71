// SPDX-License-Identifier: GPL-2.0
/*
 * Sector bitmaps of differencing images (MS-VHDX 2.5.1.2): one 1 MiB block
 * per chunk, one bit per logical sector, bit 0 of byte 0 first.
 *
 * They are not loaded at open: a 64 TiB child written all over has 16 GiB
 * of them.  Their 4 KiB pages are cached on demand instead, in a cache
 * bounded by img->bmc.budget (vhdx.h): a clean page is dropped, least
 * recently used first, when a new one would exceed it; dirty pages and
 * pages whose commit has not been checkpointed are held until it has.
 * What stays proportional to the image is 8 bytes per chunk.
 *
 * Swap may be writing through the device whose bitmaps these are, so a
 * load never waits for memory: when the allocator has none at once, the
 * page is taken over from the cache's oldest clean page, or from a small
 * reserve set aside at open.
 */
#include "vhdx.h"

#define VHDX_BITMAP_PAGE_COST \
	(VHDX_LOG_SECTOR_SIZE + sizeof(struct vhdx_bitmap_page))
#define VHDX_BITMAP_HASH_MAX_BITS	18

static void vhdx_list_init(struct vhdx_bitmap_page *head)
{
	head->prev = head;
	head->next = head;
}

static bool vhdx_list_empty(const struct vhdx_bitmap_page *head)
{
	return head->next == head;
}

static void vhdx_list_del(struct vhdx_bitmap_page *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	p->prev = p;
	p->next = p;
}

static void vhdx_list_add_tail(struct vhdx_bitmap_page *head,
			       struct vhdx_bitmap_page *p)
{
	p->prev = head->prev;
	p->next = head;
	head->prev->next = p;
	head->prev = p;
}

static struct vhdx_bitmap_page *vhdx_bitmap_page_new(bool wait)
{
	void *(*alloc)(size_t size) = wait ? vhdx_alloc : vhdx_alloc_nowait;
	struct vhdx_bitmap_page *p = alloc(sizeof(*p));

	if (!p)
		return NULL;
	p->bits = alloc(VHDX_LOG_SECTOR_SIZE);
	if (!p->bits) {
		vhdx_free(p);
		return NULL;
	}
	vhdx_list_init(p);
	return p;
}

static void vhdx_bitmap_page_free(struct vhdx_bitmap_page *p)
{
	if (p) {
		vhdx_free(p->bits);
		vhdx_free(p);
	}
}

static void vhdx_bitmap_list_free(struct vhdx_bitmap_page *head)
{
	while (!vhdx_list_empty(head)) {
		struct vhdx_bitmap_page *p = head->next;

		vhdx_list_del(p);
		vhdx_bitmap_page_free(p);
		vhdx_cond_resched();
	}
}

/* A partially present block is read through its chunk's bitmap: it must exist. */
static int vhdx_bitmaps_check_chunk(struct vhdx_image *img, u64 chunk)
{
	const struct vhdx_geometry *geo = &img->geo;
	u64 block = chunk << geo->chunk_ratio_shift;
	u64 end = min_t(u64, block + geo->chunk_ratio, geo->payload_blocks);
	u64 entry;

	for (; block < end; block++) {
		entry = le64_to_cpu(img->bat[vhdx_bat_payload_index(geo, block)]);
		if (vhdx_bat_state(entry) == VHDX_PAYLOAD_PARTIALLY_PRESENT)
			return vhdx_fail(img, -EINVAL,
					 "BAT: payload block %llu is partially present but the sector bitmap block of chunk %llu is not",
					 (unsigned long long)block,
					 (unsigned long long)chunk);
	}
	return 0;
}

/* Enough buckets for the pages the budget allows, bounded. */
static u32 vhdx_bitmap_hash_bits(u64 budget)
{
	u64 pages = budget / VHDX_BITMAP_PAGE_COST;
	u32 bits = 4;

	while (bits < VHDX_BITMAP_HASH_MAX_BITS && (1ULL << bits) < pages)
		bits++;
	return bits;
}

/*
 * At open: the per-chunk index, the hash and the reserve.  No bitmap is
 * read here; only the BAT is checked, so open costs the same whatever the
 * bitmaps hold.
 */
int vhdx_bitmaps_load(struct vhdx_image *img)
{
	const struct vhdx_geometry *geo = &img->geo;
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;
	u64 chunk;
	int ret;

	for (chunk = 0; chunk < geo->bitmap_blocks; chunk++) {
		vhdx_cond_resched();
		/* vhdx_bat_check() allowed only these two states. */
		if (vhdx_bitmap_present(img, chunk))
			continue;
		ret = vhdx_bitmaps_check_chunk(img, chunk);
		if (ret)
			return ret;
	}
	memset(c, 0, sizeof(*c));
	vhdx_lock_init(&c->lock);
	vhdx_list_init(&c->lru);
	vhdx_list_init(&c->held);
	vhdx_list_init(&c->reserve);
	c->budget = img->bitmap_budget ?: VHDX_BITMAP_CACHE_DEFAULT;
	c->hash_bits = vhdx_bitmap_hash_bits(c->budget);
	img->bitmaps = vhdx_alloc(geo->bitmap_blocks * sizeof(*img->bitmaps));
	c->hash = vhdx_alloc(sizeof(*c->hash) << c->hash_bits);
	if (!img->bitmaps || !c->hash)
		goto nomem;
	for (; c->reserved < VHDX_BITMAP_RESERVE; c->reserved++) {
		p = vhdx_bitmap_page_new(true);
		if (!p)
			goto nomem;
		vhdx_list_add_tail(&c->reserve, p);
	}
	return 0;
nomem:
	vhdx_bitmaps_free(img);
	return vhdx_fail(img, -ENOMEM,
			 "sector bitmaps: out of memory for %llu chunks",
			 (unsigned long long)geo->bitmap_blocks);
}

/* No one else may use the image any more. */
void vhdx_bitmaps_free(struct vhdx_image *img)
{
	struct vhdx_bitmap_cache *c = &img->bmc;

	if (!img->bitmaps && !c->hash)
		return;
	/* Every page is on exactly one of these lists. */
	vhdx_bitmap_list_free(&c->lru);
	vhdx_bitmap_list_free(&c->held);
	vhdx_bitmap_list_free(&c->reserve);
	c->reserved = 0;
	c->used = 0;
	vhdx_free(c->hash);
	c->hash = NULL;
	vhdx_free(img->bitmaps);
	img->bitmaps = NULL;
}

bool vhdx_bitmap_present(const struct vhdx_image *img, u64 chunk)
{
	u64 entry = vhdx_bat_get(img, vhdx_bat_bitmap_index(&img->geo, chunk));

	return vhdx_bat_state(entry) == VHDX_BITMAP_PRESENT;
}

static struct vhdx_bitmap_page **vhdx_bitmap_bucket(struct vhdx_bitmap_cache *c,
						    u64 chunk, u32 page)
{
	u64 key = chunk * VHDX_BITMAP_PAGES + page;

	/* Fibonacci hashing: the top bits of the product mix every key bit. */
	return &c->hash[(key * 0x9e3779b97f4a7c15ULL) >> (64 - c->hash_bits)];
}

/* Under the lock. */
static struct vhdx_bitmap_page *vhdx_bitmap_find(struct vhdx_image *img,
						 u64 chunk, u32 page)
{
	struct vhdx_bitmap_page *p = *vhdx_bitmap_bucket(&img->bmc, chunk,
							 page);

	while (p && (p->chunk != chunk || p->index != page))
		p = p->hash_next;
	return p;
}

/* Under the lock: @p, clean and cached, leaves the cache. */
static void vhdx_bitmap_uncache(struct vhdx_image *img,
				struct vhdx_bitmap_page *p)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page **link = vhdx_bitmap_bucket(c, p->chunk,
							    p->index);

	while (*link != p)
		link = &(*link)->hash_next;
	*link = p->hash_next;
	p->hash_next = NULL;
	vhdx_list_del(p);
	/* Its bits may have been set and written since the attach. */
	img->bitmaps[p->chunk].zero = false;
	c->used -= VHDX_BITMAP_PAGE_COST;
	c->evictions++;
}

/* Under the lock: @p, not cached, refills the reserve if it is short. */
static bool vhdx_bitmap_reserve_add(struct vhdx_bitmap_cache *c,
				    struct vhdx_bitmap_page *p)
{
	if (c->reserved >= VHDX_BITMAP_RESERVE)
		return false;
	vhdx_list_add_tail(&c->reserve, p);
	c->reserved++;
	return true;
}

/*
 * Under the lock: drops clean pages, oldest first, until the cache fits
 * its budget again, never @keep.  They refill the reserve first; the rest
 * go to @dropped, to be freed once the lock is released.
 */
static void vhdx_bitmap_shrink(struct vhdx_image *img,
			       struct vhdx_bitmap_page *keep,
			       struct vhdx_bitmap_page *dropped)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p = c->lru.next;

	while (c->used > c->budget && p != &c->lru) {
		struct vhdx_bitmap_page *next = p->next;

		if (p != keep) {
			vhdx_bitmap_uncache(img, p);
			if (!vhdx_bitmap_reserve_add(c, p))
				vhdx_list_add_tail(dropped, p);
		}
		p = next;
	}
}

/* Under the lock: the oldest clean page leaves the cache for a load. */
static struct vhdx_bitmap_page *vhdx_bitmap_steal(struct vhdx_image *img)
{
	struct vhdx_bitmap_page *p = img->bmc.lru.next;

	if (p == &img->bmc.lru)
		return NULL;
	vhdx_bitmap_uncache(img, p);
	return p;
}

/*
 * Memory for a page to load.  A full cache gives up its oldest clean
 * page, as the load would drop it anyway.  Otherwise the allocator, if it
 * has memory at once; else the oldest clean page; else the reserve.  Only
 * when all of these fail (every cached page waits for its checkpoint and
 * the reserve is in use) does it wait for the allocator, and only if
 * @wait: the thread that commits must not, as only its commit and
 * checkpoint can let those pages go.
 */
static struct vhdx_bitmap_page *vhdx_bitmap_page_take(struct vhdx_image *img,
						      bool wait)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p = NULL;
	unsigned long flags;

	vhdx_lock(&c->lock, flags);
	if (c->used + VHDX_BITMAP_PAGE_COST > c->budget)
		p = vhdx_bitmap_steal(img);
	vhdx_unlock(&c->lock, flags);
	if (!p && !c->alloc_fails)
		p = vhdx_bitmap_page_new(false);
	if (p)
		return p;
	vhdx_lock(&c->lock, flags);
	p = vhdx_bitmap_steal(img);
	if (!p && c->reserved) {
		p = c->reserve.next;
		vhdx_list_del(p);
		c->reserved--;
	}
	if (p)
		c->taken++;
	vhdx_unlock(&c->lock, flags);
	if (!p && wait)
		p = vhdx_bitmap_page_new(true);
	return p;
}

/* A page that was not cached after all: back to the reserve, or freed. */
static void vhdx_bitmap_page_put(struct vhdx_image *img,
				 struct vhdx_bitmap_page *p)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	unsigned long flags;

	vhdx_lock(&c->lock, flags);
	if (vhdx_bitmap_reserve_add(c, p))
		p = NULL;
	vhdx_unlock(&c->lock, flags);
	vhdx_bitmap_page_free(p);
}

/*
 * Brings page @page of @chunk into the cache, unless it is there already;
 * may block on the read.  Until it is inserted nobody sees it, so no
 * reader ever sees a half-read page.
 */
static int vhdx_bitmap_load(struct vhdx_image *img, u64 chunk, u32 page,
			    bool wait)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p, dropped, **bucket;
	unsigned long flags;
	u64 entry, gen;
	bool zero;
	int ret = 0;

	vhdx_list_init(&dropped);
	/* Another thread may have loaded it: then no page need be taken. */
	vhdx_lock(&c->lock, flags);
	p = vhdx_bitmap_find(img, chunk, page);
	vhdx_unlock(&c->lock, flags);
	if (p)
		return 0;
	p = vhdx_bitmap_page_take(img, wait);
	if (!p)
		return vhdx_fail(img, -ENOMEM,
				 "sector bitmap of chunk %llu: out of memory",
				 (unsigned long long)chunk);
	for (;;) {
		vhdx_lock(&c->lock, flags);
		if (vhdx_bitmap_find(img, chunk, page)) {
			vhdx_unlock(&c->lock, flags);
			break;
		}
		zero = img->bitmaps[chunk].zero;
		gen = c->gen;
		vhdx_unlock(&c->lock, flags);

		/* Without a bitmap block every sector is in the parent. */
		entry = vhdx_bat_get(img, vhdx_bat_bitmap_index(&img->geo, chunk));
		if (zero || vhdx_bat_state(entry) != VHDX_BITMAP_PRESENT) {
			memset(p->bits, 0, VHDX_LOG_SECTOR_SIZE);
		} else {
			/* The offset was checked to lie inside the device. */
			ret = vhdx_read(img, vhdx_bat_offset(entry) +
					(u64)page * VHDX_LOG_SECTOR_SIZE,
					p->bits, VHDX_LOG_SECTOR_SIZE);
			if (ret) {
				ret = vhdx_fail(img, ret,
						"sector bitmap of chunk %llu, page %u: read error %d",
						(unsigned long long)chunk,
						page, ret);
				break;
			}
		}

		vhdx_lock(&c->lock, flags);
		/* A page written in place meanwhile may have been read stale. */
		if (c->gen != gen) {
			vhdx_unlock(&c->lock, flags);
			continue;
		}
		if (!vhdx_bitmap_find(img, chunk, page)) {
			p->chunk = chunk;
			p->index = page;
			p->dirty = false;
			p->held = false;
			bucket = vhdx_bitmap_bucket(c, chunk, page);
			p->hash_next = *bucket;
			*bucket = p;
			vhdx_list_add_tail(&c->lru, p);
			c->used += VHDX_BITMAP_PAGE_COST;
			c->loads++;
			vhdx_bitmap_shrink(img, p, &dropped);
			p = NULL;
		}
		vhdx_unlock(&c->lock, flags);
		break;
	}
	if (p)
		vhdx_bitmap_page_put(img, p);
	vhdx_bitmap_list_free(&dropped);
	return ret;
}

static bool vhdx_bit(const u8 *bits, u32 i)
{
	return bits[i / 8] & (1U << (i % 8));
}

/*
 * How many bits of @bits from @i (at most up to @end) equal the first,
 * which is returned in @present.  Whole bytes of equal bits are skipped
 * at once.
 */
static u32 vhdx_page_run(const u8 *bits, u32 i, u32 end, bool *present)
{
	u32 start = i;
	u8 same;

	*present = vhdx_bit(bits, i);
	same = *present ? 0xff : 0;
	while (i < end) {
		if (!(i % 8) && end - i >= 8 && bits[i / 8] == same) {
			i += 8;
			continue;
		}
		if (vhdx_bit(bits, i) != *present)
			break;
		i++;
	}
	return i - start;
}

/*
 * How many of @count (> 0) logical sectors from @sector share the bit of
 * the first (returned in @present), in @run; never past the end of the
 * chunk, nor, where the page is read, past the end of its 4 KiB page
 * (32768 sectors).
 * Returns 0, -EAGAIN if the page is not cached and @load is false, or the
 * error that loading it met.
 */
int vhdx_bitmap_lookup(struct vhdx_image *img, u64 sector, u64 count,
		       bool load, bool *present, u64 *run)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	u64 chunk = sector / VHDX_SECTORS_PER_CHUNK;
	u32 i = (u32)(sector % VHDX_SECTORS_PER_CHUNK);
	u32 page = i / VHDX_BITMAP_PAGE_BITS, in_page = i % VHDX_BITMAP_PAGE_BITS;
	u32 end = (u32)min_t(u64, VHDX_BITMAP_PAGE_BITS, in_page + count);
	struct vhdx_bitmap_page *p;
	unsigned long flags;
	int ret;

	/* Only a differencing image has sector bitmaps. */
	if (!img->bitmaps)
		return -EINVAL;
	for (;;) {
		vhdx_lock(&c->lock, flags);
		p = vhdx_bitmap_find(img, chunk, page);
		if (p) {
			*run = vhdx_page_run(p->bits, in_page, end, present);
			c->hits++;
			if (!p->held) {
				vhdx_list_del(p);
				vhdx_list_add_tail(&c->lru, p);
			}
			vhdx_unlock(&c->lock, flags);
			return 0;
		}
		vhdx_unlock(&c->lock, flags);
		/* Without a bitmap block, the whole chunk is in the parent. */
		if (!vhdx_bitmap_present(img, chunk)) {
			*present = false;
			*run = min_t(u64, VHDX_SECTORS_PER_CHUNK - i, count);
			return 0;
		}
		if (!load)
			return -EAGAIN;
		ret = vhdx_bitmap_load(img, chunk, page, true);
		if (ret)
			return ret;
	}
}

u64 vhdx_bitmap_run(struct vhdx_image *img, u64 sector, u64 count,
		    bool *present)
{
	u64 run;

	if (!count || vhdx_bitmap_lookup(img, sector, count, true, present, &run))
		return 0;
	return run;
}

/*
 * For a chunk whose bitmap block was just allocated and zeroed: its pages
 * need no read until one of them has been dropped.  Must come before the
 * BAT entry that makes the block present.
 */
void vhdx_bitmap_attach(struct vhdx_image *img, u64 chunk)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	unsigned long flags;

	vhdx_lock(&c->lock, flags);
	/* Pages cached before were zeros: there was no bitmap block. */
	img->bitmaps[chunk].zero = true;
	vhdx_unlock(&c->lock, flags);
}

/* Sets bits @i to @end - 1 of @bits; whether any was clear. */
static bool vhdx_bits_set(u8 *bits, u32 i, u32 end)
{
	bool changed = false;
	u32 bytes;

	for (; i < end && i % 8; i++) {
		changed |= !vhdx_bit(bits, i);
		bits[i / 8] |= 1U << (i % 8);
	}
	/* Whole bytes at once: end_io calls this with interrupts off. */
	bytes = (end - i) / 8;
	if (bytes && memchr_inv(bits + i / 8, 0xff, bytes)) {
		memset(bits + i / 8, 0xff, bytes);
		changed = true;
	}
	for (i += bytes * 8; i < end; i++) {
		changed |= !vhdx_bit(bits, i);
		bits[i / 8] |= 1U << (i % 8);
	}
	return changed;
}

/* Under the lock: bits @in_page to @in_page + @n - 1 of @p are set. */
static void vhdx_bitmap_page_set(struct vhdx_image *img,
				 struct vhdx_bitmap_page *p, u32 in_page, u32 n)
{
	struct vhdx_bitmap_cache *c = &img->bmc;

	if (vhdx_bits_set(p->bits, in_page, in_page + n) && !p->dirty) {
		p->dirty = true;
		img->bitmaps[p->chunk].dirty++;
		WRITE_ONCE(c->dirty_pages, c->dirty_pages + 1);
	}
	if (p->dirty && !p->held) {
		p->held = true;
		vhdx_list_del(p);
		vhdx_list_add_tail(&c->held, p);
	}
}

static int vhdx_bitmap_set_loading(struct vhdx_image *img, u64 sector,
				   u64 count, bool wait)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	u64 chunk = sector / VHDX_SECTORS_PER_CHUNK;
	u32 i = (u32)(sector % VHDX_SECTORS_PER_CHUNK);
	struct vhdx_bitmap_page *p;
	unsigned long flags;
	u32 page, in_page, n;
	int ret;

	if (!img->bitmaps)
		return -EINVAL;
	while (count) {
		page = i / VHDX_BITMAP_PAGE_BITS;
		in_page = i % VHDX_BITMAP_PAGE_BITS;
		n = (u32)min_t(u64, VHDX_BITMAP_PAGE_BITS - in_page, count);
		vhdx_lock(&c->lock, flags);
		p = vhdx_bitmap_find(img, chunk, page);
		if (!p) {
			vhdx_unlock(&c->lock, flags);
			ret = vhdx_bitmap_load(img, chunk, page, wait);
			if (ret)
				return ret;
			continue;
		}
		vhdx_bitmap_page_set(img, p, in_page, n);
		vhdx_unlock(&c->lock, flags);
		i += n;
		count -= n;
	}
	return 0;
}

/*
 * Marks @count logical sectors from @sector as present in this image, for
 * the next commit; loads the pages it needs.  The range must lie in one
 * payload block, and so in one chunk.  Only the thread that commits may
 * call these.  The _nowait one returns -ENOMEM where a page would have to
 * wait for memory: a commit and checkpoint may free some (see
 * vhdx_bitmap_page_take()).
 */
int vhdx_bitmap_set(struct vhdx_image *img, u64 sector, u64 count)
{
	return vhdx_bitmap_set_loading(img, sector, count, true);
}

int vhdx_bitmap_set_nowait(struct vhdx_image *img, u64 sector, u64 count)
{
	return vhdx_bitmap_set_loading(img, sector, count, false);
}

/*
 * vhdx_bitmap_set() for any thread, in any context, without blocking: it
 * does nothing and returns false if a page it needs is not cached, or if
 * a commit is reading the dirty pages (a bit set then could be cleared as
 * logged without having been).  The range lies in one payload block.
 */
bool vhdx_bitmap_set_cached(struct vhdx_image *img, u64 sector, u64 count)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	u64 chunk = sector / VHDX_SECTORS_PER_CHUNK;
	u32 first = (u32)(sector % VHDX_SECTORS_PER_CHUNK);
	u32 last = first + (u32)count - 1;
	u32 page, in_page, n;
	unsigned long flags;
	bool done = true;

	if (!img->bitmaps || !count)
		return false;
	vhdx_lock(&c->lock, flags);
	for (page = first / VHDX_BITMAP_PAGE_BITS;
	     done && page <= last / VHDX_BITMAP_PAGE_BITS; page++)
		done = vhdx_bitmap_find(img, chunk, page);
	done = done && !c->gathering;
	if (done) {
		for (page = first / VHDX_BITMAP_PAGE_BITS;
		     page <= last / VHDX_BITMAP_PAGE_BITS; page++) {
			in_page = page == first / VHDX_BITMAP_PAGE_BITS ?
				  first % VHDX_BITMAP_PAGE_BITS : 0;
			n = min_t(u32, VHDX_BITMAP_PAGE_BITS,
				  last - page * VHDX_BITMAP_PAGE_BITS + 1) -
			    in_page;
			vhdx_bitmap_page_set(img,
					     vhdx_bitmap_find(img, chunk, page),
					     in_page, n);
		}
	}
	vhdx_unlock(&c->lock, flags);
	return done;
}

/* A copy of one page of @chunk's bitmap, through the cache. */
int vhdx_bitmap_read_page(struct vhdx_image *img, u64 chunk, u32 page,
			  u8 *buf)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;
	unsigned long flags;
	int ret;

	if (!img->bitmaps)
		return -EINVAL;
	for (;;) {
		vhdx_lock(&c->lock, flags);
		p = vhdx_bitmap_find(img, chunk, page);
		if (p) {
			memcpy(buf, p->bits, VHDX_LOG_SECTOR_SIZE);
			vhdx_unlock(&c->lock, flags);
			return 0;
		}
		vhdx_unlock(&c->lock, flags);
		if (!vhdx_bitmap_present(img, chunk)) {
			memset(buf, 0, VHDX_LOG_SECTOR_SIZE);
			return 0;
		}
		ret = vhdx_bitmap_load(img, chunk, page, true);
		if (ret)
			return ret;
	}
}

/* Whether the page is cached now, and if so whether it is dirty. */
bool vhdx_bitmap_page_cached(struct vhdx_image *img, u64 chunk, u32 page,
			     bool *dirty)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;
	unsigned long flags;

	vhdx_lock(&c->lock, flags);
	p = vhdx_bitmap_find(img, chunk, page);
	*dirty = p && p->dirty;
	vhdx_unlock(&c->lock, flags);
	return p;
}

/* Dirty pages of @chunk, for the commit to skip clean chunks. */
u32 vhdx_bitmap_chunk_dirty(struct vhdx_image *img, u64 chunk)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	unsigned long flags;
	u32 dirty;

	vhdx_lock(&c->lock, flags);
	dirty = img->bitmaps[chunk].dirty;
	vhdx_unlock(&c->lock, flags);
	return dirty;
}

/*
 * The bits of a dirty page, for the commit: a held page stays where it is
 * until vhdx_bitmaps_checkpointed(), and while the commit gathers only its
 * own thread changes bits (vhdx_bitmap_set_cached() stays away), so they
 * can be read after the lock is dropped.
 */
bool vhdx_bitmap_dirty_page(struct vhdx_image *img, u64 chunk, u32 page,
			    const u8 **data)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;
	unsigned long flags;

	vhdx_lock(&c->lock, flags);
	p = vhdx_bitmap_find(img, chunk, page);
	if (p && p->dirty)
		*data = p->bits;
	else
		p = NULL;
	vhdx_unlock(&c->lock, flags);
	return p;
}

/*
 * A commit starts (true) or fails (false) reading the dirty pages:
 * meanwhile vhdx_bitmap_set_cached() leaves them alone.
 */
void vhdx_bitmaps_gathering(struct vhdx_image *img, bool gathering)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	unsigned long flags;

	if (!img->bitmaps)
		return;
	vhdx_lock(&c->lock, flags);
	c->gathering = gathering;
	vhdx_unlock(&c->lock, flags);
}

/* The commit logged every dirty page: they wait for their checkpoint. */
void vhdx_bitmaps_logged(struct vhdx_image *img)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;
	unsigned long flags;

	if (!img->bitmaps)
		return;
	vhdx_lock(&c->lock, flags);
	for (p = c->held.next; p != &c->held; p = p->next) {
		if (p->dirty) {
			p->dirty = false;
			img->bitmaps[p->chunk].dirty--;
		}
	}
	WRITE_ONCE(c->dirty_pages, 0);
	c->gathering = false;
	vhdx_unlock(&c->lock, flags);
}

/* Tops the reserve up again where memory is free at once. */
static void vhdx_bitmap_reserve_refill(struct vhdx_image *img)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p;

	while (READ_ONCE(c->reserved) < VHDX_BITMAP_RESERVE && !c->alloc_fails) {
		p = vhdx_bitmap_page_new(false);
		if (!p)
			return;
		vhdx_bitmap_page_put(img, p);
	}
}

/*
 * Every logged page is written in place: those not changed since may be
 * dropped again, and a load that read before the write must read again.
 */
void vhdx_bitmaps_checkpointed(struct vhdx_image *img)
{
	struct vhdx_bitmap_cache *c = &img->bmc;
	struct vhdx_bitmap_page *p, *next, dropped;
	unsigned long flags;

	if (!img->bitmaps)
		return;
	vhdx_list_init(&dropped);
	vhdx_lock(&c->lock, flags);
	for (p = c->held.next; p != &c->held; p = next) {
		next = p->next;
		if (p->dirty)
			continue;
		p->held = false;
		vhdx_list_del(p);
		vhdx_list_add_tail(&c->lru, p);
	}
	c->gen++;
	vhdx_bitmap_shrink(img, NULL, &dropped);
	vhdx_unlock(&c->lock, flags);
	vhdx_bitmap_list_free(&dropped);
	vhdx_bitmap_reserve_refill(img);
}
