// Across processes (actors started with exec, process_support.hpp): address
// independence through an execed program and two mappings in one process
// (ADDR-001, ADDR-002, ARR-001, TBL-001), and elements handed between
// producer and consumer programs whole, once and in order (Q-005, STK-003),
// one at a time and in batches.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "process_support.hpp"
#include "support.hpp"

namespace shmconf_process_tests {
namespace {

TEST(AddressIndependence, AnExecedProgramReadsAndWritesByName) {
    CHECKS_REQUIREMENTS("ADDR-001 ARR-001 TBL-001");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<std::uint64_t>;
    A a = impl::make<A>(seg, "a", 64);
    for (std::size_t i = 0; i < 64; ++i) a[i] = i + 1000;
    actor reader({name.name(), "read-array", "a", "64"});
    const auto seen = reader.lines();
    ASSERT_EQ(reader.wait(), 0);
    ASSERT_EQ(seen.size(), 64u);
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(seen[i], std::to_string(i + 1000)) << i;
    actor writer({name.name(), "write-array", "a", "64", "7"});
    ASSERT_EQ(writer.wait(), 0);
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(a[i], i * 7) << i;
}

TEST(AddressIndependence, TwoMappingsInOneProcessAgree) {
    CHECKS_REQUIREMENTS("ADDR-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto first = impl::create(name.name(), 1 << 20);
    auto second = impl::open(name.name());
    using A = impl::array<std::uint64_t>;
    A through_first = impl::make<A>(first, "a", 16);
    A through_second = impl::find<A>(second, "a");
    through_first[3] = 33;
    EXPECT_EQ(through_second[3], 33u);
    through_second[4] = 44;
    EXPECT_EQ(through_first[4], 44u);
}

/// How the actors of run_producers_and_consumers push and pop.
struct traffic {
    std::size_t capacity = 256;
    std::uint64_t batch = 0;  ///< 0: one element per call; else batches of 1 to `batch` (Q-009)
};

/// Producers and consumers, each an execed program: every element once, in
/// each producer's order (for FIFO structures).
void run_producers_and_consumers(const char* kind, bool fifo, int producers, int consumers,
                                 traffic how = {}) {
    fresh_segment name;
    auto seg = impl::create(name.name(), 4 << 20);
    constexpr std::uint64_t per_producer = 20'000;
    const std::uint64_t total = per_producer * static_cast<std::uint64_t>(producers);
    if (std::string(kind) == "spsc_queue")
        (void)impl::make<impl::spsc_queue<std::uint64_t>>(seg, "q", how.capacity);
    else if (std::string(kind) == "mpmc_queue")
        (void)impl::make<impl::mpmc_queue<std::uint64_t>>(seg, "q", how.capacity);
    else
        (void)impl::make<impl::concurrent_stack<std::uint64_t>>(seg, "q", how.capacity);
    const std::string batch = std::to_string(how.batch);
    std::vector<std::unique_ptr<actor>> consumer_actors, producer_actors;
    const std::uint64_t share = total / static_cast<std::uint64_t>(consumers);
    for (int c = 0; c < consumers; ++c)
        consumer_actors.push_back(std::make_unique<actor>(std::vector<std::string>{
            name.name(), "consume", kind, "q",
            std::to_string(c + 1 == consumers ? total - share * (consumers - 1) : share), batch}));
    for (int p = 0; p < producers; ++p)
        producer_actors.push_back(std::make_unique<actor>(std::vector<std::string>{
            name.name(), "produce", kind, "q", std::to_string(p), std::to_string(per_producer), batch}));
    std::map<std::uint64_t, std::uint64_t> seen;  // element -> times
    std::uint64_t out_of_order = 0;
    for (auto& c : consumer_actors) {
        std::map<std::uint64_t, std::int64_t> last;  // producer -> last sequence, per consumer
        for (const std::string& l : c->lines()) {
            const std::uint64_t v = std::stoull(l);
            ++seen[v];
            const std::uint64_t producer = v >> 32, sequence = v & 0xffffffffu;
            if (fifo && last.count(producer) && static_cast<std::int64_t>(sequence) <= last[producer])
                ++out_of_order;
            last[producer] = static_cast<std::int64_t>(sequence);
        }
        EXPECT_EQ(c->wait(), 0);
    }
    for (auto& p : producer_actors) EXPECT_EQ(p->wait(), 0);
    std::uint64_t duplicates = 0, missing = 0;
    for (int p = 0; p < producers; ++p)
        for (std::uint64_t i = 0; i < per_producer; ++i) {
            const auto it = seen.find((std::uint64_t(p) << 32) | i);
            if (it == seen.end())
                ++missing;
            else if (it->second > 1)
                duplicates += it->second - 1;
        }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicates, 0u);
    EXPECT_EQ(out_of_order, 0u);
}

TEST(Processes, SpscQueueAcrossProgramsLosesNothing) {
    CHECKS_REQUIREMENTS("Q-005 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_producers_and_consumers("spsc_queue", true, 1, 1);
}

TEST(Processes, MpmcQueueTwoByTwoAcrossProgramsLosesNothingAndKeepsOrder) {
    CHECKS_REQUIREMENTS("Q-005 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_producers_and_consumers("mpmc_queue", true, 2, 2);
}

/// Batches of 1 to 11 through a queue of 8, so that batch pushes are often
/// cut short by a full queue and batch pops by an empty one.
TEST(Processes, SpscQueueBatchesAcrossProgramsLoseNothing) {
    CHECKS_REQUIREMENTS("Q-009");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    UNSUPPORTED_UNLESS(has_batches<impl::spsc_queue>(), "its SPSC handle has no try_push_n / try_pop_n");
    run_producers_and_consumers("spsc_queue", true, 1, 1, {.capacity = 8, .batch = 11});
}

TEST(Processes, MpmcQueueBatchesTwoByTwoAcrossProgramsLoseNothingAndKeepOrder) {
    CHECKS_REQUIREMENTS("Q-009");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    UNSUPPORTED_UNLESS(has_batches<impl::mpmc_queue>(), "its MPMC handle has no try_push_n / try_pop_n");
    run_producers_and_consumers("mpmc_queue", true, 2, 2, {.capacity = 8, .batch = 11});
}

/// One producer, pausing a varying moment after each push, and one consumer
/// spinning on try_pop, in a queue of 4: the consumer is mostly waiting on
/// the very slot the producer fills next, so every hand-off races a pop
/// against the push still writing that slot (the window a busy 2 x 2 queue,
/// mostly non-empty, rarely opens). A pop that takes a slot before its value
/// is whole, or reads the value before it checks the slot is published,
/// returns that slot's previous lap: an element out of its place.
void run_hand_off_to_a_polling_consumer(const char* kind) {
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    if (std::string(kind) == "spsc_queue")
        (void)impl::make<impl::spsc_queue<std::uint64_t>>(seg, "q", 4);
    else
        (void)impl::make<impl::mpmc_queue<std::uint64_t>>(seg, "q", 4);
    const std::string count = std::to_string(shmconf_tests::by_profile(300'000, 3'000'000));
    for (int round = 0; round < shmconf_tests::by_profile(2, 5); ++round) {
        const std::string start = std::to_string(monotonic_ns_from_now(200));
        actor consumer({name.name(), "consume-in-order", kind, "q", count, start});
        actor producer({name.name(), "produce-paced", kind, "q", count, start});
        const std::string said = consumer.line();
        EXPECT_EQ(consumer.wait(), 0);
        if (said != "in order") {
            ADD_FAILURE() << "round " << round << ": " << said;
            producer.kill();  // nobody pops any more: it would wait for room until its deadline
            return;
        }
        EXPECT_EQ(producer.wait(), 0);
    }
}

TEST(Processes, SpscQueueHandsEverySlotOverWholeToAConsumerPollingIt) {
    CHECKS_REQUIREMENTS("Q-005");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_hand_off_to_a_polling_consumer("spsc_queue");
}

TEST(Processes, MpmcQueueHandsEverySlotOverWholeToAConsumerPollingIt) {
    CHECKS_REQUIREMENTS("Q-005");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_hand_off_to_a_polling_consumer("mpmc_queue");
}

TEST(Processes, ConcurrentStackTwoByTwoAcrossProgramsLosesNothing) {
    CHECKS_REQUIREMENTS("STK-003 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    run_producers_and_consumers("concurrent_stack", false, 2, 2);
}

}  // namespace
}  // namespace shmconf_process_tests
