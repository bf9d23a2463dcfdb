# SPDX-License-Identifier: Apache-2.0
# topohub build. GNU make; flags from pkg-config.
#
#   make deps            install the Debian packages (as root, apt-get)
#   make                 build everything into build/ (installs nothing)
#   make test            install what is missing, build and run the whole suite
#   make test SAN=address   the same suite under ASan+UBSan (build in build/address)
#   make test SAN=thread    the same suite under TSan (build in build/thread)
#   make CC=clang        any of the above with clang
#   make bench           benchmarks (see bench/README.md)

ifeq ($(origin CC),default)
CC := gcc
endif
SAN     ?=
BUILD   ?= build$(if $(SAN),/$(SAN))

PKGS    := liburcu liburcu-cds libmariadb libzstd zlib inih libisal libmicrohttpd

VERSION   := 0.3.0
ABI_MAJOR := $(shell sed -n 's/^\#define TH_ABI_MAJOR \([0-9]*\)$$/\1/p' plugins/topohub.h)
ABI_MINOR := $(shell sed -n 's/^\#define TH_ABI_MINOR \([0-9]*\)$$/\1/p' plugins/topohub.h)

# Building never installs anything: `make deps` does (as root, apt-get), and
# the README's two commands, `make test` and `make demo` (and `make bench`),
# install what is missing first and then build in a second make that sees
# the packages. Any other goal stops here when a package is missing.
INSTALLING_GOALS := deps test demo bench clean package-test chaos
ifneq ($(filter-out $(INSTALLING_GOALS),$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell pkg-config --exists $(PKGS) cmocka libcurl && echo ok),ok)
$(error Debian packages are missing: run `make deps` as root (or `make test`, which installs them first))
endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CMOCKA_LIBS := $(shell pkg-config --libs cmocka)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -fno-omit-frame-pointer \
	-I. $(PKG_CFLAGS)
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

.PHONY: all deps test bench clean demo fuzz trace run-tests run-demo run-bench install uninstall package-test chaos run-chaos
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
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=plugins/topohub.map -Wl,-soname,libtopohub.so.$(ABI_MAJOR) \
		$(call obj,$(PLUGIN_SRC)) $(CORE_LIB) $(shell pkg-config --libs liburcu-bp) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(call obj,tests/%.c) $(call obj,$(SUPPORT_SRC)) $(HUB_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(HUB_LIB) $(LDLIBS) $(CMOCKA_LIBS) -o $@

deps:
	@scripts/install-deps.sh build test

test:
	@scripts/install-deps.sh build test
	@$(MAKE) --no-print-directory run-tests

demo:
	@scripts/install-deps.sh build test
	@$(MAKE) --no-print-directory run-demo

bench:
	@scripts/install-deps.sh build test bench
	@$(MAKE) --no-print-directory run-bench

run-tests: all
	@scripts/check-layers.py --self-test
	@scripts/check-layers.py
	@scripts/gen-abi.py --check
	@scripts/spdx.py --check
	@# The install check loads the library into python3: a sanitizer build's cannot be.
	@$(if $(SAN),echo "check-install and check-pip: skipped under SAN=$(SAN) (python3 cannot load a sanitized library)",CC=$(CC) scripts/check-install.sh $(BUILD) && scripts/check-pip.sh $(BUILD))
	@scripts/check-monitoring.sh $(BUILD)
	@scripts/check-unit.sh $(BUILD)
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh $(TESTS)
	@# Go's own race detector needs a plain hub build beside it: the Go suites run once, in the plain configuration.
	@$(if $(SAN),echo "plugins/go: run in the plain configuration only (go test -race; the hub under SAN=$(SAN) is exercised by the C suites)",BUILD=$(BUILD) plugins/go/run-tests.sh)
	@SAN=$(SAN) tests/chaos/run.sh --duration 60 --build $(BUILD)

# make chaos [DURATION=600]: servers, hubs, subscribers, workload and faults
# checked against the binlog (tests/chaos/chaos.py); non-zero on any violation.
DURATION ?= 120
chaos:
	@scripts/install-deps.sh build test
	@$(MAKE) --no-print-directory run-chaos

run-chaos: $(BUILD)/topohubd $(BUILD)/libtopohub.so
	@SAN=$(SAN) tests/chaos/run.sh --duration $(DURATION) --build $(BUILD)

run-demo: $(BUILD)/topohubd $(BUILD)/topohubctl $(BUILD)/libtopohub.so
	@BUILD=$(BUILD) CC=$(CC) scripts/demo.sh

run-bench: all
	@bench/run.sh $(BUILD)

clean:
	rm -rf build

# make package-test: build the Debian packages in a temporary folder, lintian,
# install, run and purge them (root; about 1.5 min; see scripts/check-package.sh).
package-test:
	@scripts/install-deps.sh build test package
	@scripts/check-package.sh

# make install [PREFIX=/usr/local] [DESTDIR=...]: what an operator needs, where
# the system looks for it. The library is installed under its SONAME
# (libtopohub.so.MAJOR) with the development symlink beside it.
PREFIX      ?= /usr/local
bindir      ?= $(PREFIX)/bin
sbindir     ?= $(PREFIX)/sbin
libdir      ?= $(PREFIX)/lib
includedir  ?= $(PREFIX)/include
mandir      ?= $(PREFIX)/share/man
docdir      ?= $(PREFIX)/share/doc/topohub
sysconfdir  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
unitdir     ?= $(PREFIX)/lib/systemd/system
sysusersdir ?= $(PREFIX)/lib/sysusers.d
tmpfilesdir ?= $(PREFIX)/lib/tmpfiles.d
pythondir   ?= $(PREFIX)/lib/python3/dist-packages
LIBFILE     := libtopohub.so.$(ABI_MAJOR).$(ABI_MINOR).0
INSTALLED := $(sbindir)/topohubd $(bindir)/topohubctl $(libdir)/$(LIBFILE) $(libdir)/libtopohub.so.$(ABI_MAJOR) \
	$(libdir)/libtopohub.so $(includedir)/topohub.h $(libdir)/pkgconfig/topohub.pc $(pythondir)/topohub.py \
	$(mandir)/man8/topohubd.8 $(mandir)/man1/topohubctl.1 $(mandir)/man3/libtopohub.3 \
	$(unitdir)/topohubd.service $(sysusersdir)/topohub.conf $(tmpfilesdir)/topohub.conf \
	$(sysconfdir)/topohub/topohubd.ini.example $(docdir)/README.md $(docdir)/DESIGN.md

install: $(BUILD)/topohubd $(BUILD)/topohubctl $(BUILD)/libtopohub.so
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(sbindir) $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(includedir) \
		$(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man3 $(DESTDIR)$(mandir)/man8 $(DESTDIR)$(docdir) \
		$(DESTDIR)$(unitdir) $(DESTDIR)$(sysusersdir) $(DESTDIR)$(tmpfilesdir) $(DESTDIR)$(pythondir) \
		$(DESTDIR)$(sysconfdir)/topohub
	install -m 0755 $(BUILD)/topohubd $(DESTDIR)$(sbindir)/topohubd
	install -m 0755 $(BUILD)/topohubctl $(DESTDIR)$(bindir)/topohubctl
	install -m 0755 $(BUILD)/libtopohub.so $(DESTDIR)$(libdir)/$(LIBFILE)
	ln -sf $(LIBFILE) $(DESTDIR)$(libdir)/libtopohub.so.$(ABI_MAJOR)
	ln -sf libtopohub.so.$(ABI_MAJOR) $(DESTDIR)$(libdir)/libtopohub.so
	install -m 0644 plugins/topohub.h $(DESTDIR)$(includedir)/topohub.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(libdir)|; s|@INCLUDEDIR@|$(includedir)|; s|@VERSION@|$(VERSION)|' \
		plugins/topohub.pc.in > $(DESTDIR)$(libdir)/pkgconfig/topohub.pc
	install -m 0644 plugins/python/topohub.py $(DESTDIR)$(pythondir)/topohub.py
	install -m 0644 doc/topohubd.8 $(DESTDIR)$(mandir)/man8/topohubd.8
	install -m 0644 doc/topohubctl.1 $(DESTDIR)$(mandir)/man1/topohubctl.1
	install -m 0644 doc/libtopohub.3 $(DESTDIR)$(mandir)/man3/libtopohub.3
	sed -e 's|^ExecStart=/usr/local/bin/topohubd|ExecStart=$(sbindir)/topohubd|' hub/topohubd.service \
		> $(DESTDIR)$(unitdir)/topohubd.service
	install -m 0644 doc/topohub.sysusers $(DESTDIR)$(sysusersdir)/topohub.conf
	install -m 0644 doc/topohub.tmpfiles $(DESTDIR)$(tmpfilesdir)/topohub.conf
	install -m 0644 doc/topohubd.ini.example $(DESTDIR)$(sysconfdir)/topohub/topohubd.ini.example
	install -m 0644 README.md doc/DESIGN.md $(DESTDIR)$(docdir)/

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)$(docdir) $(DESTDIR)$(sysconfdir)/topohub 2>/dev/null

# make trace: the libbpf tracer (optional; nothing else depends on it).
include bench/trace/trace.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
