// SPDX-License-Identifier: GPL-2.0
/*
 * vhdx-cat: an example of libvhdx.  Prints an image's virtual size on
 * stderr and writes its virtual disk to stdout, raw.  Build with
 *
 *	cc -o vhdx-cat vhdx-cat.c $(pkg-config --cflags --libs vhdx)
 *
 * Only the open, the geometry and the BAT are the library's; payload
 * bytes are read straight from the file, as the kernel target does.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vhdx/vhdx.h>

static int file_read(void *priv, u64 offset, void *buf, size_t len)
{
	ssize_t n = pread(*(int *)priv, buf, len, offset);

	if (n < 0)
		return -errno;
	/* The last 4 KiB unit may end past the end of the file. */
	memset((u8 *)buf + n, 0, len - n);
	return 0;
}

static int write_all(const u8 *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct vhdx_io io = { .read = file_read };
	struct vhdx_image img = { 0 };
	const struct vhdx_geometry *geo = &img.geo;
	struct stat st;
	u64 b, entry, len;
	int fd, ret;
	u8 *buf;

	if (argc != 2) {
		fprintf(stderr, "usage: vhdx-cat IMAGE >RAW\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		perror(argv[1]);
		return 2;
	}
	io.priv = &fd;
	/* Read-only: a dirty log is replayed in memory, the file is kept. */
	ret = vhdx_open(&img, &io, st.st_size, true);
	if (ret) {
		fprintf(stderr, "vhdx-cat: %s: %s\n", argv[1], img.error);
		return 1;
	}
	if (geo->has_parent) {
		fprintf(stderr, "vhdx-cat: %s: a differencing image; this example reads no parents\n",
			argv[1]);
		return 1;
	}
	fprintf(stderr, "virtual size %llu\n",
		(unsigned long long)geo->virtual_size);
	buf = malloc(geo->block_size);
	if (!buf)
		return 2;
	for (b = 0; b < geo->payload_blocks; b++) {
		entry = le64_to_cpu(img.bat[vhdx_bat_payload_index(geo, b)]);
		len = vhdx_block_used_length(geo, b);
		if (vhdx_bat_state(entry) == VHDX_PAYLOAD_FULLY_PRESENT) {
			if (pread(fd, buf, len, vhdx_bat_offset(entry)) !=
			    (ssize_t)len) {
				fprintf(stderr, "vhdx-cat: %s: block %llu: read error\n",
					argv[1], (unsigned long long)b);
				return 1;
			}
		} else {
			/* Not present, zero, unmapped, undefined: zeroes. */
			memset(buf, 0, len);
		}
		if (write_all(buf, len)) {
			perror("vhdx-cat: stdout");
			return 2;
		}
	}
	free(buf);
	vhdx_close(&img);
	close(fd);
	return 0;
}
