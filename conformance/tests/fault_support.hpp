// What the fault tests (test_faults_*.cpp) share: a forked child that does
// the risky part of a test and reports ("isolated"), the fault actors they
// start and kill, the record file each actor keeps, seeded random delays, and
// a hostile writer's mapping of a segment's file.
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
#pragma once

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

namespace shmconf_fault_tests {

using shmconf::error_category;
using shmconf_tests::by_profile;
using shmconf_tests::concat;
using shmconf_tests::fresh_segment;
using shmconf_tests::impl;
using shmconf_tests::name_exists;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using u64 = std::uint64_t;
using array = impl::array<u64>;

// ---- small helpers -----------------------------------------------------------------

inline std::string describe(const std::exception_ptr& e) {
    std::string what = "(not a std::exception)";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        what = x.what();
    } catch (...) {
    }
    return std::string(shmconf::to_string(impl::categorize(e))) + " (" + what + ")";
}

inline const char* signal_name(int sig) {
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

inline std::uint64_t test_seed() {
    if (const char* s = std::getenv("SHMCONF_SEED")) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

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
            if (impl::categorize(std::current_exception()) != error_category::timeout ||
                steady::now() > until)
                throw;
        }
    }
}

inline std::string join(const std::vector<std::string>& parts, const char* separator) {
    std::string all;
    for (const auto& p : parts) all += (all.empty() ? "" : separator) + p;
    return all;
}

// ---- isolation: a forked child does the risky part and reports ---------------------

/// The step a child is at, for the crash handler (no allocation there).
inline char g_step[256] = "";
inline int g_report_fd = -1;

inline void write_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w <= 0 && errno != EINTR) return;
        if (w > 0) {
            data += w;
            n -= static_cast<std::size_t>(w);
        }
    }
}

extern "C" inline void on_fatal_signal(int sig) {
    // Says where the child was, then dies of the same signal.
    if (g_report_fd >= 0) {
        write_all(g_report_fd, "C ", 2);
        write_all(g_report_fd, g_step, ::strnlen(g_step, sizeof g_step));
        write_all(g_report_fd, "\n", 1);
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

inline void install_crash_handlers() {
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

/// In the forked child: runs `body`, reporting on `fd`, and exits.
[[noreturn]] inline void run_isolated_child(int fd, const std::function<void(reporter&)>& body) {
    ::setpgid(0, 0);
    g_report_fd = fd;
    install_crash_handlers();
    reporter out(fd);
    try {
        body(out);
    } catch (...) {
        out.fail(std::string("during '") + g_step + "': " + describe(std::current_exception()));
    }
    std::fflush(nullptr);
    ::_exit(0);
}

/// Reads what the child says on `fd` until it closes the pipe, or until
/// `result.limit` has passed, or the child has said nothing for
/// `result.stall` (then `result.hung`).
inline std::string read_isolated_report(int fd, isolated& result) {
    const auto until = steady::now() + result.limit;
    auto heard = steady::now();
    std::string buffer;
    char chunk[4096];
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::min(until, heard + result.stall) - steady::now())
                              .count();
        if (left <= 0) {
            result.hung = true;
            break;
        }
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;
        const ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(n));
        heard = steady::now();
    }
    return buffer;
}

/// Sorts the child's report lines (kind letter, space, text) into `result`.
inline void parse_isolated_report(const std::string& buffer, isolated& result) {
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
}

/// Runs `body` in a forked child, in a process group of its own (with the
/// actors it starts), for at most `limit`, and kills the whole group then, or
/// as soon as the child has said nothing (no step, note or failure) for
/// `stall`: a hang is reported without waiting for the whole limit. 10 s of
/// silence is over twenty times a whole fault test of the reference under the
/// sanitizers; an implementation that hangs (Boost's unrecoverable locks)
/// costs the run that long per test, so it is not made longer.
inline isolated run_isolated(std::chrono::milliseconds limit, const std::function<void(reporter&)>& body,
                             std::chrono::milliseconds stall = 10s) {
    isolated result;
    result.limit = limit;
    result.stall = stall;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
        ::close(fds[0]);
        run_isolated_child(fds[1], body);
    }
    ::setpgid(pid, pid);  // (also done by the child: whichever runs first)
    ::close(fds[1]);
    const std::string buffer = read_isolated_report(fds[0], result);
    ::kill(-pid, SIGKILL);  // the actors it left, or all of it when it hung
    if (result.hung) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(fds[0]);
    if (WIFSIGNALED(status) && !result.hung) result.signal = WTERMSIG(status);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    parse_isolated_report(buffer, result);
    return result;
}

/// Turns what an isolated child found into the test's verdict and notes.
inline void judge(const isolated& r, const std::string& what) {
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
inline constexpr std::size_t started = 0;
inline constexpr std::size_t in_op = 1;
inline constexpr std::size_t done = 2;
inline constexpr std::size_t ok = 3;
inline constexpr std::size_t failed = 4;
inline constexpr std::size_t last_error = 5;
inline constexpr std::size_t log = 16;
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
inline std::string wait_until_started(
    fault_actor& actor, const record_file& record, const std::function<void()>& meanwhile = [] {}) {
    const auto until = steady::now() + 20s;
    while (record.load(word::started) == 0) {
        if (!actor.running())
            return "it ended (status " + std::to_string(actor.wait()) +
                   ") before its first operation; its last error: " + record.last_error();
        if (steady::now() > until)
            return "it did not run an operation within 20 s; its last error: " + record.last_error();
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

inline void busy_until(steady::time_point until, const std::function<void()>& meanwhile) {
    do meanwhile();
    while (steady::now() < until);
}

inline std::string percent(u64 part, u64 whole) {
    return std::to_string(part) + " of " + std::to_string(whole) +
           (whole ? " (" + std::to_string(100 * part / whole) + "%)" : "");
}

/// The longest a whole scenario may take (a hang is caught sooner, see run_isolated).
inline const std::chrono::milliseconds isolation_limit = by_profile<std::chrono::milliseconds>(120s, 280s);

// ---- a hostile writer: BAD-001..005 ----------------------------------------------------

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
        return static_cast<std::size_t>(st.st_size) != size_ ||
               std::memcmp(bytes_, pristine_.data(), size_) != 0;
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

/// The structures of the sweep's segments, by the kinds claimed.
inline void populate(impl::segment& seg) {
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

}  // namespace shmconf_fault_tests
