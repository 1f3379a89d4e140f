# tether — top-level Makefile (the one entry point, see README.md).
#
#   make            build everything (installs missing build deps first)
#   make run        build and start one node on the embedded defaults
#   make test       install test deps, build, run every test, print a summary
#   make bench      run the benchmark suite
#   make fuzz       run every fuzz target at length (FUZZ_SECONDS each)
#   make deps       install dependencies only
#
# Switches: SANITIZER=address,undefined  OPT=-O0  V=1  CI=true (=> -Werror)
#           JOBS=N (parallel compiles of `make test`, default: every core)

OPT ?= -O2
DEBUG ?= -g
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
       -Wno-unused-parameter
ifeq ($(CI),true)
WERROR ?= -Werror
endif
STD = -std=c11 -D_GNU_SOURCE

DEPS_PREFIX := $(CURDIR)/.deps
PKG_CONFIG := PKG_CONFIG_PATH=$(DEPS_PREFIX)/lib/pkgconfig pkg-config
PKGS := libuv jansson hiredis

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SANITIZER ?=
ifneq ($(SANITIZER),)
SAN_FLAGS = -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
BUILD ?= build-san
else
BUILD ?= build
endif

# Resolved lazily: pkg-config only works once deps are installed.
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) wolfssl 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) \
           $(shell $(PKG_CONFIG) --static --libs wolfssl 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

# server/ and bench/ see only the public headers (lib/include); lib/ itself,
# the unit tests and the fuzz targets also reach the internal ones beside
# the code (-Ilib).
PUBLIC_INC = -Ilib/include
INTERNAL_INC = -Ilib/include -Ilib
INC = $(INTERNAL_INC)
ALL_CFLAGS = $(STD) $(OPT) $(DEBUG) $(WARN) $(WERROR) $(SAN_FLAGS) -fvisibility=hidden \
             $(INC) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lhttp_parser -lm -lpthread

ifndef V
QUIET_CC = @printf '    %b %b\n' CC $@ 1>&2;
QUIET_LINK = @printf '    %b %b\n' LINK $@ 1>&2;
QUIET_AR = @printf '    %b %b\n' AR $@ 1>&2;
endif

LIB_SRCS := $(sort $(wildcard lib/*/*.c))
SERVER_SRCS := $(sort $(wildcard server/*.c server/*/*.c))
BENCH_SRCS := $(sort $(wildcard bench/*.c))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
FUZZ_SRCS := $(sort $(wildcard test/fuzz/fuzz_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
SERVER_OBJS := $(SERVER_SRCS:%.c=$(BUILD)/%.o)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)
FUZZ_BINS := $(FUZZ_SRCS:test/fuzz/%.c=$(BUILD)/fuzz/%)

$(SERVER_OBJS) $(BENCH_OBJS): INC = $(PUBLIC_INC)

LIBTETHER := $(BUILD)/libtether.a
TETHERD := $(BUILD)/tetherd
BENCH := $(BUILD)/tether-bench

.PHONY: all deps deps-test deps-bench run test unit integration bench fuzz fuzz-smoke clean distclean format

all: deps
	@$(MAKE) --no-print-directory binaries

binaries: $(TETHERD) $(if $(BENCH_SRCS),$(BENCH)) $(UNIT_BINS)

deps:
	@deploy/deps.sh build

deps-test:
	@deploy/deps.sh test

deps-bench:
	@deploy/deps.sh bench

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIBTETHER): $(LIB_OBJS)
	$(QUIET_AR)rm -f $@ && $(AR) rcs $@ $^

$(TETHERD): $(SERVER_OBJS) $(LIBTETHER)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BENCH): $(BENCH_OBJS) $(LIBTETHER)
	$(QUIET_LINK)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests link the static library, so they can reach hidden internals,
# plus any tetherd object listed as a prerequisite below.
$(BUILD)/test/%: test/unit/%.c $(LIBTETHER)
	@mkdir -p $(dir $@)
	$(QUIET_LINK)$(CC) $(ALL_CFLAGS) -MMD -MP $(ALL_LDFLAGS) -o $@ $< $(filter %.o,$^) \
		$(LIBTETHER) $(CMOCKA_LIBS) $(LIBS)
$(BUILD)/test/test_udp: $(BUILD)/server/udp.o
$(BUILD)/test/test_config: $(BUILD)/server/config/keys.o $(BUILD)/server/config/load.o
$(BUILD)/test/test_rstore: $(BUILD)/server/store/rkey.o $(BUILD)/server/store/wrap.o \
	$(BUILD)/server/store/backlog.o $(BUILD)/server/store/rconn.o
$(BUILD)/test/test_latency: $(BUILD)/server/latency.o
$(BUILD)/test/test_adopt: $(BUILD)/server/store/adopt.o
$(BUILD)/test/test_coap_bridge: $(BUILD)/server/admin/coap_bridge.o
$(BUILD)/test/test_authlog: $(BUILD)/server/admin/authlog.o
$(BUILD)/test/test_steer: $(BUILD)/server/workers/steer.o
$(BUILD)/test/test_workers_derive: $(BUILD)/server/workers/derive.o $(BUILD)/server/config/keys.o

# libFuzzer targets: the library (and the tetherd sources a target names)
# compiled once with clang's fuzzer instrumentation under $(BUILD)/fuzz-obj,
# then each target links those objects (compiling the library again for
# each of 15 targets cost `make test` minutes).
FUZZ_CC ?= clang
FUZZ_SAN = address,undefined
FUZZ_CFLAGS = -g -O1 $(INTERNAL_INC) $(STD) $(PKG_CFLAGS)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fuzz-obj/%.o)
# A target over tetherd code names the server objects it needs.
FUZZ_SERVER_OBJS :=
$(BUILD)/fuzz/fuzz_rstore: FUZZ_SERVER_OBJS := $(BUILD)/fuzz-obj/server/store/rkey.o \
	$(BUILD)/fuzz-obj/server/store/wrap.o
$(BUILD)/fuzz/fuzz_config: FUZZ_SERVER_OBJS := $(BUILD)/fuzz-obj/server/config/keys.o \
	$(BUILD)/fuzz-obj/server/config/load.o
$(BUILD)/fuzz/fuzz_http_coap: FUZZ_SERVER_OBJS := $(BUILD)/fuzz-obj/server/admin/coap_bridge.o
$(BUILD)/fuzz/fuzz_rstore: $(BUILD)/fuzz-obj/server/store/rkey.o $(BUILD)/fuzz-obj/server/store/wrap.o
$(BUILD)/fuzz/fuzz_config: $(BUILD)/fuzz-obj/server/config/keys.o \
	$(BUILD)/fuzz-obj/server/config/load.o
$(BUILD)/fuzz/fuzz_http_coap: $(BUILD)/fuzz-obj/server/admin/coap_bridge.o
# Kept: make would delete them as intermediates of the pattern rule below.
.SECONDARY: $(FUZZ_LIB_OBJS) $(BUILD)/fuzz-obj/server/store/rkey.o \
	$(BUILD)/fuzz-obj/server/store/wrap.o $(BUILD)/fuzz-obj/server/config/keys.o \
	$(BUILD)/fuzz-obj/server/config/load.o $(BUILD)/fuzz-obj/server/admin/coap_bridge.o
$(BUILD)/fuzz-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(QUIET_CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/%: test/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(QUIET_LINK)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -MMD -MP -o $@ $< \
		$(FUZZ_LIB_OBJS) $(FUZZ_SERVER_OBJS) $(LIBS)

run: all
	$(TETHERD) $(if $(CONFIG),--config $(CONFIG))

# `make test` = deps for testing, a -Werror build, unit + integration tests,
# short fuzz runs; one summary line at the end.
test: deps-test
	@$(MAKE) --no-print-directory -j$(JOBS) binaries
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-bins
	@BUILD=$(BUILD) JOBS=$(JOBS) test/run.sh

fuzz-bins: $(FUZZ_BINS)

FUZZ_SECONDS ?= 300
fuzz: deps-test
	@$(MAKE) --no-print-directory fuzz-bins
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz-corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz-corpus/$$n test/fuzz/corpus/$$n || exit 1; done

bench: deps-bench
	@$(MAKE) --no-print-directory binaries
	@BUILD=$(BUILD) bench/run.sh

format:
	clang-format -i $(LIB_SRCS) $(SERVER_SRCS) $(BENCH_SRCS) $(UNIT_SRCS) $(FUZZ_SRCS) \
		$(wildcard lib/*/*.h lib/include/tether/*.h server/*.h server/*/*.h bench/*.h)

clean:
	rm -rf build build-san

distclean: clean
	rm -rf .deps

-include $(LIB_OBJS:.o=.d) $(SERVER_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(UNIT_BINS:=.d) \
	$(wildcard $(BUILD)/fuzz-obj/*/*/*.d $(BUILD)/fuzz-obj/*/*.d) $(FUZZ_BINS:=.d)
