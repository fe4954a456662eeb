# The WASM binding (wasm/, crate redlock-wasm) and its npm package (wasm/npm, redlock-wasm):
# installs what is missing, builds the package (cargo -> wasm-bindgen -> wasm-opt -> tsc),
# type-checks TypeScript usage files against its declarations (and the node-redlock program
# its compat entry must accept against node-redlock's own), and runs the Node tests against
# real redis-server instances (tests/harness redis-cluster; a Redis Cluster started by
# test/harness.mjs with redis-server and redis-cli).
#
#   make test-wasm    all of the above, then the per-decision cost and module size
#   make wasm-pkg     just the package, in wasm/npm/dist
#   make bench-wasm   the per-decision cost (10^4 decisions per machine) and module size
TEST_SUITES += test-wasm

.PHONY: test-wasm wasm-deps wasm-pkg bench-wasm

wasm-deps:
	@scripts/ensure-wasm.sh
	@scripts/ensure-redis.sh

wasm-pkg: wasm-deps
	wasm/build.sh

test-wasm: wasm-pkg
	$(CARGO) build --quiet -p redlock-harness --bin redis-cluster
	cd wasm/npm && node_modules/.bin/tsc -p tsconfig.json
	cd wasm/npm && node_modules/.bin/tsc -p tsconfig.node-redlock.json
	cd wasm/npm && node --test --test-reporter=spec --test-concurrency=1 test/
	cd wasm/npm && node bench/decision.mjs 2000

bench-wasm: wasm-pkg
	cd wasm/npm && node bench/decision.mjs 10000
