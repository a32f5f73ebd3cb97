// What the sequential tests (test_sequential_*.cpp) share: the structure
// kinds a container test runs over (each skipped as UNSUPPORTED unless
// claimed) and a visit of the other claimed kinds, the TBL-004 check that an
// open as another type is refused both ways, and the capacities that are
// invalid (ELEM-002).
//
// Everything here is in the unnamed namespace, as it was when the tests were
// one file: GoogleTest prints the Container suite's type parameter with it
// ("(anonymous namespace)::kind<...>"), so the test list stays the same. Only
// test files include this header, each its own copy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using shmconf::error_category;
using shmconf_tests::attach_count;
using shmconf_tests::concat;
using shmconf_tests::fresh_segment;
using shmconf_tests::impl;
using shmconf_tests::name_exists;

template <class A>
error_category category(auto&& f) {
    return shmconf::category_of<A>(f);
}

// ---- the structure kinds -----------------------------------------------------------------------

/// Which structure, and whether it is LIFO. Structures an implementation
/// does not claim are skipped as UNSUPPORTED.
template <template <class> class S, bool Lifo, bool shmconf::capabilities::*Claim, int Id>
struct kind {
    template <class T>
    using type = S<T>;
    static constexpr bool lifo = Lifo;
    static bool claimed() { return impl::caps.*Claim; }
    static const char* name() {
        static constexpr const char* names[] = {"queue", "spsc_queue", "mpmc_queue", "stack",
                                                "concurrent_stack"};
        return names[Id];
    }
};

using kind_tuple =
    std::tuple<kind<impl::template queue, false, &shmconf::capabilities::queue, 0>,
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
/// Opening `n` as an O, by find-or-create (capacity 8) and by find, is
/// refused with mismatch; `what` says what was opened as what.
template <class O>
void expect_mismatch_both_ways(impl::segment& seg, const std::string& n, const std::string& what) {
    EXPECT_EQ(category<impl>([&] { (void)impl::template make<O>(seg, n, 8); }), error_category::mismatch)
        << "find-or-create of " << what;
    EXPECT_EQ(category<impl>([&] { (void)impl::template find<O>(seg, n); }), error_category::mismatch)
        << "find of " << what;
}
/// Capacities whose size in bytes is 0 or wraps around: the wrapped ones
/// would otherwise be "created" with a few bytes of storage.
inline constexpr std::array<std::size_t, 4> invalid_capacities{0, SIZE_MAX / 8 + 2, SIZE_MAX / 2, SIZE_MAX};

}  // namespace
