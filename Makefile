# Verona: build, run, test. `make run` and `make check` install what is
# missing first (deploy/deps.sh), so both work on a fresh Debian 12.

BUILD ?= release
OUT := build/$(BUILD)
BIN := $(OUT)/bin

CC ?= cc
PKGS := libuv libpq libsodium jansson inih
BUILD_ID ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CPPFLAGS += -D_GNU_SOURCE -MMD -MP -DVERONA_BUILD_ID='"$(BUILD_ID)"'
CFLAGS_COMMON := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -g
ifeq ($(BUILD),asan)
  CFLAGS_BUILD := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDFLAGS_BUILD := -fsanitize=address,undefined
else ifeq ($(BUILD),ubsan)
  CFLAGS_BUILD := -O2 -fsanitize=undefined -fno-sanitize-recover=all
  LDFLAGS_BUILD := -fsanitize=undefined
else
  CFLAGS_BUILD := -O2
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS := $(CFLAGS_COMMON) $(CFLAGS_BUILD) $(CFLAGS)
LIBS := $(PKG_LIBS) -lhttp_parser -lzxcvbn -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

PROTO_SRC := proto/config.c proto/control.c proto/hash_gate.c proto/log.c proto/password.c
WORKER_SRC := worker/account.c worker/address.c worker/auth.c worker/control.c worker/db.c \
              worker/hash_memory.c worker/http.c worker/login.c worker/routes.c worker/session_cache.c \
              worker/session_touch.c
SUPERVISOR_SRC := supervisor/admin.c supervisor/build.c supervisor/ctl.c supervisor/memwatch.c supervisor/metrics.c supervisor/migrate.c supervisor/notify.c \
                  supervisor/pool.c supervisor/rollout.c supervisor/serve.c supervisor/status.c supervisor/users.c
GEN_MIGRATIONS := $(OUT)/gen/migrations.c

obj = $(patsubst %.c,$(OUT)/obj/%.o,$(1))
PROTO_OBJ := $(call obj,$(PROTO_SRC)) $(OUT)/obj/gen/migrations.o
WORKER_OBJ := $(call obj,$(WORKER_SRC))
SUPERVISOR_OBJ := $(call obj,$(SUPERVISOR_SRC))

UNIT_SRC := $(wildcard tests/unit/*.c)
INTEGRATION_SRC := $(wildcard tests/integration/*.c)
FAULT_SRC := $(wildcard tests/fault/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

.PHONY: all deps run check bench clean tests lint fuzz
.DELETE_ON_ERROR:

all: deps $(BIN)/verona $(BIN)/verona-worker

deps:
	@sh deploy/deps.sh

$(OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Isql -c $< -o $@

$(GEN_MIGRATIONS): sql/embed.sh $(wildcard sql/[0-9][0-9][0-9]_*.sql)
	@mkdir -p $(dir $@)
	sh sql/embed.sh sql > $@

$(OUT)/obj/gen/migrations.o: $(GEN_MIGRATIONS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isql -c $< -o $@

$(BIN)/verona-worker: $(OUT)/obj/worker/main.o $(WORKER_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/verona: $(OUT)/obj/supervisor/main.o $(SUPERVISOR_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs libsystemd 2>/dev/null)

$(OUT)/tests/unit: $(call obj,$(UNIT_SRC) worker/address.c worker/auth.c worker/hash_memory.c worker/session_cache.c) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

$(OUT)/tests/integration: $(call obj,$(INTEGRATION_SRC) $(TESTLIB_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

$(OUT)/tests/fault: $(call obj,$(FAULT_SRC) $(TESTLIB_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

tests: all $(OUT)/tests/unit $(OUT)/tests/integration $(OUT)/tests/fault

run: all
	sh deploy/run.sh $(BIN)

check: deps
	sh tests/run.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --suppress=missingIncludeSystem --suppress=variableScope --inline-suppr -D_GNU_SOURCE -I/usr/include/postgresql \
	  proto worker supervisor tests

# libFuzzer on the control protocol decoder; FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 20
build/fuzz/fuzz_control: tests/fuzz/fuzz_control.c proto/control.c proto/log.c proto/control.h
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -o $@ tests/fuzz/fuzz_control.c proto/control.c proto/log.c -ljansson

fuzz: build/fuzz/fuzz_control
	@mkdir -p build/fuzz/corpus
	@build/fuzz/fuzz_control -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -print_final_stats=1 \
	  build/fuzz/corpus tests/fuzz/seeds > build/fuzz/fuzz.log 2>&1; rc=$$?; \
	  grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' build/fuzz/fuzz.log; exit $$rc

bench: deps
	sh bench/run.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
