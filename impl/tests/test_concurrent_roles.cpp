// Who may act on a process-safe structure across real processes: an SPSC
// queue's producer and consumer roles (refused to a second live holder,
// released by destruction and by death, not carried by a moved-from handle
// or a fork()ed copy), fork() in one thread while another joins, and
// handles that outlive their segment handle.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "concurrent_support.hpp"
#include "support.hpp"
namespace {

using namespace std::chrono_literals;
using namespace shmds_test;

// ---- fork() in one thread while another joins ------------------------------------------------

TEST(ForkRaces, ForkingInALoopWhileJoiningNeverLeavesARoleWithAChild) {
    // One thread forks short-lived children (each lives 200 ms, as a helper
    // might) as fast as it can while another takes and gives back the SPSC
    // producer role through two handles in turn. A child forked while a role
    // lock was being taken or given back must not keep it: the other handle
    // must always get the role at once.
    unique_segment_name name;
    shared_block<std::atomic<std::uint64_t>> refused;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm mine(name.str(), 1 << 20);
                  shmds_test::spsc a(mine, "q", 4);
                  shmds_test::spsc b(mine, "q");
                  std::atomic<bool> stop{false};
                  std::thread forker([&] {
                      std::vector<pid_t> children;
                      while (!stop.load()) {
                          const pid_t child = shmds_test::fork_idle_helper(200ms);
                          if (child > 0) children.push_back(child);
                          std::erase_if(children,
                                        [](pid_t c) { return ::waitpid(c, nullptr, WNOHANG) == c; });
                      }
                      for (pid_t c : children) ::waitpid(c, nullptr, 0);
                  });
                  for (int round = 0; round < 3000; ++round) {
                      shmds_test::spsc& taker = round % 2 == 0 ? a : b;
                      try {
                          (void)taker.try_push(1);
                          (void)taker.try_pop();
                      } catch (const shmds::role_error& e) {
                          if (refused->load() == 0) std::fprintf(stderr, "[child] refused: %s\n", e.what());
                          ++*refused;
                      }
                      taker.release_roles();
                  }
                  stop = true;
                  forker.join();
              })),
              child_ok);
    EXPECT_EQ(refused->load(), 0u) << "a role lock stayed with a forked child";
}

// ---- handles that outlive their segment handle ---------------------------------------------

template <class S>
void use_after_segment_handle_is_gone(const std::string& name) {
    std::optional<S> s;
    {
        shmds::posix_shm seg(name, 1 << 20);
        s.emplace(seg, "s", 4);
        CHILD_CHECK(s->try_push(1));
    }
    // The segment handle is gone; the structure handle keeps the mapping.
    CHILD_CHECK(shmds_test::shm_name_exists(name));
    CHILD_CHECK(s->try_push(2));
    CHILD_CHECK(s->try_pop().has_value());
    CHILD_CHECK(s->try_pop().has_value());
    s.reset();  // its destructor writes into the segment (roles, participant marks)
    CHILD_CHECK(!shmds_test::shm_name_exists(name));  // the last attacher removed the name
}

TEST(HandleLifetime, ProcessSafeHandlesOutlivingTheirSegmentHandleKeepTheMapping) {
    unique_segment_name spsc_name;
    unique_segment_name mpmc_name;
    unique_segment_name stack_name;
    EXPECT_EQ(wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::spsc>(spsc_name.str()); })),
              child_ok);
    EXPECT_EQ(wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::mpmc>(mpmc_name.str()); })),
              child_ok);
    EXPECT_EQ(
        wait_child(spawn([&] { use_after_segment_handle_is_gone<shmds_test::cstack>(stack_name.str()); })),
        child_ok);
}

// ---- SPSC roles --------------------------------------------------------------------------------

TEST(SpscRoles, ASecondLiveProducerIsRefusedNamingTheHolder) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc q(seg, "q", 16);
    ASSERT_TRUE(q.try_push(1));  // takes the producer role
    EXPECT_TRUE(q.is_producer());
    EXPECT_EQ(
        wait_child(spawn([&] {
            shmds::posix_shm mine(name.str());
            shmds_test::spsc other(mine, "q");
            try {
                (void)other.try_push(2);
                CHILD_CHECK(!"a second producer was accepted");
            } catch (const shmds::role_error& e) {
                CHILD_CHECK(e.code() == shmds::errc::role_taken);
                CHILD_CHECK(std::string(e.what()).find(std::to_string(::getppid())) != std::string::npos);
            }
            CHILD_CHECK(other.try_pop() == 1u);  // the consumer role is free
        })),
        child_ok);
    shmds_test::spsc same_process(seg, "q");
    EXPECT_THROW((void)same_process.try_push(3), shmds::role_error) << "a second handle in the same process";
    EXPECT_FALSE(same_process.try_pop())
        << "the dead child's consumer role is free again; the queue is empty";
}

TEST(SpscRoles, RolesAreReleasedByDestructionAndByDeath) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    {
        shmds_test::spsc first(seg, "q", 16);
        ASSERT_TRUE(first.try_push(1));
    }
    shmds_test::spsc second(seg, "q");
    ASSERT_TRUE(second.try_push(2)) << "destroying the first handle released the role";
    second.release_roles();
    shared_block<std::atomic<int>> holding;
    shmds_test::process_group group;
    pid_t holder = group.spawn([&] {
        shmds::posix_shm mine(name.str());
        shmds_test::spsc q(mine, "q");
        CHILD_CHECK(q.try_push(3));
        *holding = 1;
        for (;;) ::pause();
    });
    ASSERT_TRUE(wait_until([&] { return holding->load() == 1; }));
    EXPECT_THROW((void)second.try_push(4), shmds::role_error);
    ::kill(holder, SIGKILL);
    EXPECT_EQ(group.wait(holder), 128 + SIGKILL);
    EXPECT_TRUE(second.try_push(4)) << "the dead process's role was released by the kernel";
    for (std::uint64_t expected : {1u, 2u, 3u, 4u}) EXPECT_EQ(second.try_pop(), expected);
}

TEST(SpscRoles, AMovedFromHandleHoldsNoRole) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc first(seg, "q", 16);
    ASSERT_TRUE(first.try_push(1));
    shmds_test::spsc second(std::move(first));
    // Using the moved-from handle is the point of this test.
    // NOLINTBEGIN(bugprone-use-after-move)
    EXPECT_FALSE(first.is_producer());
    EXPECT_TRUE(second.is_producer());
    EXPECT_THROW((void)first.try_push(2), shmds::role_error) << "two producers on one ring";
    // NOLINTEND(bugprone-use-after-move)
    EXPECT_TRUE(second.try_push(2));
    EXPECT_EQ(second.try_pop(), 1u);
}

TEST(SpscRoles, AHandleCopiedByForkDoesNotActForItsParent) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    shmds_test::spsc q(seg, "q", 16);
    ASSERT_TRUE(q.try_push(1));
    EXPECT_EQ(wait_child(spawn([&] {
                  CHILD_CHECK(!q.is_producer());
                  try {
                      (void)q.try_push(2);
                      CHILD_CHECK(!"the child pushed under its parent's role");
                  } catch (const shmds::role_error&) {
                  }
              })),
              child_ok);
    EXPECT_TRUE(q.try_push(2)) << "the parent keeps its role";
    EXPECT_EQ(q.size(), 2u);
}

}  // namespace
