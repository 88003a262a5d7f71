// SPDX-License-Identifier: GPL-2.0
/*
 * vhdx-dump: opens an image through the same vhdx/ code as the kernel
 * target and prints its geometry, or writes the virtual disk out as raw.
 * Tests use it to check the format code on the host, against qemu-img,
 * without booting a guest.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vhdx/vhdx.h"

static int file_read(void *priv, u64 offset, void *buf, size_t len)
{
	int fd = *(int *)priv;
	ssize_t n = pread(fd, buf, len, offset);

	if (n < 0)
		return -errno;
	/* A file may end inside the last 4 KiB unit: that tail reads zero. */
	memset((u8 *)buf + n, 0, len - n);
	return 0;
}

static int file_write(void *priv, u64 offset, const void *buf, size_t len)
{
	int fd = *(int *)priv;

	return pwrite(fd, buf, len, offset) == (ssize_t)len ? 0 : -EIO;
}

static int file_flush(void *priv)
{
	return fsync(*(int *)priv) ? -errno : 0;
}

static const char *log_state_name(enum vhdx_log_state state)
{
	static const char *const names[] = {
		[VHDX_LOG_CLEAN] = "clean",
		[VHDX_LOG_REPLAYED] = "replayed",
		[VHDX_LOG_REPLAYED_IN_MEMORY] = "replayed-in-memory",
	};

	return names[state];
}

static int dump_block(struct vhdx_image *img, int fd, u64 block, int out,
		      u8 *buf)
{
	const struct vhdx_geometry *geo = &img->geo;
	u64 entry = le64_to_cpu(img->bat[vhdx_bat_payload_index(geo, block)]);
	u64 len = vhdx_block_used_length(geo, block);

	switch (vhdx_bat_state(entry)) {
	case VHDX_PAYLOAD_FULLY_PRESENT:
		if (pread(fd, buf, len, vhdx_bat_offset(entry)) != (ssize_t)len)
			return -EIO;
		break;
	case VHDX_PAYLOAD_PARTIALLY_PRESENT:
		return -EIO;
	default:
		memset(buf, 0, len);
		break;
	}
	return write(out, buf, len) == (ssize_t)len ? 0 : -EIO;
}

int main(int argc, char **argv)
{
	struct vhdx_image img = { 0 };
	struct vhdx_io io = { .read = file_read };
	bool read_write = argc > 1 && !strcmp(argv[1], "--read-write");
	struct stat st;
	int fd, out, ret;
	u8 *buf;
	u64 b;

	if (read_write) {
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: vhdx-dump [--read-write] IMAGE [RAW-OUTPUT]\n");
		return 2;
	}
	fd = open(argv[1], read_write ? O_RDWR : O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		perror(argv[1]);
		return 2;
	}
	io.priv = &fd;
	if (read_write) {
		io.write = file_write;
		io.flush = file_flush;
	}
	ret = vhdx_open(&img, &io, st.st_size, !read_write);
	if (ret) {
		fprintf(stderr, "%s: %s\n", argv[1], img.error);
		return 1;
	}
	printf("virtual_size %llu block_size %u logical_sector_size %u",
	       (unsigned long long)img.geo.virtual_size, img.geo.block_size,
	       img.geo.logical_sector_size);
	printf(" physical_sector_size %u blocks %llu/%llu log %s\n",
	       img.geo.physical_sector_size,
	       (unsigned long long)img.allocated_blocks,
	       (unsigned long long)img.geo.payload_blocks,
	       log_state_name(img.log_state));
	if (argc == 3) {
		out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		buf = malloc(img.geo.block_size);
		if (out < 0 || !buf)
			return 2;
		for (b = 0; b < img.geo.payload_blocks; b++)
			if (dump_block(&img, fd, b, out, buf)) {
				fprintf(stderr, "%s: block %llu: read error\n",
					argv[1], (unsigned long long)b);
				return 1;
			}
		free(buf);
		close(out);
	}
	vhdx_close(&img);
	close(fd);
	return 0;
}
