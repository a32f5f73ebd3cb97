// Reference counting and cleanup across real processes: the last detach,
// wherever it happens, removes the name; a process killed with SIGKILL (a
// forked child, an exec()ed peer, a parent whose forked child lives on)
// stops counting at once; handles inherited through fork() count in both
// processes; attachers in another PID namespace are counted and listed.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/segment_directory.hpp>
#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using namespace shmds_test;

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

/// A child made with the clone system call, which runs no fork handler: it
/// keeps copies of every descriptor, as a fork() child does until its
/// handler closes them, for as long as the test likes. It waits for a byte
/// on `gate` (or its parent's death) and exits; it touches nothing else, as
/// a child of a threaded process made this way must.
class child_without_fork_handlers {
public:
    child_without_fork_handlers() {
        if (::pipe(gate_) != 0) return;
        pid_ = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
        if (pid_ == 0) {
            char byte;
            while (::read(gate_[0], &byte, 1) < 0 && errno == EINTR) {
            }
            ::_exit(0);
        }
    }
    child_without_fork_handlers(const child_without_fork_handlers&) = delete;
    child_without_fork_handlers& operator=(const child_without_fork_handlers&) = delete;
    ~child_without_fork_handlers() {
        if (pid_ > 0) {
            const char byte = 0;
            if (::write(gate_[1], &byte, 1) != 1) ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        for (int fd : gate_)
            if (fd >= 0) ::close(fd);
    }
    bool started() const { return pid_ > 0; }

private:
    int gate_[2] = {-1, -1};
    pid_t pid_ = -1;
};

TEST(Cleanup, ADetachBeforeAForkChildsHandlerRanStopsCountingAtOnce) {
    // A fork() child holds a copy of each segment descriptor until its fork
    // handler closes it; a detach in that moment must still end this
    // handle's count, or the last detach elsewhere could not remove the name.
    unique_segment_name name;
    std::optional<shmds::posix_shm> first(std::in_place, name.str(), 1 << 16);
    std::optional<shmds::posix_shm> second(std::in_place, name.str());
    ASSERT_EQ(second->attach_count(), 2u);
    child_without_fork_handlers child;
    ASSERT_TRUE(child.started()) << std::strerror(errno);
    first.reset();
    EXPECT_EQ(second->attach_count(), 1u)
        << "the detached handle still counts while a child holds its descriptor";
    second.reset();
    EXPECT_FALSE(shm_name_exists(name.str())) << "the last detach did not remove the name";
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

}  // namespace
