// The table of named structures in a segment, in one process, for any
// implementation of the contract (sequential_support.hpp): structure names
// refused and accepted at the edges (NAME-002), compared byte for byte
// (NAME-003), a full table or segment (TBL-006), and destroyed names gone with
// their space reused (TBL-005).
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sequential_support.hpp"
#include "support.hpp"

namespace {

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
    EXPECT_EQ(category<impl>([&] { (void)impl::make<A>(seg, "huge", 1 << 20); }),
              error_category::out_of_space);
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

}  // namespace
