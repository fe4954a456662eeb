# make bench: this runtime against a raw-Redis baseline, rslock, node-redlock v5 (ioredis) and the
# WASM package in Node, on the same 5 local redis-server instances, in one run. Prints tables and
# writes target/bench/results.json. Not part of `make test` (a quick smoke run of the Rust side
# is: the unit test in bench/src/main.rs).
#
#   make bench                          the full run (a few minutes)
#   make bench BENCH_ARGS=--quick       short durations, for a look
#   make bench BENCH_ARGS="--workloads c --clients handoff"
#
# The WASM column needs `make wasm-pkg`; without it the run says so and goes on.

.PHONY: bench bench-core bench-js-deps

BENCH_ARGS ?=

bench-js-deps:
	@scripts/ensure-redis.sh
	@if command -v npm >/dev/null; then cd bench/js && npm ci --no-audit --no-fund --silent; \
	else echo "bench: no npm, the Node columns are skipped"; fi

# The core's own cost per decision (criterion), read back by the bench for its report.
bench-core:
	$(CARGO) bench -p redlock-core --bench core -- 'acquire_n5_uncontended|acquire_and_release_n5' 2>&1 | grep -E '^(acquire|\s+time:)' || true

bench: bench-js-deps bench-core
	-@$(MAKE) --no-print-directory wasm-pkg >/dev/null 2>&1 || echo "bench: the WASM package did not build; its column is skipped"
	$(CARGO) build --release --quiet -p redlock-bench
	target/release/redlock-bench $(BENCH_ARGS)
