# topohub build. GNU make; flags from pkg-config.
#
#   make                 build everything into build/
#   make test            build and run the whole suite
#   make test SAN=address   the same suite under ASan+UBSan (build in build/address)
#   make test SAN=thread    the same suite under TSan (build in build/thread)
#   make CC=clang        any of the above with clang
#   make bench           benchmarks (see bench/README.md)

ifeq ($(origin CC),default)
CC := gcc
endif
SAN     ?=
BUILD   ?= build$(if $(SAN),/$(SAN))
DEPS    := $(shell scripts/install-deps.sh build >&2 || echo missing)
ifneq ($(DEPS),)
$(error Debian packages are missing; see the message above)
endif

PKGS    := liburcu liburcu-cds libmariadb libzstd zlib inih libisal
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CMOCKA_LIBS := $(shell pkg-config --libs cmocka)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -fno-omit-frame-pointer \
	-I. -Icommon -Ishm -Iprotocol -Ireaders -Ihub -Iplugins -Ibench $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm
ifeq ($(SAN),address)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SAN),thread)
ALL_CFLAGS += -fsanitize=thread -Wno-tsan -Wno-unknown-warning-option
LDFLAGS += -fsanitize=thread
else ifneq ($(SAN),)
$(error SAN must be address or thread)
endif

# Components: every .c in a component folder is part of it, except program mains
# (files named *_main.c), which become one program each.
COMMON_SRC  := $(wildcard common/*.c)
SHM_SRC     := $(wildcard shm/*.c)
PROTO_SRC   := $(wildcard protocol/*.c)
READERS_SRC := $(filter-out %_main.c,$(wildcard readers/*.c))
HUB_SRC     := $(filter-out %_main.c,$(wildcard hub/*.c))
BENCH_SRC   := $(filter-out %_main.c,$(wildcard bench/*.c))
PLUGIN_SRC  := $(filter-out %_main.c,$(wildcard plugins/*.c))
CTL_SRC     := $(wildcard ctl/*.c)
SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SRC    := $(wildcard tests/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ := $(call obj,$(COMMON_SRC) $(SHM_SRC) $(PROTO_SRC) $(READERS_SRC))
CORE_LIB := $(BUILD)/libth_core.a
HUB_LIB  := $(BUILD)/libth_hub.a
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

PROGRAMS := $(BUILD)/topohubctl $(BUILD)/topohub-bench
ifneq ($(wildcard hub/topohubd_main.c),)
PROGRAMS += $(BUILD)/topohubd
endif
ifneq ($(PLUGIN_SRC),)
PROGRAMS += $(BUILD)/libtopohub.so
endif

.PHONY: all test bench clean demo fuzz trace
.SECONDARY:
all: $(PROGRAMS) $(TESTS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(HUB_LIB): $(call obj,$(HUB_SRC)) $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/topohubd: $(call obj,hub/topohubd_main.c) $(HUB_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# topohubctl is a client: the protocol and the decoder, never the hub.
$(BUILD)/topohubctl: $(call obj,$(CTL_SRC)) $(CORE_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The end-to-end benchmark starts its private MariaDB through the test harness
# and speaks to etcd (a peer) with libcurl.
BENCH_SUPPORT := tests/support/mariadb.c tests/support/support.c
BENCH_LIBS := $(shell pkg-config --libs libcurl)
$(BUILD)/topohub-bench: $(call obj,bench/bench_main.c $(BENCH_SRC) $(BENCH_SUPPORT)) $(HUB_LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(BENCH_LIBS) -o $@

$(call obj,$(PLUGIN_SRC)): ALL_CFLAGS += -fvisibility=hidden
$(BUILD)/libtopohub.so: $(call obj,$(PLUGIN_SRC)) $(CORE_LIB) plugins/topohub.map
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=plugins/topohub.map \
		$(call obj,$(PLUGIN_SRC)) $(CORE_LIB) $(shell pkg-config --libs liburcu-bp) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(call obj,tests/%.c) $(call obj,$(SUPPORT_SRC)) $(HUB_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(HUB_LIB) $(LDLIBS) $(CMOCKA_LIBS) -o $@

test: all
	@scripts/install-deps.sh test
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh $(TESTS)

demo: $(BUILD)/topohubd $(BUILD)/topohubctl $(BUILD)/libtopohub.so
	@scripts/install-deps.sh test
	@BUILD=$(BUILD) CC=$(CC) scripts/demo.sh

bench: all
	@scripts/install-deps.sh bench
	@bench/run.sh $(BUILD)

clean:
	rm -rf build

# make trace: the libbpf tracer (optional; nothing else depends on it).
include bench/trace/trace.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
