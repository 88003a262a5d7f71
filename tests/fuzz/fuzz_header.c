// SPDX-License-Identifier: GPL-2.0
/*
 * The file identifier and the header pair.
 *
 * Input: file identifier, header 1, header 2 (4 KiB each, truncated or
 * zero-padded), then optionally 8 bytes of device size (default 16 MiB; at
 * least 1 MiB, as vhdx_open requires).  Each input runs twice: as it is,
 * and with both header checksums made valid, so that mutations reach the
 * checks behind the CRC.  A header pair that loads is then updated twice
 * on a writable device and must load again with the sequence number two
 * higher.
 */
#include "fuzz-common.h"

#define ID_SIZE		VHDX_HEADER_SIZE
#define INPUT_SIZE	(3 * VHDX_HEADER_SIZE)

static void fix_checksums(u8 *buf)
{
	vhdx_checksum_set(buf + ID_SIZE, VHDX_HEADER_SIZE,
			  offsetof(struct vhdx_header, checksum));
	vhdx_checksum_set(buf + ID_SIZE + VHDX_HEADER_SIZE, VHDX_HEADER_SIZE,
			  offsetof(struct vhdx_header, checksum));
}

static void check_update(const struct vhdx_image *loaded, struct fuzz_dev *dev)
{
	struct vhdx_image img = { 0 };
	u64 seq = le64_to_cpu(loaded->header.sequence_number);
	guid_t fw, dw;
	int ret;

	memset(&fw, 0xa5, sizeof(fw));
	memset(&dw, 0x5a, sizeof(dw));
	img = *loaded;
	img.io = &dev->io;
	ret = vhdx_header_update(&img, &fw, &dw, &loaded->header.log_guid);
	if (ret) {
		FUZZ_ASSERT(seq >= U64_MAX - 1, "update failed: %s", img.error);
		return;
	}
	FUZZ_ASSERT(le64_to_cpu(img.header.sequence_number) == seq + 2,
		    "sequence %llu after update of %llu",
		    (unsigned long long)le64_to_cpu(img.header.sequence_number),
		    (unsigned long long)seq);

	memset(&img, 0, sizeof(img));
	img.io = &dev->io;
	img.device_size = loaded->device_size;
	ret = vhdx_header_load(&img);
	FUZZ_ASSERT(!ret, "reload after update: %s", img.error);
	FUZZ_ASSERT(le64_to_cpu(img.header.sequence_number) == seq + 2 &&
		    guid_equal(&img.header.file_write_guid, &fw) &&
		    guid_equal(&img.header.data_write_guid, &dw),
		    "reload after update selected another header");
	vhdx_close(&img);
}

static void run_one(const u8 *buf, u64 device_size)
{
	const struct vhdx_header *h1 = (const void *)(buf + ID_SIZE);
	const struct vhdx_header *h2 = h1 + 1;
	struct vhdx_image img = { 0 };
	struct fuzz_dev dev;
	const char *why;
	int ret;

	img.device_size = device_size;
	vhdx_file_identifier_check(&img, buf);
	vhdx_header_check(h1, &why);
	vhdx_header_select(&img, h1, h2);

	fuzz_dev_init(&dev, device_size, true);
	fuzz_dev_add(&dev, VHDX_FILE_ID_OFFSET, buf, ID_SIZE, ID_SIZE);
	fuzz_dev_add(&dev, VHDX_HEADER1_OFFSET, h1, VHDX_HEADER_SIZE,
		     VHDX_HEADER_SIZE);
	fuzz_dev_add(&dev, VHDX_HEADER2_OFFSET, h2, VHDX_HEADER_SIZE,
		     VHDX_HEADER_SIZE);
	memset(&img, 0, sizeof(img));
	img.io = &dev.io;
	img.device_size = device_size;
	ret = vhdx_header_load(&img);
	if (!ret) {
		u64 lo = le64_to_cpu(img.header.log_offset);
		u64 ll = le32_to_cpu(img.header.log_length);

		FUZZ_ASSERT(!ll || (lo <= device_size &&
				    ll <= device_size - lo),
			    "loaded a log beyond the device");
		check_update(&img, &dev);
	}
	vhdx_close(&img);
	fuzz_dev_free(&dev);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	u64 device_size = 16 * VHDX_MiB;
	u8 *buf;

	/* vhdx_open refuses a device smaller than the header section. */
	if (size >= INPUT_SIZE + sizeof(u64))
		device_size = fuzz_le64(data + INPUT_SIZE);
	if (device_size < VHDX_HEADER_SECTION_SIZE)
		device_size = VHDX_HEADER_SECTION_SIZE;
	buf = fuzz_fit(data, size, INPUT_SIZE);
	run_one(buf, device_size);
	fix_checksums(buf);
	run_one(buf, device_size);
	free(buf);
	return 0;
}
