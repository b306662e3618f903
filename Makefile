# jobd - `make` builds ./jobd; `make run` and `make test` are the two commands of the README.
CC      ?= cc
PKGS    := libmicrohttpd jansson hiredis libcurl libcrypto
DEPS_PKGS := libmicrohttpd-dev libjansson-dev libhiredis-dev libcriterion-dev \
             libcurl4-openssl-dev libssl-dev redis-server pkg-config
# HTTPS: server/tls.c checks the certificate and key with GnuTLS, the library
# libmicrohttpd serves TLS with; the tests make their certificates with openssl.
PKGS      += gnutls
TLS_PKGS  := libgnutls28-dev openssl
DEPS_PKGS += $(TLS_PKGS)
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
OPT     ?= -O2 -g
CFLAGS  := $(OPT) -std=c11 -D_GNU_SOURCE $(WARN) -pthread $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
BUILD   ?= build
# Debian 12 packages of the Ruby gem's tests (clients/ruby: Rails 6.1, puma).
RUBY_PKGS := ruby ruby-activejob ruby-railties ruby-rack puma ruby-minitest

LIB_SRC  := $(filter-out server/main.c,$(wildcard util/*.c server/*.c handlers/*.c queues/*.c))
TEST_SRC := $(wildcard tests/*.c tests/fuzz/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all run test test-asan deps clean bench check-config test-ruby deps-ruby fuzz fuzz-deps fuzz-bins chaos soak

# The Lua scripts of the Redis data model, queues/lua/<name>.lua (lib/: the
# pieces they include), embedded as C strings redis_lua_<name> by
# queues/lua/embed.sh into a generated file of the build folder.
LUA_SCRIPTS := $(wildcard queues/lua/*.lua)
LUA_GEN     := $(BUILD)/gen/redis_lua.c
LIB_OBJ     += $(LUA_GEN:.c=.o)

all: jobd

jobd: $(BUILD)/jobd
	cp $< $@

$(BUILD)/jobd: $(BUILD)/server/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/jobd_tests: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# -MMD -MP: each object depends on the headers it includes (build/**/*.d).
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/server/main.d

$(LUA_GEN): queues/lua/embed.sh $(LUA_SCRIPTS) $(wildcard queues/lua/lib/*.lua)
	@mkdir -p $(dir $@)
	@echo "  GEN $@"
	@sh queues/lua/embed.sh $@ $(LUA_SCRIPTS)

$(LUA_GEN:.c=.o): $(LUA_GEN)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

# Syntax check of the Lua scripts (Redis runs Lua 5.1), run by make test.
LUA_PKGS := lua5.1
.PHONY: lint-lua
lint-lua:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(LUA_PKGS)"
	luac5.1 -p $(LUA_SCRIPTS) $(wildcard queues/lua/lib/*.lua)

# The paced loader of the benchmarks: a client only (libcurl, libmicrohttpd).
$(BUILD)/bench/paced: bench/paced.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# Benchmarks, not tests: own redis-server, nginx and jobd on free loopback
# ports; one table, also written to bench/results/<date>.txt (bench/run.sh).
bench: deps
	@$(MAKE) --no-print-directory jobd $(BUILD)/bench/paced
	bench/run.sh $(BUILD)

# Installs what is missing (Debian 12, as root).
deps:
	@missing=""; for p in $(DEPS_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Starts a local redis-server if none answers, then jobd on the default config.
run: deps
	@$(MAKE) --no-print-directory jobd
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  mkdir -p /tmp/jobd-redis && \
	  redis-server --port 6379 --bind 127.0.0.1 --dir /tmp/jobd-redis --appendonly yes \
	    --daemonize yes --pidfile /tmp/jobd-redis/redis.pid --logfile /tmp/jobd-redis/redis.log && \
	  echo "started redis-server on 127.0.0.1:6379 (data in /tmp/jobd-redis)"; }
	JOBD_LISTEN=$${JOBD_LISTEN:-127.0.0.1:8080} ./jobd

# promtool (Debian's prometheus package) checks GET /metrics in the metrics suite.
METRICS_PKGS := prometheus
.PHONY: deps-metrics
deps-metrics:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(METRICS_PKGS)"

# Starts its own redis-server(s) on free ports, runs every test, stops them.
test: deps lint-lua deps-metrics
	tests/layers.sh
	@$(MAKE) --no-print-directory jobd $(BUILD)/tests/jobd_tests
	tests/run.sh $(BUILD)
	@$(MAKE) --no-print-directory test-ruby

# The same tests built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps deps-metrics
	@$(MAKE) --no-print-directory BUILD=build-asan \
	  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  build-asan/jobd build-asan/tests/jobd_tests
	JOBD_ASAN=1 tests/run.sh build-asan

# The jobd gem (clients/ruby): client tests against ./jobd and a real Rails app
# served by puma, with their own redis-server and jobd on free loopback ports.
test-ruby: deps deps-ruby
	@$(MAKE) --no-print-directory $(BUILD)/jobd
	cd clients/ruby && JOBD_BIN=$(abspath $(BUILD)/jobd) \
	  ruby -Ilib -e 'Dir["test/*_test.rb"].sort.each { |f| require File.expand_path(f) }'

deps-ruby:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(RUBY_PKGS)"

clean:
	rm -rf build build-asan build-fuzz jobd

# Deploy with docker-compose (README): the stack of docker/docker-compose.yml.
COMPOSE ?= docker-compose
DOCKER_TEST_PKGS := docker.io docker-compose debootstrap iptables curl jq
.PHONY: compose-up docker-test
compose-up:
	$(COMPOSE) -f docker/docker-compose.yml up -d --build

# The compose stack against a private dockerd, base images made locally (as root).
docker-test:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(DOCKER_TEST_PKGS)"
	tests/docker/run.sh

# Fuzzing: the targets of tests/fuzz/ built with clang, libFuzzer, ASan and
# UBSan in build-fuzz/, each run FUZZ_SECONDS, FUZZ_JOBS at a time, from the
# seeds of tests/fuzz/corpus/<target>/ (tests/fuzz/run.sh).
FUZZ_PKGS    := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= 2
FUZZ_TARGETS := job batch router config time record
FUZZ_OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined -DJOBD_LIBFUZZER

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT="$(FUZZ_OPT)" fuzz-bins
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz_util.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-deps: deps
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(FUZZ_PKGS)"

# Chaos: redis-server (AOF, appendfsync always), 3 jobd and a webhook receiver
# on free loopback ports; CHAOS_JOBS jobs from several clients while jobd
# processes are killed (-9) and restarted, and Redis restarted, for
# CHAOS_SECONDS; then every accepted job is checked (tests/chaos/chaos.py).
CHAOS_PKGS    := python3
CHAOS_SECONDS ?= 150
CHAOS_KILLS   ?= 30
CHAOS_JOBS    ?= 20000

chaos: deps
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(CHAOS_PKGS)"
	@$(MAKE) --no-print-directory jobd
	tests/chaos/chaos.py --jobd $(BUILD)/jobd --seconds $(CHAOS_SECONDS) --jobs $(CHAOS_JOBS) \
	  --kills $(CHAOS_KILLS)

# Soak (not in CI): one jobd under mixed load for SOAK_SECONDS; its RSS and
# open fds are sampled every 10 s and may grow by less than 5 % after the
# first minute (tests/chaos/soak.py).
SOAK_SECONDS ?= 600

soak: deps
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(CHAOS_PKGS)"
	@$(MAKE) --no-print-directory jobd
	tests/chaos/soak.py --jobd $(BUILD)/jobd --seconds $(SOAK_SECONDS)

