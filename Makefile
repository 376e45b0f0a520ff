# kintsugi - Nemotron-H checkpoints to MLX 4-bit models, in C.
#
#   make            build every tool into bin/
#   make check      all tests (C unit tests, CLI tests, sanitizer build, Python oracles)
#   make demo       the main job on the embedded tiny checkpoint
#   make bench      benchmarks (long; never part of check)
#   make fuzz       every fuzz target for FUZZ_SECONDS (default 600) each
#   make differential  the gate against mlx-lm on 2,000 more broken directories
#   make trained-model retrain the embedded model in testdata/trained (about 30 min)
#   make install PREFIX=/usr/local
#   make SAN=1      the ASan+UBSan build, into build/asan/bin
#
# Missing system packages are installed by scripts/bootstrap.sh on first use.

PREFIX ?= /usr/local
CC ?= cc

ifeq ($(SAN),1)
OUT := build/asan
BINDIR := build/asan/bin
OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
OUT := build/release
BINDIR := bin
OPT := -O2 -g
endif

include build/config.mk

# -ffp-contract=off: no fused multiply-add unless written; quantization must be bit-exact.
CFLAGS := -std=c11 -Wall -Wextra -Werror -ffp-contract=off $(OPT) $(PLATFORM_CFLAGS) \
          $(OPENMP_CFLAGS) $(PKG_CFLAGS) -Ilib -Iquantize -Iruntime -Iruntime/cpu -Ieval
LDLIBS := $(PKG_LIBS) $(OPENMP_LIBS) -lm

LIB_SRC := $(wildcard lib/*.c) $(wildcard quantize/*.c) $(wildcard runtime/*.c) $(wildcard runtime/cpu/*.c) $(wildcard eval/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(OUT)/%.o)
LIB_A := $(OUT)/libkintsugi.a

TOOLS := kintsugi-convert kintsugi-fixup kintsugi-quantize kintsugi-run kintsugi-verify kintsugi-testdata
TOOL_BINS := $(TOOLS:%=$(BINDIR)/%)
UNIT_BIN := $(OUT)/tests/unit-tests
TESTTOOL := $(OUT)/tests/testtool

.PHONY: all check demo bench fuzz differential install clean help tests-build trained-model
all: $(TOOL_BINS)

build/config.mk: scripts/bootstrap.sh scripts/configure.sh
	@mkdir -p build
	@sh scripts/bootstrap.sh
	@sh scripts/configure.sh > $@.tmp && mv $@.tmp $@

$(OUT)/%.o: %.c $(wildcard lib/*.h) $(wildcard quantize/*.h) $(wildcard quantize/cli/*.h) $(wildcard convert/*.h) $(wildcard fixup/*.h) $(wildcard runtime/*.h) $(wildcard runtime/cpu/*.h) $(wildcard eval/*.h) $(wildcard runtime/gpu/*.h) $(wildcard verify/*.h) $(wildcard tests/unit/*.h) build/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Every program links its objects with the library the same way.
define LINK
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
endef

objects_of = $(patsubst %.c,$(OUT)/%.o,$(wildcard $(1)/*.c))

$(BINDIR)/kintsugi-convert: $(call objects_of,convert) $(LIB_A)
	$(LINK)
$(BINDIR)/kintsugi-fixup: $(call objects_of,fixup) $(LIB_A)
	$(LINK)
$(BINDIR)/kintsugi-quantize: $(call objects_of,quantize/cli) $(LIB_A)
	$(LINK)

# GPU hosts (docs/GPU.md), each when what it needs is there: Vulkan with
# glslangValidator and the Vulkan headers (Linux, or macOS with MoltenVK);
# Metal on macOS with glslangValidator and spirv-cross (the kernels go
# GLSL -> SPIR-V -> MSL, embedded as source and compiled at start-up). A
# flag file records the choice, so that switching it rebuilds what depends
# on it.
UNAME_S := $(shell uname -s)
HAVE_GLSLANG := $(shell command -v glslangValidator >/dev/null 2>&1 && echo 1)
HAVE_VULKAN := $(if $(HAVE_GLSLANG),$(shell pkg-config --exists vulkan 2>/dev/null && echo 1))
HAVE_METAL := $(if $(and $(HAVE_GLSLANG),$(filter Darwin,$(UNAME_S))),$(shell command -v spirv-cross >/dev/null 2>&1 && echo 1))
GPU_FLAG := $(OUT)/gpu$(if $(HAVE_VULKAN),-vulkan)$(if $(HAVE_METAL),-metal).flag
$(GPU_FLAG):
	@mkdir -p $(dir $@)
	@rm -f $(OUT)/gpu*.flag
	@touch $@
GPU_SPV := $(patsubst runtime/gpu/kernels/%.comp,$(OUT)/gpu/%.spv,$(wildcard runtime/gpu/kernels/*.comp))
$(OUT)/gpu/%.spv: runtime/gpu/kernels/%.comp runtime/gpu/gpu_abi.h $(wildcard runtime/gpu/kernels/*.glsl)
	@mkdir -p $(dir $@)
	@glslangValidator --target-env vulkan1.1 -V -o $@ $< > $@.log || { cat $@.log; exit 1; }
# MSL with the buffer indices of gpu_abi.h (tests/gpu/check_msl.py checks them)
$(OUT)/gpu/%.metal: $(OUT)/gpu/%.spv
	@spirv-cross --msl --msl-version 30100 --msl-decoration-binding --rename-entry-point main kt_$* comp $< --output $@
$(OUT)/gpu/kernels_spv.c: $(GPU_SPV) scripts/embed.sh
	@sh scripts/embed.sh spirv $@ $(foreach f,$(GPU_SPV),$(basename $(notdir $(f)))=$(f))
$(OUT)/gpu/kernels_msl.c: $(GPU_SPV:.spv=.metal) scripts/embed.sh
	@sh scripts/embed.sh msl $@ $(foreach f,$(GPU_SPV:.spv=.metal),$(basename $(notdir $(f)))=$(f))
$(OUT)/gpu/%.o: $(OUT)/gpu/%.c
	$(CC) $(CFLAGS) -c $< -o $@
GPU_OBJ := $(if $(HAVE_VULKAN)$(HAVE_METAL),$(OUT)/runtime/gpu/gpu_kernels.o $(OUT)/runtime/gpu/backend_gpu.o $(OUT)/runtime/gpu/gpu_selfcheck.o)
ifeq ($(HAVE_VULKAN),1)
GPU_OBJ += $(OUT)/runtime/gpu/vulkan.o $(OUT)/gpu/kernels_spv.o
$(OUT)/runtime/gpu/%.o: CFLAGS += -DKT_HAVE_VULKAN $(shell pkg-config --cflags vulkan)
$(BINDIR)/kintsugi-run $(BINDIR)/kintsugi-verify: LDLIBS += $(shell pkg-config --libs vulkan)
endif
ifeq ($(HAVE_METAL),1)
GPU_OBJ += $(OUT)/runtime/gpu/metal.o $(OUT)/gpu/kernels_msl.o
$(OUT)/runtime/gpu/%.o: CFLAGS += -DKT_HAVE_METAL
# manual reference counting: metal.m releases what it creates (see there)
$(OUT)/runtime/gpu/metal.o: runtime/gpu/metal.m runtime/gpu/gpu_host.h runtime/gpu/gpu_abi.h build/config.mk
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -std=c11,$(CFLAGS)) -x objective-c -fno-objc-arc -c $< -o $@
$(BINDIR)/kintsugi-run $(BINDIR)/kintsugi-verify: LDLIBS += -framework Metal -framework Foundation
endif
$(OUT)/runtime/gpu/%.o: CFLAGS += -Iruntime/gpu
ifneq ($(GPU_OBJ),)
$(OUT)/runtime/cli/%.o $(OUT)/verify/%.o: CFLAGS += -DKT_HAVE_GPU -Iruntime/gpu
endif
$(OUT)/runtime/cli/main.o $(OUT)/verify/behaviour.o $(OUT)/runtime/gpu/backend_gpu.o: $(GPU_FLAG)
$(BINDIR)/kintsugi-run: $(call objects_of,runtime/cli) $(GPU_OBJ) $(LIB_A)
	$(LINK)
# verify names the fixup rules and re-derives tensors with convert's plan
VERIFY_OBJ := $(call objects_of,verify) $(filter-out $(OUT)/fixup/main.o,$(call objects_of,fixup)) $(OUT)/convert/plan.o
$(OUT)/verify/%.o: CFLAGS += -Ifixup -Iconvert
$(BINDIR)/kintsugi-verify: $(VERIFY_OBJ) $(GPU_OBJ) $(LIB_A)
	$(LINK)
$(BINDIR)/kintsugi-testdata: $(call objects_of,testdata) $(LIB_A)
	$(LINK)
$(UNIT_BIN): $(call objects_of,tests/unit) $(LIB_A)
	$(LINK)
$(TESTTOOL): $(call objects_of,tests/tools) $(LIB_A)
	$(LINK)
$(OUT)/bench/read-bench: $(OUT)/bench/read_bench.o $(LIB_A)
	$(LINK)
$(OUT)/bench/quant-bench: $(OUT)/bench/quant_bench.o $(LIB_A)
	$(LINK)
$(OUT)/bench/matvec-bench: $(OUT)/bench/matvec_bench.o $(LIB_A)
	$(LINK)
$(OUT)/bench/ppl-bench: $(OUT)/bench/ppl_bench.o $(LIB_A)
	$(LINK)
$(OUT)/bench/gemm-bench: $(OUT)/bench/gemm_bench.o $(LIB_A)
	$(LINK)

tests-build: $(TOOL_BINS) $(UNIT_BIN) $(TESTTOOL)

check:
	@sh scripts/bootstrap.sh --tests
	@sh tests/run.sh

demo: all
	@sh scripts/demo.sh

# libFuzzer harnesses (clang), FUZZ_SECONDS per target
FUZZ_SECONDS ?= 600
fuzz:
	@sh scripts/bootstrap.sh --tests
	@sh tests/fuzz/run.sh --seconds $(FUZZ_SECONDS)

# the gate against mlx-lm on the single mutations plus 2,000 random pairs
differential: tests-build
	@sh scripts/bootstrap.sh --tests
	@cd tests/oracle && KT_MUTATION_PAIRS=$${KT_MUTATION_PAIRS:-2000} KT_MUTATION_SEED=$${KT_MUTATION_SEED:-1} \
	    ../../.venv/bin/python -m pytest -q -s -p no:cacheprovider test_differential.py

trained-model: all
	@sh scripts/train-model.sh

bench: all
	@sh bench/run.sh

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin
	cp $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build bin

help:
	@sed -n '3,11p' Makefile
