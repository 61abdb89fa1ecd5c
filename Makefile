# ferrocache: `make run` serves 127.0.0.1:11211 in the foreground;
# `make test` runs every check CI runs.
CARGO ?= cargo
BIN_DEBUG := target/debug/ferrocache
BIN_RELEASE := target/release/ferrocache

.PHONY: all build release run test lint unit clients ops install demo soak fuzz bench clean memcached-suite

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

run: release
	$(BIN_RELEASE) -l 127.0.0.1 -p 11211

# Everything CI runs: formatting, lints, unit + integration tests, and
# third-party clients against the real binary.
test: lint unit clients ops soak $(if $(MEMCACHED_SRC),memcached-suite)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet

unit:
	$(CARGO) test --all-targets

clients: build
	scripts/pymemcache-integration $(BIN_DEBUG)
	scripts/pymemcache-tls $(BIN_DEBUG)
	scripts/memccapable-check $(BIN_DEBUG)
	scripts/pylibmc-binary $(BIN_DEBUG)
	BIN=$(BIN_DEBUG) scripts/cluster-demo

# memcached 1.6.18's own t/*.t suite against the debug build; needs a
# memcached checkout in MEMCACHED_SRC (CI has none: see the README).
memcached-suite: build
	scripts/memcached-suite $(BIN_DEBUG)

# The systemd unit and make install (staged).
ops: build
	scripts/systemd-check $(BIN_DEBUG)

install: release
	scripts/install

# Auto-discovery with a real client, against the release build.
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

clean:
	$(CARGO) clean
