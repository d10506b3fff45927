# coldclone - top-level build. `make` builds the static cloner and the live image;
# `make test` runs everything CI runs; `make bench` the benchmark.
# Static link notes (../shared/FIELD-NOTES.md): Debian ships .a archives for every library
# we use except a closable libcurl: cloner/third_party/build-curl.sh builds a small static one
# (HTTP/HTTPS/HTTP2/SFTP, OpenSSL) from Debian's curl source package into $(CURL_DIR).

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD   ?= build
CC      ?= cc

WARN := -Wall -Wextra -Wshadow -Wvla -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wwrite-strings -Wundef \
	-Wimplicit-fallthrough -Wconversion -Wno-sign-conversion -fno-common -Werror
PKGS := blkid libntfs-3g ext2fs com_err hivex openssl libdeflate libxxhash json-c libcurl
# Shared by every BUILD directory: it only depends on Debian's curl source.
CURL_DIR ?= build/curl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu17 $(CFLAGS) $(WARN) $(PKG_CFLAGS) -Icloner/include \
	-D_FILE_OFFSET_BITS=64 -DCOLDCLONE_VERSION='"$(VERSION)"' -pthread -MMD -MP

# Static: each archive once, in a group so their order does not matter.
STATIC_LIBS := -Wl,--start-group $(CURL_DIR)/lib/libcurl.a -lnghttp2 -lssh2 -lssl -lz \
	-lblkid -lntfs-3g -lext2fs -lcom_err -lhivex -luuid \
	-lcrypto -ldeflate -lxxhash -ljson-c -Wl,--end-group -ldl -pthread
# Dynamic (sanitizer build and unit tests).
DYN_LIBS := $(shell pkg-config --libs $(PKGS)) -pthread

CLONER_SRCS := \
	cloner/src/util/util.c \
	cloner/src/util/extmap.c \
	cloner/src/chunk.c \
	cloner/src/digest.c \
	cloner/src/source/source.c \
	cloner/src/source/discover.c \
	cloner/src/source/layout.c \
	cloner/src/source/plan.c \
	cloner/src/fs/registry.c \
	cloner/src/fs/ntfs.c \
	cloner/src/fs/ext.c \
	cloner/src/fs/fat.c \
	cloner/src/fs/swap.c \
	cloner/src/fs/oshost.c \
	cloner/src/format/registry.c \
	cloner/src/format/raw.c \
	cloner/src/format/qcow2.c \
	cloner/src/format/vmdk.c \
	cloner/src/format/vhdx.c \
	cloner/src/format/vhd.c \
	cloner/src/dest/sink.c \
	cloner/src/dest/imagehash.c \
	cloner/src/dest/file.c \
	cloner/src/dest/net.c \
	cloner/src/dest/upstream.c \
	cloner/src/dest/http.c \
	cloner/src/dest/s3.c \
	cloner/src/dest/sigv4.c \
	cloner/src/dest/sftp.c \
	cloner/src/dest/share.c \
	cloner/src/pipeline.c \
	cloner/src/progress.c \
	cloner/src/manifest.c \
	cloner/src/config.c \
	cloner/src/report.c \
	cloner/src/inventory.c \
	cloner/src/vmdesc.c
# The commands and main: everything above is the library the unit tests link.
CMD_SRCS := \
	cloner/src/cmd_list.c \
	cloner/src/clonejob.c \
	cloner/src/machine.c \
	cloner/src/machinedesc.c \
	cloner/src/cmd_clone.c \
	cloner/src/cmd_verify.c \
	cloner/src/cmd_config.c \
	cloner/src/cmd_collect.c \
	cloner/src/cmd_run.c \
	cloner/src/cmd_wizard.c \
	cloner/src/wizard_ask.c \
	cloner/src/wizard_dest.c \
	cloner/src/main.c

UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test-*.c))
TEST_HELPER_SRCS := tests/unit/fmtdrive.c tests/unit/testutil.c

OBJ      = $(patsubst %.c,$(BUILD)/obj/%.o,$(CLONER_SRCS) $(CMD_SRCS))
ASAN_LIB = $(patsubst %.c,$(BUILD)/asan/%.o,$(CLONER_SRCS))
ASAN_CMD = $(patsubst %.c,$(BUILD)/asan/%.o,$(CMD_SRCS))
ASAN_TEST_HELPERS = $(patsubst %.c,$(BUILD)/asan/%.o,$(TEST_HELPER_SRCS))
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all cloner image asan unit test bench clean deps
all: cloner image

# Install the Debian packages the build and the tests need (run as root, once).
deps:
	test -f /etc/apt/sources.list.d/coldclone-src.sources || \
		cp .ci/coldclone-src.sources /etc/apt/sources.list.d/
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$$(cat .ci/packages.txt image-build/packages.txt tests/bench-packages.txt tests/net-packages.txt | grep -v "^#")
	command -v node > /dev/null && command -v npm > /dev/null || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm

cloner: $(BUILD)/coldclone

$(CURL_DIR)/lib/libcurl.a: cloner/third_party/build-curl.sh
	bash cloner/third_party/build-curl.sh $(CURL_DIR)

$(BUILD)/coldclone: $(OBJ) $(CURL_DIR)/lib/libcurl.a
	@$(if $(Q),echo "  LINK    $@ (static)")
	$(Q)$(CC) -static -o $@ $(OBJ) $(STATIC_LIBS) 2>&1 | { grep -v 'statically linked applications requires at runtime\|in function' || true; }
	@test -x $@

# V=1 shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The live image (ISO, PXE bundle) around the static cloner: image-build/build.sh.
image: $(BUILD)/image/coldclone.iso

$(BUILD)/image/coldclone.iso: $(BUILD)/coldclone image-build/build.sh rootfs/init \
		rootfs/usr/share/udhcpc/default.script $(wildcard drivers/*.ko)
	bash image-build/build.sh $(BUILD)/image $(BUILD)/coldclone

# Sanitizer build: the same code, dynamic (ASan cannot be static).
asan: $(BUILD)/asan/coldclone $(patsubst %,$(BUILD)/asan/tests/%,$(UNIT_TESTS))

$(BUILD)/asan/coldclone: $(ASAN_LIB) $(ASAN_CMD)
	@$(if $(Q),echo "  LINK    $@ (sanitizers)")
	$(Q)$(CC) $(ASAN_FLAGS) -o $@ $^ $(DYN_LIBS)

$(BUILD)/asan/tests/%: $(BUILD)/asan/tests/unit/%.o $(ASAN_LIB) $(ASAN_TEST_HELPERS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ASAN_FLAGS) -o $@ $^ $(DYN_LIBS)

.SECONDARY:

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC asan $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/unit -c -o $@ $<

test: cloner asan
	BUILD=$(BUILD) bash tests/run.sh

bench: cloner
	BUILD=$(BUILD) bash tests/bench.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/asan -name '*.d' -type f 2>/dev/null)
