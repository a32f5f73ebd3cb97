// Faults, for any implementation of the contract: processes killed in the
// middle of operations (CRASH-001..003), attachers that all died (REF-005), a
// full /dev/shm (SEG-007), truncated and damaged segments (BAD-001..003).
//
// How the tests stay in control of what they provoke:
// - Every check that could crash or hang runs in a forked child ("isolated"),
//   in a process group of its own, under a time limit. The child reports
//   failures and notes on a pipe; a signal (SIGBUS, SIGSEGV) or a hang
//   becomes a FAIL naming it and the step the child was at, never a crash or
//   a hang of the suite.
// - The processes that get killed are fault actors (fault_actor.cpp), started
//   with exec. Each keeps a record of what it completed in a file of its own
//   (a memfd it inherits and maps MAP_SHARED), which survives SIGKILL; the
//   tests compare that record with what the structures hold afterwards.
// - Kills come after a random delay from a seeded generator; the seed is in
//   the test's notes (set SHMCONF_SEED to replay one).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using shmconf::error_category;
using shmconf_tests::by_profile;
using shmconf_tests::concat;
using shmconf_tests::fresh_segment;
using shmconf_tests::name_exists;
using shmconf_tests::impl;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using u64 = std::uint64_t;
using array = impl::array<u64>;

// ---- small helpers -----------------------------------------------------------------

std::string describe(const std::exception_ptr& e) {
    std::string what = "(not a std::exception)";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        what = x.what();
    } catch (...) {
    }
    return std::string(shmconf::to_string(impl::categorize(e))) + " (" + what + ")";
}

const char* signal_name(int sig) {
    switch (sig) {
        case SIGBUS:
            return "SIGBUS";
        case SIGSEGV:
            return "SIGSEGV";
        case SIGABRT:
            return "SIGABRT";
        case SIGFPE:
            return "SIGFPE";
        case SIGILL:
            return "SIGILL";
        case SIGKILL:
            return "SIGKILL";
        default:
            return "a signal";
    }
}

std::uint64_t test_seed() {
    if (const char* s = std::getenv("SHMCONF_SEED")) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

/// A failure a time-limited retry did not get past.
struct gave_up : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Runs `f`; an operation that fails with `timeout` is tried again (CRASH-002
/// allows a waiter to give up with timeout), for at most `limit` in all.
/// Any other error, or timeouts for the whole limit, propagate.
template <class F>
auto retrying(F&& f, std::chrono::milliseconds limit = 15s) {
    const auto until = steady::now() + limit;
    for (;;) {
        try {
            return f();
        } catch (...) {
            if (impl::categorize(std::current_exception()) != error_category::timeout || steady::now() > until)
                throw;
        }
    }
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
    std::string all;
    for (const auto& p : parts) all += (all.empty() ? "" : separator) + p;
    return all;
}

// ---- isolation: a forked child does the risky part and reports ---------------------

/// The step a child is at, for the crash handler (no allocation there).
char g_step[256] = "";
int g_report_fd = -1;

void write_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w <= 0 && errno != EINTR) return;
        if (w > 0) {
            data += w;
            n -= static_cast<std::size_t>(w);
        }
    }
}

extern "C" void on_fatal_signal(int sig) {
    // Says where the child was, then dies of the same signal.
    if (g_report_fd >= 0) {
        write_all(g_report_fd, "C ", 2);
        write_all(g_report_fd, g_step, ::strnlen(g_step, sizeof g_step));
        write_all(g_report_fd, "\n", 1);
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install_crash_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGABRT}) ::sigaction(sig, &sa, nullptr);
}

/// What a child says to its parent: one line per failure, note or step.
class reporter {
public:
    explicit reporter(int fd) : fd_(fd) {}
    void fail(const std::string& m) {
        ++failures_;
        send('F', m);
    }
    void note(const std::string& m) { send('N', m); }
    void unresolved(const std::string& m) { send('U', m); }
    /// What the child is doing now: named in a crash or hang report.
    void step(const std::string& m) {
        std::snprintf(g_step, sizeof g_step, "%s", m.c_str());
        send('S', m);
    }
    [[nodiscard]] int failures() const { return failures_; }

private:
    void send(char kind, std::string m) {
        for (char& c : m)
            if (c == '\n') c = ' ';
        m = std::string(1, kind) + " " + m + "\n";
        write_all(fd_, m.data(), m.size());
    }
    int fd_;
    int failures_ = 0;
};

struct isolated {
    bool hung = false;
    int signal = 0;
    int exit_code = 0;
    std::string last_step;
    std::vector<std::string> failures, notes, unresolved;
    std::chrono::milliseconds limit{};
    std::chrono::milliseconds stall{};
};

/// Runs `body` in a forked child, in a process group of its own (with the
/// actors it starts), for at most `limit`, and kills the whole group then, or
/// as soon as the child has said nothing (no step, note or failure) for
/// `stall`: a hang is reported without waiting for the whole limit.
isolated run_isolated(std::chrono::milliseconds limit, const std::function<void(reporter&)>& body,
                      std::chrono::milliseconds stall = 30s) {
    isolated result;
    result.limit = limit;
    result.stall = stall;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
        ::setpgid(0, 0);
        ::close(fds[0]);
        g_report_fd = fds[1];
        install_crash_handlers();
        reporter out(fds[1]);
        try {
            body(out);
        } catch (...) {
            out.fail(std::string("during '") + g_step + "': " + describe(std::current_exception()));
        }
        std::fflush(nullptr);
        ::_exit(0);
    }
    ::setpgid(pid, pid);  // (also done by the child: whichever runs first)
    ::close(fds[1]);
    const auto until = steady::now() + limit;
    auto heard = steady::now();
    std::string buffer;
    char chunk[4096];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::min(until, heard + stall) - steady::now())
                              .count();
        if (left <= 0) {
            result.hung = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;
        const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(n));
        heard = steady::now();
    }
    ::kill(-pid, SIGKILL);  // the actors it left, or all of it when it hung
    if (result.hung) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(fds[0]);
    if (WIFSIGNALED(status) && !result.hung) result.signal = WTERMSIG(status);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    std::istringstream lines(buffer);
    for (std::string line; std::getline(lines, line);) {
        if (line.size() < 2) continue;
        const std::string text = line.substr(2);
        switch (line[0]) {
            case 'F':
                result.failures.push_back(text);
                break;
            case 'N':
                result.notes.push_back(text);
                break;
            case 'U':
                result.unresolved.push_back(text);
                break;
            case 'S':
            case 'C':
                result.last_step = text;
                break;
        }
    }
    return result;
}

/// Turns what an isolated child found into the test's verdict and notes.
void judge(const isolated& r, const std::string& what) {
    for (const auto& n : r.notes) std::printf("[   NOTE   ] %s: %s\n", what.c_str(), n.c_str());
    if (!r.notes.empty()) ::testing::Test::RecordProperty("measurements", join(r.notes, "; "));
    for (const auto& f : r.failures) ADD_FAILURE() << what << ": " << f;
    if (r.signal != 0)
        ADD_FAILURE() << what << ": the checking process died of " << signal_name(r.signal) << " (signal "
                      << r.signal << ") during '" << r.last_step << "'";
    if (r.hung)
        ADD_FAILURE() << what << ": no progress for " << r.stall.count() / 1000 << " s (or not done after "
                      << r.limit.count() / 1000 << " s): an operation hangs, at '" << r.last_step << "'";
    if (r.exit_code != 0)
        ADD_FAILURE() << what << ": the checking process exited with status " << r.exit_code
                      << " (a sanitizer report on stderr?) during '" << r.last_step << "'";
}

// ---- the record file shared with the fault actor ------------------------------------

/// Word indices of the record (keep in step with fault_actor.cpp).
namespace word {
constexpr std::size_t started = 0;
constexpr std::size_t in_op = 1;
constexpr std::size_t done = 2;
constexpr std::size_t ok = 3;
constexpr std::size_t failed = 4;
constexpr std::size_t last_error = 5;
constexpr std::size_t log = 16;
}  // namespace word

/// An anonymous file (memfd) the actors inherit and map: what they store
/// there survives their SIGKILL. Not in any segment under test.
class record_file {
public:
    explicit record_file(std::size_t log_words = 1u << 10) {
        fd_ = ::memfd_create("shmconf-record", 0);  // not close-on-exec: actors open it by its /proc path
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
        bytes_ = (word::log + log_words) * sizeof(u64);
        if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0)
            throw std::system_error(errno, std::generic_category(), "ftruncate of a record file");
        void* m = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (m == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap of a record file");
        words_ = static_cast<u64*>(m);
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~record_file() {
        ::munmap(words_, bytes_);
        ::close(fd_);
    }
    record_file(const record_file&) = delete;
    record_file& operator=(const record_file&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] u64 load(std::size_t i) const { return std::atomic_ref<u64>(words_[i]).load(); }
    void reset() {
        for (std::size_t i = 0; i < word::log; ++i) std::atomic_ref<u64>(words_[i]).store(0);
    }
    [[nodiscard]] std::vector<u64> logged() const {
        const u64 n = load(word::done);
        return std::vector<u64>(words_ + word::log, words_ + word::log + n);
    }
    [[nodiscard]] std::string last_error() const {
        const u64 e = load(word::last_error);
        return e == 0 ? "none" : shmconf::to_string(static_cast<error_category>(e - 1));
    }

private:
    int fd_ = -1;
    std::size_t bytes_ = 0;
    u64* words_ = nullptr;
    std::string path_;
};

/// A fault actor: SHMCONF_FAULT_ACTOR_PATH RECORD SEGMENT ARGS..., killed
/// with SIGKILL by its destructor if still running (and by the kernel if its
/// parent dies).
class fault_actor {
public:
    fault_actor(const record_file& record, const std::string& segment, std::vector<std::string> args) {
        std::vector<std::string> all{SHMCONF_FAULT_ACTOR_PATH, record.path(), segment};
        all.insert(all.end(), args.begin(), args.end());
        std::vector<char*> argv;
        argv.reserve(all.size() + 1);
        for (auto& a : all) argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t parent = ::getpid();
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    ~fault_actor() {
        if (!reaped_) {
            kill();
            (void)wait();
        }
    }
    fault_actor(const fault_actor&) = delete;
    fault_actor& operator=(const fault_actor&) = delete;

    void kill() const { ::kill(pid_, SIGKILL); }
    /// Its exit status, or -signal.
    int wait() {
        if (!reaped_) {
            while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
            }
            reaped_ = true;
        }
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : -WTERMSIG(status_);
    }
    bool running() {
        if (reaped_) return false;
        if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
        return !reaped_;
    }

private:
    pid_t pid_ = -1;
    int status_ = 0;
    bool reaped_ = false;
};

/// Waits until the actor's record says it has run an operation, calling
/// `meanwhile` in the loop. Returns what went wrong, or "".
std::string wait_until_started(fault_actor& actor, const record_file& record,
                               const std::function<void()>& meanwhile = [] {}) {
    const auto until = steady::now() + 20s;
    while (record.load(word::started) == 0) {
        if (!actor.running())
            return "it ended (status " + std::to_string(actor.wait()) + ") before its first operation; its last error: " +
                   record.last_error();
        if (steady::now() > until) return "it did not run an operation within 20 s; its last error: " + record.last_error();
        meanwhile();
        std::this_thread::yield();
    }
    return "";
}

/// Random delays from a seeded generator, noted so a run can be replayed.
class dice {
public:
    dice() : dice(test_seed()) {}
    explicit dice(std::uint64_t seed) : seed_(seed), random_(seed_) {}
    [[nodiscard]] std::uint64_t seed() const { return seed_; }
    std::chrono::microseconds delay(std::chrono::microseconds most) {
        return std::chrono::microseconds(random_() % static_cast<u64>(most.count() + 1));
    }
    u64 operator()() { return random_(); }

private:
    std::uint64_t seed_;
    std::mt19937_64 random_;
};

void busy_until(steady::time_point until, const std::function<void()>& meanwhile) {
    do meanwhile();
    while (steady::now() < until);
}

std::string percent(u64 part, u64 whole) {
    return std::to_string(part) + " of " + std::to_string(whole) +
           (whole ? " (" + std::to_string(100 * part / whole) + "%)" : "");
}

// ---- CRASH-001: a killed producer or consumer loses at most the element in flight -------

/// The longest a whole scenario may take (a hang is caught sooner, see run_isolated).
const std::chrono::milliseconds isolation_limit = by_profile<std::chrono::milliseconds>(120s, 280s);

/// Producers (fault actors, one at a time) push (1 << 32 | sequence), each
/// from where the last one's record stopped (skipping the element that was
/// in flight), and are killed at random moments; this process pops
/// meanwhile, then drains. Every completed push must come out exactly once,
/// nothing else but the in-flight elements, in sequence order for FIFO kinds.
template <class S>
void killed_producers(const std::string& kind, bool fifo) {
    fresh_segment name;
    dice random;
    const int kills = by_profile(12, 80);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        // Room for a whole life of pushes: a producer that finds its structure
        // full, or a consumer that finds it empty, spends its time between
        // operations, where a kill proves little.
        auto seg = impl::create(name.name(), 4 << 20);
        S q = impl::template make<S>(seg, "q", 16384);
        record_file record;
        struct life {
            u64 start, done;
        };
        std::vector<life> lives;
        std::vector<u64> popped;
        u64 in_op = 0;
        auto pop_one = [&] {
            if (auto v = retrying([&] { return q.try_pop(); })) popped.push_back(*v);
        };
        u64 start = 0;
        for (int k = 0; k < kills; ++k) {
            out.step("producer " + std::to_string(k) + " starting");
            // Room for the producer: it should be pushing, not finding the queue full.
            for (std::optional<u64> v; (v = retrying([&] { return q.try_pop(); }));) popped.push_back(*v);
            record.reset();
            fault_actor producer(record, name.name(), {"produce", kind, "q", "1", std::to_string(start)});
            if (auto problem = wait_until_started(producer, record, pop_one); !problem.empty()) {
                out.fail("producer " + std::to_string(k) + " (after " + std::to_string(k) + " killed) could not push: " +
                         problem +
                         (kind == "spsc_queue" && k > 0 ? " (the producer role must be free once its holder is dead)"
                                                        : ""));
                return;
            }
            out.step("producer " + std::to_string(k) + " running, this process popping");
            busy_until(steady::now() + random.delay(4000us), pop_one);
            producer.kill();
            producer.wait();
            in_op += record.load(word::in_op);
            lives.push_back({start, record.load(word::done)});
            start = lives.back().done + 1;  // the in-flight element's sequence is never reused
        }
        // Drain: until every completed push is out, then a quiet moment for strays.
        out.step("draining after the last kill");
        auto completed = [&](u64 seq) {
            for (const life& l : lives)
                if (seq >= l.start && seq < l.done) return true;
            return false;
        };
        u64 total_completed = 0;
        for (const life& l : lives) total_completed += l.done - l.start;
        std::set<u64> seen_completed;
        for (u64 v : popped)
            if (v >> 32 == 1 && completed(v & 0xffffffffu)) seen_completed.insert(v);
        for (auto last = steady::now();;) {
            if (auto v = retrying([&] { return q.try_pop(); })) {
                popped.push_back(*v);
                if (*v >> 32 == 1 && completed(*v & 0xffffffffu)) seen_completed.insert(*v);
                last = steady::now();
                continue;
            }
            const auto quiet = steady::now() - last;
            if ((seen_completed.size() == total_completed && quiet > 50ms) || quiet > 3s) break;
            std::this_thread::sleep_for(100us);
        }
        // Judge.
        std::map<u64, int> times;
        u64 strays = 0, in_flight = 0, out_of_order = 0;
        std::string first_stray, first_inversion;
        for (std::size_t i = 0; i < popped.size(); ++i) {
            const u64 v = popped[i];
            const u64 seq = v & 0xffffffffu;
            if (++times[v] > 1) continue;
            const bool known = v >> 32 == 1 && std::any_of(lives.begin(), lives.end(), [&](const life& l) {
                                   return seq >= l.start && seq <= l.done;
                               });
            if (!known) {
                if (strays++ == 0) first_stray = std::to_string(v);
            } else if (!completed(seq)) {
                ++in_flight;
            }
            if (fifo && i > 0 && (popped[i - 1] & 0xffffffffu) >= seq && out_of_order++ == 0)
                first_inversion = std::to_string(popped[i - 1] & 0xffffffffu) + " before " + std::to_string(seq);
        }
        u64 duplicates = 0, missing = 0;
        std::string first_missing, first_duplicate;
        for (const auto& [v, n] : times)
            if (n > 1 && duplicates++ == 0) first_duplicate = std::to_string(v) + " (" + std::to_string(n) + " times)";
        for (const life& l : lives)
            for (u64 s = l.start; s < l.done; ++s)
                if (!times.count((u64{1} << 32) | s) && missing++ == 0) first_missing = std::to_string(s);
        if (missing)
            out.fail(std::to_string(missing) + " of " + std::to_string(total_completed) +
                     " completed pushes were never popped (first: sequence " + first_missing + ") after " +
                     std::to_string(kills) + " producers were killed");
        if (duplicates) out.fail(std::to_string(duplicates) + " values were popped twice (first: " + first_duplicate + ")");
        if (strays) out.fail(std::to_string(strays) + " popped values were never pushed (first: " + first_stray + ")");
        if (out_of_order)
            out.fail(std::to_string(out_of_order) + " pops out of the producer's order (first: " + first_inversion + ")");
        out.note(std::to_string(kills) + " producers killed, " + percent(in_op, kills) +
                 " inside an operation call; " + std::to_string(total_completed) + " completed pushes; " +
                 std::to_string(in_flight) + " in-flight elements delivered");
    });
    judge(r, kind + " with killed producers");
}

/// Consumers (fault actors, one at a time) pop and log what they got; they
/// are killed at random moments while this process pushes; then this
/// process drains. Logged plus drained values cover every push, missing at
/// most one per kill, never one twice, in push order for FIFO kinds.
template <class S>
void killed_consumers(const std::string& kind, bool fifo) {
    fresh_segment name;
    dice random;
    const int kills = by_profile(12, 80);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        // Room for a whole life of pushes: a producer that finds its structure
        // full, or a consumer that finds it empty, spends its time between
        // operations, where a kill proves little.
        auto seg = impl::create(name.name(), 4 << 20);
        S q = impl::template make<S>(seg, "q", 16384);
        record_file record(1u << 20);
        std::vector<u64> consumed;  // in the order the consumers took them
        u64 pushed = 0, in_op = 0;
        auto push_one = [&] {
            if (retrying([&] { return q.try_push((u64{2} << 32) | pushed); })) ++pushed;
        };
        for (int k = 0; k < kills; ++k) {
            out.step("consumer " + std::to_string(k) + " starting");
            // Something to pop at once: the consumer should be taking, not finding it empty.
            while (retrying([&] { return q.try_push((u64{2} << 32) | pushed); })) ++pushed;
            record.reset();
            fault_actor consumer(record, name.name(), {"consume", kind, "q"});
            if (auto problem = wait_until_started(consumer, record, push_one); !problem.empty()) {
                out.fail("consumer " + std::to_string(k) + " (after " + std::to_string(k) + " killed) could not pop: " +
                         problem +
                         (kind == "spsc_queue" && k > 0 ? " (the consumer role must be free once its holder is dead)"
                                                        : ""));
                return;
            }
            out.step("consumer " + std::to_string(k) + " running, this process pushing");
            busy_until(steady::now() + random.delay(4000us), push_one);
            consumer.kill();
            consumer.wait();
            in_op += record.load(word::in_op);
            const auto got = record.logged();
            consumed.insert(consumed.end(), got.begin(), got.end());
        }
        out.step("draining through a second handle after the last kill");
        S drain = impl::template find<S>(seg, "q");
        std::set<u64> distinct(consumed.begin(), consumed.end());
        for (auto last = steady::now();;) {
            if (auto v = retrying([&] { return drain.try_pop(); })) {
                consumed.push_back(*v);
                distinct.insert(*v);
                last = steady::now();
                continue;
            }
            const auto quiet = steady::now() - last;
            if ((distinct.size() >= pushed && quiet > 20ms) || quiet > 300ms) break;
            std::this_thread::sleep_for(100us);
        }
        std::map<u64, int> times;
        u64 strays = 0, out_of_order = 0, duplicates = 0;
        std::string first_inversion;
        for (std::size_t i = 0; i < consumed.size(); ++i) {
            const u64 v = consumed[i];
            if (++times[v] == 2) ++duplicates;
            if (v >> 32 != 2 || (v & 0xffffffffu) >= pushed) ++strays;
            if (fifo && i > 0 && consumed[i - 1] >= v && out_of_order++ == 0)
                first_inversion = std::to_string(consumed[i - 1] & 0xffffffffu) + " before " +
                                  std::to_string(v & 0xffffffffu);
        }
        u64 missing = 0;
        for (u64 s = 0; s < pushed; ++s) missing += times.count((u64{2} << 32) | s) == 0;
        if (missing > static_cast<u64>(kills))
            out.fail(std::to_string(missing) + " of " + std::to_string(pushed) + " pushed values were lost with " +
                     std::to_string(kills) + " consumers killed (at most one per kill)");
        if (duplicates) out.fail(std::to_string(duplicates) + " values were taken twice");
        if (strays) out.fail(std::to_string(strays) + " values taken were never pushed");
        if (out_of_order)
            out.fail(std::to_string(out_of_order) + " values taken out of push order (first: " + first_inversion + ")");
        out.note(std::to_string(kills) + " consumers killed, " + percent(in_op, kills) +
                 " inside an operation call; " + std::to_string(pushed) + " pushed, " + std::to_string(missing) +
                 " lost in flight");
    });
    judge(r, kind + " with killed consumers");
}

TEST(Crash, KilledSpscProducersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    killed_producers<impl::spsc_queue<u64>>("spsc_queue", true);
}

TEST(Crash, KilledSpscConsumersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    killed_consumers<impl::spsc_queue<u64>>("spsc_queue", true);
}

TEST(Crash, KilledMpmcProducersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    killed_producers<impl::mpmc_queue<u64>>("mpmc_queue", true);
}

TEST(Crash, KilledMpmcConsumersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    killed_consumers<impl::mpmc_queue<u64>>("mpmc_queue", true);
}

TEST(Crash, KilledStackPushersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    killed_producers<impl::concurrent_stack<u64>>("concurrent_stack", false);
}

TEST(Crash, KilledStackPoppersLoseAtMostTheElementInFlight) {
    CHECKS_REQUIREMENTS("CRASH-001");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    killed_consumers<impl::concurrent_stack<u64>>("concurrent_stack", false);
}

// ---- CRASH-002: a process killed holding a lock blocks nobody for ever --------------------

/// Microseconds the surviving process rests between rounds: it leaves the
/// lock to the victim most of the time, so that more kills land while the
/// victim holds it.
const std::string survivor_pause = "200";

/// How long the others may take to get past a dead holder (a timeout from
/// each waiter is allowed in between, so this is longer than any sensible one).
constexpr auto recovery_limit = 15s;

/// A survivor (a fault actor) and victims (fault actors, one at a time) run
/// `survivor_args` and `victim_args` on one thing; each victim is killed at a random moment.
/// After each kill the survivor's and this process's next operations
/// (`own_operation`) must complete, within recovery_limit, where a timeout
/// is allowed and retried; an operation that fails any other way, or never
/// completes again, is a FAIL.
void killed_holders(const std::string& what, const std::function<void(impl::segment&)>& setup,
                    const std::vector<std::string>& survivor_args, const std::vector<std::string>& victim_args,
                    const std::function<void(impl::segment&)>& own_operation) {
    fresh_segment name;
    dice random;
    const int kills = by_profile(40, 300);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        auto seg = impl::create(name.name(), 1 << 20);
        setup(seg);
        record_file survivor_record, victim_record;
        fault_actor survivor(survivor_record, name.name(), survivor_args);
        if (auto problem = wait_until_started(survivor, survivor_record); !problem.empty()) {
            out.fail("the surviving process could not start: " + problem);
            return;
        }
        u64 in_op = 0;
        std::chrono::microseconds slowest{0};
        auto after = [](int killed) { return " after " + std::to_string(killed) + " processes were killed"; };
        for (int k = 0; k < kills; ++k) {
            out.step("victim " + std::to_string(k) + " starting");
            victim_record.reset();
            fault_actor victim(victim_record, name.name(), victim_args);
            if (auto problem = wait_until_started(victim, victim_record); !problem.empty()) {
                out.fail("a new process could not operate" + after(k) + ": " + problem);
                return;
            }
            if (victim_record.load(word::failed) != 0 && victim_record.last_error() != "timeout") {
                out.fail("a new process's first operation failed with " + victim_record.last_error() + after(k));
                return;
            }
            std::this_thread::sleep_for(random.delay(3000us));
            victim.kill();
            victim.wait();
            in_op += victim_record.load(word::in_op);
            const auto killed_at = steady::now();
            const u64 ok_before = survivor_record.load(word::ok);
            const u64 failed_before = survivor_record.load(word::failed);
            // This process's next operation (a hang is caught by run_isolated).
            out.step(what + ": this process's next operation after kill " + std::to_string(k));
            try {
                retrying([&] {
                    own_operation(seg);
                    return 0;
                },
                         recovery_limit);
            } catch (...) {
                out.fail("this process's next operation" + after(k + 1) + " failed: " + describe(std::current_exception()) +
                         (impl::categorize(std::current_exception()) == error_category::timeout
                              ? " (still timing out after " + std::to_string(recovery_limit.count()) + " s)"
                              : ""));
                return;
            }
            // The survivor's next operations.
            out.step(what + ": the surviving process's next operations after kill " + std::to_string(k));
            while (survivor_record.load(word::ok) < ok_before + 2) {
                if (!survivor.running()) {
                    out.fail("the surviving process ended" + after(k + 1) + " (status " + std::to_string(survivor.wait()) +
                             ")");
                    return;
                }
                if (steady::now() - killed_at > recovery_limit) {
                    out.fail("the surviving process completed no operation within " +
                             std::to_string(recovery_limit.count()) + " s" + after(k + 1) + " (its last error: " +
                             survivor_record.last_error() + ", " +
                             std::to_string(survivor_record.load(word::failed) - failed_before) +
                             " failed operations since the kill)");
                    return;
                }
                std::this_thread::sleep_for(100us);
            }
            slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - killed_at));
            if (survivor_record.load(word::failed) != failed_before) {
                const std::string category = survivor_record.last_error();
                if (category != "timeout") {
                    out.fail("the surviving process's operations failed with " + category + after(k + 1));
                    return;
                }
            }
        }
        out.note(std::to_string(kills) + " holders killed, " + percent(in_op, kills) +
                 " inside an operation call; slowest recovery " + std::to_string(slowest.count() / 1000) + " ms");
    });
    judge(r, what);
}

TEST(Crash, AStackLockHolderKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death, "locks surviving their owner's death are not claimed");
    using S = impl::concurrent_stack<u64>;
    u64 v = 0;
    killed_holders(
        "concurrent_stack with killed lock holders",
        [](impl::segment& seg) {
            S s = impl::make<S>(seg, "s", 64);
            for (u64 i = 0; i < 32; ++i) (void)s.try_push(i);  // neither full nor empty: every call locks
        },
        {"hammer", "concurrent_stack", "s", survivor_pause}, {"hammer", "concurrent_stack", "s"},
        [&](impl::segment& seg) {
            S s = impl::find<S>(seg, "s");
            (void)s.try_push(++v);
            (void)s.try_pop();
        });
}

TEST(Crash, ATableLockHolderKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death, "locks surviving their owner's death are not claimed");
    killed_holders(
        "the table with killed updaters", [](impl::segment& seg) { (void)impl::make<array>(seg, "anchor", 8); },
        {"hammer-table", "s", survivor_pause}, {"hammer-table", "v"},
        [](impl::segment& seg) {
            (void)impl::find<array>(seg, "anchor");
            (void)impl::make<array>(seg, "mine", 8);
            impl::destroy(seg, "mine");
        });
}

TEST(Crash, AnMpmcParticipantKilledBlocksNobody) {
    CHECKS_REQUIREMENTS("CRASH-002");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    UNSUPPORTED_UNLESS(impl::caps.locks_survive_owner_death, "locks surviving their owner's death are not claimed");
    using S = impl::mpmc_queue<u64>;
    constexpr u64 capacity = 64;
    // This process's handle joins before the first kill and is kept: a
    // handle opened after a kill would be a newcomer, which may take the dead
    // process's place and clean up after it; this checks that processes
    // already there recover by themselves. After each kill it goes round the
    // whole ring (a lap and one more), so a slot the victim died holding,
    // whether pushing or popping, is met whichever it was.
    std::optional<S> mine;
    u64 v = 0;
    killed_holders(
        "mpmc_queue with killed participants",
        [&](impl::segment& seg) {
            mine.emplace(impl::make<S>(seg, "q", capacity));
            for (u64 i = 0; i < capacity / 2; ++i) (void)mine->try_push(i);
        },
        {"hammer", "mpmc_queue", "q", survivor_pause}, {"hammer", "mpmc_queue", "q"},
        [&](impl::segment&) {
            for (u64 i = 0; i <= capacity; ++i) {
                const auto until = steady::now() + 5s;
                while (!mine->try_push(++v))
                    if (steady::now() > until)
                        throw std::runtime_error("push " + std::to_string(i) + " of a lap found the queue full for 5 s "
                                                 "(about half of it held): a slot the killed process claimed was "
                                                 "never given back to the processes already attached");
                while (!mine->try_pop())
                    if (steady::now() > until)
                        throw std::runtime_error("pop " + std::to_string(i) + " of a lap found the queue empty for 5 s "
                                                 "(about half of it held): a slot the killed process claimed was "
                                                 "never given back to the processes already attached");
            }
        });
}

// ---- CRASH-003: a process killed during a table update --------------------------------

/// The largest array of u64 `seg` can hold now, by bisection (make, destroy).
std::size_t largest_array(impl::segment& seg, std::size_t upper) {
    std::size_t lo = 0, hi = upper;
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo + 1) / 2;
        const auto c = shmconf::category_of<impl>([&] { (void)impl::make<array>(seg, "probe", mid); });
        if (c == error_category::none) {
            impl::destroy(seg, "probe");
            lo = mid;
        } else if (c == error_category::out_of_space || c == error_category::invalid_size) {
            hi = mid - 1;
        } else {
            throw std::runtime_error(std::string("making a probe array of ") + std::to_string(mid) +
                                     " elements failed with " + shmconf::to_string(c));
        }
    }
    return lo;
}

TEST(Crash, AProcessKilledDuringTableUpdatesLeavesTheTableConsistent) {
    CHECKS_REQUIREMENTS("CRASH-003");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    dice random;
    const int kills = by_profile(30, 200);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        constexpr std::size_t segment_bytes = 1 << 20;
        auto seg = impl::create(name.name(), segment_bytes);
        // Structures made before, and never touched by, the churning processes.
        auto make_kept = [&](const char* n, std::size_t count, u64 base) {
            auto a = impl::make<array>(seg, n, count);
            for (std::size_t i = 0; i < count; ++i) a.at(i) = base + i;
        };
        make_kept("keep0", 32, 1000);
        make_kept("keep1", 48, 5000);
        auto check_kept = [&](const char* n, std::size_t count, u64 base, const std::string& when) {
            array a = retrying([&] { return impl::find<array>(seg, n); });
            if (a.size() != count) return out.fail(std::string(n) + " has " + std::to_string(a.size()) +
                                                   " elements " + when + ", not " + std::to_string(count));
            for (std::size_t i = 0; i < count; ++i)
                if (a.at(i) != base + i)
                    return out.fail(std::string(n) + "[" + std::to_string(i) + "] changed " + when);
        };
        // Large enough that making one (zeroing its block) is much of what an
        // updater does, so kills often land between taking a block and
        // publishing the entry; 160 KiB in all, so every one fits at once.
        const std::vector<std::pair<std::string, std::size_t>> set{{"t0", 2048}, {"t1", 2560}, {"t2", 3072},
                                                                   {"t3", 3584}, {"t4", 4096}, {"t5", 4608}};
        std::vector<std::string> churn_args{"churn"};
        for (const auto& [n, c] : set) churn_args.push_back(n + ":" + std::to_string(c));
        out.step("measuring the largest array before");
        const std::size_t largest_before = largest_array(seg, segment_bytes / sizeof(u64));
        std::size_t largest_after = largest_before;
        // Less than the smallest churned array: a leaked block of any of them shows.
        constexpr std::size_t slack = 32;
        record_file record;
        u64 in_op = 0, churned = 0;
        int killed = 0;
        for (int k = 0; k < kills && out.failures() == 0; ++k) {
            const std::string when = "after " + std::to_string(k + 1) + " killed updaters";
            out.step("updater " + std::to_string(k) + " starting");
            record.reset();
            fault_actor churner(record, name.name(), churn_args);
            if (auto problem = wait_until_started(churner, record); !problem.empty())
                return out.fail(concat("a new updater could not operate ", when, ": ", problem));
            std::this_thread::sleep_for(random.delay(3000us));
            churner.kill();
            churner.wait();
            ++killed;
            in_op += record.load(word::in_op);
            churned += record.load(word::ok);
            if (record.load(word::failed) != 0)
                out.fail("the updating process's operations failed with " + record.last_error() + " " + when);
            out.step("checking the table " + when);
            check_kept("keep0", 32, 1000, when);
            check_kept("keep1", 48, 5000, when);
            for (const auto& entry : set) {
                const std::string& n = entry.first;  // (named, not bound: lambdas below capture them)
                const std::size_t c = entry.second;
                // Found or created, with its size: never lost, never a stray.
                auto a = retrying([&] { return impl::make<array>(seg, n, c); });
                if (a.size() != c) out.fail(concat("make of ", n, " gave ", std::to_string(a.size()), " elements ", when));
                a.at(1) = 77 + static_cast<u64>(k);
                if (impl::find<array>(seg, n).at(1) != 77 + static_cast<u64>(k))
                    out.fail(concat("two structures answer to ", n, " ", when));
                // Destroyed, it is gone: no second entry under the name.
                retrying([&] {
                    impl::destroy(seg, n);
                    return 0;
                });
                const auto c2 = shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, n); });
                if (c2 != error_category::not_found)
                    out.fail(concat("after destroying ", n, " ", when, ", finding it gave ", shmconf::to_string(c2),
                                    " (a second entry under the name?)"));
            }
            // Every churned name destroyed: all the space is back, whatever the
            // killed process had taken.
            const std::size_t largest = largest_array(seg, segment_bytes / sizeof(u64));
            largest_after = std::min(largest_after, largest);
            if (largest + slack < largest_before)
                out.fail("space was lost: the largest array that fits went from " + std::to_string(largest_before) +
                         " to " + std::to_string(largest) + " elements " + when +
                         " (every churned name destroyed)");
        }
        out.note(std::to_string(killed) + " updaters killed, " + percent(in_op, killed) + " inside a make or destroy; " +
                 std::to_string(churned) + " updates completed; largest array " + std::to_string(largest_before) +
                 " elements before, at least " + std::to_string(largest_after) + " after each kill");
    });
    judge(r, "the table with killed updaters");
}

// ---- REF-005: a segment whose attachers all died -----------------------------------------

TEST(Crash, AStaleSegmentIsRecognisedAndNeverReused) {
    CHECKS_REQUIREMENTS("REF-005");
    UNSUPPORTED_UNLESS(impl::caps.cleans_up_after_crashed_attachers, "cleanup after crashed attachers is not claimed");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment base;
    dice random;
    const int trials = by_profile(9, 60);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        constexpr std::size_t bytes = 1 << 20;
        int fresh = 0, gone = 0, refused = 0;
        // A segment we attached to must be fresh: none of the dead
        // processes' structures. Finding their kept array, however intact,
        // means the stale segment was not recognised (REF-005).
        auto must_be_fresh = [&](impl::segment& seg, const std::string& how) {
            const auto c = shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, "keep"); });
            if (c == error_category::none)
                return out.fail(how + " attached to the old segment (the dead processes' kept array is there): "
                                      "a segment whose attachers all died was not recognised as stale");
            if (c != error_category::not_found)
                return out.fail(how + " gave a segment where finding the dead processes' kept array failed with " +
                                shmconf::to_string(c) + ", not not_found");
            for (int i = 0; i < 4; ++i) {
                const auto ci =
                    shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, "r" + std::to_string(i)); });
                if (ci != error_category::not_found)
                    return out.fail(how + " gave a segment without the dead processes' kept array but with r" +
                                    std::to_string(i) + " (" + shmconf::to_string(ci) + "): half of the old one");
            }
            ++fresh;
            auto u = impl::make<array>(seg, "usable", 16);
            for (std::size_t i = 0; i < 16; ++i) u.at(i) = i * 3;
            for (std::size_t i = 0; i < 16; ++i)
                if (u.at(i) != i * 3) return out.fail(how + " gave a segment that does not keep what is written");
            impl::destroy(seg, "usable");
        };
        for (int t = 0; t < trials; ++t) {
            const std::string name = base.name() + "-" + std::to_string(t);
            impl::remove(name);
            // In the full profile, every fourth creator is killed at a random
            // moment from its start: some die while creating the segment
            // (an implementation may then wait for its creation timeout).
            if (shmconf_tests::full_profile() && t % 4 == 3) {
                out.step("trial " + std::to_string(t) + ": a creator killed early");
                record_file creator_record;
                fault_actor creator(creator_record, name, {"create-and-churn", std::to_string(bytes)});
                std::this_thread::sleep_for(random.delay(30000us));
                creator.kill();
                creator.wait();
            } else {
                out.step("trial " + std::to_string(t) + ": starting the attachers");
                record_file creator_record, attacher_record;
                fault_actor creator(creator_record, name, {"create-and-churn", std::to_string(bytes)});
                if (auto problem = wait_until_started(creator, creator_record); !problem.empty())
                    return out.fail("the creating process failed: " + problem);
                fault_actor attacher(attacher_record, name, {"attach"});
                if (auto problem = wait_until_started(attacher, attacher_record); !problem.empty())
                    return out.fail("the attaching process failed: " + problem);
                std::this_thread::sleep_for(random.delay(3000us));
                if (random() % 2) {
                    creator.kill();
                    attacher.kill();
                } else {
                    attacher.kill();
                    creator.kill();
                }
                creator.wait();
                attacher.wait();
            }
            const std::string how = t % 3 == 0 ? "create-only" : t % 3 == 1 ? "open-or-create" : "open-only";
            out.step("trial " + std::to_string(t) + ": " + how + " after every attacher died");
            if (!name_exists(name)) ++gone;
            if (t % 3 == 0) {
                std::optional<impl::segment> seg;
                const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(name, bytes)); });
                if (c == error_category::none) {
                    must_be_fresh(*seg, how);
                } else if (c == error_category::already_exists) {
                    ++refused;
                    auto again = impl::open_or_create(name, bytes);
                    must_be_fresh(again, "open-or-create after create-only was refused");
                } else {
                    out.fail("create-only of a name whose attachers all died failed with " + std::string(shmconf::to_string(c)));
                }
            } else if (t % 3 == 1) {
                auto seg = impl::open_or_create(name, bytes);
                must_be_fresh(seg, how);
            } else {
                std::optional<impl::segment> seg;
                const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::open(name)); });
                if (c == error_category::none)
                    must_be_fresh(*seg, how);
                else if (c == error_category::not_found)
                    ++refused;
                else
                    out.fail("open-only of a name whose attachers all died failed with " + std::string(shmconf::to_string(c)));
            }
            impl::remove(name);
        }
        out.note(std::to_string(trials) + " trials: name gone at once " + std::to_string(gone) + ", fresh " +
                 std::to_string(fresh) + ", refused cleanly " + std::to_string(refused));
    });
    judge(r, "segments whose attachers were all killed");
}

// ---- SEG-007: a full /dev/shm ---------------------------------------------------------------

bool write_file(const char* path, const std::string& text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

/// In this (child) process: a mount namespace of its own with a tmpfs of
/// `bytes` on /dev/shm. Returns why not, or "".
std::string private_small_dev_shm(std::size_t bytes) {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    auto failed = [](const std::string& what) { return what + ": " + std::strerror(errno); };
    if (uid == 0) {
        if (::unshare(CLONE_NEWNS) != 0) return failed("unshare(CLONE_NEWNS)");
    } else {
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return failed("unshare(CLONE_NEWUSER | CLONE_NEWNS)");
        write_file("/proc/self/setgroups", "deny");
        if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            return failed("mapping the user to root in a user namespace");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return failed("making mounts private");
    const std::string options = "size=" + std::to_string(bytes) + ",mode=1777";
    if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
        return failed("mounting a " + std::to_string(bytes) + "-byte tmpfs on /dev/shm");
    struct statvfs vfs {};
    if (::statvfs("/dev/shm", &vfs) != 0) return failed("statvfs(/dev/shm)");
    if (vfs.f_blocks * vfs.f_frsize > 2 * bytes) return "the tmpfs on /dev/shm is larger than asked";
    return "";
}

/// Makes the largest array `seg` takes (from about `bytes` down), writes
/// every element and reads it back. Returns its element count.
std::size_t write_through_largest_array(impl::segment& seg, std::size_t bytes, reporter& out, const std::string& what) {
    for (std::size_t count = bytes / sizeof(u64); count > 0; count = count * 15 / 16) {
        std::optional<array> a;
        const auto c = shmconf::category_of<impl>([&] { a.emplace(impl::make<array>(seg, "fill", count)); });
        if (c == error_category::out_of_space || c == error_category::invalid_size) continue;
        if (c != error_category::none) {
            out.fail("making an array in " + what + " failed with " + shmconf::to_string(c));
            return 0;
        }
        out.step("writing every element of a " + std::to_string(count) + "-element array in " + what);
        for (std::size_t i = 0; i < count; ++i) (*a)[i] = i ^ 0x5a5a5a5a5a5a5a5aull;
        for (std::size_t i = 0; i < count; ++i)
            if ((*a)[i] != (i ^ 0x5a5a5a5a5a5a5a5aull)) {
                out.fail("what was written in " + what + " did not read back");
                break;
            }
        return count;
    }
    out.fail("not even a one-element array fits in " + what);
    return 0;
}

TEST(Faults, AFullDevShmFailsCreationCleanlyAndNeverRaisesSigbus) {
    CHECKS_REQUIREMENTS("SEG-007");
    fresh_segment name;
    constexpr std::size_t space = 256 << 10;
    const auto r = run_isolated(120s, [&](reporter& out) {
        out.step("setting up a private 256 KiB /dev/shm");
        if (auto why = private_small_dev_shm(space); !why.empty()) return out.unresolved(why);
        // Larger than the whole space.
        out.step("creating a 1 MiB segment on a 256 KiB /dev/shm");
        {
            const std::string big = name.name() + "-big";
            std::optional<impl::segment> seg;
            const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(big, 1 << 20)); });
            if (c == error_category::none) {
                out.fail("creating a 1 MiB segment on a 256 KiB /dev/shm succeeded (its memory was not reserved)");
                if (impl::caps.array) write_through_largest_array(*seg, 1 << 20, out, "the 1 MiB segment");
            } else {
                out.note("a 1 MiB segment on 256 KiB: refused with " + std::string(shmconf::to_string(c)));
                if (name_exists(big)) out.fail("the refused 1 MiB creation left its name behind");
            }
        }
        // Segments that each fit, until the space runs out: each is refused
        // cleanly or usable to the last byte.
        std::vector<impl::segment> kept;
        int refused_at = -1;
        constexpr std::size_t each = 96 << 10;
        for (int k = 0; k < 5 && refused_at < 0; ++k) {
            const std::string n = name.name() + "-" + std::to_string(k);
            out.step("creating 96 KiB segment " + std::to_string(k) + " on a 256 KiB /dev/shm");
            std::optional<impl::segment> seg;
            const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(n, each)); });
            if (c != error_category::none) {
                refused_at = k;
                out.note("96 KiB segment " + std::to_string(k) + " refused with " + shmconf::to_string(c));
                if (name_exists(n)) out.fail("the refused creation of 96 KiB segment " + std::to_string(k) + " left its name behind");
                break;
            }
            if (impl::caps.array)
                write_through_largest_array(*seg, each, out, "96 KiB segment " + std::to_string(k));
            kept.push_back(std::move(*seg));
        }
        if (refused_at < 0)
            out.fail("five 96 KiB segments were all created on a 256 KiB /dev/shm (their memory was not reserved)");
        else if (refused_at == 0)
            out.fail("even the first 96 KiB segment was refused on an empty 256 KiB /dev/shm");
    });
    if (!r.unresolved.empty()) SHMCONF_SKIP_AS("UNRESOLVED", "cannot make a small /dev/shm here: " + r.unresolved.front());
    judge(r, "a full /dev/shm");
}

// ---- BAD-001: a truncated segment ------------------------------------------------------

/// A mapping of a segment's file of our own, as another (hostile) process has.
class hostile_writer {
public:
    explicit hostile_writer(const std::string& segment) {
        fd_ = ::shm_open(segment.c_str(), O_RDWR | O_CLOEXEC, 0);
        if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "shm_open " + segment);
        struct stat st {};
        ::fstat(fd_, &st);
        size_ = static_cast<std::size_t>(st.st_size);
        pristine_.resize(size_);
        if (::pread(fd_, pristine_.data(), size_, 0) != static_cast<ssize_t>(size_))
            throw std::system_error(errno, std::generic_category(), "reading " + segment);
        void* m = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (m == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap " + segment);
        bytes_ = static_cast<unsigned char*>(m);
    }
    ~hostile_writer() {
        ::munmap(bytes_, size_);
        ::close(fd_);
    }
    hostile_writer(const hostile_writer&) = delete;
    hostile_writer& operator=(const hostile_writer&) = delete;

    [[nodiscard]] std::size_t size() const { return size_; }
    [[nodiscard]] int fd() const { return fd_; }
    unsigned char& operator[](std::size_t i) { return bytes_[i]; }
    /// Whether the segment's bytes (or size) differ from when we first looked.
    [[nodiscard]] bool changed() const {
        struct stat st {};
        ::fstat(fd_, &st);
        return static_cast<std::size_t>(st.st_size) != size_ || std::memcmp(bytes_, pristine_.data(), size_) != 0;
    }
    /// Puts back the bytes (and size) the segment had when we first looked.
    void restore() {
        struct stat st {};
        ::fstat(fd_, &st);
        if (static_cast<std::size_t>(st.st_size) != size_ && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0)
            throw std::system_error(errno, std::generic_category(), "ftruncate back");
        std::memcpy(bytes_, pristine_.data(), size_);
    }

private:
    int fd_ = -1;
    std::size_t size_ = 0;
    std::vector<unsigned char> pristine_;
    unsigned char* bytes_ = nullptr;
};

TEST(Hostile, ATruncatedSegmentIsRefusedNotASigbus) {
    CHECKS_REQUIREMENTS("BAD-001");
    fresh_segment name;
    constexpr std::size_t bytes = 256 << 10;
    auto seg = impl::create(name.name(), bytes);
    if (impl::caps.array) {
        auto a = impl::make<array>(seg, "a", 64);
        for (std::size_t i = 0; i < 64; ++i) a.at(i) = i;
    }
    hostile_writer file(name.name());
    for (std::size_t truncated : {file.size() / 2, file.size() - 4096, std::size_t{4096}, std::size_t{200},
                                  std::size_t{64}, std::size_t{8}}) {
        ASSERT_EQ(::ftruncate(file.fd(), static_cast<off_t>(truncated)), 0);
        const std::string what = "a " + std::to_string(file.size()) + "-byte segment truncated to " +
                                 std::to_string(truncated) + " bytes";
        const auto r = run_isolated(60s, [&](reporter& out) {
            auto refused = [](error_category c) {
                return c == error_category::corrupted || c == error_category::mismatch;
            };
            out.step("open-only of " + what);
            std::optional<impl::segment> opened;
            const auto c = shmconf::category_of<impl>([&] { opened.emplace(impl::open(name.name())); });
            if (c == error_category::none) {
                out.fail("open-only of " + what + " succeeded");
                if (impl::caps.array) {
                    out.step("reading an array through the truncated segment");
                    auto a = impl::find<array>(*opened, "a");
                    u64 sum = 0;
                    for (std::size_t i = 0; i < a.size(); ++i) sum += a.at(i);
                    out.note("read " + std::to_string(sum));
                }
                return;
            }
            if (!refused(c)) out.fail("open-only of " + what + " failed with " + shmconf::to_string(c) + ", not corrupted or mismatch");
            out.step("open-or-create of " + what);
            const auto c2 = shmconf::category_of<impl>([&] { (void)impl::open_or_create(name.name(), bytes); });
            if (!refused(c2))
                out.fail("open-or-create of " + what + " gave " + shmconf::to_string(c2) + ", not corrupted or mismatch");
        });
        judge(r, what);
        file.restore();
    }
}

// ---- BAD-001, BAD-002: a byte-flip sweep ------------------------------------------------------

/// The structures of the sweep's segments, by the kinds claimed.
void populate(impl::segment& seg) {
    if (impl::caps.array) {
        auto a = impl::make<array>(seg, "a", 32);
        for (std::size_t i = 0; i < 32; ++i) a.at(i) = i * 3 + 1;
    }
    auto fill = [&](auto tag, const char* n) {
        using S = typename decltype(tag)::type;
        S s = impl::make<S>(seg, n, 16);
        for (u64 i = 0; i < 5; ++i) (void)s.try_push(100 + i);
    };
    if (impl::caps.spsc_queue) fill(std::type_identity<impl::spsc_queue<u64>>{}, "q");
    if (impl::caps.mpmc_queue) fill(std::type_identity<impl::mpmc_queue<u64>>{}, "m");
    if (impl::caps.concurrent_stack) fill(std::type_identity<impl::concurrent_stack<u64>>{}, "s");
    if (impl::caps.queue) fill(std::type_identity<impl::queue<u64>>{}, "pq");
    if (impl::caps.stack) fill(std::type_identity<impl::stack<u64>>{}, "ps");
}

/// Opens the (damaged) segment and uses every structure: what happened, in a
/// few words. Writes the step it is at into `step` for the crash report.
/// Stops at the first timeout: a lock that now looks held would cost every
/// later structure the same wait.
std::string use_everything(const std::string& segment, char* step) {
    auto at = [&](const char* s) {
        std::snprintf(step, 128, "%s", s);
        std::snprintf(g_step, sizeof g_step, "%s", s);
    };
    std::string said;
    at("open");
    std::optional<impl::segment> seg;
    if (auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::open(segment)); }); c != error_category::none)
        return std::string("open: ") + shmconf::to_string(c);
    if (impl::caps.array) {
        at("array a");
        const auto c = shmconf::category_of<impl>([&] {
            auto a = impl::find<array>(*seg, "a");
            bool same = a.size() == 32;
            for (std::size_t i = 0; i < a.size() && i < 64; ++i) same = same && a.at(i) == i * 3 + 1;
            if (!same) said += " a: differs;";
        });
        if (c != error_category::none) said += std::string(" a: ") + shmconf::to_string(c) + ";";
        if (c == error_category::timeout) return "opened;" + said;
    }
    bool timed_out = false;
    auto use = [&](auto tag, const char* n) {
        using S = typename decltype(tag)::type;
        if (timed_out) return;
        at(n);
        const auto c = shmconf::category_of<impl>([&] {
            S s = impl::find<S>(*seg, n);
            std::size_t popped = 0, pushed = 0;
            for (int i = 0; i < 24; ++i) popped += s.try_pop().has_value();
            for (int i = 0; i < 24; ++i) pushed += s.try_push(7);
            if (popped > 16 || pushed > 16) said += std::string(" ") + n + ": more than its capacity;";
        });
        if (c != error_category::none) said += std::string(" ") + n + ": " + shmconf::to_string(c) + ";";
        timed_out = c == error_category::timeout;
    };
    if (impl::caps.spsc_queue) use(std::type_identity<impl::spsc_queue<u64>>{}, "q");
    if (impl::caps.mpmc_queue) use(std::type_identity<impl::mpmc_queue<u64>>{}, "m");
    if (impl::caps.concurrent_stack) use(std::type_identity<impl::concurrent_stack<u64>>{}, "s");
    if (impl::caps.queue) use(std::type_identity<impl::queue<u64>>{}, "pq");
    if (impl::caps.stack) use(std::type_identity<impl::stack<u64>>{}, "ps");
    at("detach");
    return said.empty() ? "no visible effect" : "opened;" + said;
}

TEST(Hostile, FlippedBytesNeverCrashOrHangAnOpener) {
    CHECKS_REQUIREMENTS("BAD-004");
    // The quick profile flips the same bytes in every run (a fixed seed,
    // unless SHMCONF_SEED says otherwise), so that CI is reproducible; the
    // full profile flips every byte of the first 16 KiB and a random sample
    // of the rest.
    const char* seed_set = std::getenv("SHMCONF_SEED");
    dice random = shmconf_tests::full_profile() || seed_set ? dice() : dice(1);
    constexpr std::size_t bytes = 64 << 10;
    const auto every = by_profile<std::size_t>(2 << 10, 16 << 10);
    const auto sampled = by_profile<std::size_t>(512, 4096);
    const auto sample_end = by_profile<std::size_t>(16 << 10, 64 << 10);
    // A trial still running after this is a hang. A flip that makes a lock
    // look held costs a waiter its timeout (5 s in shmds), well below it.
    const auto slow = by_profile<std::chrono::milliseconds>(10s, 60s);
    constexpr int lanes = 6;  // separate segments, so that slow trials overlap

    struct lane {
        std::unique_ptr<fresh_segment> name;
        std::optional<impl::segment> seg;
        std::unique_ptr<hostile_writer> file;
        char* page = nullptr;  // the trial's step [0, 128) and outcome [128, 4096)
        pid_t pid = 0;
        steady::time_point since;
        std::size_t offset = 0;
        unsigned before = 0, after = 0;
    };
    std::vector<lane> all(lanes);
    auto set_up = [&](lane& l) {
        l.file.reset();
        l.seg.reset();
        l.name = std::make_unique<fresh_segment>();
        l.seg.emplace(impl::create(l.name->name(), bytes));
        populate(*l.seg);
        l.file = std::make_unique<hostile_writer>(l.name->name());
    };
    for (lane& l : all) {
        set_up(l);
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(p, MAP_FAILED);
        l.page = static_cast<char*>(p);
    }
    std::vector<std::size_t> offsets;
    for (std::size_t i = 0; i < every && i < bytes; ++i) offsets.push_back(i);
    for (std::size_t i = 0; i < sampled; ++i) offsets.push_back(every + random() % (sample_end - every));

    std::map<std::string, int> outcomes;
    int crashes = 0, hangs = 0, removed = 0;
    auto slowest = steady::duration::zero();
    std::size_t next = 0;
    // What one trial came to; `status` is its wait status unless it was cut short.
    auto conclude = [&](lane& l, int status, bool cut) {
        l.pid = 0;
        slowest = std::max(slowest, steady::now() - l.since);
        char where[64];
        std::snprintf(where, sizeof where, "byte %zu flipped (0x%02x to 0x%02x)", l.offset, l.before, l.after);
        const std::string step(l.page, ::strnlen(l.page, 128));
        if (cut) {
            ++hangs;
            ADD_FAILURE() << where << ": opening and using the segment was still not done after "
                          << slow.count() / 1000 << " s, at '" << step << "' (a hang)";
        } else if (WIFSIGNALED(status)) {
            ++crashes;
            ADD_FAILURE() << where << ": the process opening and using the segment died of "
                          << signal_name(WTERMSIG(status)) << " at '" << step << "'";
        } else if (WEXITSTATUS(status) != 0) {
            ++crashes;
            ADD_FAILURE() << where << ": the process opening and using the segment exited with status "
                          << WEXITSTATUS(status) << " at '" << step << "' (a sanitizer report on stderr?)";
        } else {
            ++outcomes[std::string(l.page + 128, ::strnlen(l.page + 128, 4096 - 128))];
        }
        if (!name_exists(l.name->name())) {
            ++removed;  // an opener may remove a damaged segment: this lane starts again
            set_up(l);
        }
    };
    for (;;) {
        bool busy = false;
        for (lane& l : all) {
            if (l.pid != 0) {
                int status = 0;
                if (::waitpid(l.pid, &status, WNOHANG) == l.pid) {
                    conclude(l, status, false);
                } else if (steady::now() - l.since > slow) {
                    ::kill(l.pid, SIGKILL);
                    while (::waitpid(l.pid, &status, 0) < 0 && errno == EINTR) {
                    }
                    conclude(l, status, true);
                } else {
                    busy = true;
                    continue;
                }
            }
            if (next == offsets.size()) continue;
            // A trial: the pristine bytes back, one byte flipped, a child opens and uses it all.
            l.file->restore();
            l.offset = offsets[next++];
            unsigned mask = 0;
            while (mask == 0) mask = static_cast<unsigned>(random() & 0xff);
            l.before = (*l.file)[l.offset];
            l.after = l.before ^ mask;
            (*l.file)[l.offset] = static_cast<unsigned char>(l.after);
            std::memset(l.page, 0, 4096);
            const std::string segment = l.name->name();
            char* page = l.page;
            std::fflush(nullptr);
            l.pid = ::fork();
            ASSERT_GE(l.pid, 0);
            if (l.pid == 0) {
                install_crash_handlers();
                std::string said;
                try {
                    said = use_everything(segment, page);
                } catch (...) {
                    said = "threw " + describe(std::current_exception());
                }
                std::snprintf(page + 128, 4096 - 128, "%s", said.c_str());
                ::_exit(0);
            }
            l.since = steady::now();
            busy = true;
        }
        if (!busy && next == offsets.size()) break;
        std::this_thread::sleep_for(200us);
    }
    for (lane& l : all) {
        l.file->restore();
        ::munmap(l.page, 4096);
    }
    std::vector<std::pair<int, std::string>> ranked;
    ranked.reserve(outcomes.size());
    for (const auto& [o, n] : outcomes) ranked.emplace_back(n, o);
    std::sort(ranked.rbegin(), ranked.rend());
    std::string summary = std::to_string(offsets.size()) + " flips (seed " + std::to_string(random.seed()) + "): " +
                          std::to_string(crashes) + " crashed, " + std::to_string(hangs) + " hung, " +
                          std::to_string(removed) + " segments removed by an opener; slowest trial " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()) +
                          " ms; outcomes:";
    for (std::size_t i = 0; i < ranked.size() && i < 12; ++i)
        summary += " [" + std::to_string(ranked[i].first) + "x " + ranked[i].second + "]";
    std::printf("[   NOTE   ] %s\n", summary.c_str());
    ::testing::Test::RecordProperty("measurements", summary);
}

// ---- BAD-002, BAD-003 through the adapter's hostile-writer hook -----------------------------

constexpr const char* no_hook = "the adapter cannot aim a hostile writer (no damage_segment)";

/// The adapter's hostile-writer hook, where it has one (a template, so that
/// an adapter without it still compiles).
template <class A = impl>
void damage(const std::string& segment, const std::string& structure, shmconf::damage what) {
    if constexpr (shmconf::damages_segments<A>)
        A::damage_segment(segment, structure, what);
    else
        throw std::logic_error(no_hook);
}

/// Damages through the hook and says whether any byte of the segment
/// changed: a hook that writes nothing (or aims outside the segment) would
/// let the requirement pass untested, so the test then reports UNRESOLVED.
template <class A = impl>
bool damage_changed_something(const std::string& segment, const std::string& structure, shmconf::damage what) {
    hostile_writer watch(segment);
    damage<A>(segment, structure, what);
    return watch.changed();
}

constexpr const char* weak_hook = "the adapter's damage_segment changed no byte of the segment";

/// A claimed structure kind: its name in the populated segment.
struct kind_entry {
    const char* kind;
    const char* name;
    bool has_control_block;
};

std::vector<kind_entry> claimed_kinds() {
    std::vector<kind_entry> k;
    if (impl::caps.array) k.push_back({"array", "a", false});
    if (impl::caps.spsc_queue) k.push_back({"spsc_queue", "q", true});
    if (impl::caps.mpmc_queue) k.push_back({"mpmc_queue", "m", true});
    if (impl::caps.concurrent_stack) k.push_back({"concurrent_stack", "s", true});
    if (impl::caps.queue) k.push_back({"queue", "pq", true});
    if (impl::caps.stack) k.push_back({"stack", "ps", true});
    return k;
}

/// Calls f.template operator()<S>() with the handle type of `kind`.
template <class F>
void with_kind(const std::string& kind, F&& f) {
    if (kind == "array") return f.template operator()<array>();
    if (kind == "spsc_queue") return f.template operator()<impl::spsc_queue<u64>>();
    if (kind == "mpmc_queue") return f.template operator()<impl::mpmc_queue<u64>>();
    if (kind == "concurrent_stack") return f.template operator()<impl::concurrent_stack<u64>>();
    if (kind == "queue") return f.template operator()<impl::queue<u64>>();
    if (kind == "stack") return f.template operator()<impl::stack<u64>>();
}

/// Checks, in an isolated child, that every structure but `damaged` still
/// has what populate() put in it and works.
void check_others_usable(impl::segment& seg, const std::string& damaged, reporter& out, const std::string& when) {
    for (const kind_entry& k : claimed_kinds()) {
        if (damaged == k.name) continue;
        out.step("using " + std::string(k.kind) + " " + k.name + " " + when);
        const auto c = shmconf::category_of<impl>([&] {
            with_kind(k.kind, [&]<class S>() {
                S s = impl::find<S>(seg, k.name);
                if constexpr (std::is_same_v<S, array>) {
                    for (std::size_t i = 0; i < 32; ++i)
                        if (s.at(i) != i * 3 + 1) return out.fail(std::string("array a lost its contents ") + when);
                } else {
                    const bool lifo = std::string(k.kind).find("stack") != std::string::npos;
                    for (u64 i = 0; i < 5; ++i) {
                        const auto v = s.try_pop();
                        const u64 expected = lifo ? 104 - i : 100 + i;
                        if (!v || *v != expected)
                            return out.fail(std::string(k.kind) + " " + k.name + " lost its contents " + when);
                    }
                    if (!s.try_push(9) || s.try_pop() != std::optional<u64>(9))
                        return out.fail(std::string(k.kind) + " " + k.name + " no longer works " + when);
                }
            });
        });
        if (c != error_category::none)
            out.fail(std::string(k.kind) + " " + k.name + " failed with " + shmconf::to_string(c) + " " + when);
    }
    out.step("making a new structure " + when);
    if (impl::caps.array) {
        const auto c = shmconf::category_of<impl>([&] {
            auto n = impl::make<array>(seg, "new", 8);
            n.at(7) = 1;
        });
        if (c != error_category::none) out.fail("making a new array failed with " + std::string(shmconf::to_string(c)) + " " + when);
    }
}

TEST(Hostile, AnotherFormatVersionIsRefused) {
    CHECKS_REQUIREMENTS("BAD-003");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        fresh_segment name;
        auto seg = impl::create(name.name(), 1 << 20);
        populate(seg);
        if (!damage_changed_something(name.name(), claimed_kinds().empty() ? "a" : claimed_kinds().front().name,
                                      shmconf::damage::format_version))
            SHMCONF_SKIP_AS("UNRESOLVED", std::string(weak_hook) + " (format_version)");
        const auto r = run_isolated(60s, [&](reporter& out) {
            auto refused = [](error_category c) {
                return c == error_category::corrupted || c == error_category::mismatch;
            };
            out.step("open-only of a segment of another format version");
            std::optional<impl::segment> opened;
            const auto c = shmconf::category_of<impl>([&] { opened.emplace(impl::open(name.name())); });
            if (!refused(c))
                out.fail("open-only of a segment of another format version gave " + std::string(shmconf::to_string(c)) +
                         ", not corrupted or mismatch");
            if (opened) {
                out.step("using a segment of another format version");
                opened.reset();
            }
            out.step("open-or-create of a segment of another format version");
            const auto c2 = shmconf::category_of<impl>([&] { (void)impl::open_or_create(name.name(), 1 << 20); });
            if (!refused(c2))
                out.fail("open-or-create of a segment of another format version gave " +
                         std::string(shmconf::to_string(c2)) + ", not corrupted or mismatch");
        });
        judge(r, "another format version");
    }
}

TEST(Hostile, ADamagedTableEntryIsRefusedForThatStructureOnly) {
    CHECKS_REQUIREMENTS("BAD-002 BAD-001");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        for (const kind_entry& k : claimed_kinds()) {
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            populate(seg);
            if (!damage_changed_something(name.name(), k.name, shmconf::damage::table_entry))
                SHMCONF_SKIP_AS("UNRESOLVED", std::string(weak_hook) + " (table_entry of " + k.kind + ")");
            const std::string what = std::string("a damaged table entry of ") + k.kind + " " + k.name;
            const auto r = run_isolated(60s, [&](reporter& out) {
                out.step("opening the segment");
                auto opened = impl::open(name.name());
                out.step("finding " + std::string(k.kind) + " " + k.name + " through its damaged entry");
                const auto c = shmconf::category_of<impl>(
                    [&] { with_kind(k.kind, [&]<class S>() { (void)impl::find<S>(opened, k.name); }); });
                if (c != error_category::corrupted)
                    out.fail("finding it gave " + std::string(shmconf::to_string(c)) + ", not corrupted");
                check_others_usable(opened, k.name, out, "beside " + what);
            });
            judge(r, what);
        }
    }
}

// ---- BAD-005: the table's bookkeeping damaged -------------------------------------------

/// Every element of the bookkeeping test's arrays says whose it is and where
/// (array id and index), so an overwrite names the array that took the storage.
u64 owned_value(u64 array_id, std::size_t i) { return (array_id << 32) | (i + 1); }

template <class A = impl>
bool damage_bookkeeping(const std::string& segment, int variant) {
    if constexpr (shmconf::damages_table_bookkeeping<A>)
        return A::damage_table_bookkeeping(segment, variant);
    else
        throw std::logic_error("the adapter has no damage_table_bookkeeping");
}

/// An array the bookkeeping test stored and expects to find whole.
struct owned_array {
    std::string name;
    u64 id;
    std::size_t size;
};

std::string hex(u64 v) {
    char text[24];
    std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(v));
    return text;
}

/// "" when `k` is found in `seg` with its size and every element as stored;
/// otherwise what is wrong.
std::string check_owned(impl::segment& seg, const owned_array& k) {
    std::string problem;
    const auto c = shmconf::category_of<impl>([&] {
        auto a = impl::find<array>(seg, k.name);
        if (a.size() != k.size) {
            problem = "its size is now " + std::to_string(a.size()) + ", not " + std::to_string(k.size);
            return;
        }
        for (std::size_t i = 0; i < k.size; ++i)
            if (const u64 v = a.at(i); v != owned_value(k.id, i)) {
                problem = "element " + std::to_string(i) + " holds " +
                          (v >> 32 != 0 && v >> 32 != k.id ? "an element of array #" + std::to_string(v >> 32)
                                                           : "0x" + hex(v)) +
                          " (its storage was handed out again)";
                return;
            }
    });
    if (c != error_category::none) return "finding it gave " + std::string(shmconf::to_string(c));
    return problem;
}

TEST(Hostile, DamagedTableBookkeepingNeverHandsOutStorageInUse) {
    CHECKS_REQUIREMENTS("BAD-005");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    if (!shmconf::damages_table_bookkeeping<impl>)
        SHMCONF_SKIP_AS("UNSUPPORTED", "the adapter cannot damage the table's bookkeeping (no damage_table_bookkeeping)");
    int variants = 0;
    for (int variant = 0; variant < 64; ++variant) {
        fresh_segment name;
        std::vector<owned_array> stored{{"first", 1, 300}, {"gone", 2, 500}, {"third", 3, 700}, {"last", 4, 100}};
        {
            auto seg = impl::create(name.name(), 256 << 10);
            for (const owned_array& k : stored) {
                auto a = impl::make<array>(seg, k.name, k.size);
                for (std::size_t i = 0; i < k.size; ++i) a.at(i) = owned_value(k.id, i);
            }
            impl::destroy(seg, "gone");  // free space inside the used part
            stored.erase(stored.begin() + 1);
            bool damaged = false, changed = false;
            {
                hostile_writer watch(name.name());
                damaged = damage_bookkeeping(name.name(), variant);
                changed = watch.changed();
            }
            if (!damaged) break;
            if (!changed)
                SHMCONF_SKIP_AS("UNRESOLVED", "damage_table_bookkeeping variant " + std::to_string(variant) +
                                                  " changed no byte of the segment");
            ++variants;
            const std::string what = "bookkeeping damage " + std::to_string(variant);
            const auto r = run_isolated(60s, [&](reporter& out) {
                std::vector<owned_array> live = stored;
                auto check_all = [&](impl::segment& through, const std::string& when) {
                    for (const owned_array& k : live) {
                        const std::string problem = check_owned(through, k);
                        if (problem.empty()) continue;
                        std::string message = "array ";
                        message.append(k.name).append(" ").append(when).append(" (").append(what).append("): ");
                        out.fail(message.append(problem));
                    }
                };
                out.step("opening the segment after " + what);
                auto opened = impl::open(name.name());
                check_all(opened, "right after the damage");
                u64 next_id = 10;
                auto create = [&](std::size_t size) {
                    const owned_array k{"new" + std::to_string(next_id), next_id, size};
                    ++next_id;
                    out.step("creating " + k.name + " (" + std::to_string(size) + " elements) after " + what);
                    const auto c = shmconf::category_of<impl>([&] {
                        auto a = impl::make<array>(opened, k.name, size);
                        for (std::size_t i = 0; i < size; ++i) a.at(i) = owned_value(k.id, i);
                    });
                    if (c == error_category::none)
                        live.push_back(k);
                    else if (c != error_category::corrupted && c != error_category::out_of_space)
                        out.fail("creating " + k.name + " (" + std::to_string(size) + " elements) after " + what +
                                 " gave " + shmconf::to_string(c) + ", not success, corrupted or out_of_space");
                    check_all(opened, "after creating " + k.name);
                };
                auto destroy = [&](std::size_t at) {
                    if (at >= live.size()) return;
                    const owned_array k = live[at];
                    out.step("destroying " + k.name + " after " + what);
                    const auto c = shmconf::category_of<impl>([&] { impl::destroy(opened, k.name); });
                    if (c == error_category::none)
                        live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
                    else if (c != error_category::corrupted)
                        out.fail("destroying " + k.name + " after " + what + " gave " + shmconf::to_string(c) +
                                 ", not success or corrupted");
                    check_all(opened, "after destroying " + k.name);
                };
                for (std::size_t size : {16, 200, 64, 1000, 8, 300}) create(size);
                destroy(4);  // two of the new ones, leaving holes between live arrays
                destroy(5);
                for (std::size_t size : {100, 900, 40, 2000}) create(size);
                out.step("finding everything through a second attachment after " + what);
                auto again = impl::open(name.name());
                check_all(again, "through a second attachment");
            });
            judge(r, what);
        }
    }
    if (variants == 0) SHMCONF_SKIP_AS("UNRESOLVED", "damage_table_bookkeeping has no variant (variant 0 returned false)");
    std::printf("[   NOTE   ] %d variants of bookkeeping damage\n", variants);
}

TEST(Hostile, ADamagedControlBlockHarmsOnlyItsStructure) {
    CHECKS_REQUIREMENTS("BAD-002");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        int aimed = 0;
        for (const kind_entry& k : claimed_kinds()) {
            if (!k.has_control_block) continue;
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            populate(seg);
            try {
                if (!damage_changed_something(name.name(), k.name, shmconf::damage::control_block))
                    SHMCONF_SKIP_AS("UNRESOLVED", std::string(weak_hook) + " (control_block of " + k.kind + ")");
            } catch (const std::exception& e) {
                std::printf("[   NOTE   ] the adapter could not damage the control block of %s: %s\n", k.kind, e.what());
                continue;
            }
            ++aimed;
            const std::string what = std::string("a damaged control block of ") + k.kind + " " + k.name;
            const auto r = run_isolated(60s, [&](reporter& out) {
                out.step("opening the segment");
                auto opened = impl::open(name.name());
                out.step("using " + std::string(k.kind) + " " + k.name + " with its damaged control block");
                std::string said;
                const auto c = shmconf::category_of<impl>([&] {
                    with_kind(k.kind, [&]<class S>() {
                        S s = impl::find<S>(opened, k.name);
                        said = "found";
                        if constexpr (!std::is_same_v<S, array>) {
                            std::size_t popped = 0, pushed = 0;
                            for (int i = 0; i < 40; ++i) popped += s.try_pop().has_value();
                            for (int i = 0; i < 40; ++i) pushed += s.try_push(5);
                            if (popped > 16 || pushed > 16)
                                out.fail("it gave " + std::to_string(popped) + " pops and took " +
                                         std::to_string(pushed) + " pushes with capacity 16");
                            said += ", " + std::to_string(popped) + " pops, " + std::to_string(pushed) + " pushes";
                        }
                    });
                });
                if (c != error_category::none && c != error_category::corrupted)
                    out.fail("it failed with " + std::string(shmconf::to_string(c)) + ", not corrupted");
                out.note(std::string(k.kind) + ": " + (said.empty() ? "" : said + "; ") + shmconf::to_string(c));
                check_others_usable(opened, k.name, out, "beside " + what);
            });
            judge(r, what);
        }
        if (aimed == 0) SHMCONF_SKIP_AS("UNSUPPORTED", "the adapter damages no control block of a claimed kind");
    }
}

}  // namespace
