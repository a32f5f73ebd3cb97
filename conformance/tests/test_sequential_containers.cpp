// Sequential semantics of the containers, in one process, for any
// implementation of the contract (sequential_support.hpp): queues and stacks
// against a model, one at a time (Q-001 to Q-004, STK-001, STK-002) and in
// batches; found again by name with capacity and contents (TBL-001,
// TBL-002); every mismatch of type, kind or capacity refused (TBL-004); and
// capacities that are 0 or overflow (ELEM-002). Then arrays: elements and
// bounds (ARR-001, ARR-002), mismatches (TBL-004) and invalid sizes
// (ELEM-002). Every test cites the requirement IDs it checks
// (conformance/spec/requirements.md) with a `requirements` property in
// GoogleTest's output.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sequential_support.hpp"
#include "support.hpp"

namespace {

// ---- FIFO and LIFO containers against a model --------------------------------------------------

template <class K>
class Container : public ::testing::Test {};
TYPED_TEST_SUITE(Container, kinds);

/// Seeded random pushes and pops compared with std::deque, at several
/// capacities including 1 (full, empty and wrap-around reached constantly).
TYPED_TEST(Container, RandomOperationsMatchTheModel) {
    CHECKS_REQUIREMENTS(TypeParam::lifo ? "STK-001 STK-002" : "Q-001 Q-002 Q-003 Q-004");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    using S = typename TypeParam::template type<std::uint64_t>;
    for (std::size_t capacity : {1u, 2u, 7u, 64u}) {
        SCOPED_TRACE("capacity " + std::to_string(capacity));
        fresh_segment name;
        auto seg = impl::create(name.name(), 1 << 20);
        S s = impl::template make<S>(seg, "s", capacity);
        ASSERT_EQ(s.capacity(), capacity);
        std::deque<std::uint64_t> model;
        std::mt19937_64 rng(capacity * 7919);
        std::uint64_t next = 1;
        for (int step = 0; step < 20'000; ++step) {
            if (rng() % 2 == 0) {
                const bool pushed = s.try_push(next);
                ASSERT_EQ(pushed, model.size() < capacity) << "step " << step;
                if (pushed) model.push_back(next);
                ++next;
            } else {
                const std::optional<std::uint64_t> got = s.try_pop();
                if (model.empty()) {
                    ASSERT_FALSE(got.has_value()) << "step " << step;
                } else {
                    ASSERT_TRUE(got.has_value()) << "step " << step;
                    const std::uint64_t expected = TypeParam::lifo ? model.back() : model.front();
                    ASSERT_EQ(*got, expected) << "step " << step;
                    if (TypeParam::lifo)
                        model.pop_back();
                    else
                        model.pop_front();
                }
            }
            ASSERT_EQ(s.size(), model.size()) << "step " << step;
        }
    }
}

/// Batches of every size from none to more than the capacity, pushed and
/// popped at random against std::deque: each batch push must store exactly
/// the prefix that fits, each batch pop exactly what there is up to the
/// number asked, oldest first, and the values beyond what a batch pop
/// returns must be left as they were.
TYPED_TEST(Container, BatchesMatchTheModel) {
    CHECKS_REQUIREMENTS("Q-009");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    UNSUPPORTED_UNLESS(!TypeParam::lifo, "batch forms are a queue requirement");
    using S = typename TypeParam::template type<std::uint64_t>;
    if constexpr (!shmconf::batch_handle<S, std::uint64_t>) {
        SHMCONF_SKIP_AS("UNSUPPORTED", std::string(TypeParam::name()) + " has no try_push_n / try_pop_n");
    } else {
        constexpr std::uint64_t untouched = ~std::uint64_t{0};
        for (std::size_t capacity : {1u, 2u, 7u, 64u}) {
            SCOPED_TRACE("capacity " + std::to_string(capacity));
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            S s = impl::template make<S>(seg, "s", capacity);
            std::deque<std::uint64_t> model;
            std::mt19937_64 rng(capacity * 104729);
            std::uint64_t next = 1;
            std::vector<std::uint64_t> buffer;
            for (int step = 0; step < 5'000; ++step) {
                const std::size_t n = rng() % (capacity + 3);  // 0 to capacity + 2
                buffer.assign(n + 1, untouched);               // one beyond: a batch pop must not write it
                if (rng() % 2 == 0) {
                    for (std::size_t k = 0; k < n; ++k) buffer[k] = next + k;
                    const std::size_t stored = s.try_push_n(buffer.data(), n);
                    const std::size_t fits = std::min(n, capacity - model.size());
                    ASSERT_EQ(stored, fits) << "step " << step << ": a batch of " << n << " with room for "
                                            << capacity - model.size();
                    for (std::size_t k = 0; k < stored; ++k) model.push_back(next + k);
                    next += n;  // the values not stored are never seen again
                } else {
                    const std::size_t taken = s.try_pop_n(buffer.data(), n);
                    const std::size_t there = std::min(n, model.size());
                    ASSERT_EQ(taken, there)
                        << "step " << step << ": a batch pop of " << n << " from " << model.size();
                    for (std::size_t k = 0; k < taken; ++k) {
                        ASSERT_EQ(buffer[k], model.front()) << "step " << step << ", element " << k;
                        model.pop_front();
                    }
                    for (std::size_t k = taken; k <= n; ++k)
                        ASSERT_EQ(buffer[k], untouched) << "step " << step << ": written past the " << taken
                                                        << " elements it returned, at " << k;
                }
                ASSERT_EQ(s.size(), model.size()) << "step " << step;
                if (step % 3 == 0) {  // single operations in between: batches and singles share one order
                    const bool room = model.size() < capacity;
                    ASSERT_EQ(s.try_push(next), room) << "step " << step << ": a single push after batches";
                    if (room) model.push_back(next);
                    ++next;
                }
            }
        }
    }
}

/// Loans mixed with single pushes and pops at random against std::deque: a
/// write loan is lent exactly when there is room, a committed one publishes
/// its value in its place and nothing is visible before, a dropped one
/// publishes nothing and keeps no room (the queue fills to its capacity
/// again and again), a read loan shows the oldest element and its release
/// removes it for good.
TYPED_TEST(Container, LoansMatchTheModel) {
    CHECKS_REQUIREMENTS("LOAN-001 LOAN-002 LOAN-003");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    UNSUPPORTED_UNLESS(!TypeParam::lifo, "loans are a queue requirement");
    using S = typename TypeParam::template type<std::uint64_t>;
    if constexpr (!shmconf::loan_handle<S, std::uint64_t>) {
        SHMCONF_SKIP_AS("UNSUPPORTED", std::string(TypeParam::name()) + " has no try_reserve / try_peek");
    } else {
        for (std::size_t capacity : {1u, 2u, 7u, 64u}) {
            SCOPED_TRACE("capacity " + std::to_string(capacity));
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            S s = impl::template make<S>(seg, "s", capacity);
            std::deque<std::uint64_t> model;
            std::mt19937_64 rng(capacity * 7919);
            std::uint64_t next = 1;
            bool dropped = false;  // a write loan dropped in this round (see the size check below)
            // Write loans dropped since the queue was last empty. A queue that
            // claims positions in order (an MPMC queue) skips a dropped loan's
            // position, and the slot it took is room again only once the
            // elements before it are taken: until the queue has been empty,
            // it may be short of room by one per drop (LOAN-002), never more.
            std::size_t skipped = 0;
            for (int step = 0; step < 5'000; ++step) {
                const bool full = model.size() == capacity;
                const auto room_as_it_should = [&](bool lent) {
                    return lent ? !full : model.size() + skipped >= capacity;
                };
                switch (rng() % 5) {
                    case 0: {  // written in place and committed
                        auto loan = s.try_reserve();
                        ASSERT_TRUE(room_as_it_should(static_cast<bool>(loan)))
                            << "step " << step << ": a write loan " << (loan ? "lent" : "refused") << " with "
                            << model.size() << " of " << capacity << " and " << skipped
                            << " dropped since empty";
                        if (!loan) break;
                        *loan = next;
                        if (model.empty()) {
                            ASSERT_FALSE(s.try_pop()) << "step " << step << ": popped before the commit";
                        }
                        loan.commit();
                        model.push_back(next++);
                        break;
                    }
                    case 1: {  // written in place and dropped
                        {
                            auto loan = s.try_reserve();
                            ASSERT_TRUE(room_as_it_should(static_cast<bool>(loan)))
                                << "step " << step << ": a write loan " << (loan ? "lent" : "refused")
                                << " with " << model.size() << " of " << capacity;
                            if (loan) {
                                *loan = next;
                                ++skipped;
                                dropped = true;
                            }
                        }
                        ++next;  // never to be seen
                        break;
                    }
                    case 2: {  // read in place and released
                        auto loan = s.try_peek();
                        ASSERT_EQ(static_cast<bool>(loan), !model.empty()) << "step " << step;
                        if (!loan) break;
                        ASSERT_EQ(*loan, model.front()) << "step " << step << ": not the oldest element";
                        loan.release();
                        model.pop_front();
                        break;
                    }
                    case 3: {
                        const bool pushed = s.try_push(next);
                        ASSERT_TRUE(room_as_it_should(pushed))
                            << "step " << step << ": a push among loans " << (pushed ? "taken" : "refused")
                            << " with " << model.size() << " of " << capacity;
                        if (pushed) model.push_back(next);
                        ++next;
                        break;
                    }
                    default: {
                        const auto got = s.try_pop();
                        ASSERT_EQ(got.has_value(), !model.empty()) << "step " << step;
                        if (!got) break;
                        ASSERT_EQ(*got, model.front()) << "step " << step << ": a pop among loans";
                        model.pop_front();
                    }
                }
                if (model.empty()) skipped = 0;
                // Exact until a write loan is dropped: an MPMC queue's size, a
                // snapshot of two positions, counts a dropped loan's skipped position
                // until consumers pass it (as it counts a dead producer's); never less.
                if (dropped) {
                    ASSERT_GE(s.size(), model.size()) << "step " << step;
                } else {
                    ASSERT_EQ(s.size(), model.size()) << "step " << step;
                }
            }
        }
    }
}

TYPED_TEST(Container, FoundByNameWithItsCapacityAndContents) {
    CHECKS_REQUIREMENTS("TBL-001 TBL-002");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    using S = typename TypeParam::template type<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    {
        S s = impl::template make<S>(seg, "s", 8);
        ASSERT_TRUE(s.try_push(42));
    }
    {
        S again = impl::template make<S>(seg, "s", 8);
        EXPECT_EQ(again.size(), 1u) << "find-or-create of an existing name made another structure";
    }
    auto same = impl::open(name.name());
    S found = impl::template find<S>(same, "s");
    EXPECT_EQ(found.capacity(), 8u);
    EXPECT_EQ(found.size(), 1u);
    EXPECT_EQ(found.try_pop(), std::optional<std::uint64_t>(42));
}

TYPED_TEST(Container, WrongTypeOrCapacityIsAMismatch) {
    CHECKS_REQUIREMENTS("TBL-004");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    using S = typename TypeParam::template type<std::uint64_t>;
    using Other = typename TypeParam::template type<std::uint32_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    S s = impl::template make<S>(seg, "s", 8);
    EXPECT_EQ(category<impl>([&] { (void)impl::template make<S>(seg, "s", 9); }), error_category::mismatch);
    if (impl::caps.checks_element_types) {
        EXPECT_EQ(category<impl>([&] { (void)impl::template make<Other>(seg, "s", 8); }),
                  error_category::mismatch);
    }
}
/// TBL-004 with every mismatch, not only the obvious one: a larger and a
/// smaller capacity, element types of the same size that differ (signed,
/// floating), a narrower one, and every other claimed kind (and array), each
/// through find-or-create and through find; the structure is unchanged after.
TYPED_TEST(Container, EveryMismatchIsRefusedAndChangesNothing) {
    CHECKS_REQUIREMENTS("TBL-004");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    using S = typename TypeParam::template type<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    {
        S s = impl::template make<S>(seg, "s", 8);
        ASSERT_TRUE(s.try_push(11) && s.try_push(12));
    }
    for (std::size_t capacity : {1u, 7u, 9u, 16u}) {
        EXPECT_EQ(category<impl>([&] { (void)impl::template make<S>(seg, "s", capacity); }),
                  error_category::mismatch)
            << "find-or-create with capacity " << capacity << " of a structure of capacity 8";
    }
    auto expect_type_mismatch = [&]<class T>(const char* type) {
        expect_mismatch_both_ways<typename TypeParam::template type<T>>(
            seg, "s", concat("a ", TypeParam::name(), "<uint64_t> as ", TypeParam::name(), "<", type, ">"));
    };
    if (impl::caps.checks_element_types) {
        expect_type_mismatch.template operator()<std::int64_t>("int64_t");
        expect_type_mismatch.template operator()<double>("double");
        expect_type_mismatch.template operator()<std::uint32_t>("uint32_t");
    }
    for_each_other_claimed_kind<TypeParam>([&]<class K>() {
        expect_mismatch_both_ways<typename K::template type<std::uint64_t>>(
            seg, "s", concat("a ", TypeParam::name(), " as a ", K::name()));
    });
    if (impl::caps.array)
        expect_mismatch_both_ways<impl::array<std::uint64_t>>(
            seg, "s", concat("a ", TypeParam::name(), " as an array"));
    S s = impl::template find<S>(seg, "s");
    EXPECT_EQ(s.capacity(), 8u);
    EXPECT_EQ(s.size(), 2u) << "a refused open changed the structure";
    const std::optional<std::uint64_t> first = s.try_pop();
    EXPECT_EQ(first, std::optional<std::uint64_t>(TypeParam::lifo ? 12u : 11u));
}
TYPED_TEST(Container, CapacityZeroOrOverflowingIsInvalid) {
    CHECKS_REQUIREMENTS("ELEM-002");
    UNSUPPORTED_UNLESS(TypeParam::claimed(), "this structure is not claimed");
    using S = typename TypeParam::template type<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    for (std::size_t i = 0; i < invalid_capacities.size(); ++i) {
        SCOPED_TRACE("capacity " + std::to_string(invalid_capacities[i]));
        EXPECT_EQ(category<impl>([&] {
                      (void)impl::template make<S>(seg, "bad" + std::to_string(i), invalid_capacities[i]);
                  }),
                  error_category::invalid_size);
    }
}

// ---- arrays --------------------------------------------------------------------------------------

class Array : public ::testing::Test {};

TEST_F(Array, HoldsItsElementsAndChecksBounds) {
    CHECKS_REQUIREMENTS("ARR-001 ARR-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    using A = impl::array<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    A a = impl::make<A>(seg, "a", 100);
    ASSERT_EQ(a.size(), 100u);
    for (std::size_t i = 0; i < 100; ++i) a[i] = i * 3;
    auto same = impl::open(name.name());
    A b = impl::find<A>(same, "a");
    for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(b.at(i), i * 3);
    EXPECT_EQ(category<impl>([&] { (void)b.at(100); }), error_category::out_of_range);
    EXPECT_EQ(b.at(99), 297u) << "the refused access changed nothing";
}

TEST_F(Array, EveryMismatchIsRefused) {
    CHECKS_REQUIREMENTS("TBL-004");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    using A = impl::array<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    impl::make<A>(seg, "a", 8)[3] = 33;
    for (std::size_t size : {7u, 9u})
        EXPECT_EQ(category<impl>([&] { (void)impl::make<A>(seg, "a", size); }), error_category::mismatch)
            << "find-or-create with size " << size << " of an array of 8";
    if (impl::caps.checks_element_types) {
        EXPECT_EQ(category<impl>([&] { (void)impl::find<impl::array<std::int64_t>>(seg, "a"); }),
                  error_category::mismatch)
            << "find as array<int64_t> of an array<uint64_t>";
        EXPECT_EQ(category<impl>([&] { (void)impl::find<impl::array<double>>(seg, "a"); }),
                  error_category::mismatch)
            << "find as array<double> of an array<uint64_t>";
    }
    for_each_other_claimed_kind<void>([&]<class K>() {
        expect_mismatch_both_ways<typename K::template type<std::uint64_t>>(
            seg, "a", concat("an array as a ", K::name()));
    });
    EXPECT_EQ(impl::find<A>(seg, "a").at(3), 33u) << "a refused open changed the array";
}

TEST_F(Array, SizeZeroOrOverflowingIsInvalid) {
    CHECKS_REQUIREMENTS("ELEM-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    using A = impl::array<std::uint64_t>;
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    for (std::size_t i = 0; i < invalid_capacities.size(); ++i) {
        SCOPED_TRACE("size " + std::to_string(invalid_capacities[i]));
        EXPECT_EQ(category<impl>(
                      [&] { (void)impl::make<A>(seg, "bad" + std::to_string(i), invalid_capacities[i]); }),
                  error_category::invalid_size);
    }
}

}  // namespace
