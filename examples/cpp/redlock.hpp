// redlock.hpp: a small header-only RAII wrapper over redlock.h for C++17.
//
//   redlock::client locks({"redis://127.0.0.1:7001", "redis://127.0.0.1:7002", ...});
//   {
//       redlock::lock held = locks.acquire("orders:42", std::chrono::seconds(10));
//       ... protected work, checking held.valid() before committing ...
//   }   // released here (or call held.release() to see how the release went)
//
// Failures throw redlock::error, which carries the redlock_result code. A contended try_acquire
// returns std::nullopt instead. A client may be shared between threads; a lock belongs to one
// thread at a time. Objects are move-only; every C object is freed exactly once.
#ifndef REDLOCK_HPP
#define REDLOCK_HPP

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redlock.h"

namespace redlock {

// A failed call: the code and its message.
class error : public std::runtime_error {
public:
    explicit error(redlock_result code)
        : std::runtime_error(redlock_result_message(code)), code_(code) {}
    redlock_result code() const noexcept { return code_; }

private:
    redlock_result code_;
};

inline void check(redlock_result r) {
    if (r != REDLOCK_RESULT_OK)
        throw error(r);
}

namespace detail {
template <typename T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
} // namespace detail

// Owning pointers for the state-machine layer (redlock_config, redlock_op, redlock_lease).
using config_ptr = std::unique_ptr<redlock_config, detail::deleter<redlock_config, redlock_config_free>>;
using op_ptr = std::unique_ptr<redlock_op, detail::deleter<redlock_op, redlock_op_free>>;
using lease_ptr = std::unique_ptr<redlock_lease, detail::deleter<redlock_lease, redlock_lease_free>>;

// How a release went.
struct release_report {
    bool confirmed;
    std::size_t deleted;
};

// A held lock. Released when destroyed (unless released before).
class lock {
public:
    lock(lock &&) noexcept = default;
    lock &operator=(lock &&) noexcept = default;
    lock(const lock &) = delete;
    lock &operator=(const lock &) = delete;
    ~lock() = default;

    // Whether the lock is still valid now: check it right before committing protected work.
    bool valid() const noexcept { return redlock_lock_is_valid(ptr_.get()); }

    std::chrono::milliseconds remaining() const noexcept {
        return std::chrono::milliseconds(redlock_lock_remaining_ms(ptr_.get()));
    }

    // The random value stored in the lock's keys.
    std::string_view value() const noexcept {
        const char *v = redlock_lock_value(ptr_.get());
        return v ? std::string_view(v) : std::string_view();
    }

    // Makes the keys live for `ttl` from now; returns the validity left.
    std::chrono::milliseconds extend(std::chrono::milliseconds ttl) {
        std::uint64_t remaining = 0;
        check(redlock_lock_extend(ptr_.get(), static_cast<std::uint64_t>(ttl.count()), &remaining));
        return std::chrono::milliseconds(remaining);
    }

    // Releases now and says how it went; the destructor then has nothing left to do.
    release_report release() {
        redlock_release_report report{};
        check(redlock_lock_release(ptr_.get(), &report));
        return {report.confirmed, report.deleted};
    }

private:
    friend class client;
    explicit lock(redlock_lock *p) noexcept : ptr_(p) {}
    std::unique_ptr<redlock_lock, detail::deleter<redlock_lock, redlock_lock_free>> ptr_;
};

// A lock manager over N Redis instances, with its own connections and threads.
class client {
public:
    explicit client(const std::vector<std::string> &urls,
                    const redlock_client_options *options = nullptr) {
        std::vector<const char *> c_urls;
        c_urls.reserve(urls.size());
        for (const auto &u : urls)
            c_urls.push_back(u.c_str());
        redlock_client *p = nullptr;
        check(redlock_client_new(c_urls.data(), c_urls.size(), options, &p));
        ptr_.reset(p);
    }

    // Locks `key` for `ttl`, retrying with the client's settings. Throws redlock::error
    // (REDLOCK_RESULT_CONTENDED, REDLOCK_RESULT_NO_QUORUM, ...).
    lock acquire(std::string_view key, std::chrono::milliseconds ttl) const {
        redlock_lock *p = nullptr;
        check(redlock_client_lock(ptr_.get(), bytes(key), key.size(),
                                  static_cast<std::uint64_t>(ttl.count()), &p));
        return lock(p);
    }

    // One attempt: std::nullopt if another holder has the lock.
    std::optional<lock> try_acquire(std::string_view key, std::chrono::milliseconds ttl) const {
        redlock_lock *p = nullptr;
        redlock_result r = redlock_client_try_lock(ptr_.get(), bytes(key), key.size(),
                                                   static_cast<std::uint64_t>(ttl.count()), &p);
        if (r == REDLOCK_RESULT_CONTENDED)
            return std::nullopt;
        check(r);
        return lock(p);
    }

    // Locks several keys together: on each instance all of them or none.
    lock acquire_all(std::initializer_list<std::string_view> keys,
                     std::chrono::milliseconds ttl) const {
        std::vector<const std::uint8_t *> ptrs;
        std::vector<std::size_t> lens;
        for (auto k : keys) {
            ptrs.push_back(bytes(k));
            lens.push_back(k.size());
        }
        redlock_lock *p = nullptr;
        check(redlock_client_lock_all(ptr_.get(), ptrs.data(), lens.data(), ptrs.size(),
                                      static_cast<std::uint64_t>(ttl.count()), &p));
        return lock(p);
    }

    std::size_t instances() const noexcept { return redlock_client_instances(ptr_.get()); }

private:
    static const std::uint8_t *bytes(std::string_view s) noexcept {
        return reinterpret_cast<const std::uint8_t *>(s.data());
    }
    std::unique_ptr<redlock_client, detail::deleter<redlock_client, redlock_client_free>> ptr_;
};

} // namespace redlock

#endif // REDLOCK_HPP
