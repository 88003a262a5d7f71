// SPDX-License-Identifier: GPL-2.0
/*
 * Block geometry and the block allocation table.  The BAT interleaves one
 * sector bitmap entry after every chunk_ratio payload entries, the same way
 * in fixed, dynamic and differencing images.
 */
#include "vhdx.h"

static unsigned int vhdx_log2(u64 v)
{
	unsigned int shift = 0;

	while (v >>= 1)
		shift++;
	return shift;
}

static bool vhdx_is_power_of_2(u64 v)
{
	return v && !(v & (v - 1));
}

int vhdx_geometry_init(struct vhdx_geometry *geo, u64 virtual_size,
		       u32 block_size, u32 logical_sector_size,
		       u32 physical_sector_size, bool has_parent)
{
	u64 p;

	memset(geo, 0, sizeof(*geo));
	if (!vhdx_is_power_of_2(block_size) ||
	    block_size < VHDX_BLOCK_SIZE_MIN || block_size > VHDX_BLOCK_SIZE_MAX)
		return -EINVAL;
	if (logical_sector_size != 512 && logical_sector_size != 4096)
		return -EINVAL;
	if (physical_sector_size != 512 && physical_sector_size != 4096)
		return -EINVAL;
	if (!virtual_size || virtual_size > VHDX_VIRTUAL_SIZE_MAX ||
	    virtual_size % logical_sector_size)
		return -EINVAL;

	geo->virtual_size = virtual_size;
	geo->block_size = block_size;
	geo->logical_sector_size = logical_sector_size;
	geo->physical_sector_size = physical_sector_size;
	geo->has_parent = has_parent;
	geo->block_shift = vhdx_log2(block_size);
	geo->chunk_ratio = (VHDX_SECTORS_PER_CHUNK * logical_sector_size) >>
			   geo->block_shift;
	geo->chunk_ratio_shift = vhdx_log2(geo->chunk_ratio);

	p = (virtual_size + block_size - 1) >> geo->block_shift;
	geo->payload_blocks = p;
	geo->bitmap_blocks = (p + geo->chunk_ratio - 1) >>
			     geo->chunk_ratio_shift;
	if (has_parent)
		geo->bat_entries = geo->bitmap_blocks * (geo->chunk_ratio + 1);
	else
		geo->bat_entries = p + ((p - 1) >> geo->chunk_ratio_shift);
	return 0;
}

u64 vhdx_block_used_length(const struct vhdx_geometry *geo, u64 block)
{
	u64 start = block << geo->block_shift;

	if (start >= geo->virtual_size)
		return 0;
	return min_t(u64, geo->block_size, geo->virtual_size - start);
}

/*
 * Walks the BAT in order, tracking which block or chunk each entry
 * describes without a 64-bit division per entry.
 */
struct vhdx_bat_cursor {
	u64 index;
	u64 block;		/* payload block, when !bitmap */
	u64 chunk;
	u32 in_chunk;
	bool bitmap;
};

static void vhdx_bat_cursor_next(const struct vhdx_geometry *geo,
				 struct vhdx_bat_cursor *c)
{
	c->index++;
	if (c->bitmap) {
		c->bitmap = false;
		c->chunk++;
		c->in_chunk = 0;
		return;
	}
	c->block++;
	if (++c->in_chunk == geo->chunk_ratio)
		c->bitmap = true;
}

/* Returns the object an entry owns in the file, or length 0 for none. */
static int vhdx_bat_entry_object(struct vhdx_image *img,
				 const struct vhdx_bat_cursor *c,
				 struct vhdx_object *obj)
{
	u64 entry = le64_to_cpu(img->bat[c->index]);
	unsigned int state = vhdx_bat_state(entry);

	obj->offset = vhdx_bat_offset(entry);
	obj->length = 0;
	if (c->bitmap) {
		obj->kind = VHDX_OBJECT_BITMAP_BLOCK;
		obj->index = c->chunk;
		if (state == VHDX_BITMAP_NOT_PRESENT)
			return 0;
		if (state != VHDX_BITMAP_PRESENT)
			return vhdx_fail(img, -EINVAL,
					 "BAT entry %llu: sector bitmap block %llu has reserved state %u",
					 (unsigned long long)c->index,
					 (unsigned long long)c->chunk, state);
		if (!img->geo.has_parent)
			return vhdx_fail(img, -EINVAL,
					 "BAT entry %llu: sector bitmap block %llu is present in an image without a parent",
					 (unsigned long long)c->index,
					 (unsigned long long)c->chunk);
		obj->length = VHDX_BITMAP_BLOCK_SIZE;
		return 0;
	}
	obj->kind = VHDX_OBJECT_PAYLOAD_BLOCK;
	obj->index = c->block;
	switch (state) {
	case VHDX_PAYLOAD_NOT_PRESENT:
	case VHDX_PAYLOAD_UNDEFINED:
	case VHDX_PAYLOAD_ZERO:
	case VHDX_PAYLOAD_UNMAPPED:
	case VHDX_PAYLOAD_UNMAPPED_V095:
		return 0;
	case VHDX_PAYLOAD_FULLY_PRESENT:
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		obj->length = vhdx_block_used_length(&img->geo, c->block);
		if (obj->length)
			return 0;
		return vhdx_fail(img, -EINVAL,
				 "BAT entry %llu: payload block %llu lies beyond the virtual disk but has state %u",
				 (unsigned long long)c->index,
				 (unsigned long long)c->block, state);
	default:
		return vhdx_fail(img, -EINVAL,
				 "BAT entry %llu: payload block %llu has reserved state %u",
				 (unsigned long long)c->index,
				 (unsigned long long)c->block, state);
	}
}

/* The description names the BAT entry. */
static int vhdx_bat_object_inside(struct vhdx_image *img,
				  const struct vhdx_object *obj)
{
	char what[64];

	if (obj->offset <= img->device_size &&
	    obj->length <= img->device_size - obj->offset)
		return 0;
	vhdx_object_describe(img, obj, what, sizeof(what));
	return vhdx_fail(img, -EINVAL,
			 "BAT: %s at %llu, length %llu, ends beyond the device (%llu bytes)",
			 what,
			 (unsigned long long)obj->offset,
			 (unsigned long long)obj->length,
			 (unsigned long long)img->device_size);
}

/* Whether the loops over the BAT should let others run. */
static bool vhdx_bat_resched_point(u64 index)
{
	return !(index % 65536);
}

/*
 * Checks every entry's state and that its block lies inside the device;
 * counts the payload blocks that own data and finds the end of the last
 * object.
 */
static int vhdx_bat_check_entries(struct vhdx_image *img, u64 *end)
{
	struct vhdx_bat_cursor c = { 0 };
	struct vhdx_object obj;
	u64 payload = 0;
	int ret;

	for (; c.index < img->geo.bat_entries;
	     vhdx_bat_cursor_next(&img->geo, &c)) {
		if (vhdx_bat_resched_point(c.index))
			vhdx_cond_resched();
		ret = vhdx_bat_entry_object(img, &c, &obj);
		if (!ret && obj.length)
			ret = vhdx_bat_object_inside(img, &obj);
		if (ret)
			return ret;
		if (!obj.length)
			continue;
		payload += obj.kind == VHDX_OBJECT_PAYLOAD_BLOCK;
		*end = max_t(u64, *end, obj.offset + obj.length);
	}
	img->allocated_blocks = payload;
	return 0;
}

/*
 * Which object other than @claimer, a block at BAT entry @claimer_index,
 * holds MiB @mib: a fixed one or a block of an earlier entry.  Only
 * called to name the culprit of an overlap, so a second pass is fine.
 */
static void vhdx_bat_find_holder(struct vhdx_image *img,
				 const struct vhdx_object *fixed, u32 nfixed,
				 u64 claimer_index, u64 mib,
				 struct vhdx_object *holder)
{
	struct vhdx_bat_cursor c = { 0 };
	u32 i;

	for (i = 0; i < nfixed; i++) {
		if (vhdx_object_holds(&fixed[i], mib)) {
			*holder = fixed[i];
			return;
		}
	}
	for (; c.index < claimer_index; vhdx_bat_cursor_next(&img->geo, &c)) {
		if (vhdx_bat_resched_point(c.index))
			vhdx_cond_resched();
		vhdx_bat_entry_object(img, &c, holder);
		if (vhdx_object_holds(holder, mib))
			return;
	}
	memset(holder, 0, sizeof(*holder));	/* not reached */
}

static int vhdx_bat_overlap(struct vhdx_image *img,
			    const struct vhdx_object *a,
			    const struct vhdx_object *b)
{
	const struct vhdx_object *lo = a->offset < b->offset ? a : b;
	const struct vhdx_object *hi = lo == a ? b : a;
	char first[64], second[64];

	vhdx_object_describe(img, lo, first, sizeof(first));
	vhdx_object_describe(img, hi, second, sizeof(second));
	return vhdx_fail(img, -EINVAL, "BAT: %s at %llu overlaps %s at %llu",
			 second, (unsigned long long)hi->offset,
			 first, (unsigned long long)lo->offset);
}

/*
 * Marks the fixed objects, which the region table check found disjoint,
 * then every block, each of which must find its MiBs free.
 */
static int vhdx_bat_claim_all(struct vhdx_image *img,
			      struct vhdx_object_map *map,
			      const struct vhdx_object *fixed, u32 nfixed)
{
	struct vhdx_bat_cursor c = { 0 };
	struct vhdx_object obj, holder;
	u64 mib;
	u32 i;

	for (i = 0; i < nfixed; i++)
		vhdx_object_map_claim(map, &fixed[i]);
	for (; c.index < img->geo.bat_entries;
	     vhdx_bat_cursor_next(&img->geo, &c)) {
		if (vhdx_bat_resched_point(c.index))
			vhdx_cond_resched();
		vhdx_bat_entry_object(img, &c, &obj);
		if (!obj.length)
			continue;
		mib = vhdx_object_map_claim(map, &obj);
		if (mib == U64_MAX)
			continue;
		vhdx_bat_find_holder(img, fixed, nfixed, c.index, mib, &holder);
		return vhdx_bat_overlap(img, &obj, &holder);
	}
	return 0;
}

/*
 * Checks every entry and that no allocated block lies outside the device or
 * overlaps another object; finds the free space between the objects.
 */
int vhdx_bat_check(struct vhdx_image *img)
{
	struct vhdx_object_map map = { 0 };
	struct vhdx_object *fixed;
	u64 end = VHDX_HEADER_SECTION_SIZE;
	u32 nfixed, i;
	int ret;

	fixed = vhdx_alloc((img->region_count + 2) * sizeof(*fixed));
	if (!fixed)
		return vhdx_fail(img, -ENOMEM, "BAT: out of memory");
	nfixed = vhdx_objects_add_fixed(img, fixed);
	for (i = 0; i < nfixed; i++)
		end = max_t(u64, end, fixed[i].offset + fixed[i].length);
	ret = vhdx_bat_check_entries(img, &end);
	if (!ret)
		ret = vhdx_object_map_init(img, &map, end);
	if (!ret)
		ret = vhdx_bat_claim_all(img, &map, fixed, nfixed);
	if (!ret) {
		img->data_end = map.mibs * VHDX_OBJECT_ALIGN;
		vhdx_space_add_gaps(img, &map);
	}
	vhdx_object_map_free(&map);
	vhdx_free(fixed);
	return ret;
}

int vhdx_bat_load(struct vhdx_image *img)
{
	const struct vhdx_region *r = img->bat_region;
	u64 need = img->geo.bat_entries * sizeof(__le64);
	u64 len = (need + VHDX_IO_ALIGN - 1) & ~(VHDX_IO_ALIGN - 1);
	int ret;

	if (need > r->length)
		return vhdx_fail(img, -EINVAL,
				 "BAT: region of %llu bytes is too small for the %llu entries of this geometry",
				 (unsigned long long)r->length,
				 (unsigned long long)img->geo.bat_entries);
	img->bat = vhdx_alloc(len);
	if (!img->bat)
		return vhdx_fail(img, -ENOMEM,
				 "BAT: out of memory for %llu bytes",
				 (unsigned long long)len);
	ret = vhdx_read(img, r->offset, img->bat, len);
	if (ret)
		return vhdx_fail(img, ret, "BAT: read error %d", ret);
	return vhdx_bat_check(img);
}
