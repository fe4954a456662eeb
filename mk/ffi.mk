# The C ABI (ffi/, include/redlock.h): builds libredlock, stages it as an installation under
# target/ffi (lib/libredlock.{a,so}, include/redlock.h, lib/pkgconfig/redlock.pc), checks the
# header is fresh, compiles the C and C++ programs with -Wall -Wextra -Werror through
# pkg-config, and runs them against real redis-server instances under valgrind.
#
#   make test-ffi      all of the above
#   make ffi-header    regenerate include/redlock.h after changing ffi/src (commit it)
#   make ffi-lib       just the staged library (PKG_CONFIG_PATH=target/ffi/lib/pkgconfig)
#
# REDLOCK_FFI_VALGRIND=0 runs the C programs without valgrind.
TEST_SUITES += test-ffi

FFI_OUT := $(CURDIR)/target/ffi
FFI_BIN := $(FFI_OUT)/bin
FFI_PC = PKG_CONFIG_PATH=$(FFI_OUT)/lib/pkgconfig pkg-config
FFI_VERSION = $(shell sed -n 's/^\#define REDLOCK_VERSION "\(.*\)"/\1/p' include/redlock.h)
FFI_WARN := -Wall -Wextra -Werror -pedantic -g
# Evaluated when the programs' recipe runs, after ffi-lib wrote redlock.pc. The tests link the
# static library (no loader path needed, and valgrind sees the whole program); the C++ example
# links the shared one.
FFI_STATIC = $(FFI_OUT)/lib/libredlock.a $(filter-out -lredlock,$(shell $(FFI_PC) --static --libs redlock))
FFI_SHARED = $(shell $(FFI_PC) --libs redlock) -Wl,-rpath,$(FFI_OUT)/lib

.PHONY: test-ffi ffi-deps ffi-lib ffi-programs ffi-header

ffi-deps:
	@scripts/ensure-ffi.sh
	@scripts/ensure-redis.sh

ffi-lib:
	$(CARGO) build --quiet -p redlock-ffi
	@mkdir -p $(FFI_OUT)/lib/pkgconfig $(FFI_OUT)/include $(FFI_BIN)
	@cp target/debug/libredlock_ffi.a $(FFI_OUT)/lib/libredlock.a
	@cp target/debug/libredlock_ffi.so $(FFI_OUT)/lib/libredlock.so.$(FFI_VERSION)
	@ln -sf libredlock.so.$(FFI_VERSION) $(FFI_OUT)/lib/libredlock.so
	@cp include/redlock.h $(FFI_OUT)/include/redlock.h
	@sed -e 's|@PREFIX@|$(FFI_OUT)|' -e 's|@VERSION@|$(FFI_VERSION)|' ffi/redlock.pc.in \
		> $(FFI_OUT)/lib/pkgconfig/redlock.pc

ffi-programs: ffi-deps ffi-lib
	cc -std=c99 $(FFI_WARN) $$($(FFI_PC) --cflags redlock hiredis) examples/c/hiredis_poll.c \
		-o $(FFI_BIN)/hiredis_poll $$($(FFI_PC) --libs hiredis) $(FFI_STATIC)
	cc -std=c99 $(FFI_WARN) -pthread $$($(FFI_PC) --cflags redlock) examples/c/blocking.c \
		-o $(FFI_BIN)/blocking $(FFI_STATIC)
	cc -std=c99 $(FFI_WARN) $$($(FFI_PC) --cflags redlock) ffi/tests/c/bad_args.c \
		-o $(FFI_BIN)/bad_args $(FFI_STATIC)
	c++ -std=c++17 $(FFI_WARN) $$($(FFI_PC) --cflags redlock) -Iexamples/cpp examples/cpp/main.cpp \
		-o $(FFI_BIN)/redlock_cpp $(FFI_SHARED)

test-ffi: ffi-programs
	$(CARGO) test --quiet -p redlock-ffi --test header
	REDLOCK_FFI_BIN=$(FFI_BIN) $(CARGO) test --quiet -p redlock-ffi --test c_suite -- --ignored

ffi-header:
	REDLOCK_BLESS_HEADER=1 $(CARGO) test --quiet -p redlock-ffi --test header
