# Torture runs (issue 6): worker processes lock through the public `redlock` API on 5 real
# redis-server instances while a fault scheduler crashes, restarts, pauses and partitions them;
# the shared history checker (redlock-history) checks the merged JSON-lines histories, and the
# protected counter is checked for lost updates. Then two negative controls, which the checker
# must flag. See docs/reliability.md.
#
#   make torture        long profile: 5.5 minutes of faults, 6 workers, then the controls
#   make test-torture   short profile (~80 s; run by `make test`), asserted by a Rust test
#
# Options: TORTURE_ARGS="--seed N --out DIR" (make torture). Histories and report.json stay in
# target/torture/<profile>/; `redlock-check-history target/torture/long/positive/*.jsonl`
# re-checks a phase.
TEST_SUITES += test-torture

.PHONY: torture test-torture

torture:
	@scripts/ensure-redis.sh
	$(CARGO) build --quiet -p redlock-torture --bins
	$(CARGO) run --quiet -p redlock-torture --bin redlock-torture -- --profile long $(TORTURE_ARGS)

test-torture:
	@scripts/ensure-redis.sh
	$(CARGO) test --quiet -p redlock-torture --test torture -- --ignored --nocapture --test-threads=1
