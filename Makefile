# SPDX-License-Identifier: GPL-2.0
#
# dm-vhdx: the module's objects are listed in Kbuild; this file drives it.
#
#   make [KDIR=...] [W=1] [C=1]  build dm-vhdx.ko (default: the running kernel)
#   make install                 modules_install + depmod, so dmsetup autoloads it
#                                (INSTALL_MOD_PATH=DIR installs under DIR), then
#                                make tools-install
#   make tools                   the userspace programs in tools/ (vhdxsetup,
#                                vhdx-dump), built from the same vhdx/ sources
#   make tools-install           vhdxsetup into PREFIX/sbin (/usr/local) and its
#                                man page (needs rst2man), under DESTDIR if set
#   make deb                     dm-vhdx-dkms and vhdxsetup .debs into build/deb/
#                                (debhelper, dh-dkms)
#   make clean
#   make build-all               build against Debian's 6.1 and 6.12 cloud kernels
#                                with W=1 and sparse into build/<kver>/; any
#                                warning fails
#   make check                   everything CI runs: deps, kernels, build-all,
#                                KUnit, host and guest tests, some of them
#                                again on the debug kernel; ends "N passed,
#                                M failed"
#   make check-debug             only the debug kernel (6.12 with KASAN,
#                                KFENCE, UBSAN, lockdep, kmemleak; built
#                                once by scripts/debug-kernel.sh), with the
#                                crash groups that make check leaves out
#   make demo                    boot a guest, map a VHDX, mount it, read it
#   make bench                   fio in a guest: dm-vhdx against dm-linear and
#                                qemu-nbd on the same kind of image, as ratios,
#                                and device flushes per user flush
#   make fuzz                    the libFuzzer targets of tests/fuzz, each for
#                                FUZZ_SECONDS (60); make check runs each 10 s
#
# Kernels, initramfs and the KUnit tree are cached in $(VHDX_CACHE).

KDIR ?= /lib/modules/$(shell uname -r)/build
KVER ?= $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null || uname -r)
VHDX_CACHE ?= /var/cache/dm-vhdx
export VHDX_CACHE

# Kbuild's own switches: W=1 extra warnings, C=1 sparse.
KBUILD_ARGS := $(if $(W),W=$(W)) $(if $(C),C=$(C))

all: modules

modules: kdir-exists
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KBUILD_ARGS) modules

kdir-exists:
	@test -d $(KDIR) || { echo "No kernel build tree at $(KDIR): install the headers" \
		"(apt-get install linux-headers-$(KVER)) or pass KDIR=/path/to/build" >&2; exit 1; }

install: modules tools-install
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)

tools:
	$(MAKE) -C tools

tools-install:
	$(MAKE) -C tools install

fuzz:
	$(MAKE) -C tests/fuzz fuzz

# Works without headers too (nothing to ask Kbuild then).
clean:
	@if [ -d $(KDIR) ]; then $(MAKE) -C $(KDIR) M=$(CURDIR) clean; fi
	rm -f *.o *.ko *.mod *.mod.c .*.cmd .module-common.o modules.order Module.symvers \
		vhdx/*.o vhdx/.*.cmd
	rm -rf build .tmp_versions tests/fuzz/out
	if [ -f tools/Makefile ]; then $(MAKE) -C tools clean; fi

build-all:
	@scripts/build-all.sh

deb:
	@scripts/deb.sh

check:
	@scripts/check.sh

check-debug:
	@scripts/check.sh --debug

demo:
	@scripts/deps.sh
	@scripts/kernels.sh 6.12
	@scripts/build-all.sh 6.12
	@scripts/demo.sh

bench:
	@scripts/deps.sh
	@scripts/kernels.sh 6.12
	@scripts/build-all.sh 6.12
	@scripts/bench.sh

help:
	@sed -n '3,/^$$/s/^# \{0,1\}//p' Makefile

.PHONY: all modules kdir-exists install tools tools-install fuzz clean build-all check-debug \
	check demo bench help deb
