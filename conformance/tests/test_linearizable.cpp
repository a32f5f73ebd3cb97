// Linearizability of recorded multi-process histories, for any implementation
// of the contract. Two history actors (history_actor.cpp, separate programs
// started with exec) call try_push and try_pop on one small structure in
// rounds that start at the same CLOCK_MONOTONIC instant; each records every
// call's interval and result in a file that survives it. After each round one
// actor drains the structure, so every round starts empty and ends known
// empty, and the round's history is checked by linearizability.hpp against a
// FIFO queue or LIFO stack of the same capacity.
//
// Two strengths. The tests of *succeeding calls* leave out calls that
// returned nothing or false (they are taken to have had no effect): what is
// left is about elements, none lost, duplicated or invented, in an order the
// model allows, never more than the capacity. The tests of *empty and full
// results* check those too: a try_pop returns nothing only at an instant of
// the call where the structure is empty, a try_push false only where it is
// full. Apart, a structure that reports a spurious empty is told from
// one that loses elements.
//
// They cite LIN-001..003 of the specification, with the older requirements
// each one also checks.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "linearizability.hpp"
#include "support.hpp"

namespace {

namespace lin = shmconf::lin;
using shmconf_tests::by_profile;
using shmconf_tests::fresh_segment;
using shmconf_tests::impl;

std::uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// How long an actor may take to answer before the test gives up on it.
constexpr int answer_ms = 30'000;

/// The file an actor records its calls in (linearizability_history.hpp, namespace
/// record), created zeroed here, mapped here too, removed at the end.
class history_log {
public:
    explicit history_log(std::size_t entries) {
        const char* dir = std::getenv("TMPDIR");
        path_ = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/shmconf-history-XXXXXX";
        const int fd = ::mkstemp(path_.data());
        if (fd < 0) throw std::runtime_error("mkstemp " + path_ + ": " + std::strerror(errno));
        bytes_ = lin::record::file_size(entries);
        if (::ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
            ::close(fd);
            ::unlink(path_.c_str());
            throw std::runtime_error("ftruncate " + path_ + ": " + std::strerror(errno));
        }
        base_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (base_ == MAP_FAILED) {
            ::unlink(path_.c_str());
            throw std::runtime_error("mmap " + path_ + ": " + std::strerror(errno));
        }
        *static_cast<lin::record::header*>(base_) = {lin::record::magic, entries};
    }
    ~history_log() {
        ::munmap(base_, bytes_);
        ::unlink(path_.c_str());
    }
    history_log(const history_log&) = delete;
    history_log& operator=(const history_log&) = delete;

    const std::string& path() const { return path_; }
    /// Entries [begin, end) (up to the first unused one), as `process`'s calls.
    std::vector<lin::operation> read(std::size_t begin, std::size_t end, int process) const {
        return lin::record::read(base_, begin, end, process);
    }
    /// Whether the actor has called its `i`th call yet.
    bool started(std::size_t i) const { return !read(i, i + 1, 0).empty(); }

private:
    std::string path_;
    std::size_t bytes_ = 0;
    void* base_ = nullptr;
};

/// A history actor in its own process, commanded through a socket pair on
/// its stdin and stdout (a socket, so that writing to a killed one is an
/// error, not SIGPIPE).
class history_actor {
public:
    history_actor(const history_log& log, const std::string& segment, const char* kind, std::uint64_t id,
                  const char* role, std::uint64_t seed) {
        std::vector<std::string> args{
            SHMCONF_HISTORY_ACTOR_PATH, log.path(), segment, kind, "h", std::to_string(id), role,
            std::to_string(seed)};
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        int ends[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
            throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(ends[1], STDIN_FILENO);
            ::dup2(ends[1], STDOUT_FILENO);
            ::execv(SHMCONF_HISTORY_ACTOR_PATH, argv.data());
            ::_exit(127);
        }
        ::close(ends[1]);
        fd_ = ends[0];
        if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    ~history_actor() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            (void)wait();
        }
        if (fd_ >= 0) ::close(fd_);
    }
    history_actor(const history_actor&) = delete;
    history_actor& operator=(const history_actor&) = delete;

    /// Sends one command line; false if the actor is gone.
    bool send(const std::string& command) {
        const std::string line = command + "\n";
        for (std::size_t sent = 0; sent < line.size();) {
            const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }
    /// The NEXT of its "done NEXT" answer, or nothing if it did not come
    /// within `timeout_ms` (or the actor ended).
    std::optional<std::size_t> done(int timeout_ms) {
        const std::uint64_t deadline = monotonic_ns() + std::uint64_t(timeout_ms) * 1'000'000u;
        for (;;) {
            if (const auto eol = buffer_.find('\n'); eol != std::string::npos) {
                const std::string line = buffer_.substr(0, eol);
                buffer_.erase(0, eol + 1);
                if (line.rfind("done ", 0) == 0) return std::stoull(line.substr(5));
                return std::nullopt;
            }
            const std::uint64_t now = monotonic_ns();
            if (now >= deadline) return std::nullopt;
            pollfd p{fd_, POLLIN, 0};
            const int ready = ::poll(&p, 1, static_cast<int>((deadline - now) / 1'000'000u) + 1);
            if (ready < 0 && errno == EINTR) continue;
            if (ready <= 0) return std::nullopt;
            char chunk[256];
            const ssize_t n = ::read(fd_, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    /// Waits until it is up, has found the structure and waits for rounds
    /// (its start-up, under a sanitizer, takes longer than a round).
    bool ready() { return send("go 0 0") && done(answer_ms).has_value(); }
    void kill() {
        if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);  // never a reaped (perhaps reused) pid
    }
    /// Its exit status (-signal when a signal ended it).
    int wait() {
        if (!reaped_) {
            ::waitpid(pid_, &status_, 0);
            reaped_ = true;
        }
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : -WTERMSIG(status_);
    }
    /// Whether it has ended (then wait() returns at once).
    bool ended() {
        if (!reaped_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
        return reaped_;
    }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
    int fd_ = -1;
    std::string buffer_;
};

/// The structures these tests cover, and how two actors share each.
struct structure {
    const char* kind;
    lin::discipline order;
    bool single_producer;  ///< actor 0 only pops (and drains), actor 1 only pushes
};
constexpr structure spsc_kind{"spsc_queue", lin::discipline::fifo, true};
constexpr structure mpmc_kind{"mpmc_queue", lin::discipline::fifo, false};
constexpr structure stack_kind{"concurrent_stack", lin::discipline::lifo, false};

/// Small, so that full and empty are reached in most rounds.
constexpr std::size_t capacity = 4;

void make_structure(impl::segment& seg, const structure& s) {
    const std::string kind = s.kind;
    if (kind == "spsc_queue")
        (void)impl::make<impl::spsc_queue<std::uint64_t>>(seg, "h", capacity);
    else if (kind == "mpmc_queue")
        (void)impl::make<impl::mpmc_queue<std::uint64_t>>(seg, "h", capacity);
    else
        (void)impl::make<impl::concurrent_stack<std::uint64_t>>(seg, "h", capacity);
}

/// How many calls of `a` overlap in time some call of `b`.
std::size_t overlapping(const std::vector<lin::operation>& a, const std::vector<lin::operation>& b) {
    auto end = [](const lin::operation& op) { return op.pending ? ~std::uint64_t{0} : op.return_ns; };
    std::size_t n = 0;
    for (const auto& x : a)
        n += std::any_of(b.begin(), b.end(),
                         [&](const auto& y) { return x.call_ns <= end(y) && y.call_ns <= end(x); });
    return n;
}

std::uint64_t fresh_seed() {
    return std::random_device{}();
}

/// What the rounds of one test came to.
struct tally {
    int rounds = 0, undecided = 0, with_pending = 0;
    std::uint64_t calls = 0, failed_results = 0, overlapping_calls = 0;
    std::uint64_t excused = 0;  ///< failed results left out (LIN-002's allowance)

    void report(const structure& s) const {
        std::printf(
            "[shmconf] %s: %d rounds checked, %d undecided, %d with a pending call; %llu calls, %llu of them"
            " overlapping one of the other process, %llu returned nothing or false (%llu of these"
            " while a call of the other kind by the other process was in progress: not checked)\n",
            s.kind, rounds, undecided, with_pending, static_cast<unsigned long long>(calls),
            static_cast<unsigned long long>(overlapping_calls),
            static_cast<unsigned long long>(failed_results), static_cast<unsigned long long>(excused));
        ::testing::Test::RecordProperty("rounds", rounds);
        ::testing::Test::RecordProperty("undecided_rounds", undecided);
        ::testing::Test::RecordProperty("calls", std::to_string(calls));
        ::testing::Test::RecordProperty("overlapping_calls", std::to_string(overlapping_calls));
        ::testing::Test::RecordProperty("rounds_with_pending_call", with_pending);
        if (overlapping_calls * 20 < calls)
            std::printf(
                "[shmconf] warning: the actors hardly ran at the same time (is the machine busy?): the"
                " histories were mostly sequential\n");
    }
};

/// Checks one round's history; false (with a test failure) if it is not
/// linearizable.
bool check_round(const structure& s, bool check_failed_results, const std::vector<lin::operation>& of_actor0,
                 const std::vector<lin::operation>& of_actor1, const std::string& where, tally& t) {
    std::vector<lin::operation> history;
    // LIN-002's allowance: a try_push that returned false (a try_pop that
    // returned nothing) while a pop (a push) of the other process was in
    // progress is left out of the check. It changed nothing, and the
    // requirement lets it see the slot that call still holds (a consumer
    // mid-copy, a producer between claim and publication) as taken.
    auto excused = [&](const lin::operation& op, const std::vector<lin::operation>& others) {
        if (!check_failed_results || s.order != lin::discipline::fifo || op.pending || op.ok) return false;
        return std::any_of(others.begin(), others.end(), [&](const lin::operation& other) {
            return other.kind != op.kind && other.call_ns <= op.return_ns &&
                   (other.pending || op.call_ns <= other.return_ns);
        });
    };
    for (const auto* mine : {&of_actor0, &of_actor1}) {
        const auto& others = mine == &of_actor0 ? of_actor1 : of_actor0;
        for (const auto& op : *mine) {
            if (excused(op, others))
                ++t.excused;
            else
                history.push_back(op);
        }
    }
    ++t.rounds;
    t.calls += of_actor0.size() + of_actor1.size();
    for (const auto* ops : {&of_actor0, &of_actor1})
        for (const auto& op : *ops) t.failed_results += !op.pending && !op.ok;
    t.overlapping_calls += overlapping(of_actor0, of_actor1) + overlapping(of_actor1, of_actor0);
    t.with_pending += std::any_of(history.begin(), history.end(), [](const auto& op) { return op.pending; });
    const lin::model m{s.order, capacity, {}};
    lin::options o;
    o.check_failed_results = check_failed_results;
    o.final_content = std::vector<std::uint64_t>{};  // drained
    const lin::result r = lin::check(history, m, o);
    if (r.outcome == lin::verdict::undecided) ++t.undecided;
    if (r.outcome != lin::verdict::not_linearizable) return true;
    // Which results are wrong: with the results of nothing, or of false,
    // or both left out, is it linearizable?
    std::string also;
    if (check_failed_results) {
        auto without = [&](bool empties, bool fulls) {
            std::vector<lin::operation> kept;
            for (const auto& op : history)
                if (op.pending || op.ok || (op.kind == lin::op_kind::pop ? !empties : !fulls))
                    kept.push_back(op);
            lin::options quiet = o;
            quiet.explain = false;
            return lin::check(kept, m, quiet).outcome == lin::verdict::linearizable;
        };
        if (without(false, true))
            also =
                "\n(Without the calls of try_push that returned false it is linearizable: a wrong 'full'.)";
        else if (without(true, false))
            also =
                "\n(Without the calls of try_pop that returned nothing it is linearizable: a wrong 'empty'.)";
        else if (without(true, true))
            also =
                "\n(Its succeeding calls alone are linearizable: only results of nothing or false are "
                "wrong.)";
    }
    ADD_FAILURE() << s.kind << ", " << where << ": the history of " << history.size()
                  << " calls (p0 and p1 are "
                  << "two processes) is " << r.explanation << also;
    return false;
}

/// Log entries for one round of `calls` calls and a drain.
std::size_t entries_for(int calls) {
    return static_cast<std::size_t>(calls) + capacity + 64;
}

/// Rounds of two actors calling at once, each round's history checked. On a
/// busy machine the actors often do not run at the same time, so rounds go
/// on (up to a limit) until enough calls have overlapped.
void run_rounds(const structure& s, bool check_failed_results) {
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    make_structure(seg, s);
    const int min_rounds = by_profile(100, 5000), max_rounds = by_profile(400, 20000);
    const std::uint64_t wanted_overlap =
        by_profile(2000, 200'000);         // calls overlapping one of the other actor
    const int calls = by_profile(32, 40);  // per actor and round
    history_log log0(entries_for(calls)), log1(entries_for(calls));
    const std::uint64_t seed0 = fresh_seed(), seed1 = fresh_seed();
    history_actor a0(log0, name.name(), s.kind, 0, s.single_producer ? "pop" : "mixed", seed0);
    history_actor a1(log1, name.name(), s.kind, 1, s.single_producer ? "push" : "mixed", seed1);
    ASSERT_TRUE(a0.ready() && a1.ready()) << "an actor did not start";
    tally t;
    for (int round = 0; round < max_rounds && (round < min_rounds || t.overlapping_calls < wanted_overlap);
         ++round) {
        const std::string go =
            "go " + std::to_string(monotonic_ns() + 2'000'000) + " " + std::to_string(calls);
        ASSERT_TRUE(a0.send(go) && a1.send(go)) << "an actor is gone";
        const auto end1 = a1.done(answer_ms);
        ASSERT_TRUE(end1) << "actor 1 did not finish round " << round;
        ASSERT_TRUE(a0.done(answer_ms)) << "actor 0 did not finish round " << round;
        ASSERT_TRUE(a0.send("drain 200"));
        const auto end0 = a0.done(answer_ms);
        ASSERT_TRUE(end0) << "actor 0 did not drain after round " << round;
        const std::string where = "round " + std::to_string(round) + " (actor seeds " +
                                  std::to_string(seed0) + ", " + std::to_string(seed1) + ")";
        if (!check_round(s, check_failed_results, log0.read(0, *end0, 0), log1.read(0, *end1, 1), where, t))
            break;
    }
    EXPECT_TRUE(a0.send("quit") && a1.send("quit"));
    EXPECT_EQ(a0.wait(), 0);
    EXPECT_EQ(a1.wait(), 0);
    t.report(s);
    if (t.undecided * 2 > t.rounds)
        SHMCONF_SKIP_AS("UNRESOLVED", std::to_string(t.undecided) + " of " + std::to_string(t.rounds) +
                                          " rounds undecided within the checker's budget");
}

/// Rounds in which actor 1 is SIGKILLed in the middle of its calls: its
/// last call is pending (may or may not have taken effect), and the history,
/// with what actor 0 did before and after and its drain, stays linearizable.
/// A new actor 1 (another ID, so values stay unique) joins for each round.
/// The kill lands inside a call in a fraction of the rounds only (between
/// calls otherwise), so rounds go on (up to a limit) until enough did.
void run_rounds_with_a_kill(const structure& s, bool check_failed_results) {
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    make_structure(seg, s);
    const int min_rounds = by_profile(4, 100), max_rounds = by_profile(12, 300);
    const int wanted_pending = by_profile(2, 50);              // rounds killed inside a call
    constexpr int survivor_calls = 400, victim_calls = 20000;  // the victim calls until it is killed
    history_log log0(entries_for(survivor_calls));
    const std::uint64_t seed0 = fresh_seed();
    std::mt19937_64 rng(seed0);
    history_actor survivor(log0, name.name(), s.kind, 0, s.single_producer ? "pop" : "mixed", seed0);
    ASSERT_TRUE(survivor.ready()) << "actor 0 did not start";
    tally t;
    for (int round = 0; round < max_rounds && (round < min_rounds || t.with_pending < wanted_pending);
         ++round) {
        history_log log1(entries_for(victim_calls));
        const std::uint64_t seed1 = fresh_seed();
        history_actor victim(log1, name.name(), s.kind, 1 + static_cast<std::uint64_t>(round),
                             s.single_producer ? "push" : "mixed", seed1);
        ASSERT_TRUE(victim.ready()) << "actor 1 did not start";
        const std::string start = std::to_string(monotonic_ns() + 2'000'000);
        ASSERT_TRUE(survivor.send("go " + start + " " + std::to_string(survivor_calls)));
        ASSERT_TRUE(victim.send("go " + start + " " + std::to_string(victim_calls)));
        // Killed as soon as it has begun call `at` (polled without sleeping:
        // a sleep would let it run to the end of its calls first).
        const std::size_t at = 5 + rng() % 300;
        const std::uint64_t give_up = monotonic_ns() + 20'000'000'000u;
        for (unsigned polls = 0; !log1.started(at) && monotonic_ns() < give_up; ++polls)
            if (polls % 1024 == 0 && victim.ended()) break;
        victim.kill();
        ASSERT_EQ(victim.wait(), -SIGKILL) << "actor 1 ended before it was killed";
        const std::string where = "round " + std::to_string(round) + ", actor 1 killed at its call " +
                                  std::to_string(at) + " or later (actor seeds " + std::to_string(seed0) +
                                  ", " + std::to_string(seed1) + ")";
        // Without robust locks, a kill inside a locked section blocks the
        // survivor for ever: no need to wait long to know.
        const int patience_ms = impl::caps.locks_survive_owner_death ? answer_ms : 5'000;
        auto end0 = survivor.done(patience_ms);
        if (end0 && survivor.send("drain 50000")) end0 = survivor.done(patience_ms);
        if (!end0) {
            ASSERT_FALSE(survivor.ended()) << "actor 0 ended (status " << survivor.wait() << ") in " << where;
            if (!impl::caps.locks_survive_owner_death)
                SHMCONF_SKIP_AS("UNSUPPORTED",
                                "the surviving actor was stuck after the kill, in " + where +
                                    " (the adapter does not claim that locks survive their owner's death)");
            FAIL() << s.kind << ", " << where
                   << ": the surviving actor did not finish its calls and drain within " << patience_ms
                   << " ms (CRASH-002)";
        }
        if (!check_round(s, check_failed_results, log0.read(0, *end0, 0), log1.read(0, victim_calls, 1),
                         where, t))
            break;
    }
    EXPECT_TRUE(survivor.send("quit"));
    EXPECT_EQ(survivor.wait(), 0);
    t.report(s);
    if (t.undecided * 2 > t.rounds)
        SHMCONF_SKIP_AS("UNRESOLVED", std::to_string(t.undecided) + " of " + std::to_string(t.rounds) +
                                          " rounds undecided within the checker's budget");
}

// Proposed for the specification (not in requirements.md yet):
//   LIN-001 [MUST] (queue) succeeding calls linearizable w.r.t. a FIFO of the capacity
//   LIN-002 [SHOULD] (queue) try_pop nothing only where empty, try_push false only where full
//   LIN-003 [MUST] (stack) every call linearizable w.r.t. a LIFO of the capacity

TEST(Linearizability, SpscQueueSucceedingCallsAreLinearizable) {
    CHECKS_REQUIREMENTS("LIN-001 Q-005");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_rounds(spsc_kind, false);
}

TEST(Linearizability, SpscQueueEmptyAndFullResultsAreLinearizable) {
    CHECKS_REQUIREMENTS("LIN-002 Q-006");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_rounds(spsc_kind, true);
}

TEST(Linearizability, MpmcQueueSucceedingCallsAreLinearizable) {
    CHECKS_REQUIREMENTS("LIN-001 Q-005");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_rounds(mpmc_kind, false);
}

TEST(Linearizability, MpmcQueueEmptyAndFullResultsAreLinearizable) {
    CHECKS_REQUIREMENTS("LIN-002 Q-006");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_rounds(mpmc_kind, true);
}

TEST(Linearizability, ConcurrentStackHistoriesAreLinearizable) {
    CHECKS_REQUIREMENTS("LIN-003 STK-003");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    run_rounds(stack_kind, true);
}

TEST(Linearizability, SpscQueueStaysLinearizableWhenItsProducerIsKilled) {
    CHECKS_REQUIREMENTS("LIN-001 Q-005 CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_rounds_with_a_kill(spsc_kind, false);
}

TEST(Linearizability, MpmcQueueStaysLinearizableWhenAnActorIsKilled) {
    CHECKS_REQUIREMENTS("LIN-001 Q-005 CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_rounds_with_a_kill(mpmc_kind, false);
}

TEST(Linearizability, ConcurrentStackStaysLinearizableWhenAnActorIsKilled) {
    CHECKS_REQUIREMENTS("LIN-003 STK-003 CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    run_rounds_with_a_kill(stack_kind, true);
}

}  // namespace
