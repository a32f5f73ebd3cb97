// Behaviour across real processes: fork()ed children and exec()ed peers that
// attach by name, reference counting and cleanup (including after SIGKILL),
// racing creators, a table lock holder that dies or stops, dead creators and
// orphaned segments, a full /dev/shm, and another user's access.
#include <sched.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
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
using shmds_test::run_command;
using shmds_test::shared_block;
using shmds_test::shm_name_exists;
using shmds_test::spawn;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;
using shmds_test::wait_until;

// ---- an exec()ed peer --------------------------------------------------------------------

/// Runs one of this build's programs (under the emulator in a cross build).
shmds_test::command_result run_program(const std::string& program, const std::vector<std::string>& args) {
    return run_command(shmds_test::program_command(program, args));
}

shmds_test::command_result run_peer(const std::vector<std::string>& args) {
    return run_program(SHMDS_TEST_PEER, args);
}

TEST(CrossProcess, ExecedPeerReadsAndWritesByName) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<std::int64_t> values(seg, "values", 1000);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::int64_t>(i * 3);
    auto sum = run_peer({"sum-array", name.str(), "values"});
    EXPECT_EQ(sum.status, 0);
    EXPECT_EQ(sum.output, "1498500 1000\n");

    shmds::shm_queue<std::int64_t> queue(seg, "queue", 100);
    EXPECT_EQ(run_peer({"push-queue", name.str(), "queue", "100"}).status, 0);
    EXPECT_EQ(queue.size(), 100u);
    for (std::int64_t i = 0; i < 100; ++i) ASSERT_EQ(queue.pop(), i);

    for (std::int64_t i = 0; i < 10; ++i) queue.push(i * i);
    auto popped = run_peer({"pop-all", name.str(), "queue"});
    EXPECT_EQ(popped.output, "10 285\n");
    EXPECT_TRUE(queue.empty());

    auto wrong = run_peer({"sum-array", name.str(), "queue"});
    EXPECT_EQ(wrong.status, 3) << "a queue opened as an array must be refused in the peer too";
    EXPECT_EQ(seg.attach_count(), 1u) << "every peer detached";
}

TEST(Inspect, ListsStructuresAndFlagsSharedLines) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<char> a(seg, "small-a", 1);
    shmds::shm_queue<int> q(seg, "jobs", 4);
    shmds::shm_array<char> b(seg, "small-b", 1);
    auto report = run_program(SHMDS_INSPECT, {name.str()});
    EXPECT_EQ(report.status, 0) << report.output;
    for (const char* expected :
         {"small-a", "jobs", "small-b", "shm_queue", "no two structures share a 64-byte line"})
        EXPECT_NE(report.output.find(expected), std::string::npos) << expected << "\n" << report.output;
    // With 128-byte pairs as the unit, 64-byte-aligned neighbours do share.
    report = run_program(SHMDS_INSPECT, {name.str(), "--line", "128"});
    EXPECT_EQ(report.status, 1) << report.output;
    EXPECT_NE(report.output.find("SHARED LINE"), std::string::npos) << report.output;
    // ... which is what alignment = 128 is for.
    unique_segment_name paired;
    shmds::posix_shm seg128(paired, 1 << 20, {.alignment = 128});
    shmds::shm_array<char> c(seg128, "c", 1);
    shmds::shm_array<char> d(seg128, "d", 1);
    EXPECT_EQ(run_program(SHMDS_INSPECT, {paired.str(), "--line", "128"}).status, 0);
    EXPECT_EQ(run_program(SHMDS_INSPECT, {"/shmds-no-such-segment"}).status, 2);
}

// ---- fork()ed children -------------------------------------------------------------------

TEST(CrossProcess, ChildDiscoversWhatParentCreated) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<double> prices(seg, "prices", 1000);
    for (std::size_t i = 0; i < 1000; ++i) prices[i] = 0.5 * static_cast<double>(i);
    shmds::shm_queue<int> jobs(seg, "jobs", 64);
    for (int i = 0; i < 50; ++i) jobs.push(i);
    shmds::shm_stack<int> undo(seg, "undo", 16);
    undo.push(7);
    undo.push(8);

    int status = wait_child(spawn([&] {
        shmds::posix_shm mine(name.str());  // its own attachment, by name
        CHILD_CHECK(mine.segment_id() == seg.segment_id());
        shmds::shm_array<double> p(mine, "prices");
        CHILD_CHECK(p.size() == 1000);
        for (std::size_t i = 0; i < 1000; ++i) CHILD_CHECK(p[i] == 0.5 * static_cast<double>(i));
        p[0] = -1.0;
        shmds::shm_queue<int> q(mine, "jobs");
        for (int i = 0; i < 25; ++i) CHILD_CHECK(q.pop() == i);
        q.push(1000);
        shmds::shm_stack<int> s(mine, "undo");
        CHILD_CHECK(s.pop() == 8);
        s.push(9);
    }));
    ASSERT_EQ(status, child_ok);
    EXPECT_EQ(prices[0], -1.0);
    EXPECT_EQ(jobs.size(), 26u);
    EXPECT_EQ(jobs.front(), 25);
    EXPECT_EQ(undo.pop(), 9);
    EXPECT_EQ(undo.pop(), 7);
    EXPECT_EQ(seg.attach_count(), 1u);
}

// A child forked while the parent's SPSC producer handle is in use drops its
// copy of that handle: the role stays the parent's, and a third process that
// asks for it is told so, with the parent's pid (the pid is recorded for
// that message, and only its owner may clear it).
TEST(CrossProcess, AForkedChildDroppingItsCopyOfAProducerLeavesTheRoleAndItsPid) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    std::optional<shmds::shm_spsc_queue<int>> producer(std::in_place, seg, "q", 8);
    ASSERT_TRUE(producer->try_push(1));  // takes the role
    ASSERT_EQ(wait_child(spawn([&] { producer.reset(); })), child_ok);
    ASSERT_TRUE(producer->try_push(2));
    const std::string parent = std::to_string(::getpid());
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  shmds::shm_spsc_queue<int> other(mine, "q");
                  try {
                      (void)other.try_push(3);
                      CHILD_CHECK(false);  // took a live producer's role
                  } catch (const shmds::role_error& e) {
                      CHILD_CHECK(std::string(e.what()).find("(pid " + parent + ")") != std::string::npos);
                  }
              })),
              child_ok);
    shmds::shm_spsc_queue<int> consumer(seg, "q");
    EXPECT_EQ(consumer.try_pop(), std::optional<int>(1));
    EXPECT_EQ(consumer.try_pop(), std::optional<int>(2));
    EXPECT_EQ(consumer.try_pop(), std::nullopt);
}

TEST(CrossProcess, ChildCreatesParentDiscovers) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  shmds::shm_array<int> a(mine, "from-child", 10);
                  CHILD_CHECK(a.created());
                  a.fill(42);
              })),
              child_ok);
    shmds::shm_array<int> a(seg, "from-child");
    EXPECT_EQ(a[9], 42);
}

TEST(Cleanup, LastDetachAcrossProcessesRemovesTheName) {
    unique_segment_name name;
    shared_block<std::atomic<int>> step;
    std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
    pid_t child = spawn([&] {
        seg.reset();  // drop the inherited handle: the child attaches by name only
        shmds::posix_shm mine(name.str());
        *step = 1;
        CHILD_CHECK(wait_until([&] { return step->load() == 2; }));
    });
    ASSERT_TRUE(wait_until([&] { return step->load() == 1; }));
    EXPECT_EQ(seg->attach_count(), 2u);
    seg.reset();  // the parent detaches first: the child still holds it
    EXPECT_TRUE(shm_name_exists(name.str()));
    *step = 2;
    EXPECT_EQ(wait_child(child), child_ok);
    EXPECT_FALSE(shm_name_exists(name.str())) << "the child's detach was the last";
}

TEST(Cleanup, KilledChildDoesNotKeepTheSegmentAlive) {
    unique_segment_name name;
    shared_block<std::atomic<int>> attached;
    std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
    pid_t child = spawn([&] {
        seg.reset();
        shmds::posix_shm mine(name.str());
        shmds::shm_array<int> a(mine, "a", 4);
        *attached = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return attached->load() == 1; }));
    EXPECT_EQ(seg->attach_count(), 2u);
    ::kill(child, SIGKILL);
    EXPECT_EQ(wait_child(child), 128 + SIGKILL);
    EXPECT_EQ(seg->attach_count(), 1u) << "the kernel dropped the dead child's lock";
    seg.reset();
    EXPECT_FALSE(shm_name_exists(name.str()));
}

TEST(Cleanup, KilledExecedPeerDoesNotKeepTheSegmentAlive) {
    unique_segment_name name;
    std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
    int to_peer[2];
    int from_peer[2];
    ASSERT_EQ(::pipe(to_peer), 0);
    ASSERT_EQ(::pipe(from_peer), 0);
    pid_t pid = shmds_test::exec_child(shmds_test::program_command(SHMDS_TEST_PEER, {"hold", name.str()}),
                                       to_peer[0], from_peer[1], {to_peer[1], from_peer[0]});
    ::close(to_peer[0]);
    ::close(from_peer[1]);
    char buffer[16] = {};
    EXPECT_GT(::read(from_peer[0], buffer, sizeof buffer - 1), 0);
    EXPECT_STREQ(buffer, "attached\n");
    EXPECT_EQ(seg->attach_count(), 2u);
    ::kill(pid, SIGKILL);
    EXPECT_EQ(wait_child(pid), 128 + SIGKILL);
    ::close(to_peer[1]);
    ::close(from_peer[0]);
    seg.reset();
    EXPECT_FALSE(shm_name_exists(name.str()));
}

TEST(Cleanup, HandleInheritedByForkCountsInBothProcesses) {
    unique_segment_name name;
    shared_block<std::atomic<int>> step;
    std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
    shmds::shm_array<int> a(*seg, "a", 1);
    pid_t child = spawn([&] {
        // Uses the handle it inherited, without opening anything itself.
        shmds::shm_array<int> mine(*seg, "a");
        *step = 1;
        CHILD_CHECK(wait_until([&] { return step->load() == 2; }));
        CHILD_CHECK(mine[0] == 5);
        CHILD_CHECK(seg->attach_count() == 1);  // the parent has gone
        seg.reset();                            // the last detach
    });
    ASSERT_TRUE(wait_until([&] { return step->load() == 1; }));
    EXPECT_EQ(seg->attach_count(), 2u);
    a[0] = 5;
    seg.reset();
    EXPECT_TRUE(shm_name_exists(name.str())) << "the child's inherited handle still holds the segment";
    *step = 2;
    EXPECT_EQ(wait_child(child), child_ok);
    EXPECT_FALSE(shm_name_exists(name.str()));
}

TEST(Cleanup, AParentKilledWhileItsForkedChildLivesStopsCountingAtOnce) {
    // The child inherits the parent's mapping. A mapping holds the file
    // description it was made through; had that been the description the
    // parent's locks are on, the dead parent would go on counting as
    // attached (and holding its attach slot) for as long as the child lived.
    unique_segment_name name;
    shared_block<std::atomic<int>> parent_dead;
    shared_block<std::atomic<int>> child_running;
    shared_block<std::atomic<int>> step;
    shmds_test::process_group group;
    pid_t parent = group.spawn([&] {
        std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
        shmds::shm_array<int> a(*seg, "a", 4);
        const pid_t child = ::fork();
        if (child == 0) {
            // Past fork(), so its child handler has run: until then the child
            // holds a copy of the parent's locked description (fork_guard.hpp),
            // and a parent killed in that window counts until the child runs.
            *child_running = 1;
            CHILD_CHECK(wait_until([&] { return parent_dead->load() == 1; }));
            CHILD_CHECK(seg->attach_count() == 2);  // itself and the observer
            CHILD_CHECK(a[0] == 7);
            *step = 2;
            CHILD_CHECK(wait_until([&] { return step->load() == 3; }));
            seg.reset();  // the last detach
            ::_exit(child_ok);
        }
        a[0] = 7;
        if (!wait_until([&] { return child_running->load() == 1; })) ::_exit(1);
        *step = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return step->load() == 1; }));
    {
        shmds::posix_shm observer(name.str());
        EXPECT_EQ(observer.attach_count(), 3u) << "parent, child, and this observer";
        group.kill(parent);
        EXPECT_EQ(observer.attach_count(), 2u) << "the killed parent still counts";
        const auto listing = shmds::list_segments();
        for (const auto& s : listing) {
            if (s.name == name.str()) {
                EXPECT_EQ(s.attachers, 2u) << "listed";
            }
        }
        *parent_dead = 1;
        ASSERT_TRUE(wait_until([&] { return step->load() == 2; }));
    }
    *step = 3;
    EXPECT_TRUE(wait_until([&] { return !shm_name_exists(name.str()); }))
        << "the child, the last attacher, could not remove the name";
}

TEST(Cleanup, ParentDetachingRightAfterForkLeavesTheChildAttached) {
    // No window in which the child's inherited handle is attached but
    // uncounted: the parent drops its handle at once, many times over.
    for (int round = 0; round < 50; ++round) {
        unique_segment_name name;
        shared_block<std::atomic<int>> go;
        std::optional<shmds::posix_shm> seg(std::in_place, name.str(), 1 << 16);
        pid_t child = spawn([&] {
            CHILD_CHECK(wait_until([&] { return go->load() == 1; }));
            CHILD_CHECK(shm_name_exists(name.str()));
            CHILD_CHECK(seg->attach_count() == 1);
            shmds::posix_shm again(name.str());
            CHILD_CHECK(again.segment_id() == seg->segment_id());
            seg.reset();
        });
        seg.reset();
        *go = 1;
        ASSERT_EQ(wait_child(child), child_ok) << "round " << round;
        EXPECT_FALSE(shm_name_exists(name.str()));
    }
}

TEST(Cleanup, ChildDroppingItsInheritedHandleLeavesTheParentsSegment) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16);
    shared_block<std::atomic<int>> step;
    pid_t child = spawn([&] {
        CHILD_CHECK(seg.attach_count() == 2);
        { shmds::posix_shm dropped = std::move(seg); }  // the child's detach
        *step = 1;
        CHILD_CHECK(wait_until([&] { return step->load() == 2; }));
    });
    ASSERT_TRUE(wait_until([&] { return step->load() == 1; }));
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_EQ(seg.attach_count(), 1u);
    *step = 2;
    EXPECT_EQ(wait_child(child), child_ok);
    EXPECT_TRUE(shm_name_exists(name.str()));
}

/// The columns of `name`'s line in `shmds-inspect --list` output, or none.
std::vector<std::string> listed_columns(const std::string& listing, const std::string& name) {
    std::vector<std::string> columns;
    const auto at = listing.find(name + " ");
    if (at == std::string::npos) return columns;
    std::istringstream line(listing.substr(at, listing.find('\n', at) - at));
    for (std::string column; line >> column;) columns.push_back(column);
    return columns;
}

TEST(Cleanup, AttachersInAnotherPidNamespaceAreCountedAndListed) {
    // /proc/locks lists only locks whose owner is visible in the reader's PID
    // namespace: a process in a container that shares /dev/shm must still
    // count the attachers outside it, and never list their segment as stale.
    const std::string unshare = "/usr/bin/unshare";
    const std::vector<std::string> new_namespace{"--pid", "--fork", "--mount-proc"};
    auto in_namespace = [&](const std::vector<std::string>& command) {
        std::vector<std::string> words{unshare};
        words.insert(words.end(), new_namespace.begin(), new_namespace.end());
        words.insert(words.end(), command.begin(), command.end());
        return run_command(words);
    };
    if (in_namespace({"/bin/true"}).status != 0)
        GTEST_SKIP() << "UNRESOLVED: cannot make a PID namespace here (unshare --pid --fork --mount-proc)";
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16);
    shmds::shm_array<int> a(seg, "a", 4);
    const auto counted = in_namespace(shmds_test::program_command(SHMDS_TEST_PEER, {"count", name.str()}));
    EXPECT_EQ(counted.status, 0);
    EXPECT_EQ(counted.output, "2\n") << "the attacher outside the namespace went uncounted";
    const auto listing = in_namespace(shmds_test::program_command(SHMDS_INSPECT, {"--list"}));
    EXPECT_EQ(listing.status, 0) << listing.output;
    const auto columns = listed_columns(listing.output, name.str());
    ASSERT_GE(columns.size(), 3u) << listing.output;
    EXPECT_EQ(columns[1], "live") << listing.output;
    EXPECT_EQ(columns[2], "1") << "attachers\n" << listing.output;
    EXPECT_EQ(seg.attach_count(), 1u) << "every peer detached";
}

// ---- racing creators -----------------------------------------------------------------------

struct race_board {
    std::atomic<int> arrived;
    std::atomic<int> go;
    std::atomic<int> reported;
    std::atomic<int> leave;
    struct {
        std::uint64_t segment_id;
        int created;
    } seen[8];
};

TEST(Race, EightProcessesCreatingOneNameAgreeOnOneSegment) {
    constexpr int processes = 8;
    constexpr int rounds = 100;
    shared_block<race_board> board;
    for (int round = 0; round < rounds; ++round) {
        unique_segment_name name("race");
        board->arrived = board->go = board->reported = board->leave = 0;
        std::vector<pid_t> children;
        children.reserve(processes);
        for (int i = 0; i < processes; ++i) {
            children.push_back(spawn([&, i] {
                ++board->arrived;
                while (board->go.load() == 0) ::sched_yield();
                shmds::posix_shm seg(name.str(), 1 << 20, {.table_capacity = 16});
                shmds::shm_array<std::uint64_t> ids(seg, "ids", processes);
                shmds::shm_queue<int> q(seg, "q", 4);
                ids[static_cast<std::size_t>(i)] = seg.segment_id();
                board->seen[i].segment_id = seg.segment_id();
                board->seen[i].created = seg.created() ? 1 : 0;
                CHILD_CHECK(seg.table().size() == 2);
                ++board->reported;
                CHILD_CHECK(wait_until([&] { return board->leave.load() == 1; }));
                for (std::size_t j = 0; j < processes; ++j) CHILD_CHECK(ids[j] == seg.segment_id());
            }));
        }
        ASSERT_TRUE(wait_until([&] { return board->arrived.load() == processes; }));
        board->go = 1;
        ASSERT_TRUE(wait_until([&] { return board->reported.load() == processes; })) << "round " << round;
        board->leave = 1;
        int creators = 0;
        for (int i = 0; i < processes; ++i) {
            ASSERT_EQ(wait_child(children[static_cast<std::size_t>(i)]), child_ok) << "round " << round;
            EXPECT_EQ(board->seen[i].segment_id, board->seen[0].segment_id) << "round " << round;
            creators += board->seen[i].created;
        }
        EXPECT_EQ(creators, 1) << "round " << round;
        EXPECT_FALSE(shm_name_exists(name.str())) << "round " << round;
    }
}

TEST(Race, ProcessesCreatingFindingAndDestroyingKeepTheTableConsistent) {
    constexpr int processes = 4;
    constexpr int per_process = 400;
    unique_segment_name name;
    shmds::posix_shm seg(name, 16 << 20, {.table_capacity = 2048});
    const std::size_t free_at_start = seg.table().bytes_free();
    auto own_name = [](int p, int i) { return "p" + std::to_string(p) + "-" + std::to_string(i); };
    auto destroyed = [](int i) { return i % 3 == 1; };  // each process destroys a third of its own
    shared_block<std::atomic<int>> arrived;
    std::vector<pid_t> children;
    children.reserve(processes);
    for (int p = 0; p < processes; ++p) {
        children.push_back(spawn([&, p] {
            shmds::posix_shm mine(name.str());
            ++*arrived;
            while (arrived->load() < processes) ::sched_yield();  // start together
            for (int i = 0; i < per_process; ++i) {
                shmds::shm_array<int> a(mine, own_name(p, i), static_cast<std::size_t>(1 + i % 17));
                CHILD_CHECK(a.created());
                a.fill(p * 100000 + i);
                // Everyone finds-or-creates the same ten queues at once.
                shmds::shm_queue<int> shared(mine, "shared-" + std::to_string(i % 10), 8);
                if (destroyed(i)) mine.destroy(own_name(p, i));
            }
        }));
    }
    for (pid_t child : children) ASSERT_EQ(wait_child(child), child_ok);

    std::size_t expected = 10;
    std::size_t bytes_used = 0;
    for (int p = 0; p < processes; ++p) {
        for (int i = 0; i < per_process; ++i) {
            auto info = seg.table().find(own_name(p, i));
            ASSERT_EQ(info.has_value(), !destroyed(i)) << own_name(p, i);
            if (!info) continue;
            ++expected;
            bytes_used += info->bytes;
            shmds::shm_array<int> a(seg, own_name(p, i));
            ASSERT_EQ(a.size(), static_cast<std::size_t>(1 + i % 17));
            for (int v : a) ASSERT_EQ(v, p * 100000 + i) << own_name(p, i);
        }
    }
    for (int q = 0; q < 10; ++q) {
        auto info = seg.table().find("shared-" + std::to_string(q));
        ASSERT_TRUE(info);
        bytes_used += info->bytes;
    }
    EXPECT_EQ(seg.table().size(), expected);
    EXPECT_EQ(seg.table().list().size(), expected);
    EXPECT_EQ(seg.table().bytes_free() + bytes_used, free_at_start) << "no space lost or counted twice";
}

// ---- the table lock's holder dies or stops -------------------------------------------------

shmds::detail::segment_header& header_of(shmds::posix_shm& seg) {
    return *static_cast<shmds::detail::segment_header*>(seg.base());
}

TEST(RobustLock, HolderKilledMidUpdateIsRecovered) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    a[1] = 11;
    const std::size_t free_before = seg.table().bytes_free();
    const std::size_t structures_before = seg.table().size();
    int status = wait_child(spawn([&] {
        auto& h = header_of(seg);
        CHILD_CHECK(::pthread_mutex_lock(&h.table_mutex) == 0);
        // The state a creator leaves when killed half-way: space taken, an
        // entry claimed, the index touched, nothing published.
        h.table.dirty = 1;
        h.table.heap_top += std::uint64_t{64} * 1024;
        h.table.entries_high_water += 1;
        auto* index =
            reinterpret_cast<std::uint32_t*>(static_cast<std::byte*>(seg.base()) + h.identity.index_offset);
        index[3] = 0xdeadbeef;
        ::raise(SIGKILL);
    }));
    ASSERT_EQ(status, 128 + SIGKILL);
    EXPECT_EQ((shmds::shm_array<int>(seg, "a")[1]), 11) << "what was stored survives";
    EXPECT_EQ(seg.table().size(), structures_before);
    EXPECT_EQ(seg.table().bytes_free(), free_before) << "the dead creator's space was reclaimed";
    shmds::shm_array<int> b(seg, "b", 100);
    EXPECT_EQ(seg.table().size(), structures_before + 1);
    // The lock is healthy again, including for another process.
    EXPECT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str());
                  shmds::shm_array<int> c(mine, "c", 5);
                  CHILD_CHECK(mine.table().size() == 3);
              })),
              child_ok);
}

TEST(RobustLock, HolderKilledBetweenUpdatesNeedsNoRepair) {
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds::shm_array<int> a(seg, "a", 100);
    ASSERT_EQ(wait_child(spawn([&] {
                  CHILD_CHECK(::pthread_mutex_lock(&header_of(seg).table_mutex) == 0);
                  ::raise(SIGKILL);
              })),
              128 + SIGKILL);
    shmds::shm_array<int> b(seg, "b", 100);
    EXPECT_EQ(seg.table().size(), 2u);
}

TEST(RobustLock, StoppedHolderGivesTimeoutNotHang) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.timeout = std::chrono::milliseconds(200)});
    shared_block<std::atomic<int>> locked;
    pid_t child = spawn([&] {
        CHILD_CHECK(::pthread_mutex_lock(&header_of(seg).table_mutex) == 0);
        *locked = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return locked->load() == 1; }));
    auto start = std::chrono::steady_clock::now();
    try {
        shmds::shm_array<int> a(seg, "a", 1);
        ADD_FAILURE() << "took a lock another process holds";
    } catch (const shmds::timeout_error& e) {
        EXPECT_NE(std::string(e.what()).find(name.str()), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20)) << "bounded wait";
    ::kill(child, SIGKILL);
    wait_child(child);
    // The bounded wait above is checked under qemu-user too; the recovery is not.
    SHMDS_UNRESOLVED_UNDER_QEMU_IF(shmds_test::robust_mutexes_unavailable());
    shmds::shm_array<int> a(seg, "a", 1);  // recovered once the holder is dead
    EXPECT_TRUE(a.created());
}

// ---- unfinished and orphaned segments -----------------------------------------------------------

TEST(Stale, SegmentWhoseCreatorDiedBeforeInitialisingIsReclaimed) {
    unique_segment_name name;
    // A creator that died after shm_open and ftruncate, before its header.
    ASSERT_EQ(wait_child(spawn([&] {
                  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
                  CHILD_CHECK(fd >= 0);
                  CHILD_CHECK(::flock(fd, LOCK_SH) == 0);
                  CHILD_CHECK(::ftruncate(fd, 1 << 16) == 0);
                  ::raise(SIGKILL);
              })),
              128 + SIGKILL);
    notices().clear();
    shmds::segment_options options{.timeout = std::chrono::milliseconds(300), .notice = record_notice};
    shmds::posix_shm seg(name, 1 << 16, options);
    EXPECT_TRUE(seg.created());
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("creator died"), std::string::npos) << notices()[0];
}

TEST(Stale, SegmentStillBeingInitialisedByALiveProcessTimesOut) {
    unique_segment_name name;
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_SH), 0);  // a live, slow creator
    ASSERT_EQ(::ftruncate(fd, 1 << 16), 0);
    try {
        shmds::posix_shm seg(name, 1 << 16, {.timeout = std::chrono::milliseconds(200)});
        ADD_FAILURE() << "attached to a segment that was never initialised";
    } catch (const shmds::timeout_error& e) {
        EXPECT_NE(std::string(e.what()).find("initialised"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(shm_name_exists(name.str())) << "a live creator's segment must not be removed";
    ::close(fd);
}

TEST(Stale, SegmentWhoseAttachersAllDiedIsReclaimed) {
    unique_segment_name name;
    std::uint64_t old_id = 0;
    shared_block<std::uint64_t> id;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm seg(name.str(), 1 << 16);
                  shmds::shm_array<int> a(seg, "a", 4);
                  *id = seg.segment_id();
                  ::raise(SIGKILL);  // no detach
              })),
              128 + SIGKILL);
    old_id = *id;
    ASSERT_TRUE(shm_name_exists(name.str()));
    notices().clear();
    shmds::posix_shm seg(name, 1 << 16, {.notice = record_notice});
    EXPECT_TRUE(seg.created());
    EXPECT_NE(seg.segment_id(), old_id);
    EXPECT_FALSE(seg.contains("a"));
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("stale"), std::string::npos) << notices()[0];
}

TEST(Stale, AStaleSegmentOthersCouldWriteIsRefusedNotReclaimed) {
    // A private opener must not act on a file others could have planted or
    // rewritten, not even to remove it as stale.
    unique_segment_name name;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm seg(name.str(), 1 << 16, {.mode = 0666});
                  ::raise(SIGKILL);  // no detach
              })),
              128 + SIGKILL);
    notices().clear();
    EXPECT_THROW(shmds::posix_shm(name, 1 << 16, {.notice = record_notice}), shmds::untrusted_error);
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_TRUE(notices().empty());
    shmds::posix_shm accepted(name, 1 << 16, {.mode = 0666, .notice = record_notice});
    EXPECT_TRUE(accepted.created()) << "accepted, the stale segment is reclaimed as usual";
    EXPECT_EQ(notices().size(), 1u);
}

/// Leaves a stale segment called `name` holding arrays `structures`: its only
/// attacher is SIGKILLed. Returns the dead creator's pid.
pid_t make_stale_segment(const unique_segment_name& name, std::vector<std::string> structures) {
    const pid_t pid = spawn([&] {
        shmds::posix_shm seg(name.str(), 1 << 16);
        for (const auto& s : structures) shmds::shm_array<int> a(seg, s, 4);
        ::raise(SIGKILL);  // no detach
    });
    EXPECT_EQ(wait_child(pid), 128 + SIGKILL);
    return pid;
}

const shmds::segment_listing* listed(const std::vector<shmds::segment_listing>& all, const std::string& name) {
    for (const auto& s : all)
        if (s.name == name) return &s;
    return nullptr;
}

std::vector<std::string> names_of(const std::vector<shmds::structure_info>& structures) {
    std::vector<std::string> names;
    names.reserve(structures.size());
    for (const auto& s : structures) names.push_back(s.name);
    std::sort(names.begin(), names.end());
    return names;
}

TEST(Stale, TheDirectoryListsLiveAndStaleSegmentsAndRemovesOnlyTheStale) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    shmds::shm_array<int> a(live, "a", 4);
    unique_segment_name stale_name;
    const pid_t dead_creator = make_stale_segment(stale_name, {"x", "y"});
    unique_segment_name foreign_name;  // a file that is not a shmds segment
    {
        const int fd = ::shm_open(foreign_name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        ASSERT_GE(fd, 0);
        std::vector<char> junk(4096, 'j');
        ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
        ::close(fd);
    }

    const auto all = shmds::list_segments();
    const auto* l = listed(all, live_name.str());
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->status, shmds::segment_status::live);
    EXPECT_EQ(l->attachers, 1u);
    EXPECT_EQ(l->segment_id, live.segment_id());
    EXPECT_EQ(names_of(l->structures), std::vector<std::string>{"a"});
    const auto* s = listed(all, stale_name.str());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->status, shmds::segment_status::stale);
    EXPECT_EQ(s->attachers, 0u);
    EXPECT_EQ(s->creator_pid, dead_creator);
    EXPECT_EQ(names_of(s->structures), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(listed(all, foreign_name.str()), nullptr) << "only shmds segments are listed";
    EXPECT_TRUE(shm_name_exists(stale_name.str())) << "listing must not reclaim";
    EXPECT_EQ(live.attach_count(), 1u) << "listing a live segment must not stay attached";

    EXPECT_FALSE(shmds::remove_if_stale(live_name.str()));
    EXPECT_FALSE(shmds::remove_if_stale(foreign_name.str()));
    EXPECT_TRUE(shmds::remove_if_stale(stale_name.str()));
    EXPECT_FALSE(shm_name_exists(stale_name.str()));
    EXPECT_TRUE(shm_name_exists(live_name.str()));
    EXPECT_TRUE(shm_name_exists(foreign_name.str()));
    EXPECT_EQ(a[0], 0);
    shmds::posix_shm::remove(foreign_name.str());
}

TEST(Stale, AnUnfinishedSegmentIsRemovedOnlyOnceItIsOldEnough) {
    unique_segment_name name;
    {
        const int fd = ::shm_open(name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        ASSERT_GE(fd, 0);
        shmds::detail::segment_header header{};
        header.identity.magic = shmds::detail::segment_magic;
        header.identity.state = shmds::detail::state_initialising;
        ASSERT_EQ(::write(fd, &header, sizeof header), static_cast<ssize_t>(sizeof header));
        ::close(fd);
    }
    const auto all = shmds::list_segments();
    const auto* u = listed(all, name.str());
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->status, shmds::segment_status::unfinished);
    EXPECT_FALSE(shmds::remove_if_stale(name.str())) << "its creator may still be starting";
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_TRUE(shmds::remove_if_stale(name.str(), std::chrono::seconds(0)));
    EXPECT_FALSE(shm_name_exists(name.str()));
}

// A zeroed object of a header's size looks like a creator that died before
// writing anything, but nothing in it says shmds: removing stale segments by
// name leaves it, however old it is (an opener that waited may still reclaim it).
TEST(Stale, AnObjectWithoutTheMagicIsNeverRemovedAsStale) {
    unique_segment_name name;
    const int fd = ::shm_open(name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, sizeof(shmds::detail::segment_header)), 0);
    ::close(fd);
    EXPECT_FALSE(shmds::remove_if_stale(name.str(), std::chrono::seconds(0)));
    EXPECT_TRUE(shm_name_exists(name.str())) << "an object nothing identifies as a segment was removed";
}

// With its standard input closed, a process's next file is descriptor 0:
// a segment opened, made or listed there is a segment like any other.
TEST(Stale, AProcessWhoseStandardInputIsClosedListsOpensAndMakesSegments) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    shmds::shm_array<int> a(live, "a", 4);
    a[3] = 7;
    unique_segment_name made_name;
    EXPECT_EQ(wait_child(spawn([&] {
                  ::close(STDIN_FILENO);
                  const auto all = shmds::list_segments();  // opens each file as descriptor 0
                  const auto* l = listed(all, live_name.str());
                  CHILD_CHECK(l != nullptr);
                  CHILD_CHECK(l->status == shmds::segment_status::live);
                  CHILD_CHECK(names_of(l->structures) == std::vector<std::string>{"a"});
                  CHILD_CHECK(::fcntl(STDIN_FILENO, F_GETFD) == -1 && errno == EBADF);  // nothing left open
                  {
                      shmds::posix_shm again(live_name.str());  // its descriptor is 0
                      shmds::shm_array<int> b(again, "a");
                      CHILD_CHECK(b[3] == 7);
                      b[3] = 8;
                  }
                  {
                      shmds::posix_shm made(made_name.str(), 1 << 16);
                      CHILD_CHECK(made.created());
                      CHILD_CHECK(made.attach_count() == 1);
                      shmds::shm_array<int> c(made, "c", 2);
                  }
                  CHILD_CHECK(!shm_name_exists(made_name.str()));  // its last detach removed it
              })),
              child_ok);
    EXPECT_EQ(a[3], 8);
    EXPECT_EQ(live.attach_count(), 1u);
}

TEST(Stale, InspectListsAndRemovesStaleSegmentsByName) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    unique_segment_name stale_name;
    make_stale_segment(stale_name, {"orders"});

    auto report = run_program(SHMDS_INSPECT, {"--list"});
    EXPECT_EQ(report.status, 0) << report.output;
    const auto line_of = [&](const std::string& name) {
        const auto at = report.output.find(name + " ");
        return at == std::string::npos ? std::string()
                                       : report.output.substr(at, report.output.find('\n', at) - at);
    };
    EXPECT_NE(line_of(stale_name.str()).find("stale"), std::string::npos) << report.output;
    EXPECT_NE(line_of(stale_name.str()).find("orders (shm_array<int>)"), std::string::npos) << report.output;
    EXPECT_NE(line_of(live_name.str()).find("live"), std::string::npos) << report.output;

    // Named, so that other tests' stale segments are left alone.
    report = run_program(SHMDS_INSPECT, {"--remove-stale", stale_name.str(), live_name.str()});
    EXPECT_EQ(report.status, 1) << "the live one was named but kept\n" << report.output;
    EXPECT_NE(report.output.find("removed " + stale_name.str()), std::string::npos) << report.output;
    EXPECT_NE(report.output.find("kept " + live_name.str()), std::string::npos) << report.output;
    EXPECT_FALSE(shm_name_exists(stale_name.str()));
    EXPECT_TRUE(shm_name_exists(live_name.str()));
}

// ---- resource exhaustion and permissions ----------------------------------------------------------

/// In the calling (forked, single-threaded) child: a private mount namespace
/// with a small tmpfs on /dev/shm. Returns false when the machine allows
/// neither a mount namespace nor a user namespace.
bool private_small_dev_shm(const char* size) {
    if (::unshare(CLONE_NEWNS) != 0) {
        uid_t uid = ::getuid();
        gid_t gid = ::getgid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
        auto write_file = [](const char* path, const std::string& text) {
            int fd = ::open(path, O_WRONLY);
            if (fd < 0) return false;
            bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
            ::close(fd);
            return ok;
        };
        write_file("/proc/self/setgroups", "deny");
        if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            return false;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    std::string options = std::string("size=") + size;
    return ::mount("tmpfs", "/dev/shm", "tmpfs", 0, options.c_str()) == 0;
}

TEST(Exhaustion, FullDevShmIsAClearErrorAtCreationNotSigbus) {
    unique_segment_name small_name;
    unique_segment_name big_name;
    int status = wait_child(spawn([&] {
        if (!private_small_dev_shm("256k")) ::_exit(shmds_test::child_unsupported);
        shmds::posix_shm small(small_name.str(), std::size_t{128} * 1024);
        shmds::shm_array<std::uint32_t> a(small, "a", 1000);
        a.fill(0xabcd);
        try {
            shmds::posix_shm big(big_name.str(), 1 << 20);
            CHILD_CHECK(!"a 1 MiB segment fitted in a 256 KiB /dev/shm");
        } catch (const std::system_error& e) {
            CHILD_CHECK(e.code().value() == ENOSPC);
            CHILD_CHECK(std::string(e.what()).find("full") != std::string::npos);
            CHILD_CHECK(std::string(e.what()).find(big_name.str()) != std::string::npos);
        }
        CHILD_CHECK(!shm_name_exists(big_name.str()));
        for (std::uint32_t v : a) CHILD_CHECK(v == 0xabcd);
        // The space the failed reservation took was given back.
        shmds::posix_shm another(big_name.str(), std::size_t{96} * 1024);
        std::memset(static_cast<std::byte*>(another.base()) + 8192, 1, std::size_t{80} * 1024);  // no SIGBUS
    }));
    if (status == shmds_test::child_unsupported)
        GTEST_SKIP() << "UNRESOLVED: no mount or user namespace here to make a small /dev/shm";
    EXPECT_EQ(status, child_ok);
}

TEST(Permissions, ASegmentAnotherUserOwnsIsRefusedUnlessAllowed) {
    if (::geteuid() != 0) GTEST_SKIP() << "UNRESOLVED: needs root to give a segment to another user";
    unique_segment_name name;
    shmds::posix_shm mine(name, 1 << 16, {.mode = 0666});
    shmds::shm_array<int> stored(mine, "stored", 4);
    stored[1] = 7;
    ASSERT_EQ(::chown(("/dev/shm" + name.str()).c_str(), 65534, 65534), 0);
    try {
        shmds::posix_shm theirs(shmds::open_only, name, {.mode = 0666});
        ADD_FAILURE() << "opened a segment uid 65534 owns";
    } catch (const shmds::untrusted_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find(name.str()), std::string::npos) << what;
        EXPECT_NE(what.find("owned by uid 65534"), std::string::npos) << what;
        EXPECT_NE(what.find("allow_other_owner"), std::string::npos) << what;
    }
    shmds::posix_shm allowed(shmds::open_only, name, {.mode = 0666, .allow_other_owner = true});
    EXPECT_EQ(allowed.segment_id(), mine.segment_id());
    EXPECT_EQ(shmds::shm_array<int>(allowed, "stored", 4)[1], 7);
    // Allowing another owner does not widen the accepted mode.
    EXPECT_THROW(shmds::posix_shm(shmds::open_only, name, {.allow_other_owner = true}), shmds::untrusted_error);
}

TEST(Permissions, AnotherUserCannotOpenAPrivateSegment) {
    if (::geteuid() != 0) GTEST_SKIP() << "UNRESOLVED: needs root to run a process as another user";
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16);  // 0600 by default
    int status = wait_child(spawn([&] {
        CHILD_CHECK(::setgid(65534) == 0 && ::setuid(65534) == 0);
        try {
            shmds::posix_shm theirs(name.str());
            CHILD_CHECK(!"opened another user's 0600 segment");
        } catch (const std::system_error& e) {
            CHILD_CHECK(e.code().value() == EACCES);
        }
    }));
    EXPECT_EQ(status, child_ok);
}

}  // namespace
