# Embedding: the core in a plain event loop against real Redis, and in no_std firmware.
TEST_SUITES += test-embedding

.PHONY: test-embedding
test-embedding:
	$(CARGO) run --quiet --example event_loop
	$(CARGO) build --quiet -p redlock-embedded-example --target thumbv7em-none-eabihf
