// bench/harness/team.hpp: the processes of one multi-process benchmark run.
//
// The parent forks each member with a role name; members may be pinned to a
// CPU, meet at a barrier in shared memory and start together, and report
// through shared memory the parent allocated before forking. Whatever
// happens (a member that throws, exits non-zero, crashes, or overruns the
// deadline), the team kills and reaps every member it started before its
// destructor returns: no child and no zombie outlives a run. Knows nothing
// of what the members do.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace shmds_bench {

/// The CPUs this process may run on, in order.
inline std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    return cpus;
}

inline bool pin_to_cpu(int cpu) noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

/// Lowers (raises) `target` to `value` if it is smaller (larger): the first
/// start and last finish reported by several members.
inline void store_min(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
    std::uint64_t seen = target.load();
    while (value < seen && !target.compare_exchange_weak(seen, value)) {
    }
}
inline void store_max(std::atomic<std::uint64_t>& target, std::uint64_t value) noexcept {
    std::uint64_t seen = target.load();
    while (value > seen && !target.compare_exchange_weak(seen, value)) {
    }
}

/// Anonymous shared memory for objects the parent and its children share;
/// must be created before the fork.
template <class T>
class shared {
public:
    template <class... Args>
    explicit shared(Args&&... args) {
        void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        object_ = new (p) T(std::forward<Args>(args)...);
    }
    ~shared() {
        object_->~T();
        ::munmap(object_, sizeof(T));
    }
    shared(const shared&) = delete;
    shared& operator=(const shared&) = delete;
    T* operator->() const noexcept { return object_; }
    T& operator*() const noexcept { return *object_; }
    T* get() const noexcept { return object_; }

private:
    T* object_;
};

class team {
public:
    /// `deadline`: how long the whole run may take before everything is killed.
    explicit team(std::chrono::seconds deadline) : deadline_(std::chrono::steady_clock::now() + deadline) {}
    ~team() { kill_all(); }
    team(const team&) = delete;
    team& operator=(const team&) = delete;

    /// Forks a member called `role`, pinned to `cpu` (or not, when -1). In
    /// the child: pins, runs `body`, and leaves with _exit (0 on return, 1
    /// with the message recorded when it throws). `body` calls
    /// arrive_and_wait() where the measured part begins.
    void spawn(std::string role, int cpu, const std::function<void()>& body) {
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
        if (pid == 0) {
            int code = 0;
            try {
                if (cpu >= 0) pin_to_cpu(cpu);
                body();
            } catch (const std::exception& e) {
                record_error(e.what());
                code = 1;
            } catch (...) {
                record_error("unknown exception");
                code = 1;
            }
            std::fflush(nullptr);
            ::_exit(code);
        }
        members_.push_back({std::move(role), pid, false, 0});
        ++board_->expected;
    }

    /// In a member: waits until every member has arrived, then all go at once.
    void arrive_and_wait() {
        board_->arrived.fetch_add(1);
        while (board_->go.load(std::memory_order_acquire) == 0) {
            if (board_->abort.load()) throw std::runtime_error("the run was aborted");
            std::this_thread::yield();
        }
    }

    /// In the parent: releases the barrier once everyone has arrived (members
    /// that never arrive, because they failed, are reported by wait()).
    bool release_when_all_arrived() {
        while (board_->arrived.load() < board_->expected) {
            if (std::chrono::steady_clock::now() > deadline_ || any_member_ended()) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        board_->go.store(1, std::memory_order_release);
        return true;
    }

    /// True once any member asked the others to stop (or the parent did).
    bool aborted() const noexcept { return board_->abort.load() != 0; }
    void abort() noexcept { board_->abort.store(1); }

    /// Waits for every member. Returns an empty string when all exited 0;
    /// otherwise a description of every failure (the rest are killed).
    std::string wait() {
        for (;;) {
            bool all_done = true;
            for (member& m : members_) {
                if (!m.reaped && !try_reap(m)) all_done = false;
            }
            if (all_done) break;
            if (std::chrono::steady_clock::now() > deadline_) {
                failures_ += "timed out: killed every member still running; ";
                kill_all();
                break;
            }
            if (!failures_.empty()) {
                // One failed: give the others a moment to notice the abort, then kill.
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                kill_all();
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        if (!failures_.empty() && board_->error[0] != '\0')
            failures_ += std::string("first error: ") + board_->error;
        return failures_;
    }

    /// In the parent: starts every member together and waits for all of
    /// them; throws std::runtime_error("<what>: <failures>") if any failed.
    void run(const std::string& what) {
        release_when_all_arrived();
        if (auto failure = wait(); !failure.empty()) throw std::runtime_error(what + ": " + failure);
    }

    std::size_t size() const noexcept { return members_.size(); }

private:
    struct member {
        std::string role;
        pid_t pid;
        bool reaped;
        int status;
    };

    struct board {
        std::atomic<int> expected{0};
        std::atomic<int> arrived{0};
        std::atomic<int> go{0};
        std::atomic<int> abort{0};
        std::atomic<int> error_claimed{0};
        char error[512] = {};
    };

    void record_error(const char* what) noexcept {
        if (board_->error_claimed.exchange(1) == 0)
            std::snprintf(board_->error, sizeof board_->error, "%s", what);
        board_->abort.store(1);
    }

    /// Reaps `m` if it has ended, recording a failure; true if it has.
    bool try_reap(member& m) {
        int status = 0;
        if (::waitpid(m.pid, &status, WNOHANG) != m.pid) return false;
        m.reaped = true;
        m.status = status;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            failures_ += describe(m) + "; ";
            abort();
        }
        return true;
    }

    bool any_member_ended() {
        bool ended = false;
        for (member& m : members_)
            if (m.reaped || try_reap(m)) ended = true;
        return ended;
    }

    static std::string describe(const member& m) {
        std::string who = "'" + m.role + "' (pid " + std::to_string(m.pid) + ")";
        if (WIFSIGNALED(m.status))
            return who + " was killed by signal " + std::to_string(WTERMSIG(m.status)) + " (" +
                   strsignal(WTERMSIG(m.status)) + ")";
        return who + " exited with status " + std::to_string(WEXITSTATUS(m.status));
    }

    void kill_all() noexcept {
        board_->abort.store(1);
        for (member& m : members_) {
            if (m.reaped) continue;
            ::kill(m.pid, SIGKILL);
            int status = 0;
            ::waitpid(m.pid, &status, 0);
            m.reaped = true;
            m.status = status;
        }
    }

    std::chrono::steady_clock::time_point deadline_;
    shared<board> board_;
    std::vector<member> members_;
    std::string failures_;
};

}  // namespace shmds_bench
