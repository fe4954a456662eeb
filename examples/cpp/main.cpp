// The RAII wrapper from C++17: lock, extend, contend, lock several keys, release by scope.
//
//   usage: redlock_cpp redis://HOST:PORT...
//
// Build: c++ -std=c++17 main.cpp $(pkg-config --cflags --libs redlock)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "redlock.hpp"

using namespace std::chrono_literals;

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s redis://host:port...\n", argv[0]);
        return 2;
    }
    std::vector<std::string> urls(argv + 1, argv + argc);
    int failures = 0;
    auto expect = [&failures](bool ok, const char *what) {
        std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
        if (!ok)
            failures++;
    };

    try {
        // Defaults, except generous timeouts: this example also runs under valgrind on a busy
        // machine, where 5 % of a 10 s TTL, or 1 s to connect, can be too little.
        redlock_client_options options;
        redlock::check(redlock_client_options_default(&options));
        options.instance_timeout_ms = 2000;
        options.connect_timeout_ms = 5000;
        redlock::client locks(urls, &options);
        expect(locks.instances() == urls.size(), "client knows its instances");
        {
            redlock::lock held = locks.acquire("cpp:orders:42", 10s);
            expect(held.valid() && held.remaining() > 5s, "acquired with most of the ttl left");
            expect(held.value().size() == 32, "the lock value is 32 hex characters");
            expect(!locks.try_acquire("cpp:orders:42", 10s).has_value(),
                   "a second holder is refused while the first holds it");
            expect(held.extend(20s) > 15s, "extended to 20 s");
        } // released here
        {
            auto again = locks.try_acquire("cpp:orders:42", 5s);
            expect(again.has_value(), "the destructor released the lock");
            if (again) {
                redlock::release_report report = again->release();
                expect(report.confirmed, "release confirmed by a quorum");
                try {
                    again->release();
                    expect(false, "a second release is refused");
                } catch (const redlock::error &e) {
                    expect(e.code() == REDLOCK_RESULT_ALREADY_RELEASED, "a second release is refused");
                }
            }
        }
        {
            redlock::lock both = locks.acquire_all({"cpp:account:1", "cpp:account:2"}, 5s);
            expect(!locks.try_acquire("cpp:account:2", 5s).has_value(),
                   "a multi-key lock holds each of its keys");
        }
        try {
            locks.acquire("cpp:zero-ttl", 0ms);
            expect(false, "a zero ttl is refused");
        } catch (const redlock::error &e) {
            expect(e.code() == REDLOCK_RESULT_TTL_TOO_SHORT, "a zero ttl is refused");
        }
        try {
            locks.acquire(std::string(REDLOCK_MAX_KEY_LEN + 1, 'k'), 1s);
            expect(false, "a huge key is refused");
        } catch (const redlock::error &e) {
            expect(e.code() == REDLOCK_RESULT_KEY_TOO_LONG, "a huge key is refused");
        }

        // The state-machine layer's objects, owned by unique_ptrs.
        redlock_config *raw = nullptr;
        redlock::check(redlock_config_new(static_cast<std::uint32_t>(urls.size()), 1000, &raw));
        redlock::config_ptr config(raw);
        expect(redlock_config_quorum(config.get()) == urls.size() / 2 + 1, "quorum is N/2+1");
    } catch (const redlock::error &e) {
        std::fprintf(stderr, "redlock error %u: %s\n", static_cast<unsigned>(e.code()), e.what());
        return 1;
    }
    std::printf("%d failure(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
