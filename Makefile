# aulac build.  `make` builds the three programs; `make demo` and `make test`
# first install missing Debian packages (scripts/deps.sh).
#
#   make NO_GPU=1      CPU-only build even where nvcc exists
#   make SAN=1         AddressSanitizer + UBSan build (into build-san/)
#   make BUILD=dir     put objects and programs under dir/

BUILD   ?= build
NO_GPU  ?= 0
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   := build-san
NO_GPU  := 1
endif

CC      ?= cc
PKGS    := grpc libprotobuf-c libsodium lmdb libfyaml libzstd openblas libmicrohttpd gnutls
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT     ?= -O2
CFLAGS  ?=
# -ffp-contract=off: no fused multiply-add contraction on any target, so the round's
# arithmetic (aggregate/, credit/) gives the same bits on every machine.
CFLAGS  += -std=gnu11 $(OPT) -g -fPIC -pthread -Wall -Wextra -Werror -ffp-contract=off \
           -Wno-unused-parameter -I. -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  := $(PKG_LIBS) -lm -lpthread

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# --- CUDA detection -------------------------------------------------------
NVCC := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
ifeq ($(NO_GPU),1)
NVCC :=
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CU_SRC := $(wildcard codec/*.cu model/*.cu worker/*.cu)
ifneq ($(NVCC),)
CFLAGS    += -DAULAC_HAVE_CUDA -I$(CUDA_HOME)/include
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lnccl -lstdc++
NVCCFLAGS ?= -O3 -std=c++17 -Xcompiler -fPIC,-Wall -I. -I$(BUILD)/gen \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -DAULAC_HAVE_CUDA
CU_OBJ    := $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CU_SRC))
else
CU_OBJ    :=
endif

# --- sources --------------------------------------------------------------
PROTO_C  := $(BUILD)/gen/proto/aulac.pb-c.c
PROTO_H  := $(BUILD)/gen/proto/aulac.pb-c.h
LIB_DIRS := common crypto ledger policies codec model aggregate credit privacy proto
LIB_SRC  := $(wildcard $(addsuffix /*.c,$(LIB_DIRS)))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/aulac.pb-c.o $(CU_OBJ)

COORD_SRC := $(filter-out coordinator/main.c,$(wildcard coordinator/*.c))
WORKER_SRC:= $(filter-out worker/main.c,$(wildcard worker/*.c))
CLI_SRC   := $(filter-out cli/main.c,$(wildcard cli/*.c))
COORD_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(COORD_SRC))
WORKER_OBJ:= $(patsubst %.c,$(BUILD)/obj/%.o,$(WORKER_SRC))
CLI_OBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC))

LIBAULAC  := $(BUILD)/libaulac.a
LIBAULAC_SO := $(BUILD)/libaulac.so
PROGRAMS  := $(BUILD)/aulac-coordinator $(BUILD)/aulac-worker $(BUILD)/aulac

TEST_SRC  := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_SUPPORT := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT))
# Tools the test scripts run (tests/tools/*.c, one program each; not cmocka tests).
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BINS:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
# Code the benches share (bench/lib/: the simulated federation's members, the loopback
# TCP and TLS copies bench/scale measures downloads against), linked into each. The TLS
# copy uses OpenSSL directly, the library gRPC itself links (libgrpc-dev pulls libssl-dev).
BENCH_LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/lib/*.c))
BENCH_LDLIBS  := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)

.PHONY: all deps demo demo-torch test tests unit-tests bench clean reference reference-rdp fuzz peers
# The benches are built (never run) by all and tests, so that they keep compiling.
all: $(PROGRAMS) $(LIBAULAC_SO) $(BENCH_BINS)

# Every object waits for the generated protobuf header.
$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(PROTO_H)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(PROTO_C) $(PROTO_H): proto/aulac.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=. --c_out=$(BUILD)/gen proto/aulac.proto

$(BUILD)/obj/gen/aulac.pb-c.o: $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBAULAC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBAULAC_SO): $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The dashboard's files (coordinator/assets/*) compiled in: coordinator/assets.c serves
# them from the table scripts/embed-assets.sh writes.
ASSETS    := $(sort $(wildcard coordinator/assets/*))
ASSETS_C  := $(BUILD)/gen/assets_data.c
$(ASSETS_C): $(ASSETS) scripts/embed-assets.sh
	@mkdir -p $(dir $@)
	scripts/embed-assets.sh $@ $(ASSETS)
$(BUILD)/obj/gen/assets_data.o: $(ASSETS_C) coordinator/assets_table.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
COORD_OBJ += $(BUILD)/obj/gen/assets_data.o

$(BUILD)/libcoord.a: $(COORD_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,/dev/null)
$(BUILD)/libworker.a: $(WORKER_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,/dev/null)
$(BUILD)/libcli.a: $(CLI_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,/dev/null)

$(BUILD)/aulac-coordinator: $(BUILD)/obj/coordinator/main.o $(BUILD)/libcoord.a $(LIBAULAC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/aulac-worker: $(BUILD)/obj/worker/main.o $(BUILD)/libworker.a $(LIBAULAC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/aulac: $(BUILD)/obj/cli/main.o $(BUILD)/libcli.a $(BUILD)/libworker.a $(LIBAULAC)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TEST_SUPPORT_OBJ) $(BUILD)/libcoord.a $(BUILD)/libworker.a $(BUILD)/libcli.a $(LIBAULAC) $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(TEST_LDFLAGS) -o $@ $< $(TEST_OBJ) $(TEST_SUPPORT_OBJ) $(BUILD)/libcoord.a $(BUILD)/libworker.a $(BUILD)/libcli.a $(LIBAULAC) $(LDLIBS) -lcmocka

# The fault sweep (tests/unit/test_fault_sweep.c) and the fileio test (its fsyncs
# counted): our objects' calls to these go through tests/fault/fault.c, which fails the
# Nth of a class; in these binaries only.
FAULT_WRAP := malloc calloc realloc strdup sodium_malloc mdb_txn_begin mdb_put \
              mdb_cursor_put mdb_cursor_del mdb_txn_commit mdb_txn_abort fsync fdatasync \
              write pwrite posix_fallocate rename grpc_call_start_batch exit
FAULT_TESTS := $(BUILD)/tests/test_fault_sweep $(BUILD)/tests/test_fileio
$(FAULT_TESTS): $(BUILD)/obj/tests/fault/fault.o
$(FAULT_TESTS): TEST_OBJ = $(BUILD)/obj/tests/fault/fault.o
$(FAULT_TESTS): TEST_LDFLAGS = $(foreach s,$(FAULT_WRAP),-Wl,--wrap=$(s))

$(BUILD)/bench/%: bench/%.c $(BENCH_LIB_OBJ) $(BUILD)/libcoord.a $(BUILD)/libworker.a $(LIBAULAC) $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BENCH_LIB_OBJ) $(BUILD)/libcoord.a $(BUILD)/libworker.a $(LIBAULAC) $(LDLIBS) $(BENCH_LDLIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/libworker.a $(LIBAULAC) $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libworker.a $(LIBAULAC) $(LDLIBS)

# Test-only attacker (tests/integration/byzantine.sh): aulac-worker built from the same
# sources with -DAULAC_TEST_BYZANTINE, which adds --test-byzantine scale=F (worker/main.c,
# worker/worker.c train_round). Every worker object of it is built with the define (it
# changes struct worker_options), into obj-byzantine/; never one of $(PROGRAMS).
BYZ_OBJ := $(patsubst %.c,$(BUILD)/obj-byzantine/%.o,$(wildcard worker/*.c))
$(BUILD)/obj-byzantine/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DAULAC_TEST_BYZANTINE -MMD -MP -c $< -o $@
$(BUILD)/tests/aulac-worker-byzantine: $(BYZ_OBJ) $(LIBAULAC)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(PROGRAMS) $(TEST_BINS) $(TOOL_BINS) $(BENCH_BINS) $(BUILD)/tests/aulac-worker-byzantine
# Objects named only as prerequisites of pattern rules are intermediate to make, which
# deletes them after a build, so that the next `make tests` (make test runs it) relinked
# every test and bench; kept, a built tree is not rebuilt.
.SECONDARY: $(TEST_SUPPORT_OBJ) $(BENCH_LIB_OBJ) $(BUILD)/obj/tests/fault/fault.o
# The unit tests and the programs some of them start (test_auth: aulac-coordinator): what
# scripts/test.sh runs under the sanitizers.
unit-tests: $(PROGRAMS) $(TEST_BINS)
bench: $(PROGRAMS) $(BENCH_BINS)

# PyTorch goldens and the transformers export check (PyPI venv; never needed by make test)
reference: $(LIBAULAC)
	@BUILD=$(BUILD) AULAC_REF_CC='$(CC)' AULAC_REF_CFLAGS='$(CFLAGS)' \
	    AULAC_REF_LDLIBS='$(LDFLAGS) $(LDLIBS)' scripts/reference.sh

# The RDP accountant's goldens from Google's dp-accounting (PyPI venv; never needed by
# make test: tests/reference/golden/rdp.tsv is committed)
reference-rdp:
	@scripts/reference-rdp.sh

# aulac and Flower side by side on the demo's workload (bench/README.md, "Peers"): a PyPI
# venv with Flower and PyTorch (build/peers-venv, created once; PEERS_VENV=dir to use
# another); never needed by make test
peers: $(PROGRAMS)
	@BUILD=$(BUILD) bench/peers/run.sh

deps:
	@scripts/deps.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# Bring your own trainer: three members train policies/examples/llama-tiny.yaml through
# the torch plug-in; the final model generates Vietnamese (torch venv: scripts/torch-venv.sh,
# created once from PyPI, REFERENCE_VENV=dir to use another)
demo-torch: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo-torch.sh

# The build uses every core unless make was given -j (CI runs a plain `make test`).
test: deps
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc)) tests
	@scripts/test.sh

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj $(BUILD)/obj-byzantine -name '*.d' 2>/dev/null)
