// The lock-free structures under the weak-memory model (model/weak_memory.hpp):
// each scenario runs the real library code in threads that share one
// attachment, many times, each time with another seed choosing who runs
// and which of the values the C++ memory model allows each load returns.
// What every scenario checks, in every execution:
// - a hand-over carries the writes before it: a pusher records each element
//   (model record) before it pushes, and whoever pops the element checks
//   that the record happened before (a missing release or acquire anywhere
//   on the way fails here, on x86-64 as on a weakly ordered machine);
// - order and exactly-once delivery, and size() within its bounds from any
//   thread (a snapshot, Q-006: never more than the capacity, never a
//   corrupted_error for positions that are fine);
// - no lost wake-up: the model never lets a timer pass while a thread can
//   run, so a sleeper that only the safety-net recheck would have woken is a
//   failure (model/weak_memory.hpp says how short naps are told apart);
// - in each fence mode: with membarrier; without, where the waiting protocol
//   falls back to real fences on both sides; and with membarrier refused to
//   a sleeper only, whose wakers then fence because the channel says so.
// Built with SHMDS_ATOMICS_MODEL (impl/tests/CMakeLists.txt); the library's
// own builds never see the model.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds_model::engine;
using shmds_test::unique_segment_name;
using spsc = shmds::shm_spsc_queue<std::uint64_t>;
using mpmc = shmds::shm_mpmc_queue<std::uint64_t>;

const shmds::wait_options sleeping{.strategy = shmds::wait_strategy::sleep};

/// Executions per scenario and fence mode: enough that the memory-order
/// mutants the sweep records as killed by these tests fail
/// (conformance/mutation/sweep.md; two more on the wait protocol's path
/// need preemptions at exact steps that these seeds do not reach), few
/// enough for seconds per scenario.
constexpr std::uint64_t default_executions = 400;

engine& model() {
    return *engine::current();
}

/// Element `i` of producer `p`: distinct across producers, increasing.
constexpr std::uint64_t element(std::uint64_t p, std::uint64_t i) {
    return (p << 32) | (i + 1);
}

/// Runs one execution per seed in each fence mode: `State` (its handles,
/// made outside the model in a segment whose structures are destroyed after
/// each execution, so every execution starts from new ones; or, if it needs
/// no segment, default-constructed) and the threads' bodies that
/// `bodies(state)` returns. Fails with the first execution that went wrong.
template <class State, class Bodies>
void explore(Bodies bodies, std::uint64_t executions = default_executions) {
    // A deeper look on demand: SHMDS_WEAK_MEMORY_EXECUTIONS=N runs N seeds per mode.
    // To replay one: SHMDS_WEAK_MEMORY_FIRST_SEED=S SHMDS_WEAK_MEMORY_EXECUTIONS=1 SHMDS_WEAK_MEMORY_TRACE=1.
    if (const char* n = std::getenv("SHMDS_WEAK_MEMORY_EXECUTIONS"))
        executions = std::strtoull(n, nullptr, 10);
    std::uint64_t first = 0;
    if (const char* n = std::getenv("SHMDS_WEAK_MEMORY_FIRST_SEED")) first = std::strtoull(n, nullptr, 10);
    // One segment for all executions, made only for a State that needs it:
    // making and removing one took most of an execution's time (a reserved
    // megabyte, locks, a mapping).
    constexpr bool needs_segment = !std::is_default_constructible_v<State>;
    unique_segment_name name;
    std::optional<shmds::posix_shm> segment;
    if constexpr (needs_segment) segment.emplace(name, 1 << 20);
    using fences = engine::fences;
    for (const fences mode : {fences::membarrier, fences::none, fences::refused}) {
        for (std::uint64_t seed = first; seed < first + executions; ++seed) {
            std::string failures;
            if constexpr (needs_segment) {
                {
                    State state(*segment);
                    failures = engine::run(seed, mode, bodies(state));
                }
                for (const auto& structure : segment->table().list()) segment->destroy(structure.name);
            } else {
                State state;
                failures = engine::run(seed, mode, bodies(state));
            }
            ASSERT_EQ(failures, "") << "seed " << seed << ", "
                                    << (mode == fences::membarrier ? "membarrier"
                                        : mode == fences::none ? "no membarrier: real fences on both sides"
                                                               : "membarrier refused to sleepers");
        }
    }
}

/// Pops `count` elements from `q` (blocking), checking each one's record
/// and that each producer's elements come in order.
template <class Q>
void pop_and_check(Q& q, int count, std::uint64_t producers) {
    std::vector<std::uint64_t> next(producers, 1);
    for (int k = 0; k < count; ++k) {
        const std::uint64_t v = q.pop();
        model().check_record(v, "element");
        const std::uint64_t p = v >> 32;
        if (p >= producers || (v & 0xffffffffu) != next[p]) {
            model().fail("element " + std::to_string(v) + " out of order or never pushed");
            return;
        }
        ++next[p];
    }
}

/// An observer's sizes: a snapshot never above the capacity, never an error.
template <class Q>
std::function<void()> observer(Q& q, std::size_t capacity, int looks) {
    return [&q, capacity, looks] {
        for (int k = 0; k < looks; ++k) {
            std::size_t n = 0;
            if constexpr (std::is_same_v<Q, mpmc>)
                n = q.size_estimate();
            else
                n = q.size();
            if (n > capacity) model().fail("size() " + std::to_string(n) + " above the capacity");
        }
    };
}

/// The wait protocol alone (detail/waiting.hpp), small enough that the
/// seeds cover its interleavings densely: a waker hands out eight tokens one
/// at a time, notifying one sleeper each; `sleepers` sleepers take them all
/// between them. With one sleeper, the waker takes it out of the set before
/// each wake-up (the path where a sleeper that finds itself out of the set
/// must look again, not sleep); with two, one may take the token the other
/// was woken for. Every sleep is a plain sleep.
void wait_channel_hand_over(std::uint32_t sleepers) {
    struct state {
        shmds::detail::wait_channel channel{};
        shmds::detail::atomic<std::uint32_t> tokens{0};
    };
    constexpr std::uint32_t tokens = 8;
    explore<state>(
        [sleepers](state& st) {
            auto take = [&st](std::uint32_t participant, std::uint32_t count) {
                return [&st, participant, count] {
                    for (std::uint32_t k = 0; k < count; ++k) {
                        const bool got = shmds::detail::wait_for(
                            st.channel, participant, sleeping, shmds::detail::forever,
                            [&st] {
                                std::uint32_t n = st.tokens.load(std::memory_order_acquire);
                                while (n > 0)
                                    if (st.tokens.compare_exchange_strong(n, n - 1, std::memory_order_acq_rel,
                                                                          std::memory_order_acquire))
                                        return true;
                                return false;
                            },
                            [] {});
                        if (!got) model().fail("a wait with no deadline gave up");
                    }
                };
            };
            std::vector<std::function<void()>> bodies{[&st] {
                shmds::detail::prepare_waker(st.channel);  // as a structure's participant does on joining
                for (std::uint32_t k = 0; k < tokens; ++k) {
                    st.tokens.fetch_add(1, std::memory_order_release);
                    shmds::detail::notify(st.channel, 1);
                }
            }};
            for (std::uint32_t p = 0; p < sleepers; ++p) bodies.emplace_back(take(p, tokens / sleepers));
            return bodies;
        },
        1000);
}

TEST(WeakMemory, WaitChannelsLoseNoWakeUpBetweenASleeperAndAWaker) {
    wait_channel_hand_over(1);
}

TEST(WeakMemory, WaitChannelsLoseNoWakeUpBetweenTwoSleepersAndAWaker) {
    wait_channel_hand_over(2);
}

TEST(WeakMemory, SpscHandsOverWithSleepingWaitsAndAnObserver) {
    struct state {
        spsc producer, consumer, watcher;
        explicit state(shmds::posix_shm& s)
            : producer(s, "q", 2, sleeping),
              consumer(shmds::open_only, s, "q", sleeping),
              watcher(shmds::open_only, s, "q") {}
    };
    explore<state>([](state& st) {
        return std::vector<std::function<void()>>{
            [&st] {
                for (std::uint64_t i = 0; i < 8; ++i) {
                    model().record(element(0, i));
                    st.producer.push(element(0, i));
                }
            },
            [&st] { pop_and_check(st.consumer, 8, 1); },
            observer(st.watcher, 2, 12),
        };
    });
}

TEST(WeakMemory, SpscObserverHeldUpBetweenItsLoadsSeesNoDamage) {
    // A thread with no role opens the queue (the open checks the positions)
    // and reads its size while elements stream through a queue of one: a
    // reader held up between its loads of tail and head finds the head any
    // distance past the tail it read, which is no damage.
    struct state {
        spsc producer, consumer;
        shmds::posix_shm& segment;
        explicit state(shmds::posix_shm& s)
            : producer(s, "q", 1), consumer(shmds::open_only, s, "q"), segment(s) {}
    };
    explore<state>([](state& st) {
        return std::vector<std::function<void()>>{
            [&st] {
                for (std::uint64_t i = 0; i < 10; ++i) {
                    model().record(element(0, i));
                    while (!st.producer.try_push(element(0, i))) model().yield_now();
                }
            },
            [&st] {
                for (std::uint64_t i = 0; i < 10; ++i) {
                    std::uint64_t v = 0;
                    while (!st.consumer.try_pop(v)) model().yield_now();
                    model().check_record(v, "element");
                    if (v != element(0, i))
                        return model().fail("element " + std::to_string(v) + " out of order");
                }
            },
            [&st] {
                spsc watcher(shmds::open_only, st.segment, "q");
                for (int k = 0; k < 10; ++k)
                    if (watcher.size() > 1) model().fail("size() above the capacity");
            },
        };
    });
}

TEST(WeakMemory, SpscBatchesHandOverWithAnObserver) {
    struct state {
        spsc producer, consumer, watcher;
        explicit state(shmds::posix_shm& s)
            : producer(s, "q", 3), consumer(shmds::open_only, s, "q"), watcher(shmds::open_only, s, "q") {}
    };
    explore<state>([](state& st) {
        return std::vector<std::function<void()>>{
            [&st] {
                std::uint64_t batch[3];
                for (std::uint64_t next = 0; next < 6;) {
                    const std::size_t n = std::min<std::uint64_t>(3, 6 - next);
                    for (std::size_t k = 0; k < n; ++k) {
                        batch[k] = element(0, next + k);
                        model().record(batch[k]);
                    }
                    const std::size_t pushed = st.producer.try_push_n(batch, n);
                    if (pushed == 0) model().yield_now();
                    next += pushed;
                }
            },
            [&st] {
                std::uint64_t batch[2];
                for (std::uint64_t expected = 0; expected < 6;) {
                    const std::size_t n = st.consumer.try_pop_n(batch, 2);
                    if (n == 0) model().yield_now();
                    for (std::size_t k = 0; k < n; ++k, ++expected) {
                        model().check_record(batch[k], "element");
                        if (batch[k] != element(0, expected))
                            return model().fail("element " + std::to_string(batch[k]) + " out of order");
                    }
                }
            },
            observer(st.watcher, 3, 6),
        };
    });
}

TEST(WeakMemory, SpscSuccessorsCarryOnWithAnObserver) {
    // A producer hands its role to a successor handle (which counts what it
    // finds published), and a consumer to one that resumes from the shared
    // positions, while a third thread watches the size.
    struct state {
        spsc first_producer, next_producer, first_consumer, next_consumer, watcher;
        explicit state(shmds::posix_shm& s)
            : first_producer(s, "q", 2),
              next_producer(shmds::open_only, s, "q"),
              first_consumer(shmds::open_only, s, "q"),
              next_consumer(shmds::open_only, s, "q"),
              watcher(shmds::open_only, s, "q") {}
    };
    explore<state>(
        [](state& st) {
            auto push = [](spsc& q, std::uint64_t v) {
                model().record(v);
                while (!q.try_push(v)) model().yield_now();
            };
            auto pop = [](spsc& q, std::uint64_t expected) {
                std::uint64_t v = 0;
                while (!q.try_pop(v)) model().yield_now();
                model().check_record(v, "element");
                if (v != expected) model().fail("element " + std::to_string(v) + " out of order");
            };
            return std::vector<std::function<void()>>{
                [&st, push] {
                    for (std::uint64_t i = 0; i < 4; ++i) push(st.first_producer, element(0, i));
                    st.first_producer.release_roles();
                    for (std::uint64_t i = 4; i < 6; ++i) push(st.next_producer, element(0, i));
                },
                [&st, pop] {
                    for (std::uint64_t i = 0; i < 3; ++i) pop(st.first_consumer, element(0, i));
                    st.first_consumer.release_roles();
                    for (std::uint64_t i = 3; i < 6; ++i) pop(st.next_consumer, element(0, i));
                },
                observer(st.watcher, 2, 16),
            };
        },
        1000);  // the successor's store of tail is newest only briefly
}

TEST(WeakMemory, MpmcHandsOverWithSleepingWaits) {
    // Two consumers behind one producer: a consumer whose attempt loses the
    // element to the other must not sleep through the next wake-up.
    struct state {
        mpmc producer, consumer_a, consumer_b;
        explicit state(shmds::posix_shm& s)
            : producer(s, "q", 2, sleeping),
              consumer_a(shmds::open_only, s, "q", sleeping),
              consumer_b(shmds::open_only, s, "q", sleeping) {}
    };
    explore<state>([](state& st) {
        return std::vector<std::function<void()>>{
            [&st] {
                for (std::uint64_t i = 0; i < 4; ++i) {
                    model().record(element(0, i));
                    st.producer.push(element(0, i));
                }
            },
            [&st] {
                for (int k = 0; k < 2; ++k) model().check_record(st.consumer_a.pop(), "element");
            },
            [&st] {
                for (int k = 0; k < 2; ++k) model().check_record(st.consumer_b.pop(), "element");
            },
        };
    });
}

TEST(WeakMemory, MpmcTwoProducersOneConsumerWithAnObserver) {
    struct state {
        mpmc producer_a, producer_b, consumer, watcher;
        explicit state(shmds::posix_shm& s)
            : producer_a(s, "q", 2, sleeping),
              producer_b(shmds::open_only, s, "q", sleeping),
              consumer(shmds::open_only, s, "q", sleeping),
              watcher(shmds::open_only, s, "q") {}
    };
    explore<state>([](state& st) {
        auto producer = [](mpmc& q, std::uint64_t p) {
            return [&q, p] {
                for (std::uint64_t i = 0; i < 3; ++i) {
                    model().record(element(p, i));
                    q.push(element(p, i));
                }
            };
        };
        return std::vector<std::function<void()>>{
            producer(st.producer_a, 0),
            producer(st.producer_b, 1),
            [&st] { pop_and_check(st.consumer, 6, 2); },
            observer(st.watcher, 2, 4),
        };
    });
}

}  // namespace
