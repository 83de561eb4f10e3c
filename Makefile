# chat-api: plain GNU make. Objects under build/, -MMD -MP dependencies.
# Targets: all deps test run asan tsan fuzz lint format bench soak clean.

CC      ?= gcc
BUILD   ?= build
CK_FORK ?= yes
WERROR  ?= 1

PKGS      := libhiredis-dev libssl-dev libcjson-dev liburing-dev zlib1g-dev check redis-server pkg-config \
             python3 python3-websockets python3-pytest python3-redis valgrind \
             docker-compose nginx-light openssl python3-cryptography curl
FUZZ_PKGS := clang libclang-rt-14-dev

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wundef
ifeq ($(WERROR),1)
WARN += -Werror
endif
# The protocol code takes bytes from peers: it also builds with -Wconversion.
PROTO_WARN := -Wconversion -Wsign-conversion

PKG_CFLAGS := $(shell pkg-config --cflags libcjson hiredis openssl liburing zlib 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs libcjson hiredis openssl liburing zlib 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

# CFLAGS and LDFLAGS are the caller's (the sanitizer targets set them);
# ALL_CFLAGS adds what every build needs.
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -std=c17 -D_GNU_SOURCE $(WARN) -Isrc $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS  += $(PKG_LIBS) -pthread

# Pure protocol modules: bytes in, results out. Unit-tested and fuzzed alone.
PROTO_SRC := src/http.c src/ws/handshake.c src/ws/frame.c src/ws/utf8.c \
             src/ws/auth.c src/ws/b64url.c src/ws/pmd.c src/json.c src/room/envelope.c src/redis/url.c src/redis/message.c \
             src/redis/seq.c src/redis/cluster.c
CORE_SRC  := $(PROTO_SRC) src/hmap.c src/config.c src/fbuf.c src/room/room.c src/room/registry.c \
             src/redis/outbox.c src/redis/pub_queue.c src/redis/sub_fifo.c src/inbox.c src/fanout.c src/ipaddr.c src/ws/keys.c src/stats.c \
             src/send_ring.c src/wheel.c src/send_batch.c src/conn.c src/loop.c src/ring.c src/dest.c src/log.c src/compressor.c src/deliver.c
# The threaded server: main, acceptor, workers, logging, the Redis broker.
MAIN_SRC  := src/main.c src/server.c src/acceptor.c src/worker.c \
             src/redis/broker.c src/redis/publisher.c src/redis/subscriber.c \
             src/redis/link.c src/redis/route.c src/redis/nodes.c src/redis/resolve.c src/redis/backoff.c src/redis/receive.c
MAIN_ASM  := src/web_assets.S

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(BUILD)/%.o) $(MAIN_ASM:%.S=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/unit/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps browser-deps fuzz-deps test unit e2e compose-check run run-cluster fleet asan tsan fuzz lint \
        format docs bench compare soak clean

all: $(BUILD)/chat-api

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(if $(filter $(PROTO_SRC),$<),$(PROTO_WARN)) -c $< -o $@

# The demo page is linked in; the object depends on it.
$(BUILD)/src/web_assets.o: src/web_assets.S web/index.html
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(BUILD)/chat-api: $(CORE_OBJ) $(MAIN_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The load generator: epoll, our own frame codec in client role.
$(BUILD)/chat-bench: bench/chat-bench.c src/ws/frame.c src/ws/utf8.c src/ws/frame.h
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE -O2 -g $(WARN) -Isrc bench/chat-bench.c src/ws/frame.c \
	  src/ws/utf8.c -o $@ -lz

$(BUILD)/unit-tests: $(CORE_OBJ) $(TEST_OBJ)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CHECK_LIBS)

# Installs the Debian packages that are missing, through sudo when not root.
deps:
	@./scripts/deps.sh $(PKGS)

fuzz-deps:
	@./scripts/deps.sh $(FUZZ_PKGS)

# `make test` installs what is missing, then builds and runs every test.
test: deps browser-deps
	@$(MAKE) --no-print-directory unit compose-check e2e

# Debian's chromium and playwright-core (pinned in tests/browser) for the
# browser test, tests/e2e/test_browser.py.
browser-deps:
	@./scripts/browser-deps.sh

# docker-compose.yml must be a valid compose file (no Docker engine needed).
compose-check:
	docker-compose -f docker-compose.yml config -q

unit: $(BUILD)/unit-tests
	CK_FORK=$(CK_FORK) $(BUILD)/unit-tests

# The load generator drives the reconnect-storm test (test_storm.py); no-uring
# runs the server with io_uring refused (test_send_path.py). The send-path
# suites run a second time with IO_URING=off, so both ways of writing pass
# them (docs/operations.md, "The send path").
E2E_ENV = CHAT_API_BIN=$(abspath $(BUILD)/chat-api) CHAT_BENCH_BIN=$(abspath $(BUILD)/chat-bench) \
          CHAT_NO_URING_BIN=$(abspath $(BUILD)/no-uring) CHAT_API_SANITIZER=$(SANITIZER) \
          CHAT_SLOW_RESOLVER=$(abspath $(BUILD)/slow-resolver.so)
SEND_PATH_SUITES := tests/e2e/test_chat.py tests/e2e/test_protocol.py tests/e2e/test_overload.py \
                    tests/e2e/test_compression.py \
                    tests/e2e/test_send_path.py
e2e: $(BUILD)/chat-api $(BUILD)/chat-bench $(BUILD)/no-uring $(BUILD)/slow-resolver.so
	$(E2E_ENV) /usr/bin/python3 -m pytest -q tests/e2e
	$(E2E_ENV) IO_URING=off /usr/bin/python3 -m pytest -q $(SEND_PATH_SUITES)

$(BUILD)/no-uring: tests/helpers/no_uring.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -o $@ $<

# A getaddrinfo that takes its time (tests/e2e/test_resolve.py).
$(BUILD)/slow-resolver.so: tests/helpers/slow_resolver.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -shared -fPIC -o $@ $< -ldl

# After deps, a fresh make: pkg-config's flags are read once the packages exist.
run: deps
	@$(MAKE) --no-print-directory $(BUILD)/chat-api
	exec $(BUILD)/chat-api

# The docker compose topology from Debian packages: Redis and two pods.
run-cluster: deps
	@$(MAKE) --no-print-directory $(BUILD)/chat-api
	exec scripts/run-cluster.sh

# Sanitizer builds: the whole test suite, in their own build trees.
asan: deps browser-deps
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZER=asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" unit e2e CK_FORK=no
# ThreadSanitizer runs the code 5-15 times slower. The floor of the workers'
# inbox budget (fanout.h) is work, bytes to write, so the same wait in time for
# other rooms (under 250 ms in a flood) needs a quarter of that floor there.
tsan: deps browser-deps
	@$(MAKE) --no-print-directory BUILD=build/tsan SANITIZER=tsan \
	  CFLAGS="-O1 -g -fsanitize=thread -DFANOUT_BUDGET_MIB=16u" LDFLAGS="-fsanitize=thread" \
	  unit e2e CK_FORK=no

# libFuzzer targets, each run FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := http frame json envelope seq cluster
FUZZ_CFLAGS  := -std=c17 -D_GNU_SOURCE -O1 -g -Isrc $(PKG_CFLAGS) \
                -fsanitize=fuzzer,address,undefined
fuzz: fuzz-deps $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	  echo "fuzz-$$t: $(FUZZ_SECONDS)s"; \
	  $(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus-$$t fuzz/seeds/$$t || exit 1; \
	done
$(BUILD)/fuzz/fuzz-%: fuzz/fuzz_%.c $(CORE_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $< $(CORE_SRC) -o $@ $(PKG_LIBS)

# Benchmarks: see bench/README.md. Not part of make test.
BENCH_PKGS := gnuplot-nox util-linux curl
bench: deps
	@./scripts/deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory $(BUILD)/chat-api $(BUILD)/chat-bench
	bench/run.sh

# chat-api against uWebSockets, Bun and Node's ws, side by side (bench/compare.sh;
# the peers in bench/peers/, their versions locked). Not part of make test.
compare: deps
	@./scripts/deps.sh $(BENCH_PKGS)
	@command -v npm >/dev/null 2>&1 || ./scripts/deps.sh nodejs npm
	@cd bench/peers && if [ ! -f node_modules/.package-lock.json ] || \
	  [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund --loglevel=error; fi
	@$(MAKE) --no-print-directory $(BUILD)/chat-api $(BUILD)/chat-bench
	bench/compare.sh

# Ten minutes of mixed traffic against two pods and Redis; RSS and descriptors
# must end flat (bench/soak.py). Not part of make test.
soak: deps
	@./scripts/deps.sh gnuplot-nox
	@$(MAKE) --no-print-directory $(BUILD)/chat-api
	/usr/bin/python3 bench/soak.py

# A Redis Cluster (3 masters, 3 replicas), 8 pods and chat-bench over a few
# hundred rooms, with a master killed mid-run (bench/fleet.py). Not part of
# make test; about two minutes.
fleet: deps
	@$(MAKE) --no-print-directory $(BUILD)/chat-api $(BUILD)/chat-bench
	/usr/bin/python3 bench/fleet.py

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -Isrc -D_GNU_SOURCE src tests/unit

# The settings and counters tables in docs/, from the binary that owns them.
docs: $(BUILD)/chat-api
	/usr/bin/python3 scripts/docs.py $(BUILD)/chat-api

format:
	clang-format -i $(shell find src tests/unit fuzz bench -name '*.[ch]')

clean:
	rm -rf $(BUILD)

-include $(CORE_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
