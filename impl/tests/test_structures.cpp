// shm_array, shm_queue and shm_stack in one process: every operation, every
// error, and random operation sequences checked against std::deque and
// std::vector.
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds::errc;
using shmds_test::unique_segment_name;

class Structures : public ::testing::Test {
protected:
    unique_segment_name name_;
    shmds::posix_shm seg_{name_, 4 << 20};
};

struct WithDefaults {
    int a = 7;
    double b = 1.5;
};

TEST_F(Structures, ArrayAccess) {
    shmds::shm_array<double> a(seg_, "prices", 1000);
    EXPECT_EQ(a.size(), 1000u);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(std::count(a.begin(), a.end(), 0.0), 1000) << "new arrays are value-initialised";
    a[3] = 1.5;
    EXPECT_EQ(a.at(3), 1.5);
    EXPECT_EQ(a.data()[3], 1.5);
    EXPECT_EQ(a.end() - a.begin(), 1000);
    std::span<double> v = a.span();
    EXPECT_EQ(v.size(), 1000u);
    EXPECT_EQ(&v[3], &a[3]);
    a.fill(2.0);
    EXPECT_EQ(std::accumulate(a.begin(), a.end(), 0.0), 2000.0);
    EXPECT_EQ(a.front(), 2.0);
    EXPECT_EQ(a.back(), 2.0);
    EXPECT_EQ(a.name(), "prices");
    EXPECT_EQ(a.segment_name(), name_.str());
}

TEST_F(Structures, ArrayAtThrowsOutOfRangeNamingTheArray) {
    shmds::shm_array<int> a(seg_, "prices", 1000);
    try {
        (void)a.at(1000);
        FAIL();
    } catch (const std::out_of_range& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("1000"), std::string::npos) << what;
        EXPECT_NE(what.find("'prices'"), std::string::npos) << what;
    }
    EXPECT_THROW((void)a.at(SIZE_MAX), std::out_of_range);
    EXPECT_NO_THROW((void)a.at(999));
}

TEST_F(Structures, ArrayRunsDefaultConstructors) {
    shmds::shm_array<WithDefaults> a(seg_, "d", 3);
    EXPECT_EQ(a[2].a, 7);
    EXPECT_EQ(a[2].b, 1.5);
    a[2].a = 9;
    shmds::shm_array<WithDefaults> again(seg_, "d", 3);
    EXPECT_EQ(again[2].a, 9) << "opening must not re-initialise";
}

TEST_F(Structures, ArrayOfOneAndArrayReuseAreZeroed) {
    shmds::shm_array<std::uint64_t> one(seg_, "one", 1);
    one[0] = ~0ull;
    seg_.destroy("one");
    shmds::shm_array<std::uint64_t> next(seg_, "next", 1);
    EXPECT_EQ(next[0], 0u);
}

TEST_F(Structures, QueueFifoAndErrors) {
    shmds::shm_queue<int> q(seg_, "jobs", 3);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.capacity(), 3u);
    EXPECT_FALSE(q.try_pop());
    try {
        q.pop();
        FAIL();
    } catch (const shmds::empty_error& e) {
        EXPECT_EQ(e.code(), errc::empty);
        EXPECT_NE(std::string(e.what()).find("'jobs'"), std::string::npos);
    }
    EXPECT_THROW((void)q.front(), shmds::empty_error);
    EXPECT_TRUE(q.try_push(1));
    q.push(2);
    q.push(3);
    EXPECT_TRUE(q.full());
    EXPECT_FALSE(q.try_push(4));
    try {
        q.push(4);
        FAIL();
    } catch (const shmds::full_error& e) {
        EXPECT_EQ(e.code(), errc::full);
        EXPECT_NE(std::string(e.what()).find("capacity 3"), std::string::npos);
    }
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.front(), 1);
    EXPECT_EQ(q.pop(), 1);
    q.push(4);  // wraps around
    EXPECT_EQ(*q.try_pop(), 2);
    EXPECT_EQ(q.pop(), 3);
    EXPECT_EQ(q.pop(), 4);
    EXPECT_TRUE(q.empty());
    q.push(5);
    q.clear();
    EXPECT_TRUE(q.empty());
}

// Every structure pops into a variable too; an empty one leaves it alone.
template <class S>
void check_pop_into_a_variable(S& s, bool fifo) {
    int out = 77;
    EXPECT_FALSE(s.try_pop(out));
    EXPECT_EQ(out, 77) << "a pop that found nothing wrote into its variable";
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    EXPECT_TRUE(s.try_pop(out));
    EXPECT_EQ(out, fifo ? 1 : 2);
    EXPECT_TRUE(s.try_pop(out));
    EXPECT_EQ(out, fifo ? 2 : 1);
    EXPECT_FALSE(s.try_pop(out));
    EXPECT_EQ(out, fifo ? 2 : 1);
    EXPECT_EQ(shmds::element_count(s), 0u);
}

TEST_F(Structures, QueueAndStackPopIntoAVariable) {
    shmds::shm_queue<int> q(seg_, "q", 2);
    check_pop_into_a_variable(q, true);
    shmds::shm_stack<int> s(seg_, "s", 2);
    check_pop_into_a_variable(s, false);
}

TEST_F(Structures, StackLifoAndErrors) {
    shmds::shm_stack<int> s(seg_, "undo", 2);
    EXPECT_TRUE(s.empty());
    EXPECT_FALSE(s.try_pop());
    EXPECT_THROW(s.pop(), shmds::empty_error);
    EXPECT_THROW((void)s.top(), shmds::empty_error);
    s.push(1);
    EXPECT_TRUE(s.try_push(2));
    EXPECT_TRUE(s.full());
    EXPECT_FALSE(s.try_push(3));
    EXPECT_THROW(s.push(3), shmds::full_error);
    EXPECT_EQ(s.top(), 2);
    EXPECT_EQ(s.pop(), 2);
    EXPECT_EQ(*s.try_pop(), 1);
    EXPECT_TRUE(s.empty());
    s.push(9);
    s.clear();
    EXPECT_EQ(s.size(), 0u);
}

// A timeout shorter than a nanosecond (a floating-point duration) is not a
// poll by its type, yet rounds to no time at all: the timed forms must then
// report exactly what their one attempt did.
template <class S>
void check_sub_nanosecond_timeouts(S& s) {
    const std::chrono::duration<double, std::nano> half_a_nanosecond(0.5);
    EXPECT_EQ(s.try_pop_for(half_a_nanosecond), std::nullopt);
    EXPECT_TRUE(s.try_push_for(1, half_a_nanosecond));
    EXPECT_FALSE(s.try_push_for(2, half_a_nanosecond)) << "a push into a full structure reported success";
    EXPECT_EQ(shmds::element_count(s), 1u);
    EXPECT_EQ(s.try_pop_for(half_a_nanosecond), std::optional<int>(1));
    EXPECT_EQ(shmds::element_count(s), 0u);
}

TEST_F(Structures, SubNanosecondTimeoutsReportWhatTheirOneAttemptDid) {
    {
        SCOPED_TRACE("shm_spsc_queue");
        shmds::shm_spsc_queue<int> q(seg_, "spsc", 1);
        check_sub_nanosecond_timeouts(q);
    }
    {
        SCOPED_TRACE("shm_mpmc_queue");
        shmds::shm_mpmc_queue<int> q(seg_, "mpmc", 1);
        check_sub_nanosecond_timeouts(q);
    }
    {
        SCOPED_TRACE("shm_concurrent_stack");
        shmds::shm_concurrent_stack<int> s(seg_, "stack", 1);
        check_sub_nanosecond_timeouts(s);
    }
}

// A sleeper whose recheck timer (1 ms here) ended its sleep waits a short
// grace for a wake-up that may be on its way; the room it waits for arrives
// at a random moment, often in that grace. However it learns of it, the
// push must report the push it made.
TEST_F(Structures, ASleeperWokenInTheGraceAfterItsRecheckReportsItsPush) {
    shmds::shm_spsc_queue<int> producer(seg_, "q", 1);
    shmds::shm_spsc_queue<int> consumer(seg_, "q");
    producer.set_wait_options(
        {.strategy = shmds::wait_strategy::sleep, .recheck_after = std::chrono::milliseconds(1)});
    std::mt19937 random(7);
    for (int trial = 0; trial < 30; ++trial) {
        ASSERT_TRUE(producer.try_push(trial));  // full
        const auto delay = std::chrono::microseconds(500 + random() % 3000);
        std::thread popper([&] {
            std::this_thread::sleep_for(delay);
            EXPECT_EQ(consumer.try_pop(), std::optional<int>(trial));
        });
        EXPECT_TRUE(producer.try_push_for(-1, std::chrono::seconds(5))) << "trial " << trial;
        popper.join();
        ASSERT_EQ(consumer.try_pop(), std::optional<int>(-1))
            << "trial " << trial << ": the push did not land";
    }
}

TEST_F(Structures, StateLivesInTheSegmentNotTheHandle) {
    {
        shmds::shm_queue<int> q(seg_, "q", 8);
        q.push(10);
        q.push(11);
        shmds::shm_stack<int> s(seg_, "s", 8);
        s.push(20);
    }
    shmds::shm_queue<int> q(seg_, "q");
    EXPECT_EQ(q.size(), 2u);
    EXPECT_EQ(q.pop(), 10);
    shmds::shm_queue<int> other_handle(seg_, "q");
    EXPECT_EQ(other_handle.pop(), 11) << "a pop through one handle is seen by the other";
    EXPECT_EQ((shmds::shm_stack<int>(seg_, "s").pop()), 20);
}

TEST_F(Structures, QueueMatchesDequeOnRandomOperations) {
    for (std::size_t capacity : {1u, 2u, 3u, 7u, 64u}) {
        const std::string n = "model-q" + std::to_string(capacity);
        shmds::shm_queue<std::uint32_t> q(seg_, n, capacity);
        std::deque<std::uint32_t> model;
        std::mt19937 rng(static_cast<unsigned>(capacity));
        for (int step = 0; step < 20000; ++step) {
            std::uint32_t op = rng() % 5;
            if (op < 2) {
                std::uint32_t v = rng();
                bool pushed = q.try_push(v);
                ASSERT_EQ(pushed, model.size() < capacity);
                if (pushed) model.push_back(v);
            } else if (op < 4) {
                auto v = q.try_pop();
                ASSERT_EQ(v.has_value(), !model.empty());
                if (v) {
                    ASSERT_EQ(*v, model.front());
                    model.pop_front();
                }
            } else if (!model.empty()) {
                ASSERT_EQ(q.front(), model.front());
            }
            ASSERT_EQ(q.size(), model.size());
            ASSERT_EQ(q.full(), model.size() == capacity);
        }
    }
}

TEST_F(Structures, StackMatchesVectorOnRandomOperations) {
    for (std::size_t capacity : {1u, 2u, 5u, 100u}) {
        const std::string n = "model-s" + std::to_string(capacity);
        shmds::shm_stack<std::uint64_t> s(seg_, n, capacity);
        std::vector<std::uint64_t> model;
        std::mt19937_64 rng(capacity);
        for (int step = 0; step < 20000; ++step) {
            std::uint64_t op = rng() % 5;
            if (op < 2) {
                std::uint64_t v = rng();
                bool pushed = s.try_push(v);
                ASSERT_EQ(pushed, model.size() < capacity);
                if (pushed) model.push_back(v);
            } else if (op < 4) {
                auto v = s.try_pop();
                ASSERT_EQ(v.has_value(), !model.empty());
                if (v) {
                    ASSERT_EQ(*v, model.back());
                    model.pop_back();
                }
            } else if (!model.empty()) {
                ASSERT_EQ(s.top(), model.back());
            }
            ASSERT_EQ(s.size(), model.size());
        }
    }
}

TEST_F(Structures, DamagedControlBlocksAreCaught) {
    shmds::shm_queue<int> q(seg_, "q", 4);
    shmds::shm_stack<int> s(seg_, "s", 4);
    auto info_q = seg_.table().find("q");
    auto info_s = seg_.table().find("s");
    auto* base = static_cast<std::byte*>(seg_.base());
    auto* qc = reinterpret_cast<shmds::detail::ring_control*>(base + info_q->offset);
    auto* sc = reinterpret_cast<shmds::detail::stack_control*>(base + info_s->offset);

    qc->tail = 1000;  // would write far past the ring
    EXPECT_THROW((void)q.try_push(1), shmds::corrupted_error);
    qc->tail = 0;
    qc->head = 4;
    EXPECT_THROW((void)q.try_pop(), shmds::corrupted_error);
    qc->head = 0;
    qc->count = 5;
    EXPECT_THROW((void)q.size(), shmds::corrupted_error);
    qc->count = 0;
    q.push(1);

    sc->count = 1u << 20;
    EXPECT_THROW((void)s.try_pop(), shmds::corrupted_error);
    EXPECT_THROW((void)s.top(), shmds::corrupted_error);
    sc->count = 0;

    qc->capacity = 99;  // disagrees with the table: refused at open
    EXPECT_THROW((shmds::shm_queue<int>(seg_, "q")), shmds::corrupted_error);
}

// A push reads only tail and count, a pop only head and count: each must
// accept every valid value at its edge (the last slot, a full or an empty
// queue) and refuse the first invalid one, whichever state the others say.
TEST_F(Structures, QueueIndicesAreCheckedAtTheirEdgesByEachOperation) {
    constexpr std::uint64_t capacity = 4;
    shmds::shm_queue<int> q(seg_, "q", capacity);
    auto* qc = reinterpret_cast<shmds::detail::ring_control*>(static_cast<std::byte*>(seg_.base()) +
                                                              seg_.table().find("q")->offset);
    auto set = [&](std::uint64_t head, std::uint64_t tail, std::uint64_t count) {
        qc->head = head;
        qc->tail = tail;
        qc->count = count;
    };
    auto refused_naming = [](auto&& op, const std::string& part) {
        try {
            op();
        } catch (const shmds::corrupted_error& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
            return;
        }
        ADD_FAILURE() << "accepted; expected corrupted_error naming " << part;
    };

    // Valid edges: full with the tail on the last slot, empty with the head there.
    set(3, 3, capacity);
    EXPECT_FALSE(q.try_push(1)) << "full is full, not damage";
    set(3, 3, 0);
    EXPECT_FALSE(q.try_pop().has_value());
    int out = -1;
    EXPECT_FALSE(q.try_pop(out));
    EXPECT_EQ(out, -1);
    ASSERT_TRUE(q.try_push(7));  // into the last slot; the tail wraps to 0
    EXPECT_EQ(qc->tail, 0u);
    ASSERT_TRUE(q.try_pop(out));
    EXPECT_EQ(out, 7);
    EXPECT_EQ(qc->head, 0u);
    EXPECT_EQ(qc->count, 0u);

    // The first invalid value of each index a call uses, in every state.
    for (std::uint64_t count : {std::uint64_t{0}, std::uint64_t{1}, capacity}) {
        SCOPED_TRACE("count " + std::to_string(count));
        set(0, capacity, count);
        refused_naming([&] { (void)q.try_push(1); }, "tail 4");
        set(capacity, 0, count);
        refused_naming([&] { (void)q.try_pop(); }, "head 4");
        out = -1;
        refused_naming([&] { (void)q.try_pop(out); }, "head 4");
        EXPECT_EQ(out, -1) << "nothing read through a bad index";
    }
    set(0, 0, capacity + 1);
    refused_naming([&] { (void)q.try_push(1); }, "count 5");
    refused_naming([&] { (void)q.try_pop(); }, "count 5");
    refused_naming([&] { (void)q.try_pop(out); }, "count 5");
    set(0, 0, ~std::uint64_t{0});
    refused_naming([&] { (void)q.try_push(1); }, "count 18446744073709551615");
    refused_naming([&] { (void)q.try_pop(); }, "count 18446744073709551615");
    set(0, 0, 0);
}

// Found by the conformance suite's byte-flip sweep: MPMC hints set 2^40
// positions behind the slots were walked back one position per step.
TEST_F(Structures, MpmcHintsFarBehindCostAtMostALap) {
    shmds::shm_mpmc_queue<int> q(seg_, "m", 4);
    for (int i = 0; i < 6; ++i) {
        q.push(i);
        EXPECT_EQ(q.pop(), i);
    }
    q.push(6);
    auto* base = static_cast<std::byte*>(seg_.base());
    auto* c = reinterpret_cast<shmds::detail::mpmc_control*>(base + seg_.table().find("m")->offset);
    c->tail.store(c->tail.load() - (std::uint64_t{1} << 40));
    c->head.store(c->head.load() - (std::uint64_t{1} << 40));
    EXPECT_EQ(q.try_pop(), std::optional<int>(6)) << "the element pushed before the damage";
    EXPECT_TRUE(q.try_push(7));
    EXPECT_EQ(q.try_pop(), std::optional<int>(7));
    EXPECT_EQ(q.try_pop(), std::nullopt);
}

TEST_F(Structures, MpmcSlotWordsThatSendAWalkRoundForEverAreCorruptedNotAHang) {
    // Slot positions spread round the 48-bit position space (found by a
    // search over the walk's rule while fuzzing): from the hint, every slot
    // the walk reaches looks ahead, and each jump lands where another one
    // does, modulo 2^48, for ever. Before the fix try_push and try_pop spun.
    shmds::shm_mpmc_queue<std::uint64_t> q(seg_, "m", 4);
    auto* block = static_cast<std::byte*>(seg_.base()) + seg_.table().find("m")->offset;
    using layout = shmds::detail::mpmc_layout<std::uint64_t>;
    namespace word = shmds::detail::mpmc_word;
    auto write_slots = [&](const std::array<std::pair<std::uint64_t, word::state>, 4>& slots) {
        for (std::size_t i = 0; i < slots.size(); ++i)
            layout::slot_word(block, i)->store(word::make(slots[i].first, slots[i].second, 5));
    };
    write_slots({{{(std::uint64_t{1} << 47) + 4, word::writing},
                  {(std::uint64_t{1} << 48) - 4, word::writing},
                  {46912496118451, word::full},
                  {187649984473765, word::free}}});
    layout::control(block)->tail.store(std::uint64_t{0} - 7);
    EXPECT_THROW((void)q.try_push(1), shmds::corrupted_error);

    write_slots({{{160842843834661, word::free},
                  {160842843834661, word::free},
                  {241264265751990, word::free},
                  {80421421917328, word::writing}}});
    layout::control(block)->head.store(160842843834670);
    EXPECT_THROW((void)q.try_pop(), shmds::corrupted_error);
}

TEST_F(Structures, SpscDamagedPositionsAreCaughtAndSequencesNeverLeadOutOfTheSlots) {
    shmds::shm_spsc_queue<int> producer(seg_, "q", 4);
    shmds::shm_spsc_queue<int> consumer(seg_, "q");
    ASSERT_TRUE(producer.try_push(1));
    ASSERT_TRUE(producer.try_push(2));
    auto* block = static_cast<std::byte*>(seg_.base()) + seg_.table().find("q")->offset;
    auto* control = shmds::detail::spsc_layout<int>::control(block);
    auto* slots = shmds::detail::spsc_layout<int>::elements(block);

    control->head = 1000;  // the consumer "took" elements nobody pushed
    EXPECT_THROW((void)producer.size(), shmds::corrupted_error);
    EXPECT_THROW((shmds::shm_spsc_queue<int>(seg_, "q")), shmds::corrupted_error);
    ASSERT_TRUE(producer.try_push(3));  // its cached head still says there is room
    ASSERT_TRUE(producer.try_push(4));
    try {
        (void)producer.try_push(5);  // full by its cache: reads head, and refuses it
        ADD_FAILURE() << "a head ahead of the producer was not caught";
    } catch (const shmds::corrupted_error& e) {
        EXPECT_NE(std::string(e.what()).find("head position 1000"), std::string::npos) << e.what();
    }
    control->head = 0;

    // Hostile sequences can make a slot look empty (or full of whatever its
    // value holds), never send anyone to a slot that does not exist.
    slots[0].sequence = 12345;
    EXPECT_FALSE(consumer.try_pop());
    slots[0].sequence = 1;
    EXPECT_EQ(consumer.try_pop(), 1);

    // A successor producer refuses positions that disagree, and gives the
    // role back so that another handle can take it once they are repaired.
    producer.release_roles();
    shmds::shm_spsc_queue<int> successor(seg_, "q", 4);
    const std::uint64_t tail = control->tail;
    control->tail = tail + 100;
    EXPECT_THROW((void)successor.try_push(9), shmds::corrupted_error);
    control->tail = tail;
    EXPECT_TRUE(successor.try_push(9));
    for (int expected : {2, 3, 4, 9}) EXPECT_EQ(consumer.try_pop(), expected);
    EXPECT_FALSE(consumer.try_pop());
}

// The public concept says exactly what the structures accept: a type at the
// edge of each limit is in, one past it is out. (Checked at run time, so that
// a concept that says yes too often fails here rather than in the compiler.)
TEST(Elements, TheConceptAcceptsExactlyTheTypesTheStructuresAccept) {
    struct alignas(4096) page_aligned {
        char c;
    };
    struct alignas(8192) over_aligned {
        char c;
    };
    struct plain {
        int x;
    };
    using largest = std::array<char, 0xffff'ffff>;      // sizeof 2^32 - 1: fits the table's 32-bit field
    using too_large = std::array<char, 0x1'0000'0000>;  // 4 GiB
    EXPECT_TRUE(shmds::shm_element<int>);
    EXPECT_TRUE(shmds::shm_element<plain>);
    EXPECT_TRUE(shmds::shm_element<largest>);
    EXPECT_TRUE(shmds::shm_element<page_aligned>);
    EXPECT_TRUE(shmds::detail::check_element<largest>());
    EXPECT_TRUE(shmds::detail::check_element<page_aligned>());
    EXPECT_FALSE(shmds::shm_element<too_large>);
    EXPECT_FALSE(shmds::shm_element<over_aligned>);
    EXPECT_FALSE(shmds::shm_element<int*>);
    EXPECT_FALSE(shmds::shm_element<int plain::*>);
    EXPECT_FALSE(shmds::shm_element<const int>);
    EXPECT_FALSE(shmds::shm_element<volatile int>);
    EXPECT_FALSE(shmds::shm_element<int&>);
    EXPECT_FALSE(shmds::shm_element<void>);
    EXPECT_FALSE(shmds::shm_element<std::string>);
}

// visit_structure_type maps every kind a table entry can record to the
// template that made it: a structure created through the visit is found with
// that kind and the template's name, and a number no kind has is refused.
TEST_F(Structures, EveryKindVisitsTheTemplateThatMakesIt) {
    for (const shmds::structure_kind_info& known : shmds::structure_kinds) {
        const std::string name = "visited-" + std::string(known.name);
        const std::string made = shmds::visit_structure_type<std::uint32_t>(known.kind, [&](auto type) {
            using structure = typename decltype(type)::type;
            if constexpr (std::is_same_v<structure, shmds::shm_message_queue>)
                structure(shmds::create_only, seg_, name, 64, 16);  // bytes, and the largest message
            else
                structure(shmds::create_only, seg_, name, 4);
            return std::string(shmds::to_string(structure::kind));
        });
        EXPECT_EQ(made, known.name);
        const std::optional<shmds::structure_info> info = seg_.table().find(name);
        ASSERT_TRUE(info.has_value()) << name;
        EXPECT_EQ(info->kind, known.kind) << name;
    }
    for (std::uint32_t unknown :
         {0u, static_cast<std::uint32_t>(shmds::structure_kinds.size()) + 1, 0xffff'ffffu}) {
        try {
            shmds::visit_structure_type<int>(shmds::structure_kind(unknown), [](auto) {});
            ADD_FAILURE() << "kind " << unknown << " was visited";
        } catch (const shmds::invalid_argument_error& e) {
            EXPECT_EQ(e.code(), errc::invalid_argument);
            EXPECT_NE(std::string(e.what()).find("kind " + std::to_string(unknown) + " "), std::string::npos)
                << e.what();
        }
    }
}

// The MPMC queue's count is an estimate, so it is called size_estimate(); the
// old spelling stays for one release, deprecated, and answers the same.
TEST_F(Structures, MpmcSizeIsTheDeprecatedSpellingOfSizeEstimate) {
    shmds::shm_mpmc_queue<int> q(seg_, "old-spelling", 4);
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    EXPECT_EQ(q.size_estimate(), 2u);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    EXPECT_EQ(q.size(), 2u);
#pragma GCC diagnostic pop
    EXPECT_FALSE(q.empty());
    EXPECT_FALSE(q.full());
}

}  // namespace
