// shm_table: discovery, type checks, allocation and reuse, limits. (Damage
// to the table's shared bytes: test_table_damage.cpp.)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/detail/table_index.hpp>
#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds::errc;
using shmds_test::contains;
using shmds_test::unique_segment_name;

struct Tick {
    std::int64_t time;
    double price;
};

template <class Error, class F>
std::string message_of(F&& f, errc expected) {
    try {
        f();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), expected) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no exception";
    return {};
}

TEST(Table, FindOrCreateThenDiscover) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<Tick> created(seg, "ticks", 100);
    EXPECT_TRUE(created.created());
    created[99] = {5, 2.5};
    shmds::shm_array<Tick> found(seg, "ticks", 100);
    EXPECT_FALSE(found.created());
    EXPECT_EQ(found[99].price, 2.5);
    shmds::shm_array<Tick> discovered(seg, "ticks");
    EXPECT_EQ(discovered.size(), 100u);
    EXPECT_EQ(discovered.data(), created.data());
    auto info = seg.table().find("ticks");
    ASSERT_TRUE(info);
    EXPECT_EQ(info->kind, shmds::structure_kind::array);
    EXPECT_EQ(info->capacity, 100u);
    EXPECT_EQ(info->element_size, sizeof(Tick));
    EXPECT_TRUE(contains(info->type_name, "Tick")) << info->type_name;
    EXPECT_FALSE(seg.table().find("absent"));
}

TEST(Table, LocateTellsWhatFindTellsWithoutTheNames) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<Tick> ticks(seg, "ticks", 100);
    shmds::shm_spsc_queue<std::uint16_t> queue(seg, "a queue", 7);
    for (const char* structure : {"ticks", "a queue"}) {
        const auto info = seg.table().find(structure);
        const auto where = seg.table().locate(structure);
        ASSERT_TRUE(info && where) << structure;
        EXPECT_EQ(where->kind, info->kind) << structure;
        EXPECT_EQ(where->capacity, info->capacity) << structure;
        EXPECT_EQ(where->element_size, info->element_size) << structure;
        EXPECT_EQ(where->element_align, info->element_align) << structure;
        EXPECT_EQ(where->type_hash, info->type_hash) << structure;
        EXPECT_EQ(where->offset, info->offset) << structure;
        EXPECT_EQ(where->bytes, info->bytes) << structure;
        EXPECT_EQ(where->serial, info->serial) << structure;
    }
    const auto where = seg.table().locate("ticks");
    EXPECT_EQ(static_cast<std::byte*>(seg.base()) + where->offset,
              reinterpret_cast<std::byte*>(ticks.data()));
    EXPECT_NE(seg.table().locate("ticks")->serial, seg.table().locate("a queue")->serial);
    EXPECT_FALSE(seg.table().locate("tick"));
    EXPECT_FALSE(seg.table().locate("tickss"));
    EXPECT_TRUE(seg.table().contains("a queue"));
    EXPECT_FALSE(seg.table().contains("a queu"));
    auto bad =
        message_of<shmds::invalid_argument_error>([&] { (void)seg.table().locate(""); }, errc::invalid_name);
    EXPECT_TRUE(contains(bad, "is empty")) << bad;
    EXPECT_TRUE(contains(bad, name.str())) << bad;
    EXPECT_THROW((void)seg.table().locate(std::string(64, 'x')), shmds::invalid_argument_error);
}

TEST(Table, CreateOnlyAndOpenOnly) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    auto missing =
        message_of<shmds::not_found_error>([&] { shmds::shm_queue<int> q(seg, "jobs"); }, errc::not_found);
    EXPECT_TRUE(contains(missing, "'jobs'") && contains(missing, name.str())) << missing;
    shmds::shm_queue<int> q(shmds::create_only, seg, "jobs", 4);
    message_of<shmds::already_exists_error>(
        [&] { shmds::shm_queue<int> again(shmds::create_only, seg, "jobs", 4); }, errc::already_exists);
    shmds::shm_queue<int> opened(shmds::open_only, seg, "jobs");
    EXPECT_EQ(opened.capacity(), 4u);
}

TEST(Table, MismatchesNameBothSides) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<double> prices(seg, "prices", 1000);

    auto kind = message_of<shmds::mismatch_error>([&] { shmds::shm_queue<double> q(seg, "prices", 1000); },
                                                  errc::kind_mismatch);
    EXPECT_TRUE(contains(kind, "shm_array<double>") && contains(kind, "shm_queue<double>")) << kind;

    auto type = message_of<shmds::mismatch_error>([&] { shmds::shm_array<float> a(seg, "prices"); },
                                                  errc::type_mismatch);
    EXPECT_TRUE(contains(type, "shm_array<double>") && contains(type, "shm_array<float>")) << type;

    // Same size and alignment, different type: the name hash tells them apart.
    auto same_size = message_of<shmds::mismatch_error>(
        [&] { shmds::shm_array<std::int64_t> a(seg, "prices"); }, errc::type_mismatch);
    EXPECT_TRUE(contains(same_size, "long")) << same_size;

    auto capacity = message_of<shmds::mismatch_error>([&] { shmds::shm_array<double> a(seg, "prices", 999); },
                                                      errc::capacity_mismatch);
    EXPECT_TRUE(contains(capacity, "1000") && contains(capacity, "999")) << capacity;

    message_of<shmds::mismatch_error>([&] { shmds::shm_stack<double> s(seg, "prices"); },
                                      errc::kind_mismatch);
}

}  // namespace

// Two programs that disagree on a type's ABI: one name and one size, but
// another alignment (the name is given, as type_name<T> lets a program do).
struct eight_bytes_loose {
    char bytes[8];
};
struct alignas(8) eight_bytes_aligned {
    char bytes[8];
};
template <>
struct shmds::type_name<eight_bytes_loose> {
    static std::string_view get() { return "eight_bytes"; }
};
template <>
struct shmds::type_name<eight_bytes_aligned> {
    static std::string_view get() { return "eight_bytes"; }
};

namespace {

TEST(Table, ATypeWithTheSameNameAndSizeButAnotherAlignmentIsAMismatch) {
    static_assert(sizeof(eight_bytes_loose) == sizeof(eight_bytes_aligned));
    static_assert(alignof(eight_bytes_loose) != alignof(eight_bytes_aligned));
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<eight_bytes_loose> loose(seg, "abi", 4);
    message_of<shmds::mismatch_error>([&] { shmds::shm_array<eight_bytes_aligned> a(seg, "abi"); },
                                      errc::type_mismatch);
    shmds::shm_array<eight_bytes_aligned> aligned(seg, "abi2", 4);
    message_of<shmds::mismatch_error>([&] { shmds::shm_array<eight_bytes_loose> a(seg, "abi2"); },
                                      errc::type_mismatch);
}

TEST(Table, ZeroAndOverflowingCapacities) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    message_of<shmds::invalid_argument_error>([&] { shmds::shm_array<int> a(seg, "a", 0); },
                                              errc::invalid_size);
    message_of<shmds::invalid_argument_error>([&] { shmds::shm_queue<int> q(seg, "q", 0); },
                                              errc::invalid_size);
    message_of<shmds::invalid_argument_error>([&] { shmds::shm_stack<int> s(seg, "s", 0); },
                                              errc::invalid_size);
    auto overflow = message_of<shmds::invalid_argument_error>(
        [&] { shmds::shm_array<std::uint64_t> a(seg, "a", SIZE_MAX / 4); }, errc::invalid_size);
    EXPECT_TRUE(contains(overflow, "overflow")) << overflow;
    message_of<shmds::invalid_argument_error>([&] { shmds::shm_queue<Tick> q(seg, "q", SIZE_MAX / 8); },
                                              errc::invalid_size);
    // Representable, but larger than the segment.
    message_of<shmds::out_of_space_error>([&] { shmds::shm_array<char> a(seg, "a", 1u << 21); },
                                          errc::segment_full);
    // The MPMC queue's positions need headroom in 48 bits: 2^40 slots is the
    // most it takes (here: more than the segment holds), one more is invalid.
    message_of<shmds::out_of_space_error>(
        [&] { shmds::shm_mpmc_queue<char> q(seg, "m", std::uint64_t{1} << 40); }, errc::segment_full);
    message_of<shmds::invalid_argument_error>(
        [&] { shmds::shm_mpmc_queue<char> q(seg, "m", (std::uint64_t{1} << 40) + 1); }, errc::invalid_size);
    EXPECT_EQ(seg.table().size(), 0u);
}

}  // namespace

// A type whose mangled name (about 90 characters) is longer than a table
// entry's type-name field: the field keeps a prefix and its terminating zero.
namespace a_namespace_with_a_rather_long_name_for_the_table_tests {
struct an_element_type_whose_name_fills_the_entry_field {
    int value;
};
}  // namespace a_namespace_with_a_rather_long_name_for_the_table_tests

namespace {

TEST(Table, ATypeNameLongerThanItsFieldIsCutAndStillTerminated) {
    using long_named =
        a_namespace_with_a_rather_long_name_for_the_table_tests::an_element_type_whose_name_fills_the_entry_field;
    ASSERT_GT(shmds::type_name<long_named>::get().size(), shmds::detail::entry_type_name_bytes);
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<long_named> made(seg, "long", 4);
    made[3].value = 7;
    shmds::shm_array<long_named> found(seg, "long");
    EXPECT_EQ(found[3].value, 7);
    const auto listed = seg.table().list();
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].type_name,
              shmds::type_name<long_named>::get().substr(0, shmds::detail::entry_type_name_bytes - 1));
}

TEST(Table, TableFullKeepsWhatIsStored) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.table_capacity = 4});
    std::vector<shmds::shm_array<int>> arrays;
    for (int i = 0; i < 4; ++i) {
        arrays.emplace_back(seg, "a" + std::to_string(i), 16);
        arrays.back().fill(i * 100);
    }
    auto full = message_of<shmds::out_of_space_error>([&] { shmds::shm_array<int> a(seg, "a4", 16); },
                                                      errc::table_full);
    EXPECT_TRUE(contains(full, "table is full") && contains(full, "4")) << full;
    for (int i = 0; i < 4; ++i) {
        shmds::shm_array<int> again(seg, "a" + std::to_string(i));
        EXPECT_EQ(again[15], i * 100);
    }
    seg.destroy("a2");
    shmds::shm_array<int> fits(seg, "a4", 16);  // the freed entry is reused
    EXPECT_EQ(fits[0], 0);
    EXPECT_EQ(seg.table().size(), 4u);
}

// The index finds a name by its hash and then compares the names in full.
// Names whose hashes collide cannot be made through the public API (it
// hashes every name itself), so the probe is handed the colliding hash
// directly: a stored name that merely starts with the one asked for, or
// that the one asked for merely starts with, is another name.
TEST(TableIndex, ANameWhoseHashCollidesIsStillAnotherName) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> stored(seg, "ab", 1);
    const auto& identity = static_cast<const shmds::detail::segment_header*>(seg.base())->identity;
    const shmds::detail::table_view view{
        static_cast<std::byte*>(seg.base()), identity.total_size,
        *shmds::detail::compute_geometry(identity.alignment, identity.table_capacity)};
    const std::uint64_t hash = shmds::detail::fnv1a64("ab");
    const shmds::detail::table_index index(view);
    ASSERT_TRUE(index.probe("ab", hash).entry.has_value());
    EXPECT_FALSE(index.probe("a", hash).entry.has_value()) << "a prefix of a stored name matched it";
    EXPECT_FALSE(index.probe("abc", hash).entry.has_value()) << "a stored prefix of the name matched it";
    EXPECT_FALSE(index.probe("ac", hash).entry.has_value()) << "a name of the same length matched it";
}

TEST(Table, SegmentFullKeepsWhatIsStored) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 18, {.table_capacity = 256});
    std::vector<shmds::shm_array<std::uint32_t>> arrays;
    for (std::uint32_t i = 0;; ++i) {
        try {
            arrays.emplace_back(seg, "block" + std::to_string(i), 1000);
            std::fill(arrays.back().begin(), arrays.back().end(), i);
        } catch (const shmds::out_of_space_error& e) {
            EXPECT_EQ(e.code(), errc::segment_full);
            break;
        }
        ASSERT_LT(i, 256u) << "a 256 KiB segment held 256 arrays of 4000 bytes";
    }
    ASSERT_GT(arrays.size(), 10u);
    for (std::uint32_t i = 0; i < arrays.size(); ++i) {
        shmds::shm_array<std::uint32_t> again(seg, "block" + std::to_string(i));
        EXPECT_EQ(std::count(again.begin(), again.end(), i), 1000) << "array " << i;
    }
    EXPECT_LT(seg.table().bytes_free(), 4096u);
}

TEST(Table, DestroyFreesSpaceForReuse) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    const std::size_t free_at_start = seg.table().bytes_free();
    shmds::shm_array<char> a(seg, "a", 1000);
    shmds::shm_array<char> b(seg, "b", 1000);
    shmds::shm_array<char> c(seg, "c", 1000);
    const auto b_offset = seg.table().find("b")->offset;
    std::fill(b.begin(), b.end(), 'x');
    seg.destroy("b");
    EXPECT_FALSE(seg.contains("b"));
    EXPECT_THROW(seg.destroy("b"), shmds::not_found_error);
    // A structure of the same size lands in the hole and starts zeroed.
    shmds::shm_array<char> d(seg, "d", 1000);
    EXPECT_EQ(seg.table().find("d")->offset, b_offset);
    EXPECT_EQ(std::count(d.begin(), d.end(), 0), 1000);
    // Destroying everything gives all the space back, merged.
    for (const char* n : {"a", "c", "d"}) seg.destroy(n);
    EXPECT_EQ(seg.table().bytes_free(), free_at_start);
    shmds::shm_array<char> big(seg, "big", free_at_start);
    EXPECT_EQ(big.size(), free_at_start);
}

TEST(Table, EveryStructureStartsOnItsOwnCacheLine) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<char> a(seg, "a", 1);
    shmds::shm_queue<char> q(seg, "q", 1);
    shmds::shm_stack<char> s(seg, "s", 3);
    shmds::shm_array<char> b(seg, "b", 65);
    shmds::shm_array<char> c(seg, "c", 1);
    auto list = seg.table().list();
    ASSERT_EQ(list.size(), 5u);
    std::sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.offset < y.offset; });
    for (std::size_t i = 0; i < list.size(); ++i) {
        EXPECT_EQ(list[i].offset % shmds::cache_line_size, 0u) << list[i].name;
        if (i > 0) {
            EXPECT_GE(list[i].offset, list[i - 1].offset + list[i - 1].bytes);
        }
    }
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % 64, 0u);
}

struct alignas(256) Wide {
    char bytes[256];
};

TEST(Table, OverAlignedElementsAreAligned) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<char> pad(seg, "pad", 1);
    shmds::shm_array<Wide> wide(seg, "wide", 3);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(wide.data()) % 256, 0u);
    shmds::shm_queue<Wide> q(seg, "q", 2);
    q.push(Wide{});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&q.front()) % 256, 0u);
}

TEST(Table, ManyStructuresChurn) {
    // Creates and destroys many names so that the index fills with tombstones
    // and is rebuilt; every live structure stays findable with its data.
    unique_segment_name name;
    shmds::posix_shm seg(name, 8 << 20, {.table_capacity = 512});
    std::set<int> live;
    unsigned seed = 12345;
    for (int round = 0; round < 5000; ++round) {
        seed = seed * 1103515245 + 12345;
        int key = static_cast<int>((seed >> 8) % 1500);
        std::string n = "s" + std::to_string(key);
        if (live.count(key)) {
            shmds::shm_array<int> a(seg, n);
            ASSERT_EQ(a[0], key);
            seg.destroy(n);
            live.erase(key);
        } else if (live.size() < 512) {
            shmds::shm_array<int> a(seg, n, 1 + key % 50);
            a[0] = key;
            live.insert(key);
        }
    }
    EXPECT_EQ(seg.table().size(), live.size());
    for (int key : live) EXPECT_EQ((shmds::shm_array<int>(seg, "s" + std::to_string(key))[0]), key);
    auto list = seg.table().list();
    EXPECT_EQ(list.size(), live.size());
}

}  // namespace
