// Sequential semantics, discovery and bad input, for any implementation of
// the contract (shmconf/contract.hpp). The adapter comes from the build:
// SHMCONF_ADAPTER_HEADER (its header) and SHMCONF_ADAPTER (its type). Every
// test cites the requirement IDs it checks (conformance/spec/requirements.md)
// with a `requirements` property in GoogleTest's output.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using shmconf::error_category;
using shmconf_tests::attach_count;
using shmconf_tests::concat;
using shmconf_tests::fresh_segment;
using shmconf_tests::name_exists;
using shmconf_tests::impl;

template <class A>
error_category category(auto&& f) {
    return shmconf::category_of<A>(f);
}

// ---- FIFO and LIFO containers against a model --------------------------------------------------

/// Which structure, and whether it is LIFO. Structures an implementation
/// does not claim are skipped as UNSUPPORTED.
template <template <class> class S, bool Lifo, bool shmconf::capabilities::*Claim, int Id>
struct kind {
    template <class T>
    using type = S<T>;
    static constexpr bool lifo = Lifo;
    static bool claimed() { return impl::caps.*Claim; }
    static const char* name() {
        static constexpr const char* names[] = {"queue", "spsc_queue", "mpmc_queue", "stack", "concurrent_stack"};
        return names[Id];
    }
};

using kind_tuple = std::tuple<kind<impl::template queue, false, &shmconf::capabilities::queue, 0>,
                              kind<impl::template spsc_queue, false, &shmconf::capabilities::spsc_queue, 1>,
                              kind<impl::template mpmc_queue, false, &shmconf::capabilities::mpmc_queue, 2>,
                              kind<impl::template stack, true, &shmconf::capabilities::stack, 3>,
                              kind<impl::template concurrent_stack, true, &shmconf::capabilities::concurrent_stack, 4>>;

template <class Tuple>
struct as_test_types;
template <class... K>
struct as_test_types<std::tuple<K...>> {
    using type = ::testing::Types<K...>;
};
using kinds = as_test_types<kind_tuple>::type;

template <class Self, class K, class F>
void visit_if_other_and_claimed(F& f) {
    if constexpr (!std::is_same_v<K, Self>)
        if (K::claimed()) f.template operator()<K>();
}

// (A named pack rather than std::apply over a generic lambda: clang 14
// crashes on the latter.)
template <class Self, class F, class... K>
void visit_other_claimed_kinds(F& f, std::tuple<K...>* /*kinds*/) {
    (visit_if_other_and_claimed<Self, K>(f), ...);
}

/// Calls f.template operator()<K>() for every claimed kind but `Self`
/// (void: every claimed kind).
template <class Self, class F>
void for_each_other_claimed_kind(F&& f) {
    visit_other_claimed_kinds<Self>(f, static_cast<kind_tuple*>(nullptr));
}

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
                    ASSERT_EQ(taken, there) << "step " << step << ": a batch pop of " << n << " from "
                                            << model.size();
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

/// Opening `n` as an O, by find-or-create (capacity 8) and by find, is
/// refused with mismatch; `what` says what was opened as what.
template <class O>
void expect_mismatch_both_ways(impl::segment& seg, const std::string& n, const std::string& what) {
    EXPECT_EQ(category<impl>([&] { (void)impl::template make<O>(seg, n, 8); }), error_category::mismatch)
        << "find-or-create of " << what;
    EXPECT_EQ(category<impl>([&] { (void)impl::template find<O>(seg, n); }), error_category::mismatch)
        << "find of " << what;
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
        EXPECT_EQ(category<impl>([&] { (void)impl::template make<S>(seg, "s", capacity); }), error_category::mismatch)
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
        expect_mismatch_both_ways<impl::array<std::uint64_t>>(seg, "s", concat("a ", TypeParam::name(), " as an array"));
    S s = impl::template find<S>(seg, "s");
    EXPECT_EQ(s.capacity(), 8u);
    EXPECT_EQ(s.size(), 2u) << "a refused open changed the structure";
    const std::optional<std::uint64_t> first = s.try_pop();
    EXPECT_EQ(first, std::optional<std::uint64_t>(TypeParam::lifo ? 12u : 11u));
}

/// Capacities whose size in bytes is 0 or wraps around: the wrapped ones
/// would otherwise be "created" with a few bytes of storage.
const std::vector<std::size_t> invalid_capacities{0, SIZE_MAX / 8 + 2, SIZE_MAX / 2, SIZE_MAX};

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
        EXPECT_EQ(category<impl>([&] { (void)impl::find<impl::array<double>>(seg, "a"); }), error_category::mismatch)
            << "find as array<double> of an array<uint64_t>";
    }
    for_each_other_claimed_kind<void>([&]<class K>() {
        expect_mismatch_both_ways<typename K::template type<std::uint64_t>>(seg, "a",
                                                                           concat("an array as a ", K::name()));
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
        EXPECT_EQ(category<impl>([&] { (void)impl::make<A>(seg, "bad" + std::to_string(i), invalid_capacities[i]); }),
                  error_category::invalid_size);
    }
}

// ---- segments, names, discovery ------------------------------------------------------------------

TEST(Segment, CreateOnlyOfAnExistingNameFailsAndKeepsIt) {
    CHECKS_REQUIREMENTS("SEG-001 SEG-002");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    A a = impl::make<A>(seg, "kept", 4);
    a[0] = 7;
    EXPECT_EQ(category<impl>([&] { (void)impl::create(name.name(), 1 << 20); }),
              error_category::already_exists);
    auto again = impl::open(name.name());
    EXPECT_EQ(impl::find<A>(again, "kept")[0], 7);
}

TEST(Segment, OpenOnlyOfAnAbsentNameFailsAndCreatesNothing) {
    CHECKS_REQUIREMENTS("SEG-003");
    fresh_segment name;
    EXPECT_EQ(category<impl>([&] { (void)impl::open(name.name()); }), error_category::not_found);
    EXPECT_FALSE(name_exists(name.name()));
}

/// Whether shm_open finds `name` (names it refuses count as absent).
bool shm_name_exists(const std::string& name) {
    const int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

TEST(Segment, BadNamesAreRefusedBeforeAnythingIsCreated) {
    CHECKS_REQUIREMENTS("NAME-001");
    const std::vector<std::string> bad_names{"",   "/",   "noslash", "/a/b",
                                             "/.", "/..", "/sp ace", "/" + std::string(254, 'x')};
    for (const std::string& bad : bad_names) {
        SCOPED_TRACE("'" + bad + "'");
        const bool existed_before = shm_name_exists(bad);
        bool created = false;
        EXPECT_EQ(category<impl>([&] {
                      (void)impl::create(bad, 1 << 20);
                      created = true;
                  }),
                  error_category::invalid_name);
        // An implementation that let the name through may have created it
        // even if it failed later, and its remove may refuse the name: unlink
        // it as shm_open saw it, so that no run leaves it in /dev/shm.
        if (created) (void)category<impl>([&] { impl::remove(bad); });
        if (!existed_before) ::shm_unlink(bad.c_str());
    }
}

/// NAME-001 from the other side: names at the edges of the rule must be
/// accepted. A one-character name may be held by another run (then
/// already_exists, which also shows the name was accepted); the others carry
/// this process's id.
TEST(Segment, NamesAtTheEdgesOfTheRuleAreAccepted) {
    CHECKS_REQUIREMENTS("NAME-001");
    const std::string id = std::to_string(::getpid());
    const std::string every = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    std::string longest = "/" + id + "-" + every;
    while (longest.size() < 254) longest += every[longest.size() % every.size()];
    longest.resize(254);  // '/' and 253 characters
    const std::vector<std::string> ours{longest, "/" + id + every, "/..." + id, "/." + id, "/-" + id, "/_" + id,
                                        "/" + id + ".", "/" + id + "..", "/" + id};
    for (const std::string& good : ours) {
        SCOPED_TRACE("'" + good + "' (" + std::to_string(good.size() - 1) + " characters after '/')");
        impl::remove(good);
        const auto c = category<impl>([&] {
            auto seg = impl::create(good, 1 << 16);
            EXPECT_TRUE(name_exists(good));
            auto again = impl::open(good);
        });
        EXPECT_EQ(c, error_category::none) << "a valid segment name was refused";
        impl::remove(good);
    }
    for (const char* one : {"/a", "/Z", "/9", "/_", "/-"}) {
        SCOPED_TRACE(std::string("'") + one + "'");
        bool created = false;
        const auto c = category<impl>([&] {
            auto seg = impl::create(one, 1 << 16);
            created = true;
        });
        EXPECT_TRUE(c == error_category::none || c == error_category::already_exists)
            << "a one-character segment name was refused with " << shmconf::to_string(c);
        if (created) impl::remove(one);
    }
}

/// The permission bits of a segment created (with the default mode) while
/// the process's umask is `mask`; -1 when the object cannot be inspected.
int default_mode_under_umask(mode_t mask) {
    fresh_segment name;
    const mode_t previous = ::umask(mask);
    auto seg = impl::create(name.name(), 1 << 20);
    ::umask(previous);
    const int fd = ::shm_open(name.name().c_str(), O_RDONLY, 0);
    if (fd < 0) return -1;
    struct stat st {};
    const bool stated = ::fstat(fd, &st) == 0;
    ::close(fd);
    return stated ? static_cast<int>(st.st_mode & 0777) : -1;
}

TEST(Segment, DefaultModeIsOwnerOnlyWhateverTheUmask) {
    CHECKS_REQUIREMENTS("SEG-006");
    // The most permissive umask: the mode must come from the implementation.
    const int mode = default_mode_under_umask(0);
    ASSERT_GE(mode, 0);
    EXPECT_EQ(mode & 077, 0) << "created with mode 0" << std::oct << mode
                             << ": others than the owner may read or write it";
}

/// The other side of SEG-006: a umask that takes the owner's own write bit
/// (0277) must not leave the owner a segment it can only read (root, which
/// runs CI, ignores the bits on open, so they are checked directly).
TEST(Segment, DefaultModeLetsTheOwnerReadAndWriteWhateverTheUmask) {
    CHECKS_REQUIREMENTS("SEG-006");
    const int mode = default_mode_under_umask(0277);
    ASSERT_GE(mode, 0);
    EXPECT_EQ(mode, 0600) << "created under a umask of 0277 with mode 0" << std::oct << mode
                          << ", not 0600: the umask decided the mode";
}

TEST(Segment, AskingForMoreThanAnExistingSegmentHoldsIsAMismatch) {
    CHECKS_REQUIREMENTS("SEG-009");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    impl::make<A>(seg, "kept", 4)[0] = 7;
    EXPECT_EQ(category<impl>([&] { (void)impl::open_or_create(name.name(), 4 << 20); }), error_category::mismatch);
    auto exact = impl::open_or_create(name.name(), 1 << 20);  // exactly what it holds: accepted
    auto smaller = impl::open_or_create(name.name(), 1 << 16);
    auto unsized = impl::open(name.name());
    EXPECT_EQ(impl::find<A>(exact, "kept")[0], 7);
    EXPECT_EQ(impl::find<A>(smaller, "kept")[0], 7);
    EXPECT_EQ(impl::find<A>(unsized, "kept")[0], 7);
}

TEST(Segment, BadSizesAreRefused) {
    CHECKS_REQUIREMENTS("SEG-008");
    fresh_segment name;
    EXPECT_EQ(category<impl>([&] { (void)impl::create(name.name(), 0); }), error_category::invalid_size);
    EXPECT_FALSE(name_exists(name.name()));
}

TEST(Table, BadStructureNamesAreRefusedAndTheTableIsUnchanged) {
    CHECKS_REQUIREMENTS("NAME-002");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    A kept = impl::make<A>(seg, "kept", 4);
    kept[0] = 9;
    const std::vector<std::string> bad_names{std::string(), std::string(64, 'n'), std::string("tab\there")};
    for (const std::string& bad : bad_names) {
        SCOPED_TRACE("'" + bad + "'");
        EXPECT_EQ(category<impl>([&] { (void)impl::make<A>(seg, bad, 4); }), error_category::invalid_name);
    }
    EXPECT_EQ(impl::find<A>(seg, "kept")[0], 9);
}

/// NAME-002 from the other side: one character, 63 characters, and every
/// printable ASCII character (space to tilde) must be accepted, each found
/// again by its name.
TEST(Table, StructureNamesAtTheEdgesAreAccepted) {
    CHECKS_REQUIREMENTS("NAME-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 4 << 20);
    using A = impl::array<int>;
    std::string printable;
    for (char c = ' '; c <= '~'; ++c) printable += c;
    std::vector<std::string> good{std::string(63, 'n'), printable.substr(0, 63), printable.substr(63)};
    for (char c : printable) good.emplace_back(1, c);
    int value = 0;
    for (const std::string& n : good) {
        SCOPED_TRACE("'" + n + "' (" + std::to_string(n.size()) + " characters)");
        const auto c = category<impl>([&] {
            impl::make<A>(seg, n, 2)[1] = ++value;
            EXPECT_EQ(impl::find<A>(seg, n)[1], value);
            impl::destroy(seg, n);
        });
        EXPECT_EQ(c, error_category::none) << "a valid structure name was refused";
    }
}

TEST(Table, NamesAreComparedByteForByte) {
    CHECKS_REQUIREMENTS("NAME-003");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    A lower = impl::make<A>(seg, "a", 4);
    A upper = impl::make<A>(seg, "A", 4);
    lower[0] = 1;
    upper[0] = 2;
    EXPECT_EQ(impl::find<A>(seg, "a")[0], 1) << "names are compared byte for byte";
}

TEST(Table, AFullTableOrSegmentIsOutOfSpaceAndKeepsWhatIsStored) {
    CHECKS_REQUIREMENTS("TBL-006");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 256 << 10);
    using A = impl::array<std::uint64_t>;
    // One structure larger than the whole segment.
    EXPECT_EQ(category<impl>([&] { (void)impl::make<A>(seg, "huge", 1 << 20); }), error_category::out_of_space);
    // Then 1 KiB structures until the table or the heap is full.
    int made = 0;
    error_category last = error_category::none;
    while (made < 10'000 && last == error_category::none) {
        last = category<impl>([&] {
            A a = impl::make<A>(seg, "a" + std::to_string(made), 128);
            a[0] = static_cast<std::uint64_t>(made) * 3;
            a[127] = static_cast<std::uint64_t>(made) * 5;
        });
        if (last == error_category::none) ++made;
    }
    ASSERT_GT(made, 0);
    EXPECT_EQ(last, error_category::out_of_space) << "after " << made << " structures";
    for (int i = 0; i < made; ++i) {
        A a = impl::find<A>(seg, "a" + std::to_string(i));
        ASSERT_EQ(a[0], static_cast<std::uint64_t>(i) * 3) << "structure " << i << " was damaged";
        ASSERT_EQ(a[127], static_cast<std::uint64_t>(i) * 5) << "structure " << i << " was damaged";
    }
    impl::destroy(seg, "a0");  // and the space is usable again
    EXPECT_EQ(impl::make<A>(seg, "again", 128).size(), 128u);
}

TEST(Table, DestroyedNamesAreGoneAndTheirSpaceIsReused) {
    CHECKS_REQUIREMENTS("TBL-005");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<std::uint64_t>;
    A keep = impl::make<A>(seg, "keep", 16);
    keep[15] = 99;
    for (int round = 0; round < 200; ++round) {  // 200 x 64 KiB: more than the segment without reuse
        { A big = impl::make<A>(seg, "big", 8192); }
        impl::destroy(seg, "big");
    }
    EXPECT_EQ(category<impl>([&] { (void)impl::find<A>(seg, "big"); }), error_category::not_found);
    EXPECT_EQ(impl::find<A>(seg, "keep")[15], 99u);
}

TEST(Reference, EveryAttachmentCountsOnce) {
    CHECKS_REQUIREMENTS("REF-001");
    UNSUPPORTED_UNLESS(shmconf::counts_attachments<impl>, "the adapter has no attach_count");
    {
        fresh_segment name;
        auto first = impl::create(name.name(), 1 << 20);
        EXPECT_EQ(attach_count(first), 1u);
        {
            auto second = impl::open(name.name());
            EXPECT_EQ(attach_count(first), 2u);
            EXPECT_EQ(attach_count(second), 2u);
            // Structures in use are not attachments: handles to one of each
            // claimed kind, through both segment handles, change no count.
            std::vector<std::shared_ptr<void>> in_use;
            auto hold = [&]<class S>(const char* n) {
                in_use.push_back(std::make_shared<S>(impl::template make<S>(first, n, 4)));
                in_use.push_back(std::make_shared<S>(impl::template find<S>(second, n)));
            };
            if (impl::caps.array) hold.template operator()<impl::array<std::uint64_t>>("a");
            for_each_other_claimed_kind<void>(
                [&]<class K>() { hold.template operator()<typename K::template type<std::uint64_t>>(K::name()); });
            EXPECT_EQ(attach_count(first), 2u) << "with " << in_use.size() << " structure handles open";
            EXPECT_EQ(attach_count(second), 2u) << "with " << in_use.size() << " structure handles open";
            in_use.clear();
            EXPECT_EQ(attach_count(first), 2u) << "after the structure handles closed";
        }
        EXPECT_EQ(attach_count(first), 1u);
    }
}

TEST(Reference, ADetachThatIsNotTheLastKeepsTheName) {
    CHECKS_REQUIREMENTS("REF-003");
    fresh_segment name;
    auto first = impl::create(name.name(), 1 << 20);
    { auto second = impl::open(name.name()); }
    EXPECT_TRUE(name_exists(name.name())) << "a detach that was not the last removed the name";
    auto third = impl::open(name.name());  // and it is still the same segment
}

// REF-006 in two halves: the child's handle counts (counts_attachments), and
// parent and child detach independently (checked with or without a count).
TEST(Reference, AHandleInheritedThroughForkCountsInTheChild) {
    CHECKS_REQUIREMENTS("REF-006");
    UNSUPPORTED_UNLESS(shmconf::counts_attachments<impl>, "the adapter has no attach_count");
    {
        fresh_segment name;
        std::optional<impl::segment> seg;
        seg.emplace(impl::create(name.name(), 1 << 20));
        int report[2];
        ASSERT_EQ(::pipe(report), 0);
        const pid_t child = ::fork();
        if (child == 0) {
            ::close(report[0]);
            // The inherited handle: counted while it lives, detached on its own.
            const auto count = category<impl>([&] {
                const std::size_t n = attach_count(*seg);
                (void)!::write(report[1], &n, sizeof n);
            });
            seg.reset();
            ::_exit(count == error_category::none ? 0 : 1);
        }
        ::close(report[1]);
        std::size_t in_child = 0;
        const ssize_t got = ::read(report[0], &in_child, sizeof in_child);
        ::close(report[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        ASSERT_EQ(got, static_cast<ssize_t>(sizeof in_child)) << "the child could not count (exit " << status << ")";
        EXPECT_EQ(in_child, 2u) << "the child's inherited handle is not its own attachment";
        EXPECT_EQ(attach_count(*seg), 1u) << "the child's detach did not end its attachment";
    }
}

TEST(Reference, ParentAndForkedChildDetachIndependently) {
    CHECKS_REQUIREMENTS("REF-006");
    fresh_segment name;
    std::optional<impl::segment> seg;
    seg.emplace(impl::create(name.name(), 1 << 20));
    const pid_t child = ::fork();
    if (child == 0) {
        seg.reset();  // the inherited handle detaches on its own
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's detach failed (status " << status << ")";
    EXPECT_TRUE(name_exists(name.name())) << "the child's detach removed the name";
    auto again = impl::open(name.name());  // still the same segment, still usable
    seg.reset();
    EXPECT_TRUE(name_exists(name.name())) << "the parent's detach removed the name under another handle";
    {
        auto dropped = std::move(again);
    }
    EXPECT_FALSE(name_exists(name.name())) << "the parent's last detach did not remove the name";
}

TEST(Reference, TheLastDetachRemovesTheName) {
    CHECKS_REQUIREMENTS("REF-002");
    fresh_segment name;
    {
        auto first = impl::create(name.name(), 1 << 20);
        auto second = impl::open(name.name());
    }
    EXPECT_FALSE(name_exists(name.name()));
}

}  // namespace
