// What the cross-process tests (test_processes_*.cpp) share: actors are
// separate programs started with exec (conformance/tests/actor.cpp), so they
// map each segment at addresses of their own, and an implementation that
// stores absolute pointers in shared memory is caught. Here: the actor
// process with its stdout read back, the adapter's stall hook, a start time
// for actors, and whether a handle type has batch forms.
#pragma once

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support.hpp"

namespace shmconf_process_tests {

using shmconf_tests::attach_count;
using shmconf_tests::fresh_segment;
using shmconf_tests::impl;
using shmconf_tests::name_exists;

/// An actor program running in its own process; its stdout is read back.
class actor {
public:
    /// Starts the actor with `args`; with `with_stdin`, its stdin is a pipe
    /// that close_stdin() ends. Every pipe end is close-on-exec, so no actor
    /// inherits another's.
    explicit actor(std::vector<std::string> args, bool with_stdin = false) {
        int out[2], in[2] = {-1, -1};
        if (::pipe2(out, O_CLOEXEC) != 0 || (with_stdin && ::pipe2(in, O_CLOEXEC) != 0))
            throw std::runtime_error("pipe");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            if (with_stdin) ::dup2(in[0], STDIN_FILENO);
            std::vector<char*> argv{const_cast<char*>(SHMCONF_ACTOR_PATH)};
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(SHMCONF_ACTOR_PATH, argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        out_ = ::fdopen(out[0], "r");
        if (with_stdin) {
            ::close(in[0]);
            stdin_ = in[1];
        }
    }
    ~actor() {
        close_stdin();
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            (void)wait();
        }
        if (out_) std::fclose(out_);
    }
    /// Ends the actor's stdin (EOF).
    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }
    actor(const actor&) = delete;
    actor& operator=(const actor&) = delete;

    /// The next line of its output, or "" at the end.
    std::string line() {
        char buffer[256];
        if (!std::fgets(buffer, sizeof buffer, out_)) return "";
        std::string s(buffer);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        return s;
    }
    std::vector<std::string> lines() {
        std::vector<std::string> all;
        for (std::string s = line(); !s.empty(); s = line()) all.push_back(s);
        return all;
    }
    /// Its exit status (-signal when a signal ended it).
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    void kill() { ::kill(pid_, SIGKILL); }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    std::FILE* out_ = nullptr;
    int stdin_ = -1;
};

/// Asks the adapter to stall this process at `point` from now on
/// (shmconf::stalls_at_points); false when it has no stall hook or no
/// equivalent of that point. Zero ends the stall.
template <class A = impl>
bool stall_here(std::string_view point, std::chrono::milliseconds how_long) {
    if constexpr (shmconf::stalls_at_points<A>)
        return A::stall_at(point, how_long);
    else
        return false;
}

/// CLOCK_MONOTONIC now plus `ms`, in ns: a start time for actors.
inline std::uint64_t monotonic_ns_from_now(std::uint64_t ms) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec) +
           ms * 1'000'000u;
}

/// Whether the handle type S<u64> has the batch forms.
template <template <class> class S>
constexpr bool has_batches() {
    return shmconf::batch_handle<S<std::uint64_t>, std::uint64_t>;
}

}  // namespace shmconf_process_tests
