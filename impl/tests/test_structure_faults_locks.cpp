// Locks taken by the structures and the segment, with faults injected
// (SHMDS_FAULT_INJECTION): a fork() while a participant lock or the
// segment's attach locks are being taken does not hand them to the child; the
// table lock's kind word written over while held is put back before the
// unlock; the concurrent stack's lock is taken over from a dead holder
// (asleep on it, or joining under its id), never from a live one, and a
// damaged lock word is refused; a listing never removes a segment whose last attacher dies meanwhile, and
// does not count as an attacher.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/segment_directory.hpp>
#include <shmds/shmds.hpp>

#include "fault_injection.hpp"
#include "support.hpp"

namespace {

using namespace shmds_faults;

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
    auto* header = static_cast<shmds::detail::segment_header*>(seg.base());
    expect_unlock_survives_a_kind_written_over(
        name, "table.create.block_taken",
        [](shmds::posix_shm& mine) { shmds::shm_array<int> a(mine, "a", 4); }, &header->table_mutex);
    EXPECT_TRUE(seg.contains("a"));
    shmds::shm_array<int> b(seg, "b", 4);
    EXPECT_EQ(seg.table().size(), 2u) << "the table lock still works";
}

// ---- the concurrent stack's lock (detail/participant_mutex.hpp) --------------------------------

/// The stack's lock word, in this process's mapping.
std::atomic<std::uint32_t>& stack_lock_word(shmds::posix_shm& seg, const char* name) {
    auto* control = reinterpret_cast<shmds::detail::concurrent_stack_control*>(
        static_cast<std::byte*>(seg.base()) + seg.table().find(name)->offset);
    return control->lock;
}

TEST(StructureFaults, AStackLockWaiterAsleepWhenItsHolderIsKilledTakesTheLockOver) {
    // A live holder keeps the waiter out for as long as it lives; killed, it
    // is found dead by its participant lock and the waiter carries on, long
    // before its lock timeout (5 s) would have ended it with timeout_error.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    shared_block<std::atomic<int>> holding;
    shared_block<std::atomic<int>> waiter_done;
    shmds_test::process_group group;
    const pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        cstack c(mine, "s");
        arm("stack.push.written", true, 60s, &*holding);
        (void)c.try_push(99);
    });
    ASSERT_TRUE(wait_until([&] { return holding->load() == 1; }));
    const pid_t waiter = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        cstack c(mine, "s");
        CHILD_CHECK(c.try_push(2));
        waiter_done->store(1);
    });
    std::this_thread::sleep_for(100ms);  // the waiter is asleep on the lock
    EXPECT_EQ(waiter_done->load(), 0) << "the waiter took the lock from a live holder";
    group.kill(holder);
    EXPECT_EQ(group.wait(waiter), child_ok);
    EXPECT_EQ(waiter_done->load(), 1);
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{2, 1})) << "the killed holder's push never counted";
}

TEST(StructureFaults, AStackLockHeldByALiveStalledProcessTimesOutAndIsNotTaken) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.timeout = 100ms});
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    shared_block<std::atomic<int>> holding;
    shared_block<std::atomic<int>> release;
    shmds_test::process_group group;
    const pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        cstack c(mine, "s");
        arm_until("stack.push.written", &*holding, &*release);
        CHILD_CHECK(c.try_push(2));
    });
    ASSERT_TRUE(wait_until([&] { return holding->load() == 1; }));
    try {
        (void)s.try_push(3);
        ADD_FAILURE() << "a push got the lock its live holder held";
    } catch (const shmds::timeout_error& e) {
        EXPECT_NE(std::string(e.what()).find("stopped or stuck"), std::string::npos) << e.what();
    }
    EXPECT_EQ(s.lock_recoveries(), 0u);
    release->store(1);
    EXPECT_EQ(group.wait(holder), child_ok);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{2, 1}));
}

TEST(StructureFaults, AHandleJoiningUnderADeadHoldersIdFreesTheStackLock) {
    // The new handle gets the dead holder's id (the lowest free one): no
    // live process holds that id's participant lock, so the word naming it
    // can only be stale. Without freeing it at the join, the handle would
    // wait for itself until its timeout.
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.timeout = 300ms});
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));  // participant 0
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  cstack c(mine, "s");  // participant 1
                  arm("stack.push.written");
                  (void)c.try_push(99);
              })),
              killed);
    EXPECT_EQ(stack_lock_word(seg, "s").load() & shmds::detail::mutex_holder_mask, 2u)
        << "participant 1 holds it";
    cstack fresh(seg, "s");
    EXPECT_NO_THROW(EXPECT_TRUE(fresh.try_push(2)));
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{2, 1}));
}

TEST(StructureFaults, AStackLockWordWrittenOverIsRefusedOrTakenOver) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.timeout = 300ms});
    cstack s(seg, "s", 8);
    ASSERT_TRUE(s.try_push(1));
    auto& word = stack_lock_word(seg, "s");
    // What the lock never writes: stray bits, or a holder no id can be.
    for (const std::uint32_t garbage : {0xffff'ffffu, 0x4000'0001u, 0x0000'0100u, 0x8000'0080u}) {
        SCOPED_TRACE(garbage);
        word.store(garbage);
        try {
            (void)s.try_push(2);
            ADD_FAILURE() << "a damaged lock word was taken";
        } catch (const shmds::corrupted_error& e) {
            EXPECT_NE(std::string(e.what()).find("lock word"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("'s'"), std::string::npos) << e.what();
        }
        EXPECT_EQ(word.load(), garbage) << "a refused word is left as found";
    }
    // A holder id that no live participant has, marked contended: taken over.
    word.store(shmds::detail::mutex_contended | 51);
    EXPECT_NO_THROW(EXPECT_TRUE(s.try_push(2)));
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(word.load(), 0u) << "unlocked after the push";
    // Marked contended but free (the mark a waiter leaves): an ordinary lock.
    word.store(shmds::detail::mutex_contended);
    EXPECT_NO_THROW(EXPECT_EQ(s.try_pop(), 2u));
    EXPECT_EQ(s.lock_recoveries(), 1u);
    EXPECT_EQ(drain(s), (std::vector<std::uint64_t>{1})) << "nothing stored was lost";
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

}  // namespace
