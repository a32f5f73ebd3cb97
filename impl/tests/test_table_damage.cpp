// shm_table under damage to its shared bytes: entries, the index, the free
// lists and the bookkeeping, each written over as another process could, and
// what the next locker, destroy or repair must make of it. (The table's
// ordinary behaviour is in test_table.cpp.)
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds_test::contains;
using shmds_test::unique_segment_name;

shmds::detail::segment_header& header_of(shmds::posix_shm& seg) {
    return *static_cast<shmds::detail::segment_header*>(seg.base());
}

shmds::detail::table_entry* entries_of(shmds::posix_shm& seg) {
    auto& h = header_of(seg);
    return reinterpret_cast<shmds::detail::table_entry*>(static_cast<std::byte*>(seg.base()) +
                                                         h.identity.entries_offset);
}

TEST(TableDamage, DamagedIndexAndFreeListsAreRebuiltFromEntries) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    a[5] = 55;
    seg.destroy("b");
    const std::size_t free_before = seg.table().bytes_free();
    auto& h = header_of(seg);
    // Scribble over everything derived: index, counters, heap list.
    std::memset(static_cast<std::byte*>(seg.base()) + h.identity.index_offset, 0xff,
                std::size_t{h.identity.index_slots} * 4);
    h.table.heap_free_head = 12345;
    h.table.heap_top = 3;
    h.table.used_entries = 77;
    EXPECT_EQ((shmds::shm_array<int>(seg, "a")[5]), 55);
    EXPECT_EQ(seg.table().size(), 1u);
    EXPECT_EQ(seg.table().bytes_free(), free_before);
    shmds::shm_array<int> c(seg, "c", 100);
    EXPECT_EQ(seg.table().size(), 2u);
}

TEST(TableDamage, DamagedEntryIsCorruptedErrorNamingIt) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    shmds::detail::table_entry* e = entries_of(seg);
    ASSERT_STREQ(e[1].name, "b");
    e[1].block_offset = seg.size() - 64;  // runs off the end of the mapping
    try {
        shmds::shm_array<int> broken(seg, "b");
        FAIL() << "opened a structure whose block lies outside the segment";
    } catch (const shmds::corrupted_error& err) {
        EXPECT_TRUE(contains(err.what(), "outside")) << err.what();
    }
    for (auto lookup : {+[](shmds::posix_shm& s) { (void)s.table().find("b"); },
                        +[](shmds::posix_shm& s) { (void)s.table().locate("b"); },
                        +[](shmds::posix_shm& s) { (void)s.table().contains("b"); }}) {
        try {
            lookup(seg);
            ADD_FAILURE() << "a lookup returned an entry whose block lies outside the segment";
        } catch (const shmds::corrupted_error& err) {
            EXPECT_TRUE(contains(err.what(), "table entry 1")) << err.what();
        }
    }
    e[1].block_offset = seg.table().find("a")->offset;  // inside, but short of what capacity needs
    e[1].capacity = 1u << 30;
    EXPECT_THROW(shmds::shm_array<int>(seg, "b"), shmds::corrupted_error);
    EXPECT_EQ((shmds::shm_array<int>(seg, "a").size()), 100u) << "the undamaged structure stays usable";
}

// Found by the conformance suite's byte-flip sweep: glibc trusts a mutex's
// kind word, and a priority-protection bit written there by another process
// made pthread_mutex_lock abort the locker.
TEST(TableDamage, AWrittenOverLockKindIsCorruptedNotAnAbort) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    auto* header = static_cast<shmds::detail::segment_header*>(seg.base());
    const int kind = header->table_mutex.__data.__kind;
    header->table_mutex.__data.__kind = kind ^ 0x50;  // robust bit off, priority-protection bit on
    EXPECT_THROW(shmds::shm_array<int>(seg, "a", 4), shmds::corrupted_error);
    header->table_mutex.__data.__kind = kind;
    EXPECT_EQ((shmds::shm_array<int>(seg, "a", 4).size()), 4u);
}

TEST(TableDamage, ARepairQuarantinesADamagedEntryAndTheRestKeepsWorking) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> good(seg, "good", 100);
    good.fill(4);
    shmds::shm_array<int> bad(seg, "bad", 100);
    shmds::detail::table_entry* e = entries_of(seg);
    ASSERT_STREQ(e[1].name, "bad");
    e[1].block_offset = seg.size() + 4096;  // outside the mapping
    header_of(seg).table.dirty = 1;         // the next locker repairs
    EXPECT_EQ((shmds::shm_array<int>(seg, "good")[99]), 4);
    EXPECT_EQ(e[1].state, shmds::detail::entry_quarantined);
    EXPECT_FALSE(seg.contains("bad")) << "a quarantined entry is not findable";
    shmds::shm_array<int> fresh(seg, "bad", 100);  // the name can be used again
    EXPECT_TRUE(fresh.created());
    shmds::shm_array<int> more(seg, "more", 100);
    EXPECT_EQ(seg.table().size(), 3u);
}

TEST(TableDamage, DestroyingADamagedStructureWorks) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> good(seg, "good", 100);
    const std::size_t free_without_bad = seg.table().bytes_free();
    shmds::shm_array<int> bad(seg, "bad", 100);
    entries_of(seg)[1].kind = 99;
    EXPECT_THROW((shmds::shm_array<int>(seg, "bad")), shmds::corrupted_error);
    seg.destroy("bad");
    // The destroy finished its update (its repair rebuilt the heap from the
    // others) rather than leaving the table for the next locker to mend.
    EXPECT_EQ(header_of(seg).table.dirty, 0u);
    EXPECT_FALSE(seg.contains("bad"));
    EXPECT_EQ(seg.table().bytes_free(), free_without_bad);
    EXPECT_EQ(seg.table().size(), 1u);
}

TEST(TableDamage, OverlappingEntriesAreQuarantinedNotShared) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    entries_of(seg)[1].block_offset = entries_of(seg)[0].block_offset;  // b claims a's block
    header_of(seg).table.dirty = 1;
    EXPECT_TRUE(seg.contains("a"));
    EXPECT_FALSE(seg.contains("b"));
    shmds::shm_array<int> c(seg, "c", 100);
    EXPECT_NE(seg.table().find("c")->offset, seg.table().find("a")->offset);
}

TEST(TableDamage, UnterminatedNameIsCorrupted) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 1);
    std::memset(entries_of(seg)[0].name, 'z', sizeof entries_of(seg)[0].name);
    EXPECT_THROW((void)seg.table().list(), shmds::corrupted_error);
}

TEST(TableDamage, LeftDirtyIsRepairedByNextLocker) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    const std::size_t free_before = seg.table().bytes_free();
    auto& h = header_of(seg);
    // As if a creator died after taking space but before publishing its entry.
    h.table.dirty = 1;
    h.table.heap_top += 4096;
    h.table.entries_high_water += 1;
    EXPECT_EQ(seg.table().bytes_free(), free_before);
    EXPECT_EQ(h.table.dirty, 0u);
}

shmds::detail::free_block& free_block_of(shmds::posix_shm& seg, std::uint64_t offset) {
    return *reinterpret_cast<shmds::detail::free_block*>(static_cast<std::byte*>(seg.base()) + offset);
}

// The checks of the bookkeeping that run at every lock (state_plausible in
// detail/table_view.hpp) and in the free-list walk, each met by damage that
// only it catches.

TEST(TableDamage, AUsedCountAboveTheHighWaterMarkIsRebuiltAtTheNextLock) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    auto& h = header_of(seg);
    ASSERT_EQ(h.table.entries_high_water, 2u);
    h.table.used_entries = h.table.entries_high_water + 3;  // more structures than entries ever used
    EXPECT_EQ(seg.table().size(), 2u) << "size() counts the structures, not the damaged counter";
    EXPECT_EQ(h.table.used_entries, 2u);
}

TEST(TableDamage, AFreeListHeadAtOrAboveTheHeapTopIsRebuiltAtTheNextLock) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    shmds::shm_array<int> c(seg, "c", 100);
    seg.destroy("b");
    auto& h = header_of(seg);
    const std::uint64_t hole = h.table.heap_free_head;
    const std::uint64_t top = h.table.heap_top;
    ASSERT_EQ(hole, seg.table().find("a")->offset + seg.table().find("a")->bytes);
    for (std::uint64_t damaged : {top, top + h.identity.alignment, seg.size() - h.identity.alignment}) {
        SCOPED_TRACE("free-list head " + std::to_string(damaged) + ", heap top " + std::to_string(top));
        h.table.heap_free_head = damaged;
        // A lookup walks no free list: only the check at the lock sees this.
        EXPECT_TRUE(seg.contains("c"));
        EXPECT_EQ(h.table.heap_free_head, hole) << "the free list is rebuilt from the entries";
        EXPECT_EQ(h.table.heap_top, top);
        EXPECT_EQ(h.table.dirty, 0u);
    }
}

TEST(TableDamage, AFreeBlockWhoseSizeIsNotAMultipleOfTheAlignmentIsRebuilt) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    shmds::shm_array<int> c(seg, "c", 100);
    const auto b_offset = seg.table().find("b")->offset;
    seg.destroy("b");
    const std::size_t free_before = seg.table().bytes_free();
    auto& h = header_of(seg);
    ASSERT_NE(h.table.heap_free_head, 0u);
    shmds::detail::free_block& hole = free_block_of(seg, h.table.heap_free_head);
    const std::uint64_t hole_bytes = hole.bytes;
    hole.bytes += 8;  // still short of c's block, but no longer a whole number of blocks
    EXPECT_EQ(seg.table().bytes_free(), free_before) << "the damaged size is not counted as free";
    EXPECT_EQ(hole.bytes, hole_bytes) << "the free list is rebuilt from the entries";
    shmds::shm_array<int> d(seg, "d", 100);
    EXPECT_EQ(seg.table().find("d")->offset, b_offset) << "b's hole is reused";
}

TEST(TableDamage, ARepairNeverWritesIntoALiveBlockAQuarantinedEmptyBlockClaims) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    shmds::shm_array<int> c(seg, "c", 100);
    shmds::shm_array<int> d(seg, "d", 100);
    for (int i = 0; i < 100; ++i) b[i] = 1000 + i;
    const auto b_info = *seg.table().find("b");
    // d's entry now claims an empty block where b's starts: damage the next
    // repair quarantines. An empty block holds nothing to keep out of use.
    shmds::detail::table_entry& e = entries_of(seg)[3];
    ASSERT_STREQ(e.name, "d");
    e.block_offset = b_info.offset;
    e.block_bytes = 0;
    header_of(seg).table.dirty = 1;  // the next locker repairs
    EXPECT_FALSE(seg.contains("d"));
    EXPECT_EQ(e.state, shmds::detail::entry_quarantined);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(b[i], 1000 + i) << "the repair wrote into b's block at " << i;
    // b's block is still b's alone: what is created next lies elsewhere.
    shmds::shm_array<int> fresh(seg, "fresh", 100);
    const auto fresh_info = *seg.table().find("fresh");
    EXPECT_TRUE(fresh_info.offset >= b_info.offset + b_info.bytes ||
                fresh_info.offset + fresh_info.bytes <= b_info.offset);
    EXPECT_EQ((shmds::shm_array<int>(seg, "b")[0]), 1000);
}

// A block of zero bytes (only damage makes one) covers nothing: once the
// repair has quarantined its entry, the free space around it is usable and
// creates go on working (they used to fail for good: every allocation took
// the empty block for a live one inside the free space, and every rebuild
// rebuilt the same).
TEST(TableDamage, AQuarantinedEmptyBlockInsideFreeSpaceLeavesThatSpaceUsable) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<char> b(seg, "b", 16);
    shmds::shm_array<int> c(seg, "c", 100);
    c.fill(7);
    const auto a_offset = seg.table().find("a")->offset;
    seg.destroy("a");
    shmds::detail::table_entry& e = entries_of(seg)[1];
    ASSERT_STREQ(e.name, "b");
    ASSERT_LT(e.block_bytes, 256u);
    e.block_bytes = 0;               // one byte written over its size
    header_of(seg).table.dirty = 1;  // the next locker repairs
    EXPECT_FALSE(seg.contains("b"));
    for (int i = 0; i < 3; ++i) {
        const std::string n = "new" + std::to_string(i);
        EXPECT_NO_THROW((shmds::shm_array<int>(seg, n, 10))) << n;
    }
    ASSERT_TRUE(seg.contains("new0"));
    EXPECT_EQ(seg.table().find("new0")->offset, a_offset) << "first fit: the space a freed comes first";
    for (int v : shmds::shm_array<int>(seg, "c")) ASSERT_EQ(v, 7);
}

TEST(TableDamage, DestroyThatFindsTheFreeListLyingRebuildsItBeforeReturning) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    shmds::shm_array<int> b(seg, "b", 100);
    shmds::shm_array<int> c(seg, "c", 100);
    shmds::shm_array<int> d(seg, "d", 100);
    d.fill(4);
    const auto b_offset = seg.table().find("b")->offset;
    const auto d_info = *seg.table().find("d");
    seg.destroy("b");
    auto& h = header_of(seg);
    ASSERT_EQ(h.table.heap_free_head, b_offset);
    // b's hole now claims everything up to the heap top: c's and d's blocks.
    // Every check before the commit passes (the block lies below the top);
    // freeing c finds the overlap only after c's entry is gone.
    free_block_of(seg, b_offset).bytes = h.table.heap_top - b_offset;
    seg.destroy("c");
    // The destroy finished its update: the table is not left for the next
    // locker to mend, and its bookkeeping is what the entries say.
    EXPECT_EQ(h.table.dirty, 0u);
    EXPECT_EQ(h.table.heap_top, d_info.offset + d_info.bytes);
    EXPECT_EQ(h.table.heap_free_head, b_offset);
    EXPECT_EQ(free_block_of(seg, b_offset).bytes, d_info.offset - b_offset) << "b's and c's blocks, merged";
    EXPECT_FALSE(seg.contains("c"));
    for (int v : d) ASSERT_EQ(v, 4);
}

}  // namespace
