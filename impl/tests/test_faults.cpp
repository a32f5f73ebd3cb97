// Faults injected at named points (SHMDS_FAULT_INJECTION): a process killed
// at every step of creating and destroying structures, of creating a segment,
// of the last detach and of a table repair; and a creator that stalls between
// making the file and locking it while an impatient opener gives up on it.
// After each, the survivors must find a consistent table and segment. And
// the table's repairs counted at their fault point: none where nothing is
// damaged, another where damage lands while the lock is held.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "fault_injection.hpp"
#include "support.hpp"

namespace {

using namespace shmds_faults;

// ---- structures ------------------------------------------------------------------------------

class CrashWhileCreatingAStructure : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashWhileCreatingAStructure, LeavesEitherAWholeStructureOrNone) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    const std::string point = GetParam();
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> keep(seg, "keep", 100);
    keep.fill(7);
    const std::size_t free_before = seg.table().bytes_free();

    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  arm(GetParam());
                  shmds::shm_array<int> victim(mine, "victim", 1000);
              })),
              killed);

    for (int v : keep) ASSERT_EQ(v, 7);
    const bool published = point == "table.create.published" || point == "table.create.indexed";
    EXPECT_EQ(seg.contains("victim"), published);
    if (published) {
        shmds::shm_array<int> victim(seg, "victim");
        EXPECT_EQ(victim.size(), 1000u);
        EXPECT_EQ(std::count(victim.begin(), victim.end(), 0), 1000) << "published means initialised";
        EXPECT_EQ(seg.table().bytes_free() + seg.table().find("victim")->bytes, free_before);
    } else {
        EXPECT_EQ(seg.table().bytes_free(), free_before) << "the dead creator's space is reclaimed";
        EXPECT_EQ(seg.table().size(), 1u);
    }
    shmds::shm_array<int> again(seg, "victim", 1000);
    shmds::shm_array<int> another(seg, "another", 10);
    EXPECT_EQ(seg.table().size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Faults, CrashWhileCreatingAStructure,
                         ::testing::Values("table.create.entry_taken", "table.create.block_taken",
                                           "table.create.initialised", "table.create.published",
                                           "table.create.indexed"),
                         test_name_of);

class CrashWhileDestroyingAStructure : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashWhileDestroyingAStructure, LeavesNeighboursIntactAndSpaceReusable) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    for (bool victim_is_last : {false, true}) {
        SCOPED_TRACE(victim_is_last ? "victim is the topmost block" : "victim lies between two others");
        unique_segment_name name;
        shmds::posix_shm seg(name, 1 << 20);
        shmds::shm_array<int> before(seg, "before", 100);
        shmds::shm_array<int> victim(seg, "victim", 1000);
        before.fill(1);
        victim.fill(2);
        if (!victim_is_last) {
            shmds::shm_array<int> after(seg, "after", 100);
            after.fill(3);
        }
        const std::size_t victim_bytes = seg.table().find("victim")->bytes;
        const std::uint64_t victim_offset = seg.table().find("victim")->offset;
        const std::size_t free_before = seg.table().bytes_free();

        ASSERT_EQ(wait_child(spawn([&] {
                      shmds::posix_shm mine(name.str());
                      arm(GetParam());
                      mine.destroy("victim");
                  })),
                  killed);

        EXPECT_FALSE(seg.contains("victim"));
        for (int v : before) ASSERT_EQ(v, 1);
        if (!victim_is_last) {
            for (int v : shmds::shm_array<int>(seg, "after")) ASSERT_EQ(v, 3);
        }
        EXPECT_EQ(seg.table().bytes_free(), free_before + victim_bytes);
        shmds::shm_array<int> reuse(seg, "reuse", 1000);
        EXPECT_EQ(seg.table().find("reuse")->offset, victim_offset);
        EXPECT_EQ(std::count(reuse.begin(), reuse.end(), 0), 1000);
    }
}

INSTANTIATE_TEST_SUITE_P(Faults, CrashWhileDestroyingAStructure,
                         ::testing::Values("table.destroy.unpublished", "table.destroy.block_freed",
                                           "table.destroy.unindexed"),
                         test_name_of);

TEST(Faults, CrashDuringARepairIsRepairedByTheNext) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> keep(seg, "keep", 100);
    keep.fill(9);
    const std::size_t free_before = seg.table().bytes_free();
    auto& table = static_cast<shmds::detail::segment_header*>(seg.base())->table;
    table.dirty = 1;  // as if an update had been interrupted
    table.heap_top += 8192;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  arm("table.repair.heap_rebuilt");
                  (void)mine.contains("keep");  // locks, repairs, dies half-way
              })),
              killed);
    EXPECT_EQ(table.dirty, 1u) << "an interrupted repair leaves the table marked for the next";
    EXPECT_EQ(seg.table().bytes_free(), free_before);
    for (int v : keep) ASSERT_EQ(v, 9);
}

// ---- table repairs, counted -------------------------------------------------------------------

// Counts the table's repairs (each passes table.repair.heap_rebuilt), and can
// write into the table at that point the first time: as a process holding
// no lock may, while this one holds it.
struct repair_counter {
    static inline int repairs = 0;
    static inline void (*damage_once)() = nullptr;
    repair_counter() {
        repairs = 0;
        damage_once = nullptr;
        shmds::detail::fault_hook = [](const char* point) {
            if (std::string_view(point) != "table.repair.heap_rebuilt") return;
            ++repairs;
            if (auto damage = std::exchange(damage_once, nullptr)) damage();
        };
    }
    ~repair_counter() { shmds::detail::fault_hook = nullptr; }
    repair_counter(const repair_counter&) = delete;
    repair_counter& operator=(const repair_counter&) = delete;
};

TEST(TableRepairs, AHeapFilledToTheSegmentsLastByteIsNotRebuilt) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> small(seg, "small", 100);
    const std::size_t rest = seg.table().bytes_free();
    shmds::shm_array<char> big(seg, "big", rest);  // up to the last byte
    const auto& table = static_cast<shmds::detail::segment_header*>(seg.base())->table;
    ASSERT_EQ(table.heap_top, seg.size());
    repair_counter counter;
    EXPECT_EQ(seg.table().bytes_free(), 0u);
    EXPECT_TRUE(seg.contains("big"));
    EXPECT_EQ(seg.table().list().size(), 2u);
    EXPECT_EQ(seg.table().size(), 2u);
    EXPECT_THROW((shmds::shm_array<int>(seg, "more", 1)), shmds::out_of_space_error);
    EXPECT_EQ(counter.repairs, 0) << "a full heap is consistent bookkeeping, not damage";
    seg.destroy("small");
    shmds::shm_array<int> again(seg, "again", 100);
    EXPECT_EQ(counter.repairs, 0);
}

TEST(TableRepairs, AHeapTopMovedPastTheEndWhileTheLockIsHeldIsCaughtByTheFreeListWalk) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> keep(seg, "keep", 100);
    keep.fill(5);
    const std::size_t free_before = seg.table().bytes_free();
    static shmds::detail::segment_header* header;
    header = static_cast<shmds::detail::segment_header*>(seg.base());
    repair_counter counter;
    // The next lock repairs (as after an interrupted update); another process
    // writes the heap top past the segment's end just after that repair has
    // rebuilt it, after the check at the lock and before any free-list walk.
    header->table.dirty = 1;
    repair_counter::damage_once = [] {
        header->table.heap_top = header->identity.total_size + header->identity.alignment;
    };
    EXPECT_EQ(seg.table().bytes_free(), free_before);
    EXPECT_EQ(counter.repairs, 2) << "the walk found the heap top outside the segment and rebuilt it";
    EXPECT_EQ(header->table.heap_top, seg.table().find("keep")->offset + seg.table().find("keep")->bytes);
    shmds::shm_array<int> more(seg, "more", 100);
    for (int v : keep) ASSERT_EQ(v, 5);
}

// ---- segments --------------------------------------------------------------------------------

class CrashWhileCreatingASegment : public ::testing::TestWithParam<const char*> {};

TEST_P(CrashWhileCreatingASegment, TheUnfinishedSegmentIsReclaimed) {
    unique_segment_name name;
    ASSERT_EQ(wait_child(spawn([&] {
                  arm(GetParam());
                  shmds::posix_shm seg(name.str(), 1 << 16);
              })),
              killed);
    ASSERT_TRUE(shm_name_exists(name.str()));
    notices().clear();
    shmds::segment_options options{.timeout = std::chrono::milliseconds(200), .notice = record_notice};
    EXPECT_THROW(shmds::posix_shm(name, options), shmds::not_found_error)
        << "open-only: reclaimed, then absent";
    EXPECT_FALSE(shm_name_exists(name.str()));
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("creator died"), std::string::npos) << notices()[0];

    ASSERT_EQ(wait_child(spawn([&] {
                  arm(GetParam());
                  shmds::posix_shm seg(name.str(), 1 << 16);
              })),
              killed);
    shmds::posix_shm seg(name, 1 << 16, options);
    EXPECT_TRUE(seg.created());
    shmds::shm_queue<int> q(seg, "q", 4);
    q.push(1);
    EXPECT_EQ(q.pop(), 1);
}

INSTANTIATE_TEST_SUITE_P(Faults, CrashWhileCreatingASegment,
                         ::testing::Values("segment.create.file_made", "segment.create.reserved",
                                           "segment.create.formatted"),
                         test_name_of);

TEST(Faults, LastDetacherKilledBeforeUnlinkingLeavesAStaleSegmentThatIsReclaimed) {
    unique_segment_name name;
    ASSERT_EQ(wait_child(spawn([&] {
                  auto seg = std::make_unique<shmds::posix_shm>(name.str(), 1 << 16);
                  arm("segment.detach.last");
                  seg.reset();
              })),
              killed);
    ASSERT_TRUE(shm_name_exists(name.str()));
    notices().clear();
    shmds::posix_shm seg(name, 1 << 16, {.notice = record_notice});
    EXPECT_TRUE(seg.created());
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("stale"), std::string::npos);
}

struct race_report {
    std::atomic<int> reached;
    std::atomic<int> child_done;
    std::atomic<int> parent_done;
    std::uint64_t child_id;
    int child_created;
};

TEST(Faults, CreatorStalledBeforeItsFirstLockStillEndsInTheOpenersSegment) {
    // The creator makes the file, then stalls before locking it. An opener
    // that gives up waiting removes the file as a dead creator's leftover and
    // creates the segment itself; the creator must notice and join it, not
    // initialise the removed file as a second segment under the same name.
    for (int round = 0; round < 3; ++round) {
        unique_segment_name name;
        shared_block<race_report> report;
        pid_t creator = spawn([&] {
            arm("segment.create.file_made", true, std::chrono::milliseconds(400), &report->reached);
            shmds::posix_shm seg(name.str(), 1 << 16);
            report->child_id = seg.segment_id();
            report->child_created = seg.created() ? 1 : 0;
            report->child_done = 1;
            CHILD_CHECK(wait_until([&] { return report->parent_done.load() == 1; }));
        });
        ASSERT_TRUE(wait_until([&] { return report->reached.load() == 1; }));
        notices().clear();
        shmds::posix_shm seg(name, 1 << 16,
                             {.timeout = std::chrono::milliseconds(100), .notice = record_notice});
        ASSERT_TRUE(wait_until([&] { return report->child_done.load() == 1; }));
        EXPECT_EQ(report->child_id, seg.segment_id()) << "two live segments under one name";
        EXPECT_EQ(report->child_created + (seg.created() ? 1 : 0), 1);
        report->parent_done = 1;
        EXPECT_EQ(wait_child(creator), child_ok);
    }
}

}  // namespace
