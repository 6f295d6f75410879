# Verona: build, run, test. `make run` and `make check` install what is
# missing first (deploy/deps.sh), so both work on a fresh Debian 12.
#
# Nothing here may read what is installed before deploy/deps.sh has run:
# make expands $(shell pkg-config ...) when it reads this file, so every
# entry point that installs runs deps.sh first and then builds in a new
# make ($(SUBMAKE)), which reads this file again with the packages there.

BUILD ?= release
OUT := build/$(BUILD)
BIN := $(OUT)/bin

CC ?= cc
PKGS := libuv libpq libsodium jansson inih libseccomp
BUILD_ID ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CPPFLAGS += -D_GNU_SOURCE -MMD -MP -DVERONA_BUILD_ID='"$(BUILD_ID)"'
CFLAGS_COMMON := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -g
# The test builds (asan, ubsan, and hooks: release code with the test
# knobs, for the bench's leak) define VERONA_TEST_HOOKS; release and the
# package have no knob (SPEC 10.9).
ifeq ($(BUILD),asan)
  CFLAGS_BUILD := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -DVERONA_TEST_HOOKS
  LDFLAGS_BUILD := -fsanitize=address,undefined
else ifeq ($(BUILD),ubsan)
  CFLAGS_BUILD := -O2 -fsanitize=undefined -fno-sanitize-recover=all -DVERONA_TEST_HOOKS
  LDFLAGS_BUILD := -fsanitize=undefined
else ifeq ($(BUILD),hooks)
  CFLAGS_BUILD := -O2 -DVERONA_TEST_HOOKS
else
  CFLAGS_BUILD := -O2
endif
# Recursive (=), read when a recipe runs, never when this file is read.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
CFLAGS := $(CFLAGS_COMMON) $(CFLAGS_BUILD) $(CFLAGS)
LIBS = $(PKG_LIBS) -lhttp_parser -lzxcvbn -lm
CHECK_LIBS = $(shell pkg-config --libs check)
SYSTEMD_LIBS = $(shell pkg-config --libs libsystemd)
SUBMAKE = $(MAKE) --no-print-directory

PROTO_SRC := $(sort $(wildcard proto/*.c))
# The config parser alone (its fuzz targets).
CONFIG_SRC := $(sort $(wildcard proto/config*.c))
# Every worker/*.c but main.c (the fuzz harness has its own main).
WORKER_SRC := $(filter-out worker/main.c,$(sort $(wildcard worker/*.c)))
# Every supervisor/*.c but main.c: the daemon (serve.c and what it runs)
# and the one-shot commands (cmd_*.c), linked into the tests as well.
SUPERVISOR_SRC := $(filter-out supervisor/main.c,$(sort $(wildcard supervisor/*.c)))
GEN_MIGRATIONS := $(OUT)/gen/migrations.c

obj = $(patsubst %.c,$(OUT)/obj/%.o,$(1))
PROTO_OBJ := $(call obj,$(PROTO_SRC)) $(OUT)/obj/gen/migrations.o
WORKER_OBJ := $(call obj,$(WORKER_SRC))
SUPERVISOR_OBJ := $(call obj,$(SUPERVISOR_SRC))

UNIT_SRC := $(wildcard tests/unit/*.c)
INTEGRATION_SRC := $(wildcard tests/integration/*.c)
FAULT_SRC := $(wildcard tests/fault/*.c)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

# Pieces of the build that live beside what they build: man pages,
# packaging, the fresh-root test (each defines its own targets).
-include mk/*.mk

.PHONY: all build deps run check bench replay clean tests test-binaries lint fuzz install uninstall
.DELETE_ON_ERROR:
.DEFAULT_GOAL := all

# The entry points that install: deps first, then a make that reads this
# file with the packages in place.
all: deps
	@+$(SUBMAKE) build

tests: deps
	@+$(SUBMAKE) test-binaries

run: deps
	@+$(SUBMAKE) build
	sh deploy/run.sh $(BIN)

check: deps
	sh tests/run.sh

bench: deps
	sh bench/run.sh

# The shop's outage replayed (tests/replay/replay.py): a leaking deploy
# against Verona and a real Prometheus; prints the timeline. The test
# builds alone have the leak switch (SPEC 10.9): the hooks build.
replay: deps
	@+$(SUBMAKE) BUILD=hooks build
	/usr/bin/python3 tests/replay/replay.py

deps:
	@sh deploy/deps.sh

# Build only, with what is installed (packagers: debian/rules).
build: $(BIN)/verona $(BIN)/verona-worker $(MAN_PAGES)

test-binaries: build $(OUT)/tests/unit $(OUT)/tests/integration $(OUT)/tests/fault

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
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(SYSTEMD_LIBS)

$(OUT)/tests/unit: $(call obj,$(UNIT_SRC) worker/address.c worker/auth.c worker/hash_memory.c worker/session_cache.c supervisor/textbuf.c supervisor/rollout.c supervisor/health.c supervisor/build.c) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

$(OUT)/tests/integration: $(call obj,$(INTEGRATION_SRC) $(TESTLIB_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

$(OUT)/tests/fault: $(call obj,$(FAULT_SRC) $(TESTLIB_SRC)) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_BUILD) $(LDFLAGS) -o $@ $^ $(LIBS) $(CHECK_LIBS)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --suppress=missingIncludeSystem --suppress=variableScope --inline-suppr -D_GNU_SOURCE -I/usr/include/postgresql \
	  proto worker supervisor tests docs

# libFuzzer targets, tests/fuzz/fuzz_NAME.c, each with its seeds in
# tests/fuzz/seeds-NAME and its corpus in build/fuzz/corpus-NAME: the
# control protocol decoder, the config parser, the admin request line,
# the metrics listener's request head, a worker's HTTP handling through
# routing, and the JSON bodies of its POST routes.
# FUZZ_SECONDS bounds each. FUZZ_SEED=1 makes make check's runs repeat
# the same inputs (a machine at least as fast sees every input this one
# saw); explore with `make fuzz FUZZ_SEED=0 FUZZ_SECONDS=600` (0: a new
# seed each run). A crash's input lands in build/fuzz/crash-*.
FUZZ_SECONDS ?= 20
FUZZ_SEED ?= 1
FUZZ_TARGETS := control config admin metrics http json
FUZZ_CC = clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz/fuzz_control: tests/fuzz/fuzz_control.c proto/control.c proto/log.c proto/control.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -o $@ tests/fuzz/fuzz_control.c proto/control.c proto/log.c -ljansson

build/fuzz/fuzz_config: tests/fuzz/fuzz_config.c $(CONFIG_SRC) proto/config.h proto/config_keys.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_config.c $(CONFIG_SRC) $(PKG_LIBS)

build/fuzz/fuzz_admin: tests/fuzz/fuzz_admin.c supervisor/admin_request.c supervisor/admin_request.h $(CONFIG_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_admin.c supervisor/admin_request.c $(CONFIG_SRC) $(PKG_LIBS)

build/fuzz/fuzz_metrics: tests/fuzz/fuzz_metrics.c supervisor/metrics_request.c supervisor/metrics_request.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -o $@ tests/fuzz/fuzz_metrics.c supervisor/metrics_request.c

# The HTTP and JSON targets run the whole worker in the fuzzer's process
# (tests/fuzz/worker_harness.c); its main() is renamed out of the way.
FUZZ_WORKER_SRC = worker/main.c $(WORKER_SRC) $(PROTO_SRC) $(GEN_MIGRATIONS) tests/fuzz/worker_harness.c
build/fuzz/fuzz_http build/fuzz/fuzz_json: build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/worker_harness.h \
		$(FUZZ_WORKER_SRC) $(wildcard worker/*.h proto/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -Dmain=verona_worker_main $(PKG_CFLAGS) -Isql -o $@ $< $(FUZZ_WORKER_SRC) $(LIBS)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus-$$t; \
	  echo "fuzz_$$t ($(FUZZ_SECONDS) s):"; \
	  build/fuzz/fuzz_$$t -seed=$(FUZZ_SEED) -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/ build/fuzz/corpus-$$t tests/fuzz/seeds-$$t > build/fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' build/fuzz/$$t.log; \
	  [ $$rc -eq 0 ] || { grep -E '^(MS:|Base64:|artifact_prefix)|^    #[0-9]+ .* in [A-Za-z_0-9]+ /' \
	    build/fuzz/$$t.log | grep -v '/compiler-rt/' | head -40; exit $$rc; }; \
	done

# make install [PREFIX=/usr/local] [DESTDIR=...]: the programs, the man
# pages, the example config and the systemd unit (its paths follow
# PREFIX; it reads /etc/verona/verona.conf). `make uninstall` removes
# exactly these files, and the doc folders when they are left empty.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/verona
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install

install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(BIN)/verona $(BIN)/verona-worker $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 deploy/verona.conf $(DESTDIR)$(DOCDIR)/examples/verona.conf
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' deploy/verona.service > $(DESTDIR)$(UNITDIR)/verona.service
	chmod 644 $(DESTDIR)$(UNITDIR)/verona.service
	$(foreach p,$(MAN_PAGES),$(INSTALL) -d $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p))) && \
	  $(INSTALL) -m 644 $(p) $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p)))/ && ) true

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/verona $(DESTDIR)$(BINDIR)/verona-worker \
	  $(DESTDIR)$(DOCDIR)/examples/verona.conf $(DESTDIR)$(UNITDIR)/verona.service \
	  $(foreach p,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(p)))/$(notdir $(p)))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
