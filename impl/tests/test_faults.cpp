// Faults injected at named points (SHMDS_FAULT_INJECTION): a process killed
// at every step of creating and destroying structures, of creating a segment,
// of the last detach and of a table repair; and a creator that stalls between
// making the file and locking it while an impatient opener gives up on it.
// After each, the survivors must find a consistent table and segment.
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/segment_directory.hpp>
#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds_test::child_ok;
using shmds_test::notices;
using shmds_test::record_notice;
using shmds_test::shared_block;
using shmds_test::shm_name_exists;
using shmds_test::spawn;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;
using shmds_test::wait_until;

constexpr int killed = 128 + SIGKILL;

/// What the hook does at the point it is armed for (in this process only).
struct fault_plan {
    const char* point = nullptr;
    bool stall = false;  ///< stall instead of dying
    std::chrono::milliseconds stall_for{0};
    std::atomic<int>* reached = nullptr;  ///< set to 1 when the point is reached
    std::atomic<int>* release = nullptr;  ///< if set, stall until it is 1 (at most a minute) instead
};
fault_plan plan;

void fault_hook(const char* point) {
    if (!plan.point || std::strcmp(point, plan.point) != 0) return;
    if (plan.reached) plan.reached->store(1);
    if (!plan.stall) ::raise(SIGKILL);
    plan.point = nullptr;  // once
    if (plan.release)
        (void)wait_until([] { return plan.release->load() == 1; }, std::chrono::minutes(1));
    else
        std::this_thread::sleep_for(plan.stall_for);
}

/// Arms the hook in the calling (child) process.
void arm(const char* point, bool stall = false, std::chrono::milliseconds stall_for = {},
         std::atomic<int>* reached = nullptr) {
    plan = {point, stall, stall_for, reached, nullptr};
    shmds::detail::fault_hook = fault_hook;
}

/// Arms the hook to stall at `point` until `release` is 1.
void arm_until(const char* point, std::atomic<int>* reached, std::atomic<int>* release) {
    plan = {point, true, {}, reached, release};
    shmds::detail::fault_hook = fault_hook;
}

std::string test_name_of(const ::testing::TestParamInfo<const char*>& info) {
    std::string name = info.param;
    for (char& c : name)
        if (c == '.') c = '_';
    return name;
}

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

// ---- the process-safe structures -----------------------------------------------------------

namespace structure_faults {

using namespace std::chrono_literals;
using spsc = shmds::shm_spsc_queue<std::uint64_t>;
using mpmc = shmds::shm_mpmc_queue<std::uint64_t>;
using cstack = shmds::shm_concurrent_stack<std::uint64_t>;

template <class S>
std::vector<std::uint64_t> drain(S& s) {
    std::vector<std::uint64_t> out;
    while (auto v = s.try_pop_for(100ms)) out.push_back(*v);
    return out;
}

TEST(StructureFaults, SpscProducerKilledBeforePublishingLosesOnlyThatElement) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 16);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc p(mine, "q");
                  for (std::uint64_t i = 0; i < 3; ++i) CHILD_CHECK(p.try_push(i));
                  arm("spsc.push.written");
                  (void)p.try_push(3);
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2}));
    ASSERT_TRUE(q.try_push(10)) << "the dead producer's role is free";
    EXPECT_EQ(q.try_pop(), 10u);
}

TEST(StructureFaults, SpscProducerKilledAfterPublishingBeforeCountingIsNotOverwritten) {
    // Killed between the slot's sequence (the publication) and the store of
    // tail: the element was published, and a successor must count it, not
    // write over it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    spsc q(seg, "q", 4);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc p(mine, "q");
                  CHILD_CHECK(p.try_push(0));
                  arm("spsc.push.published");
                  (void)p.try_push(1);
              })),
              killed);
    {
        spsc successor(seg, "q");
        ASSERT_TRUE(successor.try_push(2));
        ASSERT_TRUE(successor.try_push(3));
        EXPECT_FALSE(successor.try_push(4)) << "four elements in a queue of four";
        EXPECT_EQ(successor.size(), 4u);
    }
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST(StructureFaults, SpscBatchOfAKilledProducerIsAllOrNothing) {
    for (const char* point : {"spsc.push_n.written", "spsc.push_n.all_but_first", "spsc.push_n.published"}) {
        SCOPED_TRACE(point);
        unique_segment_name name;
        shmds::posix_shm seg(name, 1 << 20);
        spsc q(seg, "q", 8);
        ASSERT_EQ(wait_child(spawn([&] {
                      shmds::posix_shm mine(name.str());
                      spsc p(mine, "q");
                      CHILD_CHECK(p.try_push(100));
                      const std::uint64_t batch[] = {101, 102, 103, 104};
                      arm(point);
                      (void)p.try_push_n(batch, 4);
                  })),
                  killed);
        const bool published = std::string_view(point) == "spsc.push_n.published";
        {
            // The successor writes behind the element 100 (and behind the
            // batch when it was published); sequences an unpublished batch
            // left must not let the consumer read its slots early.
            spsc successor(seg, "q");
            ASSERT_TRUE(successor.try_push(200));
        }
        std::vector<std::uint64_t> expected{100};
        if (published) expected.insert(expected.end(), {101, 102, 103, 104});
        expected.push_back(200);
        EXPECT_EQ(drain(q), expected);
        spsc refill(seg, "q");
        for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(refill.try_push(300 + i)) << "room for " << i;
        for (std::uint64_t i = 0; i < 8; ++i) ASSERT_EQ(q.try_pop(), 300 + i);
    }
}

TEST(StructureFaults, SpscConsumerKilledMidPopLosesNothing) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    {
        spsc producer(seg, "q", 16);
        for (std::uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(producer.try_push(i));
    }
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  spsc c(mine, "q");
                  CHILD_CHECK(c.try_pop() == 0u);
                  CHILD_CHECK(c.try_pop() == 1u);
                  arm("spsc.pop.read");
                  (void)c.try_pop();
              })),
              killed);
    spsc q(seg, "q");
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{2, 3, 4})) << "the element being read is still there";
}

TEST(StructureFaults, MpmcProducerKilledAfterClaimingASlotHoldsNobodyUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    ASSERT_FALSE(q.try_pop());  // joins first: the dead producer's id stays unused, so only
                                // the liveness check can release its claim
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  CHILD_CHECK(p.try_push(0));
                  CHILD_CHECK(p.try_push(1));
                  arm("mpmc.push.claimed");
                  (void)p.try_push(2);
              })),
              killed);
    ASSERT_TRUE(q.try_push(3));
    ASSERT_TRUE(q.try_push(4));
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 3, 4}))
        << "only the dead producer's element is lost";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << "no slot stays lost: " << i;
    EXPECT_FALSE(q.try_push(8));
    EXPECT_EQ(drain(q).size(), 8u);
}

TEST(StructureFaults, MpmcNextHolderOfADeadParticipantsIdReleasesItsClaims) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    auto* control = reinterpret_cast<shmds::detail::mpmc_control*>(static_cast<std::byte*>(seg.base()) +
                                                                   seg.table().find("q")->offset);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");  // participant 0
                  arm("mpmc.push.claimed");
                  (void)p.try_push(1);
              })),
              killed);
    EXPECT_EQ(control->head.load(), 0u);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  CHILD_CHECK(p.capacity() == 8);
                  (void)p.size();
                  CHILD_CHECK(!p.try_pop());  // joins as participant 0, the dead one's id
              })),
              child_ok);
    EXPECT_EQ(control->head.load(), 1u) << "joining as the dead participant released its claim at once";
}

TEST(StructureFaults, MpmcProducersAloneGetPastADeadProducersClaim) {
    // No consumer runs: the producers themselves must find and release the
    // dead claim when their ring comes round to it.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 4);
    ASSERT_FALSE(q.try_pop());  // joins first, so the dead producer's id is not ours to clean up
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  arm("mpmc.push.claimed");
                  (void)p.try_push(99);
              })),
              killed);
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << i;
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0, 1, 2, 3}));
}

TEST(StructureFaults, MpmcConsumerKilledAfterClaimingAnElementHoldsNobodyUp) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(q.try_push(i));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc c(mine, "q");
                  CHILD_CHECK(c.try_pop() == 0u);
                  arm("mpmc.pop.claimed");
                  (void)c.try_pop();
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{2, 3, 4, 5})) << "only the element being taken is lost";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << "no slot stays lost: " << i;
    EXPECT_FALSE(q.try_push(8));
}

TEST(StructureFaults, StackLockHolderKilledMidPushLeavesItConsistent) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  cstack c(mine, "s");
                  arm("stack.push.written");
                  (void)c.try_push(3);
              })),
              killed);
    ASSERT_TRUE(s.try_push(4)) << "the lock was recovered";
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{4, 2, 1})) << "the unfinished push never counted";
}

TEST(StructureFaults, StackLockHolderKilledMidPopLeavesItConsistent) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  cstack c(mine, "s");
                  arm("stack.pop.read");
                  (void)c.try_pop();
              })),
              killed);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{2, 1})) << "the unfinished pop never uncounted";
    EXPECT_EQ(s.lock_recoveries(), 1u);
}

TEST(StructureFaults, AForkedChildDoesNotKeepADeadParentsClaimOrRoleAlive) {
    // The dead process forked a long-lived helper after joining: the helper's
    // copies of its participant locks must not make it look alive.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8);
    shared_block<pid_t> helpers(2);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  mpmc p(mine, "q");
                  spsc roles(mine, "roles", 4);
                  CHILD_CHECK(p.try_push(0));
                  CHILD_CHECK(roles.try_push(0));  // holds the SPSC producer role
                  for (std::size_t h = 0; h < 2; ++h) helpers[h] = shmds_test::fork_idle_helper(60s);
                  arm("mpmc.push.claimed");
                  (void)p.try_push(1);
              })),
              killed);
    EXPECT_EQ(drain(q), (std::vector<std::uint64_t>{0})) << "the claim was released although helpers live on";
    for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push_for(i, 10s)) << i;
    spsc roles(seg, "roles");
    EXPECT_TRUE(roles.try_push(1)) << "the dead process's role is free although its helpers live on";
    for (std::size_t h = 0; h < 2; ++h) shmds_test::kill_and_reap(helpers[h]);
}

// ---- wake-ups that must not wait for the safety net --------------------------------------------

/// The MPMC control block of queue `q` in `seg`.
shmds::detail::mpmc_control* mpmc_control_of(shmds::posix_shm& seg) {
    return reinterpret_cast<shmds::detail::mpmc_control*>(static_cast<std::byte*>(seg.base()) +
                                                          seg.table().find("q")->offset);
}

/// How the wake-up tests' handles wait: asleep at once, with the safety net
/// a minute away, so that a wake-up they wait for is never found by it.
const shmds::wait_options patient{.strategy = shmds::wait_strategy::sleep, .recheck_after = 60s};

int sleepers_on(const shmds::detail::wait_channel& channel) {
    return std::popcount(channel.sleepers[0].load()) + std::popcount(channel.sleepers[1].load());
}

/// Two consumers sleep on an MPMC queue. Producer A claims position 0 and
/// stalls at `point`; producer B pushes position 1 and wakes one consumer,
/// which finds 0 still being written and sleeps again. When A goes on, both
/// elements must reach the two consumers without waiting for the safety
/// net, which is a minute away: the consumers have 20 s.
void expect_consumers_woken_out_of_order_both_served(const char* point) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> a_stalled;
    shmds_test::process_group group;
    std::vector<pid_t> consumers;
    consumers.reserve(2);
    for (int c = 0; c < 2; ++c) {
        consumers.push_back(group.spawn([&] {
            shmds::posix_shm mine(name.str());
            mpmc in(shmds::open_only, mine, "q", patient);
            const std::uint64_t v = in.pop();
            CHILD_CHECK(v == 100 || v == 200);
        }));
    }
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 2; }));
    pid_t a = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc out(mine, "q");
        arm(point, true, 500ms, &*a_stalled);
        CHILD_CHECK(out.try_push(100));
    });
    ASSERT_TRUE(wait_until([&] { return a_stalled->load() == 1; }));
    ASSERT_TRUE(q.try_push(200));  // producer B
    EXPECT_EQ(group.wait(a), child_ok);
    for (pid_t c : consumers) EXPECT_EQ(group.wait(c, std::chrono::seconds(20)), child_ok);
}

TEST(StructureFaults, ConsumersWokenOutOfOrderPassTheWakeUpOn) {
    // A stalls between its claim and moving the tail hint on.
    expect_consumers_woken_out_of_order_both_served("mpmc.push.claimed");
}

TEST(StructureFaults, MpmcConsumersAreWokenForEveryElementWhenTheTailHintIsSetBack) {
    // A finds the tail hint at 0 and stalls before storing 1: B moves it to
    // 2 meanwhile, and A then sets it back to 1. Whoever takes 0 must wake
    // the other consumer for 1, whatever the hints say.
    expect_consumers_woken_out_of_order_both_served("mpmc.push.hint_checked");
}

TEST(StructureFaults, MpmcProducersAreWokenForEveryFreeSlotWhenTheHeadHintIsSetBack) {
    // The mirror image: consumer A claims position 0 of a full queue of two,
    // finds the head hint at 0 and stalls; consumer B walks past it, takes
    // position 1 and wakes one sleeping producer, which finds slot 0 still
    // being read and sleeps again. A sets the head hint back to 1, frees slot
    // 0 and wakes one producer. Whoever fills slot 0 must wake the other for
    // slot 1.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 2, patient);
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> a_stalled;
    shmds_test::process_group group;
    std::vector<pid_t> producers;
    producers.reserve(2);
    for (std::uint64_t p = 0; p < 2; ++p) {
        producers.push_back(group.spawn([&, p] {
            shmds::posix_shm mine(name.str());
            mpmc out(shmds::open_only, mine, "q", patient);
            out.push(10 + p);
        }));
    }
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_full) == 2; }));
    pid_t a = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(mine, "q");
        arm("mpmc.pop.hint_checked", true, 500ms, &*a_stalled);
        CHILD_CHECK(in.try_pop() == 1u);
    });
    ASSERT_TRUE(wait_until([&] { return a_stalled->load() == 1; }));
    ASSERT_EQ(q.try_pop(), 2u);  // consumer B
    EXPECT_EQ(group.wait(a), child_ok);
    for (pid_t p : producers) EXPECT_EQ(group.wait(p, std::chrono::seconds(20)), child_ok);
    std::vector<std::uint64_t> rest = drain(q);
    std::sort(rest.begin(), rest.end());
    EXPECT_EQ(rest, (std::vector<std::uint64_t>{10, 11}));
}

/// Forks a participant of the MPMC queue "q" in `segment` that takes a claim
/// at `point` ("mpmc.push.claimed": pushing 100; "mpmc.pop.claimed": popping)
/// and holds it until it is killed. Returns once the claim is taken.
pid_t spawn_claim_holder(shmds_test::process_group& group, const std::string& segment, const char* point) {
    shared_block<std::atomic<int>> claimed;
    shared_block<std::atomic<int>> never;
    const pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(segment);
        mpmc handle(mine, "q");
        arm_until(point, &*claimed, &*never);
        if (std::strcmp(point, "mpmc.push.claimed") == 0)
            (void)handle.try_push(100);
        else
            (void)handle.try_pop();
    });
    EXPECT_TRUE(wait_until([&] { return claimed->load() == 1; })) << "no claim taken at " << point;
    return holder;
}

/// A dead participant's claim, released by someone who is not the sleeper
/// held up behind it, must wake that sleeper: nothing else will (it checked
/// the claim's owner before it slept, and the owner was alive then). The
/// sleepers' safety net is a minute away and they have 10 s.
TEST(StructureFaults, MpmcConsumerAsleepBehindADeadProducersClaimIsWokenByItsRelease) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    ASSERT_FALSE(q.try_pop());  // joins first: the dead producer's id stays unused
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    const pid_t producer = spawn_claim_holder(group, name.str(), "mpmc.push.claimed");  // position 0
    ASSERT_TRUE(q.try_push(200));  // positions 1 and 2, behind the claim
    ASSERT_TRUE(q.try_push(300));
    shared_block<std::atomic<std::uint64_t>> got;
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        *got = in.pop();  // position 0 is being written by a live producer: sleeps
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 1; }));
    group.kill(producer);
    // This process, a consumer that joined long ago, meets the dead claim
    // first and releases it; it takes one element, the sleeper the other.
    const auto mine = q.try_pop_for(5s);
    ASSERT_TRUE(mine.has_value());
    EXPECT_EQ(group.wait(consumer, std::chrono::seconds(10)), child_ok)
        << "the consumer asleep behind the dead claim was not woken by its release";
    EXPECT_EQ(*mine + got->load(), 500u) << "each took one of 200 and 300: " << *mine << ", " << got->load();
}

TEST(StructureFaults, MpmcProducerAsleepBehindADeadConsumersClaimIsWokenByItsRelease) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 2, patient);
    ASSERT_TRUE(q.try_push(1));
    ASSERT_TRUE(q.try_push(2));
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    const pid_t consumer = spawn_claim_holder(group, name.str(), "mpmc.pop.claimed");  // position 0
    ASSERT_EQ(q.try_pop(), 2u);  // walks past the claim: slot 1 is free, but position 2 comes first
    pid_t producer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc out(shmds::open_only, mine, "q", patient);
        out.push(10);  // position 2's slot is still being read by a live consumer: sleeps
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_full) == 1; }));
    group.kill(consumer);
    // This process meets the dead claim as a consumer (nothing to take yet)
    // and releases it; only that release can wake the producer.
    const auto taken = q.try_pop_for(5s);
    EXPECT_EQ(group.wait(producer, std::chrono::seconds(10)), child_ok)
        << "the producer asleep behind the dead claim was not woken by its release";
    std::vector<std::uint64_t> rest = drain(q);
    if (taken) rest.insert(rest.begin(), *taken);
    EXPECT_EQ(rest, (std::vector<std::uint64_t>{10})) << "the dead consumer's element is the only one lost";
}

/// Counts the sleepers' announcements in this process (the fault point
/// "wait.announced": a sleeper about to pay for a system-wide barrier).
std::atomic<int> announcements{0};
void count_announcements(const char* point) {
    if (std::strcmp(point, "wait.announced") == 0) ++announcements;
}

template <class S>
void expect_polls_never_announce(const shmds::wait_options& wait) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    S s(seg, "s", 2, wait);
    shmds::detail::fault_hook = count_announcements;
    announcements = 0;
    EXPECT_FALSE(s.try_pop_for(0ms));
    EXPECT_FALSE(s.try_pop_for(-5ms));
    EXPECT_FALSE(s.try_pop_for(std::chrono::nanoseconds::min()));
    ASSERT_TRUE(s.try_push(1));
    ASSERT_TRUE(s.try_push(2));
    EXPECT_FALSE(s.try_push_for(3, 0ms));
    EXPECT_FALSE(s.try_push_for(3, -1s));
    EXPECT_EQ(s.try_pop_for(0ms), 2u - (std::is_same_v<S, cstack> ? 0u : 1u)) << "an element ready is taken";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(announcements.load(), 0) << "a poll with no time to wait announced itself as a sleeper";
    // A real wait still announces (the counter works).
    shmds::detail::fault_hook = count_announcements;
    EXPECT_TRUE(s.try_pop_for(0ms));
    EXPECT_FALSE(s.try_pop_for(1ms));
    shmds::detail::fault_hook = nullptr;
    EXPECT_GE(announcements.load(), wait.strategy == shmds::wait_strategy::spin ? 0 : 1);
}

TEST(StructureFaults, PollingWithAZeroOrExpiredTimeoutNeverAnnouncesASleeper) {
    for (auto strategy :
         {shmds::wait_strategy::spin, shmds::wait_strategy::spin_then_sleep, shmds::wait_strategy::sleep}) {
        SCOPED_TRACE(static_cast<int>(strategy));
        const shmds::wait_options wait{.strategy = strategy, .spin_for = 100us};
        expect_polls_never_announce<spsc>(wait);
        expect_polls_never_announce<mpmc>(wait);
        expect_polls_never_announce<cstack>(wait);
    }
}

/// Counts, in this process, the wakers that fenced for real because a
/// sleeper could not use membarrier (the fault point "wake.fenced").
std::atomic<int> fenced_wakes{0};
void count_fenced_wakes(const char* point) {
    if (std::strcmp(point, "wake.fenced") == 0) ++fenced_wakes;
}

TEST(StructureFaults, WakersFenceForASleeperThatCannotUseMembarrier) {
    // This process can use membarrier, so as a waker it pays only a compiler
    // barrier. The child cannot (a seccomp policy refuses it after it
    // registered): its sleep fences only itself, so its wakers must fence
    // for real from then on, on that channel and no other.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 4, patient);
    mpmc other(seg, "other", 4, patient);
    (void)q.try_pop();  // registers this process (and the child, by inheritance) for membarrier
    auto* control = mpmc_control_of(seg);
    shared_block<std::atomic<int>> seccomp;  // 1: membarrier forbidden, 2: no seccomp here
    shmds_test::process_group group;
    pid_t sleeper = group.spawn([&] {
        if (!shmds_test::forbid_membarrier()) {
            *seccomp = 2;
            ::_exit(shmds_test::child_unsupported);
        }
        *seccomp = 1;
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        CHILD_CHECK(in.pop() == 7u);
    });
    ASSERT_TRUE(wait_until([&] { return seccomp->load() != 0; }));
    if (seccomp->load() == 2)
        GTEST_SKIP() << shmds_test::unresolved(
            "no seccomp here to forbid membarrier (PR_SET_SECCOMP refused)");
    // Participants 0..63 sleep in the first word of the set (the fence bit is
    // the last of the second); then give the sleeper time to reach its futex.
    ASSERT_TRUE(wait_until([&] { return control->not_empty.sleepers[0].load() != 0; }));
    std::this_thread::sleep_for(100ms);
    shmds::detail::fault_hook = count_fenced_wakes;
    fenced_wakes = 0;
    ASSERT_TRUE(other.try_push(1));
    EXPECT_EQ(fenced_wakes.load(), 0) << "a channel nobody fenceless sleeps on costs its wakers no fence";
    ASSERT_TRUE(q.try_push(7));
    EXPECT_GE(fenced_wakes.load(), 1) << "the waker did not fence for a sleeper that could not reach it";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(group.wait(sleeper, std::chrono::seconds(20)), child_ok) << "the sleeper was not woken";
}

// ---- MPMC batches cut short by an error ---------------------------------------------------------

/// Throws corrupted_error, as a walk that meets a damaged slot does, the
/// `nth` time `point` is reached in this process.
struct throw_plan {
    const char* point = nullptr;
    int nth = 0;
    int seen = 0;
} thrower;

void throwing_hook(const char* point) {
    if (thrower.point && std::strcmp(point, thrower.point) == 0 && ++thrower.seen == thrower.nth)
        throw shmds::corrupted_error("(test) a damaged slot met by the walk");
}

void throw_at(const char* point, int nth) {
    thrower = {point, nth, 0};
    shmds::detail::fault_hook = throwing_hook;
}

TEST(StructureFaults, MpmcBatchesCutShortByAnErrorReportAndWakeForWhatTheyMoved) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    mpmc q(seg, "q", 8, patient);
    auto* control = mpmc_control_of(seg);
    shmds_test::process_group group;
    pid_t consumer = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        mpmc in(shmds::open_only, mine, "q", patient);
        CHILD_CHECK(in.pop() == 1u);
        CHILD_CHECK(in.pop() == 2u);
    });
    ASSERT_TRUE(wait_until([&] { return sleepers_on(control->not_empty) == 1; }));
    const std::uint64_t items[] = {1, 2, 3, 4};
    throw_at("mpmc.push.walk", 3);
    EXPECT_EQ(q.try_push_n(items, 4), 2u) << "the two pushed before the error are reported, not thrown away";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(group.wait(consumer, std::chrono::seconds(20)), child_ok)
        << "nobody woke the sleeping consumer";

    ASSERT_EQ(q.try_push_n(items, 3), 3u);
    std::uint64_t out[4] = {};
    throw_at("mpmc.pop.walk", 3);
    EXPECT_EQ(q.try_pop_n(out, 4), 2u) << "the two taken before the error are returned, not lost";
    shmds::detail::fault_hook = nullptr;
    EXPECT_EQ(out[0], 1u);
    EXPECT_EQ(out[1], 2u);
    EXPECT_EQ(q.try_pop(), 3u);

    throw_at("mpmc.push.walk", 1);
    EXPECT_THROW((void)q.try_push_n(items, 4), shmds::corrupted_error)
        << "an error before any move is thrown";
    throw_at("mpmc.pop.walk", 1);
    EXPECT_THROW((void)q.try_pop_n(out, 4), shmds::corrupted_error);
    shmds::detail::fault_hook = nullptr;
    EXPECT_TRUE(q.empty());
}

// ---- fork() racing with the steps that take a lock ------------------------------------------------

/// In a process with a second thread: `join` runs in the thread and stalls at
/// `point` (armed here); while it stalls, this thread forks a child that
/// lives for a minute doing nothing (as an unrelated helper would). Returns
/// the helper's pid.
pid_t fork_while_stalled_at(const char* point, const std::function<void()>& join) {
    std::atomic<int> reached{0};
    arm(point, true, 300ms, &reached);
    std::thread joiner(join);
    while (reached.load() == 0) std::this_thread::sleep_for(1ms);
    const pid_t helper = shmds_test::fork_idle_helper(60s);
    joiner.join();
    return helper;
}

TEST(StructureFaults, AForkWhileAParticipantLockIsTakenDoesNotHandTheLockToTheChild) {
    // The SPSC producer role, and an MPMC participant id, are kernel locks on
    // the process's own open file description. A fork() by another thread
    // between taking one and registering it for the fork handler gave the
    // child a copy of the lock: after the parent died, its role looked alive
    // for as long as the unrelated child lived.
    for (const bool kill_instead_of_leave : {true, false}) {
        SCOPED_TRACE(kill_instead_of_leave ? "the joiner is killed" : "the joiner leaves");
        unique_segment_name name;
        shared_block<std::atomic<int>> joined;
        shared_block<pid_t> helpers(2);
        shmds_test::process_group group;
        pid_t joiner = group.spawn([&] {
            shmds::posix_shm mine(name.str(), 1 << 20);
            spsc p(mine, "q", 4);
            mpmc m(mine, "m", 4);
            helpers[0] = fork_while_stalled_at("participant.lock.taken", [&] { CHILD_CHECK(p.try_push(1)); });
            // joins the MPMC queue as participant 0
            helpers[1] = fork_while_stalled_at("participant.lock.taken", [&] { CHILD_CHECK(!m.try_pop()); });
            if (!kill_instead_of_leave) {
                p.release_roles();
                m.leave();
            }
            *joined = 1;
            for (;;) ::pause();
        });
        ASSERT_TRUE(wait_until([&] { return joined->load() == 1; }));
        shmds::posix_shm seg(name.str());
        if (kill_instead_of_leave) group.kill(joiner);
        spsc successor(seg, "q");
        EXPECT_NO_THROW(EXPECT_TRUE(successor.try_push(2))) << "the producer role stayed with the helper";
        const auto participant0 = shmds::detail::participant_lock_offset(seg.table().find("m")->serial, 0);
        EXPECT_FALSE(shmds::detail::participant_alive(seg.native_attachment()->fd, participant0))
            << "the MPMC participant id stayed alive in the helper";
        for (std::size_t h = 0; h < 2; ++h) shmds_test::kill_and_reap(helpers[h]);
    }
}

class ForkWhileAttaching : public ::testing::TestWithParam<const char*> {};

TEST_P(ForkWhileAttaching, TheChildGetsNoneOfTheAttachersLocks) {
    // The same race for the segment's locks (its flock, which decides the
    // last detach, and its attach slot, which counts it): a child forked
    // between taking them and the attachment's registration kept them after
    // the attacher died, and the last real detacher could not remove the
    // name.
    unique_segment_name name;
    shared_block<std::atomic<int>> go;
    shared_block<std::atomic<int>> done;
    shared_block<pid_t> helper;
    shmds_test::process_group group;
    // Forked before this process attaches, so the helper inherits no
    // attachment of its own (which would rightly count).
    pid_t attacher = group.spawn([&] {
        while (go->load() == 0) std::this_thread::sleep_for(1ms);
        std::optional<shmds::posix_shm> mine;
        *helper = fork_while_stalled_at(GetParam(), [&] { mine.emplace(name.str()); });
        *done = 1;
        for (;;) ::pause();  // killed while attached
    });
    auto seg = std::make_unique<shmds::posix_shm>(name, 1 << 16);
    *go = 1;
    ASSERT_TRUE(wait_until([&] { return done->load() == 1; }));
    group.kill(attacher);
    EXPECT_EQ(seg->attach_count(), 1u) << "the helper holds the attacher's slot";
    seg.reset();
    EXPECT_FALSE(shm_name_exists(name.str())) << "the helper holds the attacher's lock: the name stayed";
    shmds_test::kill_and_reap(*helper);
}

INSTANTIATE_TEST_SUITE_P(StructureFaults, ForkWhileAttaching,
                         ::testing::Values("segment.attach.locked", "segment.attach.slot_taken"),
                         test_name_of);

// ---- a lock's kind word written over while the lock is held -----------------------------------

/// Holds the lock at `point` (a fault point inside it) in a child, writes a
/// priority-protection kind over the lock's kind word meanwhile, and lets the
/// child go on to unlock. glibc trusts that word at the unlock too: taken
/// down the priority-protection path, it aborts on an assertion.
void expect_unlock_survives_a_kind_written_over(
    const unique_segment_name& name, const char* point,
    const std::function<void(shmds::posix_shm&)>& locked_operation, pthread_mutex_t* mutex) {
    shared_block<std::atomic<int>> holding;
    shmds_test::process_group group;
    pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        arm(point, true, 300ms, &*holding);
        locked_operation(mine);
    });
    ASSERT_TRUE(wait_until([&] { return holding->load() == 1; }));
    const int kind = mutex->__data.__kind;
    mutex->__data.__kind = kind ^ 0x50;  // robust bit off, priority-protection bit on
    EXPECT_EQ(group.wait(holder), child_ok) << "the holder's unlock aborted (134 is SIGABRT)";
    EXPECT_EQ(mutex->__data.__kind, kind) << "the kind word was put back";
}

TEST(StructureFaults, ALockKindWrittenOverWhileHeldIsPutBackBeforeTheUnlock) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    auto* control = reinterpret_cast<shmds::detail::concurrent_stack_control*>(
        static_cast<std::byte*>(seg.base()) + seg.table().find("s")->offset);
    expect_unlock_survives_a_kind_written_over(
        name, "stack.push.written",
        [](shmds::posix_shm& mine) { CHILD_CHECK(cstack(mine, "s").try_push(1)); }, &control->mutex);
    EXPECT_EQ(s.try_pop(), 1u);
    EXPECT_TRUE(s.try_push(2)) << "the lock still works";

    auto* header = static_cast<shmds::detail::segment_header*>(seg.base());
    expect_unlock_survives_a_kind_written_over(
        name, "table.create.block_taken",
        [](shmds::posix_shm& mine) { shmds::shm_array<int> a(mine, "a", 4); }, &header->table_mutex);
    EXPECT_TRUE(seg.contains("a"));
    shmds::shm_array<int> b(seg, "b", 4);
    EXPECT_EQ(seg.table().size(), 3u) << "the table lock still works";
}

// ---- listing -----------------------------------------------------------------------------------

/// A segment name that sorts before every other shmds segment, so that a
/// listing meets it first (and stalls there); removed at the end.
struct listed_first_name {
    std::string name = "/--shmds-test-" + std::to_string(::getpid()) + "-listed-first";
    ~listed_first_name() { shmds::posix_shm::remove(name); }
};

TEST(StructureFaults, ListingNeverRemovesASegmentWhoseLastAttacherDiesMeanwhile) {
    // The listing counts a segment's attachers, then looks inside to read its
    // table. If the last attacher dies in between, that look must not take
    // the segment for stale and remove it: listing removes nothing.
    const listed_first_name first;
    const std::string& name = first.name;
    shared_block<std::atomic<int>> ready;
    shared_block<std::atomic<int>> counted;
    shared_block<std::atomic<int>> go_on;
    shared_block<std::atomic<int>> listed_status;
    shmds_test::process_group group;
    pid_t holder = group.spawn([&] {
        shmds::posix_shm seg(name, 1 << 16);
        shmds::shm_array<int> a(seg, "a", 4);
        *ready = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return ready->load() == 1; }));
    pid_t lister = group.spawn([&] {
        arm_until("directory.list.counted", &*counted, &*go_on);
        for (const auto& s : shmds::list_segments())
            if (s.name == name) *listed_status = 1 + static_cast<int>(s.status);
    });
    ASSERT_TRUE(wait_until([&] { return counted->load() == 1; }));
    group.kill(holder);
    *go_on = 1;
    ASSERT_EQ(group.wait(lister), child_ok);
    EXPECT_TRUE(shm_name_exists(name)) << "the listing removed the segment";
    EXPECT_EQ(listed_status->load(), 1 + static_cast<int>(shmds::segment_status::stale))
        << "listed as stale: its last attacher died while it was being listed";
    notices().clear();
    shmds::posix_shm again(name, 1 << 16, {.notice = record_notice});
    EXPECT_TRUE(again.created()) << "the stale segment is left for the next opener to reclaim";
    EXPECT_EQ(notices().size(), 1u);
}

TEST(StructureFaults, AListingInProgressIsNotCountedAndDoesNotHoldOffTheLastDetach) {
    // While a listing looks inside a live segment, the segment's own
    // processes see their true count, and the last of them to detach removes
    // the name, as without the listing.
    const listed_first_name first;
    const std::string& name = first.name;
    shared_block<std::atomic<int>> go;
    shared_block<std::atomic<int>> inside;
    shared_block<std::atomic<int>> go_on;
    shared_block<std::atomic<int>> structures_seen;
    shmds_test::process_group group;
    // Forked before this process attaches: a child that inherited the
    // attachment would rightly count, and hold off the last detach.
    pid_t lister = group.spawn([&] {
        CHILD_CHECK(wait_until([&] { return go->load() == 1; }));
        arm_until("directory.list.attached", &*inside, &*go_on);
        for (const auto& s : shmds::list_segments())
            if (s.name == name) *structures_seen = static_cast<int>(s.structures.size());
    });
    auto seg = std::make_unique<shmds::posix_shm>(name, 1 << 16);
    shmds::shm_array<int> a(*seg, "a", 4);
    *go = 1;
    ASSERT_TRUE(wait_until([&] { return inside->load() == 1; }));
    EXPECT_EQ(seg->attach_count(), 1u) << "the listing counted as an attacher";
    seg.reset();
    EXPECT_FALSE(shm_name_exists(name)) << "the listing held off the last detacher's removal";
    *go_on = 1;
    ASSERT_EQ(group.wait(lister), child_ok);
    EXPECT_EQ(structures_seen->load(), 1) << "the listing still read the table it had mapped";
}

}  // namespace structure_faults

}  // namespace
