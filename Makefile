# coldclone - top-level build. `make` builds the static cloner (and, once image-build/
# exists, the live image); `make test` runs everything CI runs; `make bench` the benchmark.
# Static link notes (../shared/FIELD-NOTES.md): Debian ships .a archives for every library
# we use; the cloner links no libcurl yet, so the group below is complete.

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD   ?= build
CC      ?= cc

WARN := -Wall -Wextra -Wshadow -Wvla -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wwrite-strings -Wundef \
	-Wimplicit-fallthrough -Wconversion -Wno-sign-conversion -fno-common -Werror
PKGS := blkid libntfs-3g ext2fs com_err openssl libdeflate json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu17 $(CFLAGS) $(WARN) $(PKG_CFLAGS) -Icloner/include \
	-D_FILE_OFFSET_BITS=64 -DCOLDCLONE_VERSION='"$(VERSION)"' -pthread -MMD -MP

# Static: each archive once, in a group so their order does not matter.
STATIC_LIBS := -Wl,--start-group -lblkid -lntfs-3g -lext2fs -lcom_err -luuid \
	-lcrypto -ldeflate -ljson-c -Wl,--end-group -ldl -pthread
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
	cloner/src/format/registry.c \
	cloner/src/format/raw.c \
	cloner/src/format/qcow2.c \
	cloner/src/format/vmdk.c \
	cloner/src/format/vhdx.c \
	cloner/src/format/vhd.c \
	cloner/src/dest/sink.c \
	cloner/src/dest/file.c \
	cloner/src/pipeline.c \
	cloner/src/progress.c \
	cloner/src/manifest.c \
	cloner/src/cmd_list.c \
	cloner/src/cmd_clone.c \
	cloner/src/cmd_verify.c
MAIN_SRC := cloner/src/main.c

UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test-*.c))
TEST_HELPER_SRCS := tests/unit/fmtdrive.c

OBJ      = $(patsubst %.c,$(BUILD)/obj/%.o,$(CLONER_SRCS))
ASAN_OBJ = $(patsubst %.c,$(BUILD)/asan/%.o,$(CLONER_SRCS) $(TEST_HELPER_SRCS))
ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all cloner asan unit test bench clean
all: cloner

cloner: $(BUILD)/coldclone

$(BUILD)/coldclone: $(OBJ) $(BUILD)/obj/$(MAIN_SRC:.c=.o)
	$(CC) -static -o $@ $^ $(STATIC_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Sanitizer build: the same code, dynamic (ASan cannot be static).
asan: $(BUILD)/asan/coldclone $(patsubst %,$(BUILD)/asan/tests/%,$(UNIT_TESTS))

$(BUILD)/asan/coldclone: $(ASAN_OBJ) $(BUILD)/asan/$(MAIN_SRC:.c=.o)
	$(CC) $(ASAN_FLAGS) -o $@ $(filter-out $(BUILD)/asan/tests/%,$^) $(DYN_LIBS)

$(BUILD)/asan/tests/%: $(BUILD)/asan/tests/unit/%.o $(ASAN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(DYN_LIBS)

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Itests/unit -c -o $@ $<

test: cloner asan
	BUILD=$(BUILD) bash tests/run.sh

bench: cloner
	BUILD=$(BUILD) bash tests/bench.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
