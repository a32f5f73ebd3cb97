// A process killed at every instruction of an update, not only at the named
// fault points: creating and destroying a structure in the table, pushing on
// and popping from the concurrent stack.
//
// Why this exists beside test_faults.cpp: a named fault point is a call into
// the test, so it is also a compiler barrier, and a kill there never shows a
// store the compiler moved across it. The library's claim is stronger ("a
// process may die between any two stores", detail/table_view.hpp) and rests
// on compiler-only fences (atomic_signal_fence) that matter only once the
// compiler optimises. So this file is compiled with -O2 in every build type,
// and each update runs in a child under ptrace, one instruction at a time:
//   1. a first run records where the child stands after every step and the
//      steps after which the segment's bytes are new (a store landed);
//   2. for each such step, a fresh child runs the same update on a fresh copy
//      of the same segment to exactly that step (a breakpoint, then single
//      steps), is killed there with SIGKILL, and the survivor checks what it
//      finds: the whole update or none of it, nothing else lost, the space
//      and the names reusable.
// x86-64 only (the breakpoint is an int3 written over the code).
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

/// A child's part of a scenario: given the segment it attached to, prepares
/// what needs no tracing (opening a handle) and returns the update to trace.
using child_update = std::function<std::function<void()>(shmds::posix_shm&)>;

/// What the first, fully traced run saw.
struct recorded_run {
    /// where_after[s]: the child's instruction pointer after s steps
    /// (where_after[0]: where it stopped itself, before the update).
    std::vector<std::uint64_t> where_after;
    /// The steps after which the segment held bytes it had not held the step
    /// before: every state a kill can leave behind.
    std::vector<std::size_t> new_state_after;
};

/// Why a ptrace request failed, for the failure message.
std::string ptrace_error(const char* what) {
    return std::string(what) + " failed: " + std::strerror(errno);
}

/// A forked child under ptrace: it attaches to the segment, prepares, stops
/// itself (SIGSTOP) just before the update, and after the update stops again.
/// The destructor kills and reaps it, whatever state it is in.
class traced_child {
public:
    traced_child(const std::string& segment, const child_update& update) {
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error(ptrace_error("fork"));
        if (pid_ == 0) {
            shmds::posix_shm mine(segment);
            const std::function<void()> run = update(mine);
            if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) {
                std::fprintf(stderr, "PTRACE_TRACEME failed: %s (is ptrace(2) permitted here?)\n",
                             std::strerror(errno));
                ::_exit(3);
            }
            ::raise(SIGSTOP);
            run();
            ::raise(SIGSTOP);
            ::_exit(0);
        }
        const int stop = wait_for_stop();
        if (stop != SIGSTOP)
            throw std::runtime_error("the traced child did not stop before its update (status " +
                                     std::to_string(stop) + "); is ptrace(2) permitted here?");
    }
    ~traced_child() {
        if (pid_ > 0) shmds_test::kill_and_reap(pid_);
    }
    traced_child(const traced_child&) = delete;
    traced_child& operator=(const traced_child&) = delete;

    /// Executes one instruction. Returns the signal the child then stopped
    /// with: SIGTRAP after an ordinary step, SIGSTOP once the update is done.
    int step() {
        if (::ptrace(PTRACE_SINGLESTEP, pid_, nullptr, nullptr) != 0)
            throw std::runtime_error(ptrace_error("PTRACE_SINGLESTEP"));
        return wait_for_stop();
    }

    std::uint64_t where() const {
        user_regs_struct regs{};
        if (::ptrace(PTRACE_GETREGS, pid_, nullptr, &regs) != 0)
            throw std::runtime_error(ptrace_error("PTRACE_GETREGS"));
        return regs.rip;
    }

    /// Runs at full speed until the child is about to execute the instruction
    /// at `address` for the `arrival`th time (counting arrivals, not the
    /// rounds of a repeated string instruction there), and leaves it stopped
    /// before it.
    void run_to(std::uint64_t address, std::size_t arrival) {
        std::size_t arrived = where() == address ? 1 : 0;
        if (arrived == arrival) return;
        if (arrived == 1) leave(address);
        const long original = peek(address);
        const long trap = (original & ~0xffL) | 0xcc;  // int3
        for (;;) {
            poke(address, trap);
            if (::ptrace(PTRACE_CONT, pid_, nullptr, nullptr) != 0)
                throw std::runtime_error(ptrace_error("PTRACE_CONT"));
            const int stop = wait_for_stop();
            user_regs_struct regs{};
            if (::ptrace(PTRACE_GETREGS, pid_, nullptr, &regs) != 0)
                throw std::runtime_error(ptrace_error("PTRACE_GETREGS"));
            if (stop != SIGTRAP || regs.rip != address + 1)
                throw std::runtime_error("the replayed child stopped (signal " + std::to_string(stop) +
                                         ") before its recorded step: the update did not repeat itself");
            regs.rip = address;
            if (::ptrace(PTRACE_SETREGS, pid_, nullptr, &regs) != 0)
                throw std::runtime_error(ptrace_error("PTRACE_SETREGS"));
            poke(address, original);
            if (++arrived == arrival) return;
            leave(address);
        }
    }

    /// Kills the child where it stands (SIGKILL) and reaps it.
    void kill() {
        shmds_test::kill_and_reap(pid_);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;

    /// Waits until the child stops (or ends: an error). Returns its signal.
    int wait_for_stop() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        for (int polls = 0;; ++polls) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                if (WIFSTOPPED(status)) return WSTOPSIG(status);
                pid_ = -1;
                throw std::runtime_error(
                    WIFEXITED(status)
                        ? "the traced child exited with " + std::to_string(WEXITSTATUS(status))
                        : "the traced child died of signal " + std::to_string(WTERMSIG(status)));
            }
            if (r < 0) throw std::runtime_error(ptrace_error("waitpid"));
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("the traced child did not stop within 30 s");
            // A step takes microseconds: yield first, sleep only if it lasts.
            if (polls < 1000)
                std::this_thread::yield();
            else
                std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    /// Steps until the child has left the instruction at `address` (a
    /// repeated string instruction stays there for several steps).
    void leave(std::uint64_t address) {
        do {
            if (step() != SIGTRAP) throw std::runtime_error("the replayed child ended its update early");
        } while (where() == address);
    }

    long peek(std::uint64_t address) {
        errno = 0;
        const long word = ::ptrace(PTRACE_PEEKTEXT, pid_, address, nullptr);
        if (errno != 0) throw std::runtime_error(ptrace_error("PTRACE_PEEKTEXT"));
        return word;
    }
    void poke(std::uint64_t address, long word) {
        if (::ptrace(PTRACE_POKETEXT, pid_, address, word) != 0)
            throw std::runtime_error(ptrace_error("PTRACE_POKETEXT"));
    }
};

/// One update to kill at every instruction. `prepare` runs on a freshly made
/// segment before each run (so every run starts from the same bytes);
/// `check` runs in the survivor after the child died, with what prepare
/// measured.
template <class Measured>
struct scenario {
    std::function<Measured(shmds::posix_shm&)> prepare;
    child_update update;
    std::function<void(shmds::posix_shm&, const Measured&)> check;
};

constexpr std::size_t segment_bytes = 1 << 16;

/// Makes the segment `name` afresh (the same name every time: the update
/// copies it, and a name of another length would change the steps).
template <class Measured>
std::pair<std::unique_ptr<shmds::posix_shm>, Measured> fresh_segment(const std::string& name,
                                                                     const scenario<Measured>& s) {
    shmds::posix_shm::remove(name);
    auto segment = std::make_unique<shmds::posix_shm>(name, segment_bytes);
    Measured measured = s.prepare(*segment);
    return {std::move(segment), std::move(measured)};
}

template <class Measured>
recorded_run record(const std::string& name, const scenario<Measured>& s) {
    auto [segment, measured] = fresh_segment(name, s);
    const auto* bytes = static_cast<const std::byte*>(segment->base());
    std::vector<std::byte> last(bytes, bytes + segment->size());
    recorded_run run;
    traced_child child(name, s.update);
    run.where_after.push_back(child.where());
    for (;;) {
        const int stop = child.step();
        if (stop == SIGSTOP) break;  // the update is done
        if (stop != SIGTRAP)
            throw std::runtime_error("the traced update stopped with signal " + std::to_string(stop));
        run.where_after.push_back(child.where());
        if (std::memcmp(last.data(), bytes, last.size()) != 0) {
            run.new_state_after.push_back(run.where_after.size() - 1);
            std::memcpy(last.data(), bytes, last.size());
        }
    }
    child.kill();
    s.check(*segment, measured);  // killed after the whole update
    return run;
}

/// The run to `step` of a replay: which arrival at its instruction, and how
/// many steps more after that arrival (inside a repeated string instruction).
struct replay_target {
    std::uint64_t address;
    std::size_t arrival;
    std::size_t extra_steps;
};

replay_target target_of(const recorded_run& run, std::size_t step) {
    const auto& at = run.where_after;
    replay_target target{at[step], 0, 0};
    std::size_t arrival_step = 0;
    for (std::size_t s = 0; s <= step; ++s) {
        if (at[s] == target.address && (s == 0 || at[s - 1] != target.address)) {
            ++target.arrival;
            arrival_step = s;
        }
    }
    target.extra_steps = step - arrival_step;
    return target;
}

/// Records the update, then kills a fresh child after each step that left a
/// new state and checks what the survivor finds. Returns the number of
/// states checked.
template <class Measured>
std::size_t kill_at_every_new_state(const scenario<Measured>& s) {
    shmds_test::unique_segment_name name("step");
    const recorded_run run = record(name.str(), s);
    if (::testing::Test::HasFailure()) return 0;
    for (std::size_t step : run.new_state_after) {
        SCOPED_TRACE("killed after step " + std::to_string(step) + " of " +
                     std::to_string(run.where_after.size() - 1));
        auto [segment, measured] = fresh_segment(name.str(), s);
        {
            traced_child child(name.str(), s.update);
            const replay_target target = target_of(run, step);
            child.run_to(target.address, target.arrival);
            for (std::size_t i = 0; i < target.extra_steps; ++i) child.step();
            EXPECT_EQ(child.where(), run.where_after[step]) << "the replay is not where the record was";
            child.kill();
        }
        s.check(*segment, measured);
        if (::testing::Test::HasFailure()) break;  // the first inconsistent state says it all
    }
    std::printf("[ states   ] %zu steps; killed after each of the %zu that left a new state\n",
                run.where_after.size() - 1, run.new_state_after.size());
    return run.new_state_after.size();
}

// ---- the table ----------------------------------------------------------------------------------

TEST(CrashAtEveryInstruction, CreatingAStructureLeavesAllOfItOrNone) {
    struct measured {
        std::size_t free_before;
    };
    const scenario<measured> creating{
        [](shmds::posix_shm& seg) {
            shmds::shm_array<int> keep(seg, "keep", 100);
            keep.fill(7);
            return measured{seg.table().bytes_free()};
        },
        [](shmds::posix_shm& mine) { return [&mine] { shmds::shm_array<int> victim(mine, "victim", 16); }; },
        [](shmds::posix_shm& seg, const measured& m) {
            for (int v : shmds::shm_array<int>(seg, "keep"))
                ASSERT_EQ(v, 7) << "a neighbour was written over";
            if (seg.contains("victim")) {
                shmds::shm_array<int> victim(seg, "victim");
                EXPECT_EQ(victim.size(), 16u);
                EXPECT_EQ(std::count(victim.begin(), victim.end(), 0), 16) << "published means initialised";
                EXPECT_EQ(seg.table().bytes_free() + seg.table().find("victim")->bytes, m.free_before);
                EXPECT_EQ(seg.table().size(), 2u);
            } else {
                EXPECT_EQ(seg.table().bytes_free(), m.free_before) << "the dead creator's space is reclaimed";
                EXPECT_EQ(seg.table().size(), 1u);
            }
            shmds::shm_array<int> again(seg, "victim", 16);
            shmds::shm_array<int> another(seg, "another", 16);
            EXPECT_EQ(seg.table().size(), 3u);
            EXPECT_EQ(seg.table().list().size(), 3u);
        }};
    EXPECT_GT(kill_at_every_new_state(creating), 3u) << "the update stored nothing it could be killed after";
}

TEST(CrashAtEveryInstruction, DestroyingAStructureLeavesItWholeOrGone) {
    struct measured {
        std::size_t free_before;
        std::size_t victim_bytes;
        std::uint64_t victim_offset;
    };
    const scenario<measured> destroying{
        [](shmds::posix_shm& seg) {
            shmds::shm_array<int> before(seg, "before", 100);
            shmds::shm_array<int> victim(seg, "victim", 64);
            shmds::shm_array<int> after(seg, "after", 100);
            before.fill(1);
            victim.fill(2);
            after.fill(3);
            const auto info = seg.table().find("victim");
            return measured{seg.table().bytes_free(), info->bytes, info->offset};
        },
        [](shmds::posix_shm& mine) { return [&mine] { mine.destroy("victim"); }; },
        [](shmds::posix_shm& seg, const measured& m) {
            for (int v : shmds::shm_array<int>(seg, "before"))
                ASSERT_EQ(v, 1) << "a neighbour was written over";
            for (int v : shmds::shm_array<int>(seg, "after"))
                ASSERT_EQ(v, 3) << "a neighbour was written over";
            if (seg.contains("victim")) {
                shmds::shm_array<int> victim(seg, "victim");
                EXPECT_EQ(std::count(victim.begin(), victim.end(), 2), 64)
                    << "still listed means still whole";
                EXPECT_EQ(seg.table().bytes_free(), m.free_before);
                EXPECT_EQ(seg.table().size(), 3u);
                seg.destroy("victim");
            } else {
                EXPECT_EQ(seg.table().size(), 2u);
            }
            EXPECT_EQ(seg.table().bytes_free(), m.free_before + m.victim_bytes) << "the space is free again";
            shmds::shm_array<int> reuse(seg, "reuse", 64);
            EXPECT_EQ(seg.table().find("reuse")->offset, m.victim_offset);
            EXPECT_EQ(std::count(reuse.begin(), reuse.end(), 0), 64);
            EXPECT_EQ(seg.table().list().size(), 3u);
        }};
    EXPECT_GT(kill_at_every_new_state(destroying), 3u)
        << "the update stored nothing it could be killed after";
}

// ---- the concurrent stack -----------------------------------------------------------------------

using stack = shmds::shm_concurrent_stack<std::uint64_t>;

/// Pops everything, top first.
std::vector<std::uint64_t> drained(stack& s) {
    std::vector<std::uint64_t> out;
    while (auto v = s.try_pop()) out.push_back(*v);
    return out;
}

struct nothing_measured {};

/// Each stack scenario's start: 1, 2, 3 pushed on a stack of 8.
nothing_measured stack_of_three(shmds::posix_shm& seg) {
    stack s(seg, "stack", 8);
    for (std::uint64_t v : {1, 2, 3}) EXPECT_TRUE(s.try_push(v));
    return {};
}

TEST(CrashAtEveryInstruction, PushingOnTheConcurrentStackCommitsTheWrittenSlotOrNothing) {
    const scenario<nothing_measured> pushing{
        stack_of_three,
        [](shmds::posix_shm& mine) {
            auto s = std::make_shared<stack>(mine, "stack");
            return [s] { (void)s->try_push(42); };
        },
        [](shmds::posix_shm& seg, const nothing_measured&) {
            stack s(seg, "stack");
            const std::vector<std::uint64_t> left = drained(s);
            if (left.size() == 4)
                EXPECT_EQ(left, (std::vector<std::uint64_t>{42, 3, 2, 1}))
                    << "a counted slot was not written";
            else
                EXPECT_EQ(left, (std::vector<std::uint64_t>{3, 2, 1}));
            EXPECT_TRUE(s.try_push(5));
            EXPECT_EQ(s.size(), 1u);
        }};
    EXPECT_GT(kill_at_every_new_state(pushing), 0u) << "the update stored nothing it could be killed after";
}

TEST(CrashAtEveryInstruction, PoppingFromTheConcurrentStackTakesTheTopOrNothing) {
    const scenario<nothing_measured> popping{
        stack_of_three,
        [](shmds::posix_shm& mine) {
            auto s = std::make_shared<stack>(mine, "stack");
            return [s] { (void)s->try_pop(); };
        },
        [](shmds::posix_shm& seg, const nothing_measured&) {
            stack s(seg, "stack");
            const std::vector<std::uint64_t> left = drained(s);
            if (left.size() == 3)
                EXPECT_EQ(left, (std::vector<std::uint64_t>{3, 2, 1}));
            else
                EXPECT_EQ(left, (std::vector<std::uint64_t>{2, 1})) << "only the top may go";
            EXPECT_TRUE(s.try_push(5));
            EXPECT_EQ(s.size(), 1u);
        }};
    EXPECT_GT(kill_at_every_new_state(popping), 0u) << "the update stored nothing it could be killed after";
}

}  // namespace
