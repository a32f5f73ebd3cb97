// A hostile writer: another process that writes garbage into a live
// segment's shared fields, one field and one value at a time.
//
// For every field of shared state (the list, in hostile_fields.hpp, is
// checked against the real layout structs at compile time, so it cannot
// fall behind them) and
// every hostile value chosen for that field's type and meaning:
//   - a segment with two structures of every kind, each holding known
//     elements, plus a destroyed one (so the free-entry chain and the heap's
//     free list are not empty), made by this process, which keeps handles
//     open: the "victim attached before" the damage;
//   - the writer stores the value;
//   - a fork()ed child runs every operation through the handles opened
//     before the damage, then another child attaches afresh and does the
//     same through handles opened after it. Each operation may succeed or
//     throw a shmds::error / std::system_error naming the segment or the
//     structure; nothing else is allowed: no other exception, no signal, no
//     sanitizer report, no hang (each child has a deadline, then SIGKILL);
//   - the field is restored, and a last child checks that every structure
//     the damage was not in still holds exactly what it held, and that the
//     table still lists every structure as before.
// Operations on undamaged structures are sequences that end where they
// began (pop everything, push it back, fill up, ...), so "exactly what it
// held" is the test of "no write outside the damaged structure".
//
// The fields are listed in hostile_fields.hpp, the segment in
// hostile_segment.hpp, the victims and the check in
// test_hostile_victims.cpp, the targets and values in
// test_hostile_targets.cpp, the runs in test_hostile_harness.cpp. The tests
// of too many open files, which use the same segment, are in
// test_too_many_open_files.cpp.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <sys/prctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "hostile_harness.hpp"

namespace {

using namespace shmds_hostile;

// =====================================================================================
// Tests.
// =====================================================================================

TEST(HostileWriter, TheFieldListCoversEveryLayoutStruct) {
    // The static_asserts of hostile_fields.hpp are the real check; this records the counts
    // and that every target lies inside the segment.
    populated p;
    const auto targets = targets_of(p);
    EXPECT_GT(targets.size(), 100u);
    for (const target& t : targets) {
        EXPECT_LE(t.offset + t.size, segment_bytes) << t.name;
        EXPECT_FALSE(values_for(t, p.base(), segment_bytes).empty()) << t.name;
    }
    // Index targets were resolved to slots in the index.
    for (const target& t : targets) {
        if (starts_with(t.name, "index slot") || starts_with(t.name, "empty index")) {
            EXPECT_GE(t.offset, p.facts.index_offset) << t.name;
        }
    }
}

TEST(HostileWriter, SegmentHeaderIdentity) {
    run_group([](const target& t) { return starts_with(t.name, "identity."); });
}

TEST(HostileWriter, TableLockAndBookkeeping) {
    run_group(
        [](const target& t) { return starts_with(t.name, "table_mutex.") || starts_with(t.name, "table."); });
}

TEST(HostileWriter, TableEntriesIndexAndFreeLists) {
    run_group([](const target& t) {
        return starts_with(t.name, "entry(") || starts_with(t.name, "free ") ||
               starts_with(t.name, "index ") || starts_with(t.name, "empty index");
    });
}

TEST(HostileWriter, QueueAndStackControlBlocks) {
    run_group(
        [](const target& t) { return starts_with(t.name, "queue0.") || starts_with(t.name, "stack0."); });
}

TEST(HostileWriter, SpscControlBlockAndSlots) {
    run_group([](const target& t) { return starts_with(t.name, "spsc0."); });
}

TEST(HostileWriter, MpmcControlBlockAndSlots) {
    run_group([](const target& t) { return starts_with(t.name, "mpmc0."); });
}

TEST(HostileWriter, MessageQueueControlBlockAndRecordHeaders) {
    run_group([](const target& t) { return starts_with(t.name, "messages0."); });
}

TEST(HostileWriter, ConcurrentStackControlBlock) {
    run_group([](const target& t) { return starts_with(t.name, "cstack0."); });
}

// =====================================================================================
// Regressions: the hostile writer's finds, one by one.
// =====================================================================================

d::segment_header& header_of(const populated& p) {
    return *reinterpret_cast<d::segment_header*>(p.base());
}

/// True when every structure except `skip` holds what populated stored
/// (checked in a child: the check is destructive).
bool all_intact(const populated& p, std::optional<structure_name> skip) {
    const std::string failure = check_in_child(p, skip);
    EXPECT_EQ(failure, "");
    return failure.empty();
}

// heap_top passed its range checks (aligned, inside the heap) but lay below
// the last structure: the next structure was carved from the top, on top of
// that structure, and zeroed it.
TEST(HostileWriterRegressions, APlausibleHeapTopBelowTheLastBlockDoesNotHandItOut) {
    populated p;
    const auto& last = info_of(p.facts, {kind_id::cstack, 1});
    ASSERT_EQ(header_of(p).table.heap_top, last.offset + last.bytes);
    header_of(p).table.heap_top = last.offset;
    // Too big for the free gap lower down: it can only come from the top.
    shmds::shm_array<element> fresh(shmds::create_only, *p.seg, "fresh", 200);
    EXPECT_GE(p.seg->table().find("fresh")->offset, last.offset + last.bytes);
    p.seg->destroy("fresh");
    EXPECT_TRUE(all_intact(p, std::nullopt));
}

// A free block whose size was written over, to reach into the structures
// after it, was carved as if it were free.
TEST(HostileWriterRegressions, AFreeBlockStretchedOverItsNeighboursIsNotHandedOut) {
    populated p;
    auto& node = *reinterpret_cast<d::free_block*>(p.base() + p.facts.heap_free_head);
    const std::uint64_t honest = node.bytes;
    node.bytes = honest + 4096;  // aligned, inside the heap, on queue0 and beyond
    {
        // Bigger than the honest gap: only the stretched block would fit it.
        shmds::shm_array<element> fresh(shmds::create_only, *p.seg, "fresh",
                                        (honest + 1024) / sizeof(element));
        EXPECT_GE(p.seg->table().find("fresh")->offset, info_of(p.facts, {kind_id::cstack, 1}).offset);
    }
    p.seg->destroy("fresh");
    EXPECT_TRUE(all_intact(p, std::nullopt));
}

// An entry whose block_bytes was written over to cover the blocks after it:
// the repair used to keep the first block in address order and quarantine
// every honest structure it overlapped. Now the entry overlapping the most
// others is the one quarantined.
TEST(HostileWriterRegressions, ARepairQuarantinesTheEntryThatClaimsItsNeighboursBlocks) {
    populated p;
    const structure_name liar{kind_id::cstack, 0};
    auto* entries = reinterpret_cast<d::table_entry*>(p.base() + p.facts.entries_offset);
    d::table_entry& e = entries[entry_index_of(p.facts, liar)];
    const std::uint64_t honest = e.block_bytes;
    // Over queue1 and into stack1, the two blocks after it. (One on one, a
    // tie, the repair cannot tell which entry lies: it quarantines the later.)
    ASSERT_EQ(e.block_offset + honest, info_of(p.facts, {kind_id::queue, 1}).offset);
    e.block_bytes = info_of(p.facts, {kind_id::stack, 1}).offset + 64 - e.block_offset;
    header_of(p).table.dirty = 1;  // as if a process died mid-update: the next locker repairs
    EXPECT_FALSE(p.seg->contains(liar.str())) << "the lying entry is quarantined";
    for (const structure_name& s : all_structures()) {
        if (s.str() != liar.str()) {
            EXPECT_TRUE(p.seg->contains(s.str())) << s.str();
        }
    }
    // Put right, every honest structure holds what it held. (The liar's own
    // block became free space when it was quarantined: its contents are gone.)
    e.block_bytes = honest;
    e.state = d::entry_used;
    header_of(p).table.dirty = 1;
    EXPECT_TRUE(all_intact(p, liar));
}

// =====================================================================================
// A writer meanwhile: damage that lands while an operation holds the lock.
// =====================================================================================

// A repair rebuilds the index from the entries, under the lock. Another
// process writing into the index meanwhile (here, one slot, over and over:
// the home slot of the one structure, naming an entry far past the table)
// must meet a corrupted_error from the rebuild, never a read through that
// entry number or a walk that does not end. The writer's timing decides
// which rebuilds it hits, so the rounds go on until some have been.
TEST(HostileWriterMeanwhile, AnIndexSlotWrittenDuringARebuildIsRefusedNotFollowed) {
    shmds_test::unique_segment_name name;
    shmds::posix_shm seg(name.str(), 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    a[5] = 55;
    auto& h = *static_cast<d::segment_header*>(seg.base());
    auto* base = static_cast<std::byte*>(seg.base());
    const auto& entry = *reinterpret_cast<const d::table_entry*>(base + h.identity.entries_offset);
    ASSERT_EQ(std::string(entry.name), "a");
    const std::uint32_t home = static_cast<std::uint32_t>(entry.name_hash) & (h.identity.index_slots - 1);
    auto* slot = reinterpret_cast<volatile std::uint32_t*>(base + h.identity.index_offset) + home;
    shmds_test::shared_block<std::atomic<int>> stop;
    const pid_t parent = ::getpid();
    const pid_t writer = shmds_test::spawn([&] {
        // Not to outlive a parent the damage crashed.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) return;
        while (stop->load(std::memory_order_relaxed) == 0) *slot = 0x7fffffff;
    });
    int refused = 0;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int round = 0; refused < 20 && std::chrono::steady_clock::now() < give_up; ++round) {
        h.table.dirty = 1;  // as if a process died mid-update: the next locker repairs
        try {
            (void)seg.table().bytes_free();
        } catch (const shmds::corrupted_error& e) {
            ++refused;
            // (EXPECT, not ASSERT: the writer must be stopped below.)
            EXPECT_NE(std::string(e.what()).find("changed while its lock was held"), std::string::npos)
                << e.what();
        }
    }
    *stop = 1;
    ASSERT_EQ(shmds_test::wait_child(writer), shmds_test::child_ok);
    EXPECT_GT(refused, 0) << "no rebuild met the writer's slot in 20 s: nothing was tested";
    // With the writer gone, the next repair puts the index right.
    h.table.dirty = 1;
    EXPECT_EQ((shmds::shm_array<int>(seg, "a")[5]), 55);
}

}  // namespace
