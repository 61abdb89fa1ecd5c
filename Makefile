# ferrocache: `make run` serves 127.0.0.1:11211 in the foreground;
# `make test` runs every check CI runs.
CARGO ?= cargo
BIN_DEBUG := target/debug/ferrocache
BIN_RELEASE := target/release/ferrocache

.PHONY: all build release run test lint unit clients ops package deb install demo soak fuzz bench bench-floor clean memcached-suite
.PHONY: bench-replication bench-tls

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

run: release
	$(BIN_RELEASE) -l 127.0.0.1 -p 11211

# Everything CI runs: formatting, lints, unit + integration tests, and
# third-party clients against the real binary.
# Python tools go into target/venv, Debian packages are installed when
# missing (as root, or through sudo), no service is left running.
test: lint unit clients ops soak package $(if $(MEMCACHED_SRC),memcached-suite)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

# tests/cluster_dns.rs runs Debian's dnsmasq (dnsmasq-base: the binary,
# no service) as its DNS server.
unit:
	bash -c '. scripts/deps.sh && apt_install dnsmasq-base'
	$(CARGO) test --all-targets

clients: build
	scripts/pymemcache-integration $(BIN_DEBUG)
	scripts/pymemcache-tls $(BIN_DEBUG)
	scripts/memccapable-check $(BIN_DEBUG)
	scripts/pylibmc-binary $(BIN_DEBUG)
	BIN=$(BIN_DEBUG) scripts/cluster-demo
	BIN=$(BIN_DEBUG) scripts/ring-golden --check
	BIN=$(BIN_DEBUG) scripts/cluster-ha

# memcached 1.6.18's own t/*.t suite against the debug build; needs a
# memcached checkout in MEMCACHED_SRC (CI has none: see the README).
memcached-suite: build
	scripts/memcached-suite $(BIN_DEBUG)

# The systemd unit and make install (staged).
ops: build
	scripts/systemd-check $(BIN_DEBUG)

# The Debian package, built (`make deb`, needs cargo-deb: installed with
# `cargo install cargo-deb --locked` when missing, minutes once) and checked:
# contents, conffiles, maintainer scripts; installed and served when root on
# a machine without a running systemd, else unpacked with dpkg -x.
package:
	scripts/deb-check

deb:
	scripts/deb-build

# Copies an existing release build: run `make release` as your own user
# first, then `sudo make install`; cargo never runs as root here.
install:
	scripts/install

# Auto-discovery with a real client, then a failure, a replacement and a
# scale-out with their hit ratios (scripts/cluster-ha), on the release build.
demo: release
	scripts/cluster-demo

# Concurrency soak against the release build (SOAK_SECS, default 20).
soak:
	SOAK_SECS=$${SOAK_SECS:-20} $(CARGO) test --release --test soak -- --ignored --nocapture

# Each fuzz target for FUZZ_SECS seconds (default 60); see scripts/fuzz.
fuzz:
	scripts/fuzz $${FUZZ_SECS:-60}

bench:
	$(CARGO) bench

# CPU/op of ferrocache and memcached over the do-nothing floor server, same
# rounds (MEMCACHED_1645=/path/to/memcached adds that build). Twelve rounds:
# on a small virtual machine a run may land in a slow state, and the best
# rounds need each server to have some fast ones (docs/performance.md).
bench-floor:
	$(CARGO) build --release
	scripts/bench-vs-memcached --floor $${BENCH_SECS:-3} $${BENCH_ROUNDS:-12}

# TLS: ferrocache -Z against memcached -Z, every TLS workload (get-heavy
# unpipelined, the same with both held to one request rate, pipelined 16,
# set 1 KiB, TLS over plain text, handshakes); needs memtier_benchmark
# built with TLS on the PATH. Each workload prints the rounds' geometric
# mean ratio with its 95% interval (docs/performance.md).
bench-tls:
	$(CARGO) build --release
	scripts/bench-vs-memcached --tls $${BENCH_SECS:-3} $${BENCH_ROUNDS:-12}

# What --replicas 1 costs (server CPU per operation against --replicas 0)
# and a black-holed peer's effect on clients, on 127.0.0.10-12 (issue 16).
bench-replication:
	$(CARGO) build --release
	scripts/bench-replication $${BENCH_SECS:-5} $${BENCH_ROUNDS:-3}

clean:
	$(CARGO) clean
