// SPDX-License-Identifier: GPL-2.0
/*
 * The file type identifier and the two headers: validation, the choice of
 * the current header, and the spec's two-step header update.
 */
#include "vhdx.h"

static const u64 vhdx_header_offsets[2] = {
	VHDX_HEADER1_OFFSET, VHDX_HEADER2_OFFSET,
};

int vhdx_file_identifier_check(struct vhdx_image *img, const void *buf)
{
	const struct vhdx_file_identifier *id = buf;

	if (memcmp(id->signature, VHDX_SIGNATURE_FILE, sizeof(id->signature)))
		return vhdx_fail(img, -EINVAL,
				 "file identifier: signature is not \"vhdxfile\": not a VHDX image");
	return 0;
}

int vhdx_header_check(const struct vhdx_header *h, const char **why)
{
	if (memcmp(h->signature, VHDX_SIGNATURE_HEADER, sizeof(h->signature)))
		*why = "signature is not \"head\"";
	else if (!vhdx_checksum_ok(h, sizeof(*h),
				   offsetof(struct vhdx_header, checksum)))
		*why = "checksum mismatch";
	else if (le16_to_cpu(h->version) != VHDX_HEADER_VERSION)
		*why = "version is not 1";
	else if (le16_to_cpu(h->log_version) != VHDX_LOG_VERSION)
		*why = "log version is not 0";
	else
		return 0;
	return -EINVAL;
}

/*
 * The spec calls two valid headers with equal sequence numbers corrupt, but
 * Disk2VHD writes two identical ones; like QEMU, accept that case.
 */
int vhdx_header_select(struct vhdx_image *img, const struct vhdx_header *h1,
		       const struct vhdx_header *h2)
{
	const char *why1 = NULL, *why2 = NULL;
	bool valid1 = !vhdx_header_check(h1, &why1);
	bool valid2 = !vhdx_header_check(h2, &why2);
	unsigned int slot;

	if (!valid1 && !valid2)
		return vhdx_fail(img, -EINVAL,
				 "headers: no valid header: header 1: %s; header 2: %s",
				 why1, why2);
	if (valid1 && valid2) {
		u64 seq1 = le64_to_cpu(h1->sequence_number);
		u64 seq2 = le64_to_cpu(h2->sequence_number);

		if (seq1 == seq2 && memcmp(h1, h2, sizeof(*h1)))
			return vhdx_fail(img, -EINVAL,
					 "headers: both valid with sequence number %llu but different contents",
					 (unsigned long long)seq1);
		slot = seq2 > seq1;
	} else {
		slot = valid2;
	}
	img->header = slot ? *h2 : *h1;
	img->header_slot = slot;
	return 0;
}

static int vhdx_header_check_log(struct vhdx_image *img)
{
	const struct vhdx_header *h = &img->header;
	u64 offset = le64_to_cpu(h->log_offset);
	u64 length = le32_to_cpu(h->log_length);
	unsigned int n = img->header_slot + 1;

	if (!length) {
		if (!guid_is_null(&h->log_guid))
			return vhdx_fail(img, -EINVAL,
					 "header %u: LogGuid is set but LogLength is 0", n);
		return 0;
	}
	if (length % VHDX_OBJECT_ALIGN || offset % VHDX_OBJECT_ALIGN)
		return vhdx_fail(img, -EINVAL,
				 "header %u: log at %llu, length %llu: not 1 MiB aligned",
				 n, (unsigned long long)offset,
				 (unsigned long long)length);
	if (offset < VHDX_HEADER_SECTION_SIZE)
		return vhdx_fail(img, -EINVAL,
				 "header %u: LogOffset %llu is inside the header section",
				 n, (unsigned long long)offset);
	if (offset > img->device_size || length > img->device_size - offset)
		return vhdx_fail(img, -EINVAL,
				 "header %u: log at %llu, length %llu, ends beyond the device (%llu bytes)",
				 n, (unsigned long long)offset,
				 (unsigned long long)length,
				 (unsigned long long)img->device_size);
	return 0;
}

int vhdx_header_load(struct vhdx_image *img)
{
	struct vhdx_header *h;
	int ret;

	/* The identifier and both headers, each read as one 4 KiB unit. */
	h = vhdx_alloc(3 * VHDX_HEADER_SIZE);
	if (!h)
		return vhdx_fail(img, -ENOMEM, "headers: out of memory");
	ret = img->io->read(img->io->priv, VHDX_FILE_ID_OFFSET, &h[0],
			    VHDX_HEADER_SIZE);
	if (!ret)
		ret = img->io->read(img->io->priv, VHDX_HEADER1_OFFSET, &h[1],
				    VHDX_HEADER_SIZE);
	if (!ret)
		ret = img->io->read(img->io->priv, VHDX_HEADER2_OFFSET, &h[2],
				    VHDX_HEADER_SIZE);
	if (ret) {
		ret = vhdx_fail(img, ret, "headers: read error %d", ret);
		goto out;
	}
	ret = vhdx_file_identifier_check(img, &h[0]);
	if (!ret)
		ret = vhdx_header_select(img, &h[1], &h[2]);
	if (!ret)
		ret = vhdx_header_check_log(img);
out:
	vhdx_free(h);
	return ret;
}

/*
 * MS-VHDX 2.2.2.1: write the non-current header with the next sequence
 * number, flush so it becomes current, then do the same to the other copy
 * so that one damaged header later still leaves an up-to-date one.  Both
 * copies are built from the current header, never from the stale one.
 */
int vhdx_header_update(struct vhdx_image *img, const guid_t *file_write_guid,
		       const guid_t *data_write_guid, const guid_t *log_guid)
{
	struct vhdx_header *h;
	unsigned int i, slot;
	int ret = 0;

	if (!img->io->write || !img->io->flush)
		return vhdx_fail(img, -EROFS, "headers: update on a read-only image");
	h = vhdx_alloc(sizeof(*h));
	if (!h)
		return vhdx_fail(img, -ENOMEM, "headers: out of memory");
	for (i = 0; i < ARRAY_SIZE(vhdx_header_offsets); i++) {
		u64 seq = le64_to_cpu(img->header.sequence_number);

		if (seq == U64_MAX) {
			ret = vhdx_fail(img, -EINVAL,
					"headers: sequence number cannot be incremented");
			break;
		}
		*h = img->header;
		h->sequence_number = cpu_to_le64(seq + 1);
		h->file_write_guid = *file_write_guid;
		h->data_write_guid = *data_write_guid;
		h->log_guid = *log_guid;
		vhdx_checksum_set(h, sizeof(*h),
				  offsetof(struct vhdx_header, checksum));
		slot = img->header_slot ^ 1;
		ret = img->io->write(img->io->priv, vhdx_header_offsets[slot],
				     h, sizeof(*h));
		if (!ret)
			ret = img->io->flush(img->io->priv);
		if (ret) {
			ret = vhdx_fail(img, ret, "header %u: write error %d",
					slot + 1, ret);
			break;
		}
		img->header = *h;
		img->header_slot = slot;
	}
	vhdx_free(h);
	return ret;
}
