# The two commands a new user needs:
#   make demo    contending workers on 5 local redis-server instances, 2 of them killed part-way
#   make test    every test suite (installs redis-server and Rust targets if missing)
#
# Demo options go after `--` (`make demo -- --json`) or in ARGS (`make demo ARGS="--json"`).

CARGO ?= cargo
SHELL := /bin/bash

ifeq (demo,$(firstword $(MAKECMDGOALS)))
  DEMO_GOALS := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
  ifneq ($(DEMO_GOALS),)
    $(eval $(DEMO_GOALS):;@:)
  endif
endif

.PHONY: all demo test deps lint test-rust nostd docs sim-long

# Each binding or suite adds its own file here: it appends its target to TEST_SUITES (run by
# `make test` after the Rust suites) and installs what it needs in its own recipe.
TEST_SUITES :=
-include mk/*.mk

all: test

deps:
	@scripts/ensure-deps.sh

demo: deps
	$(CARGO) run --quiet --release --example demo -- $(DEMO_GOALS) $(ARGS)

test: deps lint nostd test-rust docs $(TEST_SUITES)
	@echo "make test: all suites passed"

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

nostd:
	$(CARGO) build -p redlock-core --target thumbv7em-none-eabihf

test-rust:
	$(CARGO) test --workspace --no-fail-fast -- --nocapture 2>&1 | grep -v '^\s*$$' | grep -E --line-buffered -v '^test .* \.\.\. ok$$' ; exit $${PIPESTATUS[0]}

docs:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace

# More simulation seeds than `make test` runs (SIM_RUNS=20000 by default here).
sim-long:
	SIM_RUNS=$${SIM_RUNS:-20000} $(CARGO) test -p redlock-core --release --test simulation -- --nocapture
