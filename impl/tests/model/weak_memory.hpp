// impl/tests/model/weak_memory.hpp: a weak-memory model for the lock-free
// structures' atomics, for tests only (SHMDS_ATOMICS_MODEL names this header;
// shmds/detail/atomics.hpp explains the seam).
//
// Why. x86-64 keeps every load in order and every store in order, so a
// memory order weaker than an algorithm needs (a relaxed store where a
// release is due, a relaxed load where an acquire is) changes nothing on this
// machine, and no test run here can fail for it. ThreadSanitizer sees only
// the hand-overs whose data it can watch. This model runs the real library
// code, in threads of one process, one step at a time, and lets each load
// return any value the C++ memory model allows it to return, not only the
// newest: a load that the algorithm relies on being ordered, and is not,
// sooner or later returns an old value, and the scenario's own checks fail.
//
// What is modelled (the C++20 model, simplified where noted):
// - every location has its stores in modification order (the order the
//   steps ran in); a load may read any of them that is not older than what
//   the thread has already seen there (coherence) or than the newest store
//   that happens before it; a read-modify-write reads the newest;
// - release stores (and the read-modify-writes after them) carry their
//   thread's vector clock; an acquire load that reads one, or a relaxed load
//   followed by an acquire fence, joins it; a release fence makes later
//   relaxed stores carry the clock it saw;
// - seq_cst operations and fences are ordered as they ran; a seq_cst load,
//   or any load after a seq_cst fence, reads no older than the newest
//   seq_cst store (or store before a seq_cst fence) it follows in that order;
// - a thread's stores before a seq_cst fence (a system call's barrier, a
//   membarrier) are visible to every load that runs after the fence, in any
//   thread: the fence drains the store buffer, and the machines the library
//   runs on (x86-64, ARMv8) are multi-copy atomic; so are all stores once a
//   timer has ended a sleep (time has passed: store buffers drain within
//   nanoseconds), and a finished thread's. C++ alone promises less (a
//   relaxed load may return an old value for ever), under which no wait
//   protocol that relies on a store being seen in time could be correct;
// - futex_wait compares with the newest value (the kernel's full barrier
//   first) and sleeps until a futex_wake; timeouts never pass while another
//   thread can run: when every live thread sleeps, sleeps shorter than
//   `short_sleep` end first (the wait protocol's own short naps), and a
//   sleep that only the safety-net timer could end is a lost wake-up;
// - membarrier (asymmetric_fence::heavy) is a seq_cst fence in every thread
//   at once; light() is a compiler barrier and does nothing here.
// Not modelled: compiler reordering (atomic_signal_fence is the identity
// here), processes (every thread shares one mapping), and data that is not
// atomic, except through record()/check_record(), which a scenario uses to
// check that a hand-over carries the writes before it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace shmds_model {

inline constexpr int max_threads = 4;
/// A futex sleep at most this long is one the wait protocol expects to time
/// out (its grace and fence-switch naps); a longer one is the safety net.
inline constexpr std::chrono::milliseconds short_sleep{50};

struct vector_clock {
    std::array<std::uint32_t, max_threads> at{};
    void join(const vector_clock& other) noexcept {
        for (int i = 0; i < max_threads; ++i) at[i] = std::max(at[i], other.at[i]);
    }
};

class engine {
public:
    /// How the asymmetric fence behaves (shmds/detail/process.hpp).
    enum class fences {
        membarrier,  ///< heavy() works: a seq_cst fence in every thread; light() is a compiler barrier
        none,        ///< no membarrier in the process: sleepers fence for real, and each
                     ///< participant sets its channels' fence bit when it joins, so wakers do too
        refused,     ///< membarrier refused to the sleeper at run time (heavy() fails) while
                     ///< wakers' light() stays a compiler barrier: the wait channel's fence bit
    };
    /// Runs `bodies` as threads of one execution, each step chosen by a
    /// generator seeded with `seed`; returns what went wrong, or "".
    static std::string run(std::uint64_t seed, fences mode, std::vector<std::function<void()>> bodies);

    // The model's operations, called by model::atomic from a modelled thread
    // right after its step() and before it touches the value itself (no
    // other thread runs in between): `old_bits` is the value in place, which
    // a location's first use takes for its store from before the execution.
    std::uint64_t load(const void* where, std::uint64_t old_bits, std::memory_order order);
    void store(const void* where, std::uint64_t old_bits, std::uint64_t new_bits, std::memory_order order);
    void read_modify_write(const void* where, std::uint64_t old_bits, std::uint64_t new_bits,
                           std::memory_order order, bool wrote);
    void fence(std::memory_order order);  // steps itself
    long futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                    std::chrono::nanoseconds timeout);
    void futex_wake(const std::atomic<std::uint32_t>& word, int count);
    void heavy_fence();
    fences fence_mode() const noexcept { return mode_; }
    void record(std::uint64_t id);
    void check_record(std::uint64_t id, const char* what);
    void fail(std::string what);
    /// A scheduling point: another thread may run before this one goes on.
    void step();
    /// A step that lets another thread run first: for a scenario's spin loops.
    void yield_now();

    static engine* current() noexcept { return running_engine; }
    /// SHMDS_WEAK_MEMORY_TRACE set: every step is written to stderr.
    static bool tracing() noexcept {
        static const bool on = std::getenv("SHMDS_WEAK_MEMORY_TRACE") != nullptr;
        return on;
    }
    static int thread() noexcept { return this_thread; }

private:
    struct store_record {
        std::uint64_t bits;
        int thread;           // -1: stored before the execution began
        std::uint32_t epoch;  // the storing thread's clock entry
        vector_clock sync;    // what an acquire reading it learns
        bool synchronises;
    };
    struct location {
        std::vector<store_record> stores;
    };
    enum class state { runnable, asleep, finished };
    struct thread_state {
        vector_clock clock;
        vector_clock acquired_by_relaxed;  // for a later acquire fence
        vector_clock release_fence;        // for later relaxed stores
        bool has_release_fence = false;
        std::unordered_map<const void*, std::size_t> seen;         // coherence
        std::unordered_map<const void*, std::size_t> own_last;     // its newest store
        std::unordered_map<const void*, std::size_t> fence_floor;  // after its seq_cst fences
        state now = state::runnable;
        const void* asleep_on = nullptr;
        bool short_sleep = false;
        long wake_result = 0;
    };

    engine(std::uint64_t seed, fences mode, int threads) : random_(seed), mode_(mode) {
        // Odd seeds schedule by priorities (hand_over), even ones uniformly.
        constexpr int stay_percents[] = {25, 75, 90};
        stay_percent_ = stay_percents[(seed / 2) % 3];
        if (seed % 2 == 1) {
            for (int t = 0; t < threads; ++t) priority_.push_back(t);
            std::shuffle(priority_.begin(), priority_.end(), random_);
            for (int k = 0; k < priority_change_points; ++k)
                priority_changes_.push_back(1 + random_() % expected_steps);
        }
        threads_.resize(static_cast<std::size_t>(threads));
        for (int t = 0; t < threads; ++t)
            threads_[static_cast<std::size_t>(t)].clock.at[static_cast<std::size_t>(t)] = 1;
    }
    location& at(const void* where, std::uint64_t bits_before);
    bool happened_before(const store_record& s, int t) const noexcept;
    void hand_over(std::unique_lock<std::mutex>& lock);
    void sc_fence_of(int t);
    /// What reading `s` teaches `t`: its clock now (acquire) or at the next
    /// acquire fence (relaxed).
    static void read_from(thread_state& t, const store_record& s, std::memory_order order);
    /// What a store `r` by `t` carries to an acquire that reads it: `t`'s
    /// clock (release), or what `t` saw at its last release fence.
    static void carry_release(const thread_state& t, store_record& r, std::memory_order order);
    /// Puts a store by `t` last in `l`'s modification order.
    void append(thread_state& t, location& l, const void* where, const store_record& r,
                std::memory_order order);
    void fence_locked(std::memory_order order);
    void finish(int t);
    thread_state& me() { return threads_[static_cast<std::size_t>(this_thread)]; }

    static inline engine* running_engine = nullptr;
    static inline thread_local int this_thread = -1;

    std::mutex mutex_;
    std::condition_variable turn_;
    int running_ = -1;
    std::uint64_t steps_ = 0;
    std::mt19937_64 random_;
    static constexpr int priority_change_points = 2;      // bugs of depth 3
    static constexpr std::uint64_t expected_steps = 600;  // about a scenario's length
    std::vector<int> priority_;                           // empty: uniform choices
    std::vector<std::uint64_t> priority_changes_;
    int lowest_priority_ = -1;
    int stay_percent_ = 25;
    bool yielding_ = false;
    fences mode_;
    std::vector<thread_state> threads_;
    std::unordered_map<const void*, location> locations_;
    std::unordered_map<const void*, std::size_t> sc_frontier_;  // seq_cst order's newest, per location
    std::unordered_map<const void*, std::size_t> visible_;      // reached every thread (a fence drained it)
    std::unordered_map<std::uint64_t, std::pair<int, std::uint32_t>> records_;
    std::vector<std::string> failures_;
};

inline constexpr std::uint64_t step_limit = 2'000'000;

inline bool modelled() noexcept {
    return engine::current() != nullptr && engine::thread() >= 0;
}

template <class T>
std::uint64_t bits_of(T value) noexcept {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}
template <class T>
T value_of(std::uint64_t bits) noexcept {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

inline const char* order_name(std::memory_order o) noexcept {
    switch (o) {
        case std::memory_order_relaxed:
            return "relaxed";
        case std::memory_order_consume:
            return "consume";
        case std::memory_order_acquire:
            return "acquire";
        case std::memory_order_release:
            return "release";
        case std::memory_order_acq_rel:
            return "acq_rel";
        default:
            return "seq_cst";
    }
}

inline bool acquires(std::memory_order o) noexcept {
    return o == std::memory_order_acquire || o == std::memory_order_acq_rel ||
           o == std::memory_order_seq_cst || o == std::memory_order_consume;
}
inline bool releases(std::memory_order o) noexcept {
    return o == std::memory_order_release || o == std::memory_order_acq_rel || o == std::memory_order_seq_cst;
}

inline engine::location& engine::at(const void* where, std::uint64_t bits_before) {
    auto [it, added] = locations_.try_emplace(where);
    if (added) it->second.stores.push_back(store_record{bits_before, -1, 0, {}, false});
    return it->second;
}

inline bool engine::happened_before(const store_record& s, int t) const noexcept {
    if (s.thread < 0 || s.thread == t) return true;
    return s.epoch <= threads_[static_cast<std::size_t>(t)].clock.at[static_cast<std::size_t>(s.thread)];
}

inline void engine::hand_over(std::unique_lock<std::mutex>&) {
    std::vector<int> runnable;
    for (int t = 0; t < static_cast<int>(threads_.size()); ++t)
        if (threads_[static_cast<std::size_t>(t)].now == state::runnable) runnable.push_back(t);
    if (runnable.empty()) {
        // Everyone alive sleeps. End the naps the protocol expects to end;
        // if there are none, the wake-up somebody needed was lost.
        bool any_short = false;
        for (auto& th : threads_)
            if (th.now == state::asleep && th.short_sleep) any_short = true;
        if (!any_short) {
            std::string who;
            for (std::size_t t = 0; t < threads_.size(); ++t)
                if (threads_[t].now == state::asleep) {
                    char line[64];
                    std::snprintf(line, sizeof line, " t%zu on %p;", t, threads_[t].asleep_on);
                    who += line;
                }
            if (!who.empty() && tracing()) std::fprintf(stderr, "lost wake-up:%s\n", who.c_str());
            if (!who.empty())
                failures_.push_back(
                    "lost wake-up: every live thread slept and only a safety-net timeout could wake them:" +
                    who);
        }
        // A timer ends a sleep: real time passes, and every store buffer
        // drains long before a millisecond is up.
        for (auto& [where, l] : locations_) visible_[where] = l.stores.size() - 1;
        for (auto& th : threads_) {
            if (th.now != state::asleep || (any_short && !th.short_sleep)) continue;
            th.now = state::runnable;
            th.wake_result = ETIMEDOUT;
        }
        for (int t = 0; t < static_cast<int>(threads_.size()); ++t)
            if (threads_[static_cast<std::size_t>(t)].now == state::runnable) runnable.push_back(t);
        if (runnable.empty()) {
            running_ = -1;  // all finished
            turn_.notify_all();
            return;
        }
    }
    int next = runnable[random_() % runnable.size()];
    if (priority_.empty()) {
        // Uniform: any runnable thread, or the one that runs, with a
        // stickiness the seed chooses: long runs of one thread find the
        // interleavings where another stops for several of its steps, short
        // ones those with many switches.
        if (this_thread >= 0 && threads_[static_cast<std::size_t>(this_thread)].now == state::runnable &&
            random_() % 100 < static_cast<std::uint64_t>(stay_percent_))
            next = this_thread;
    } else {
        // Priorities (PCT, Burckhardt et al. 2010): the runnable thread with
        // the highest runs, so each runs long stretches alone, and at a few
        // random steps the running one drops to the lowest: that finds the
        // few preemptions at exactly the right places that a bug of small
        // depth needs far more often than uniform choices do. A thread that
        // spins (yield_now) and, now and then, a random one run too, so
        // that a spinner above the thread it waits for cannot stall the run.
        if (this_thread >= 0 &&
            std::find(priority_changes_.begin(), priority_changes_.end(), steps_) != priority_changes_.end())
            priority_[static_cast<std::size_t>(this_thread)] = lowest_priority_--;
        if (random_() % 16 != 0 && !yielding_) {
            for (const int t : runnable)
                if (priority_[static_cast<std::size_t>(t)] > priority_[static_cast<std::size_t>(next)])
                    next = t;
        }
    }
    yielding_ = false;
    running_ = next;
    turn_.notify_all();
}

inline void engine::yield_now() {
    {
        std::lock_guard lock(mutex_);
        yielding_ = true;
    }
    step();
}

inline void engine::step() {
    std::unique_lock lock(mutex_);
    if (++steps_ > step_limit) {
        std::fprintf(stderr, "weak-memory model: no end after %llu steps\n",
                     static_cast<unsigned long long>(step_limit));
        std::abort();
    }
    hand_over(lock);
    turn_.wait(lock, [&] { return running_ == this_thread; });
}

inline std::uint64_t engine::load(const void* where, std::uint64_t old_bits, std::memory_order order) {
    std::lock_guard lock(mutex_);
    thread_state& t = me();
    location& l = at(where, old_bits);
    std::size_t floor = 0;
    if (auto s = t.seen.find(where); s != t.seen.end()) floor = s->second;
    if (auto f = t.fence_floor.find(where); f != t.fence_floor.end()) floor = std::max(floor, f->second);
    if (auto v = visible_.find(where); v != visible_.end()) floor = std::max(floor, v->second);
    if (order == std::memory_order_seq_cst)
        if (auto f = sc_frontier_.find(where); f != sc_frontier_.end()) floor = std::max(floor, f->second);
    for (std::size_t i = l.stores.size(); i-- > floor + 1;)
        if (happened_before(l.stores[i], this_thread)) {
            floor = i;
            break;
        }
    const std::size_t newest_index = l.stores.size() - 1;
    std::size_t chosen = newest_index;
    if (floor < newest_index && random_() % 2 == 0)
        chosen = floor + static_cast<std::size_t>(random_() % (newest_index - floor + 1));
    t.seen[where] = chosen;
    const store_record& s = l.stores[chosen];
    if (tracing())
        std::fprintf(stderr, "t%d load  %p %-7s -> %llu (store %zu of %zu, from t%d)\n", this_thread, where,
                     order_name(order), static_cast<unsigned long long>(s.bits), chosen, l.stores.size() - 1,
                     s.thread);
    read_from(t, s, order);
    return s.bits;
}

inline void engine::store(const void* where, std::uint64_t old_bits, std::uint64_t new_bits,
                          std::memory_order order) {
    std::lock_guard lock(mutex_);
    thread_state& t = me();
    location& l = at(where, old_bits);
    const auto me_index = static_cast<std::size_t>(this_thread);
    ++t.clock.at[me_index];
    store_record r{new_bits, this_thread, t.clock.at[me_index], {}, false};
    carry_release(t, r, order);
    append(t, l, where, r, order);
    if (tracing())
        std::fprintf(stderr, "t%d store %p %-7s <- %llu\n", this_thread, where, order_name(order),
                     static_cast<unsigned long long>(new_bits));
}

inline void engine::read_modify_write(const void* where, std::uint64_t old_bits, std::uint64_t new_bits,
                                      std::memory_order order, bool wrote) {
    std::lock_guard lock(mutex_);
    thread_state& t = me();
    location& l = at(where, old_bits);
    const store_record read = l.stores.back();  // a read-modify-write reads the newest
    read_from(t, read, order);
    t.seen[where] = l.stores.size() - 1;
    if (tracing())
        std::fprintf(stderr, "t%d rmw   %p %-7s %llu -> %llu%s\n", this_thread, where, order_name(order),
                     static_cast<unsigned long long>(old_bits), static_cast<unsigned long long>(new_bits),
                     wrote ? "" : " (failed)");
    if (!wrote) return;  // a failed compare-exchange: a load of the newest
    const auto me_index = static_cast<std::size_t>(this_thread);
    ++t.clock.at[me_index];
    store_record r{new_bits, this_thread, t.clock.at[me_index], read.sync,
                   read.synchronises};  // it continues the release sequence it read
    carry_release(t, r, order);
    append(t, l, where, r, order);
}

inline void engine::read_from(thread_state& t, const store_record& s, std::memory_order order) {
    if (!s.synchronises) return;
    if (acquires(order))
        t.clock.join(s.sync);
    else
        t.acquired_by_relaxed.join(s.sync);
}

inline void engine::carry_release(const thread_state& t, store_record& r, std::memory_order order) {
    if (releases(order)) {
        r.sync.join(t.clock);
        r.synchronises = true;
    } else if (t.has_release_fence) {
        r.sync.join(t.release_fence);
        r.synchronises = true;
    }
}

inline void engine::append(thread_state& t, location& l, const void* where, const store_record& r,
                           std::memory_order order) {
    l.stores.push_back(r);
    const std::size_t index = l.stores.size() - 1;
    t.seen[where] = index;
    t.own_last[where] = index;
    if (order == std::memory_order_seq_cst) sc_frontier_[where] = index;
}

inline void engine::sc_fence_of(int ti) {
    thread_state& t = threads_[static_cast<std::size_t>(ti)];
    for (const auto& [where, index] : t.own_last) {
        std::size_t& f = sc_frontier_[where];
        f = std::max(f, index);
        std::size_t& v = visible_[where];
        v = std::max(v, index);
    }
}

inline void engine::fence(std::memory_order order) {
    step();
    std::lock_guard lock(mutex_);
    fence_locked(order);
}

inline void engine::fence_locked(std::memory_order order) {
    thread_state& t = me();
    if (tracing()) std::fprintf(stderr, "t%d fence %s\n", this_thread, order_name(order));
    if (acquires(order)) t.clock.join(t.acquired_by_relaxed);
    if (releases(order)) {
        t.release_fence = t.clock;
        t.has_release_fence = true;
    }
    if (order == std::memory_order_seq_cst) {
        sc_fence_of(this_thread);
        for (const auto& [where, index] : sc_frontier_) t.fence_floor[where] = index;
    }
}

inline void engine::heavy_fence() {
    step();
    std::lock_guard lock(mutex_);
    // A seq_cst fence in every thread at once: each one's stores so far are
    // ordered before every thread's loads from now on, both ways.
    for (int t = 0; t < static_cast<int>(threads_.size()); ++t) sc_fence_of(t);
    for (auto& th : threads_) {
        th.clock.join(th.acquired_by_relaxed);
        for (const auto& [where, index] : sc_frontier_) th.fence_floor[where] = index;
    }
}

inline long engine::futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                               std::chrono::nanoseconds timeout) {
    step();
    std::unique_lock lock(mutex_);
    fence_locked(std::memory_order_seq_cst);  // the kernel's barrier before it compares with the newest
    const void* where = &word;
    if (word.load(std::memory_order_relaxed) != expected) {
        errno = EAGAIN;
        return -1;
    }
    thread_state& t = me();
    if (tracing())
        std::fprintf(stderr, "t%d futex_wait %p sleeps (%s)\n", this_thread, where,
                     timeout <= short_sleep ? "short" : "long");
    t.now = state::asleep;
    t.asleep_on = where;
    t.short_sleep = timeout <= short_sleep;
    t.wake_result = 0;
    hand_over(lock);
    turn_.wait(lock, [&] { return running_ == this_thread; });
    t.asleep_on = nullptr;
    if (t.wake_result != 0) {
        errno = static_cast<int>(t.wake_result);
        return -1;
    }
    return 0;
}

inline void engine::futex_wake(const std::atomic<std::uint32_t>& word, int count) {
    step();
    std::lock_guard lock(mutex_);
    fence_locked(std::memory_order_seq_cst);
    const void* where = &word;
    if (tracing()) std::fprintf(stderr, "t%d futex_wake %p %d\n", this_thread, where, count);
    for (auto& th : threads_) {
        if (count <= 0) break;
        if (th.now == state::asleep && th.asleep_on == where) {
            th.now = state::runnable;
            th.wake_result = 0;
            --count;
        }
    }
}

inline void engine::record(std::uint64_t id) {
    step();
    std::lock_guard lock(mutex_);
    thread_state& t = me();
    const auto me_index = static_cast<std::size_t>(this_thread);
    ++t.clock.at[me_index];
    records_[id] = {this_thread, t.clock.at[me_index]};
}

inline void engine::check_record(std::uint64_t id, const char* what) {
    step();
    std::lock_guard lock(mutex_);
    auto r = records_.find(id);
    if (r == records_.end()) {
        failures_.push_back(std::string(what) + " " + std::to_string(id) + ": nobody wrote it");
        return;
    }
    const auto [writer, epoch] = r->second;
    if (writer != this_thread && epoch > me().clock.at[static_cast<std::size_t>(writer)])
        failures_.push_back(std::string(what) + " " + std::to_string(id) +
                            ": taken without its writer's writes happening before (no release/acquire "
                            "between them)");
}

inline void engine::fail(std::string what) {
    std::lock_guard lock(mutex_);
    failures_.push_back(std::move(what));
}

inline void engine::finish(int t) {
    std::unique_lock lock(mutex_);
    if (tracing()) std::fprintf(stderr, "t%d finished\n", t);
    sc_fence_of(t);  // a thread's end is a system call: its stores drain
    threads_[static_cast<std::size_t>(t)].now = state::finished;
    hand_over(lock);
}

inline std::string engine::run(std::uint64_t seed, fences mode, std::vector<std::function<void()>> bodies) {
    engine e(seed, mode, static_cast<int>(bodies.size()));
    running_engine = &e;
    std::vector<std::thread> threads;
    threads.reserve(bodies.size());
    for (int t = 0; t < static_cast<int>(bodies.size()); ++t)
        threads.emplace_back([&e, t, body = std::move(bodies[static_cast<std::size_t>(t)])] {
            this_thread = t;
            {
                std::unique_lock lock(e.mutex_);
                e.turn_.wait(lock, [&] { return e.running_ == t; });
            }
            try {
                body();
            } catch (const std::exception& ex) {
                e.fail("thread " + std::to_string(t) + " threw: " + ex.what());
            }
            e.finish(t);
            this_thread = -1;
        });
    {
        std::unique_lock lock(e.mutex_);
        e.hand_over(lock);
    }
    for (auto& th : threads) th.join();
    running_engine = nullptr;
    std::string all;
    for (const auto& f : e.failures_) all += f + "\n";
    return all;
}

/// std::atomic<T> with the model underneath: the same bytes (the shared
/// layout is unchanged), and outside a modelled thread the plain operation.
template <class T>
class atomic {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                  "the model keeps values in 64-bit words");

public:
    static constexpr bool is_always_lock_free = std::atomic<T>::is_always_lock_free;
    atomic() noexcept = default;
    constexpr atomic(T value) noexcept : raw_(value) {}
    atomic(const atomic&) = delete;
    atomic& operator=(const atomic&) = delete;

    T load(std::memory_order order = std::memory_order_seq_cst) const noexcept {
        if (!modelled()) return raw_.load(order);
        engine& e = *engine::current();
        e.step();
        return value_of<T>(e.load(&raw_, bits_of(raw_.load(std::memory_order_relaxed)), order));
    }
    void store(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
        if (!modelled()) return raw_.store(value, order);
        engine& e = *engine::current();
        e.step();
        e.store(&raw_, bits_of(raw_.load(std::memory_order_relaxed)), bits_of(value), order);
        raw_.store(value, std::memory_order_relaxed);
    }
    /// The newest value, past the model (what the kernel's futex compares).
    const std::atomic<T>& raw() const noexcept { return raw_; }
    T exchange(T value, std::memory_order order = std::memory_order_seq_cst) noexcept {
        return modify(order, [&](T) { return value; });
    }
    bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                                 std::memory_order failure) noexcept {
        if (!modelled()) return raw_.compare_exchange_strong(expected, desired, success, failure);
        engine& e = *engine::current();
        e.step();
        const T now = raw_.load(std::memory_order_relaxed);
        const bool equal = bits_of(now) == bits_of(expected);
        e.read_modify_write(&raw_, bits_of(now), bits_of(desired), equal ? success : failure, equal);
        if (equal) {
            raw_.store(desired, std::memory_order_relaxed);
            return true;
        }
        expected = now;
        return false;
    }
    bool compare_exchange_strong(T& expected, T desired,
                                 std::memory_order order = std::memory_order_seq_cst) noexcept {
        return compare_exchange_strong(expected, desired, order, failure_order(order));
    }
    bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                               std::memory_order failure) noexcept {
        return compare_exchange_strong(expected, desired, success, failure);
    }
    bool compare_exchange_weak(T& expected, T desired,
                               std::memory_order order = std::memory_order_seq_cst) noexcept {
        return compare_exchange_strong(expected, desired, order, failure_order(order));
    }
    T fetch_add(T v, std::memory_order o = std::memory_order_seq_cst) noexcept {
        return modify(o, [&](T old) { return static_cast<T>(old + v); });
    }
    T fetch_sub(T v, std::memory_order o = std::memory_order_seq_cst) noexcept {
        return modify(o, [&](T old) { return static_cast<T>(old - v); });
    }
    T fetch_or(T v, std::memory_order o = std::memory_order_seq_cst) noexcept {
        return modify(o, [&](T old) { return static_cast<T>(old | v); });
    }
    T fetch_and(T v, std::memory_order o = std::memory_order_seq_cst) noexcept {
        return modify(o, [&](T old) { return static_cast<T>(old & v); });
    }

private:
    static std::memory_order failure_order(std::memory_order o) noexcept {
        if (o == std::memory_order_acq_rel) return std::memory_order_acquire;
        if (o == std::memory_order_release) return std::memory_order_relaxed;
        return o;
    }
    template <class F>
    T modify(std::memory_order order, F next) noexcept {
        if (!modelled()) {
            T old = raw_.load(std::memory_order_relaxed);
            while (!raw_.compare_exchange_weak(old, next(old), order, std::memory_order_relaxed)) {
            }
            return old;
        }
        engine& e = *engine::current();
        e.step();
        const T old = raw_.load(std::memory_order_relaxed);
        const T value = next(old);
        e.read_modify_write(&raw_, bits_of(old), bits_of(value), order, true);
        raw_.store(value, std::memory_order_relaxed);
        return old;
    }

    std::atomic<T> raw_;
};

}  // namespace shmds_model

namespace shmds::detail {
template <class T>
using atomic = shmds_model::atomic<T>;

inline void thread_fence(std::memory_order order) noexcept {
    if (shmds_model::modelled())
        shmds_model::engine::current()->fence(order);
    else
        std::atomic_thread_fence(order);
}
}  // namespace shmds::detail

#define SHMDS_MODEL_FUTEX_WAIT(word, expected, timeout) \
    if (shmds_model::modelled())                        \
    return shmds_model::engine::current()->futex_wait((word).raw(), (expected), (timeout))
#define SHMDS_MODEL_FUTEX_WAKE(word, count)                                \
    if (shmds_model::modelled()) {                                         \
        shmds_model::engine::current()->futex_wake((word).raw(), (count)); \
        return;                                                            \
    }
// Without membarrier, the heavy fence runs the library's own full_fence(),
// whose fence the model then sees through thread_fence.
#define SHMDS_MODEL_HEAVY_FENCE()                                                                      \
    if (shmds_model::modelled()) {                                                                     \
        if (shmds_model::engine::current()->fence_mode() != shmds_model::engine::fences::membarrier) { \
            full_fence();                                                                              \
            return false;                                                                              \
        }                                                                                              \
        shmds_model::engine::current()->heavy_fence();                                                 \
        return true;                                                                                   \
    }
// light() is a compiler barrier in every mode: without membarrier, the
// wakers' real fences come from the fence bit that registered() == false
// makes each participant set on its structure's channels when it joins.
#define SHMDS_MODEL_LIGHT_FENCE() \
    if (shmds_model::modelled()) return
#define SHMDS_MODEL_REGISTERED() \
    if (shmds_model::modelled()) \
    return shmds_model::engine::current()->fence_mode() != shmds_model::engine::fences::none
