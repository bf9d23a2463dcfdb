# SPDX-License-Identifier: Apache-2.0
# bench/trace/trace.mk: `make trace` builds the tracer $(BUILD)/topohub-trace
# (bench/trace/README.md) and the probe emitter used to try and measure it.
# Included by the main Makefile; nothing else depends on these targets, and
# the tool checks below run only when a trace target is asked for, so `make`
# and `make test` neither need nor probe clang, bpftool, libbpf or BTF.
#
# Needs: clang (BPF target), bpftool (vmlinux.h, skeleton), libbpf (pkg-config
# libbpf), kernel BTF (/sys/kernel/btf/vmlinux), sys/sdt.h (the probes
# themselves): scripts/install-deps.sh trace. When one is missing, `make
# trace` says which and fails (exit 2 from make): a build target that built
# nothing must not look like success to a script; callers for whom the tracer
# is optional say `make trace || true`, and tests/test_trace skips without it.

TRACE_CLANG   ?= clang
TRACE_BPFTOOL ?= $(or $(shell command -v bpftool 2>/dev/null),$(wildcard /usr/sbin/bpftool))
TRACE_BTF     ?= /sys/kernel/btf/vmlinux
TRACE_OUT     := $(BUILD)/trace
TRACE_GOALS   := trace $(BUILD)/topohub-trace $(BUILD)/topohub-trace-emit $(BUILD)/topohub-trace-emit-noprobes

.PHONY: trace

ifneq ($(filter $(TRACE_GOALS),$(MAKECMDGOALS)),)
TRACE_ARCH      := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/s390x/s390/')
# usdt.bpf.h includes <asm/errno.h>, which Debian keeps in the multiarch folder.
TRACE_MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
TRACE_HASH := \#
TRACE_MISSING := $(strip \
	$(if $(shell command -v $(TRACE_CLANG) 2>/dev/null),,clang) \
	$(if $(TRACE_BPFTOOL),,bpftool) \
	$(if $(shell pkg-config --exists libbpf && echo y),,libbpf-dev) \
	$(if $(wildcard $(TRACE_BTF)),,kernel-BTF($(TRACE_BTF))) \
	$(if $(shell echo '$(TRACE_HASH)include <sys/sdt.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo y),,systemtap-sdt-dev(sys/sdt.h)))
TRACE_BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(TRACE_ARCH) -Wall -Werror \
	-I$(TRACE_OUT) -I. $(if $(TRACE_MULTIARCH),-I/usr/include/$(TRACE_MULTIARCH))
TRACE_LIBBPF_CFLAGS := $(shell pkg-config --cflags libbpf 2>/dev/null)
TRACE_LIBBPF_LIBS   := $(shell pkg-config --libs libbpf 2>/dev/null)
endif

ifeq ($(TRACE_MISSING),)
trace: $(BUILD)/topohub-trace $(BUILD)/topohub-trace-emit $(BUILD)/topohub-trace-emit-noprobes
else
trace:
	@echo "make trace: cannot build topohub-trace; missing: $(TRACE_MISSING)" >&2
	@echo "make trace: packages: scripts/install-deps.sh trace (as root); kernel BTF needs a kernel built with CONFIG_DEBUG_INFO_BTF" >&2
	@exit 1
endif

# Generated per machine from the running kernel, never committed.
$(TRACE_OUT)/vmlinux.h:
	@mkdir -p $(dir $@)
	$(TRACE_BPFTOOL) btf dump file $(TRACE_BTF) format c > $@.tmp
	mv $@.tmp $@

$(TRACE_OUT)/topohub_trace.bpf.o: bench/trace/topohub_trace.bpf.c bench/trace/topohub_trace.h $(TRACE_OUT)/vmlinux.h
	$(TRACE_CLANG) $(TRACE_BPF_CFLAGS) -c $< -o $@

$(TRACE_OUT)/topohub_trace.skel.h: $(TRACE_OUT)/topohub_trace.bpf.o
	$(TRACE_BPFTOOL) gen skeleton $< name topohub_trace > $@.tmp
	mv $@.tmp $@

$(BUILD)/obj/bench/trace/topohub_trace.o: bench/trace/topohub_trace.c bench/trace/topohub_trace.h $(TRACE_OUT)/topohub_trace.skel.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TRACE_LIBBPF_CFLAGS) -I$(TRACE_OUT) -Ibench/trace -c $< -o $@

$(BUILD)/topohub-trace: $(BUILD)/obj/bench/trace/topohub_trace.o
	$(CC) $(LDFLAGS) $^ $(TRACE_LIBBPF_LIBS) -o $@

$(BUILD)/obj/bench/trace/trace_emit.o: bench/trace/trace_emit.c common/th_trace.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/bench/trace/trace_emit_noprobes.o: bench/trace/trace_emit.c common/th_trace.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DTH_NO_TRACE -c $< -o $@

$(BUILD)/topohub-trace-emit: $(BUILD)/obj/bench/trace/trace_emit.o $(call obj,tests/support/trace_synth.c)
	$(CC) $(LDFLAGS) $^ -o $@

# The emitter's synthetic processes fire nothing in this build: for the bench only.
$(BUILD)/topohub-trace-emit-noprobes: $(BUILD)/obj/bench/trace/trace_emit_noprobes.o $(call obj,tests/support/trace_synth.c)
	$(CC) $(LDFLAGS) $^ -o $@
