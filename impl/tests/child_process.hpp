// Child processes for the tests, in one place: fork()ed children that report
// through their exit status (CHILD_CHECK), waited for within a deadline and
// killed past it, groups that kill whatever a test leaves running, exec()ed
// programs (the peer, shmds-inspect) with their standard input and output on
// pipes, and idle helpers forked only to hold copies of a process's
// descriptors.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace shmds_test {

/// Exit codes a child uses to report.
inline constexpr int child_ok = 0;
inline constexpr int child_failed = 1;
inline constexpr int child_threw = 2;
inline constexpr int child_unsupported = 77;

/// Fails the child with a message on stderr (seen in the test's output).
#define CHILD_CHECK(cond)                                                                                  \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            std::fprintf(stderr, "[child %d] check failed at %s:%d: %s\n", ::getpid(), __FILE__, __LINE__, \
                         #cond);                                                                           \
            std::fflush(stderr);                                                                           \
            ::_exit(::shmds_test::child_failed);                                                           \
        }                                                                                                  \
    } while (0)

/// Forks; the child runs `body` and leaves with _exit (no destructors, no
/// gtest teardown): child_ok when it returns, child_threw when it throws.
/// `body` may also _exit with its own code.
inline pid_t spawn(const std::function<void()>& body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        ADD_FAILURE() << "fork failed: " << std::strerror(errno);
        return pid;
    }
    if (pid == 0) {
        int code = child_ok;
        try {
            body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "[child %d] threw: %s\n", ::getpid(), e.what());
            code = child_threw;
        } catch (...) {
            code = child_threw;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

/// Kills a child with SIGKILL and reaps it.
inline void kill_and_reap(pid_t pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

/// How a child ended, as wait_for_exit saw it.
struct child_exit {
    enum { exited, signalled, timed_out, wait_failed } how;
    int value;  ///< the exit code, the signal's number, or waitpid's errno
};

/// Waits for child `pid`, polling every `poll`; if it is still running after
/// `limit`, kills and reaps it (timed_out). Reports nothing to GoogleTest:
/// the caller says what the ending means.
inline child_exit wait_for_exit(pid_t pid, std::chrono::steady_clock::duration limit,
                                std::chrono::microseconds poll) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            // Without WUNTRACED or WCONTINUED, waitpid reports only children
            // that ended.
            if (WIFEXITED(status)) return {child_exit::exited, WEXITSTATUS(status)};
            return {child_exit::signalled, WTERMSIG(status)};
        }
        if (r < 0) return {child_exit::wait_failed, errno};
        if (std::chrono::steady_clock::now() > deadline) {
            kill_and_reap(pid);
            return {child_exit::timed_out, 0};
        }
        std::this_thread::sleep_for(poll);
    }
}

/// How a child ended: its exit code, or 128 + signal. A child still running
/// after `limit` is killed, and the test fails.
inline int wait_child(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const child_exit end = wait_for_exit(pid, limit, std::chrono::milliseconds(1));
    switch (end.how) {
        case child_exit::exited:
            return end.value;
        case child_exit::signalled:
            return 128 + end.value;
        case child_exit::timed_out:
            ADD_FAILURE() << "child " << pid << " did not finish within " << limit.count() << " s; killed";
            return -1;
        case child_exit::wait_failed:
            return -1;
    }
    return -1;
}

/// Children of one test: whatever happens to the test (a failed assertion
/// returns early), every child still running when the group goes out of
/// scope is killed and reaped, so no process outlives its test.
class process_group {
public:
    process_group() = default;
    process_group(const process_group&) = delete;
    process_group& operator=(const process_group&) = delete;
    ~process_group() {
        for (pid_t pid : running_) kill_and_reap(pid);
    }

    pid_t spawn(const std::function<void()>& body) {
        pid_t pid = shmds_test::spawn(body);
        if (pid > 0) running_.push_back(pid);
        return pid;
    }

    /// As wait_child; the child is no longer the group's to kill.
    int wait(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(120)) {
        int status = wait_child(pid, limit);
        std::erase(running_, pid);
        return status;
    }

    /// Kills one child and reaps it.
    void kill(pid_t pid) {
        ::kill(pid, SIGKILL);
        wait(pid);
    }

private:
    std::vector<pid_t> running_;
};

/// Forks a child that does nothing for `lifetime` and then exits 0, as an
/// unrelated helper would: while it lives it holds copies of the caller's
/// descriptors, and of the locks on them. A bare fork(), with nothing
/// flushed first, so that one thread may call it while another is inside
/// the library.
inline pid_t fork_idle_helper(std::chrono::milliseconds lifetime) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::this_thread::sleep_for(lifetime);
        ::_exit(0);
    }
    return pid;
}

/// The words that run one of this build's programs (the peer, shmds-inspect)
/// with `args`. In a cross build whose tests run under an emulator, the
/// emulator comes first (SHMDS_TEST_EMULATOR, from
/// CMAKE_CROSSCOMPILING_EMULATOR): a process under qemu-user cannot exec an
/// arm64 program by itself (the host kernel refuses it with ENOEXEC unless
/// its binfmt_misc knows qemu, which a CI machine need not).
inline std::vector<std::string> program_command(const std::string& program,
                                                const std::vector<std::string>& args = {}) {
    std::vector<std::string> words;
#ifdef SHMDS_TEST_EMULATOR
    const std::string_view emulator = SHMDS_TEST_EMULATOR;
    for (std::size_t at = 0; at < emulator.size();) {
        const std::size_t end = std::min(emulator.find(' ', at), emulator.size());
        if (end > at) words.emplace_back(emulator.substr(at, end - at));
        at = end + 1;
    }
#endif
    words.push_back(program);
    words.insert(words.end(), args.begin(), args.end());
    return words;
}

/// execv()'s argv over `words` (which must outlive it), ending in nullptr.
inline std::vector<char*> argv_of(std::vector<std::string>& words) {
    std::vector<char*> argv;
    argv.reserve(words.size() + 1);
    for (auto& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    return argv;
}

/// Forks a child that execs `command` (a program's path, then its arguments:
/// see program_command) with `in` as its standard input and `out` as its
/// standard output (-1: the parent's), after closing `close_in_child` (pipe
/// ends it must not hold). The child exits 127 if the exec fails.
inline pid_t exec_child(std::vector<std::string> command, int in, int out,
                        std::initializer_list<int> close_in_child = {}) {
    std::vector<char*> argv = argv_of(command);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (in >= 0) ::dup2(in, STDIN_FILENO);
        if (out >= 0) ::dup2(out, STDOUT_FILENO);
        for (int fd : close_in_child) ::close(fd);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

/// What a program run by run_command did.
struct command_result {
    int status;  ///< as wait_child gives it
    std::string output;
};

/// Runs `command` (a program's path, then its arguments) with its standard
/// output captured.
inline command_result run_command(std::vector<std::string> command) {
    int out[2];
    if (::pipe(out) != 0) return {-1, ""};
    const pid_t pid = exec_child(std::move(command), -1, out[1], {out[0], out[1]});
    ::close(out[1]);
    std::string output;
    char buffer[256];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;)
        output.append(buffer, static_cast<std::size_t>(n));
    ::close(out[0]);
    return {wait_child(pid), output};
}

/// Runs one of this build's programs (under the emulator in a cross build)
/// with its standard output captured.
inline command_result run_program(const std::string& program, const std::vector<std::string>& args) {
    return run_command(program_command(program, args));
}

}  // namespace shmds_test
