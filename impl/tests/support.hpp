// Test support: unique names that are removed even when a test fails, child
// processes (child_process.hpp: forked children that report failures through
// their exit status, exec()ed programs, through the emulator under qemu-user),
// a barrier in anonymous shared memory for starting children together, a
// seccomp policy that forbids membarrier, and what differs under qemu-user
// (UNRESOLVED tests).
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/posix_shm.hpp>

#include "child_process.hpp"

namespace shmds_test {

/// Whether `text` (an error's what(), a report) contains `part`.
inline bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

/// A segment name unique to this process and call; removed (if it still
/// exists) when the guard goes out of scope, whatever the test did. Also
/// removed when made: no live process has this pid, so a file of that name
/// is a leftover of an earlier run that was killed (perhaps by a library of
/// another format version, which would refuse rather than reclaim it).
class unique_segment_name {
public:
    explicit unique_segment_name(std::string_view tag = "t") {
        static std::atomic<unsigned> counter{0};
        name_ = "/shmds-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                std::string(tag);
        shmds::posix_shm::remove(name_);
    }
    ~unique_segment_name() { shmds::posix_shm::remove(name_); }
    unique_segment_name(const unique_segment_name&) = delete;
    unique_segment_name& operator=(const unique_segment_name&) = delete;

    [[nodiscard]] const std::string& str() const noexcept { return name_; }
    [[nodiscard]] const char* c_str() const noexcept { return name_.c_str(); }
    operator std::string_view() const noexcept { return name_; }

private:
    std::string name_;
};

/// True when the name exists in /dev/shm (checked by the file system, not by
/// the library under test).
inline bool shm_name_exists(const std::string& name) {
    struct stat st {};
    return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
}

inline mode_t shm_mode(const std::string& name) {
    struct stat st {};
    if (::stat(("/dev/shm" + name).c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
}

/// Messages the library sent to segment_options::notice, when a test passes
/// record_notice as the handler.
inline std::vector<std::string>& notices() {
    static std::vector<std::string> messages;
    return messages;
}
inline void record_notice(const std::string& message) {
    notices().push_back(message);
}

/// Memory shared with children forked after its creation (MAP_SHARED |
/// MAP_ANONYMOUS): flags, barriers and reports that do not go through the
/// library under test.
template <class T>
class shared_block {
public:
    explicit shared_block(std::size_t count = 1) : count_(count) {
        void* p =
            ::mmap(nullptr, sizeof(T) * count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        data_ = static_cast<T*>(p);
        for (std::size_t i = 0; i < count; ++i) new (data_ + i) T();
    }
    ~shared_block() { ::munmap(data_, sizeof(T) * count_); }
    shared_block(const shared_block&) = delete;
    shared_block& operator=(const shared_block&) = delete;

    T& operator[](std::size_t i) const { return data_[i]; }
    T* operator->() const { return data_; }
    T& operator*() const { return *data_; }

private:
    T* data_;
    std::size_t count_;
};

/// From now on membarrier(2) fails with EPERM in the calling process, as under
/// a seccomp policy that forbids it. False if seccomp is unavailable.
inline bool forbid_membarrier() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

/// True when the tests run under qemu-user (scripts/run-arm64-tests sets
/// SHMDS_UNDER_QEMU=1). Only there does a capability that the emulator lacks
/// make a test UNRESOLVED: natively the same gap is left to fail it.
inline bool under_qemu() {
    const char* value = std::getenv("SHMDS_UNDER_QEMU");
    return value != nullptr && std::string_view(value) == "1";
}

/// The message of a GTEST_SKIP() for a test that could not run here.
inline std::string unresolved(const std::string& reason) {
    return (under_qemu() ? "UNRESOLVED under qemu-user: " : "UNRESOLVED: ") + reason;
}

/// Why a robust mutex whose holder died cannot be recovered here, or "" when
/// it can. qemu-user answers set_robust_list(2) and get_robust_list(2) with
/// ENOSYS (the guest's list is not one the host kernel could walk when a
/// thread dies), so the kernel never marks a dead holder's mutex EOWNERDEAD
/// and the next locker waits until its timeout.
inline std::string robust_mutexes_unavailable() {
    void* head = nullptr;
    std::size_t length = 0;
    if (::syscall(SYS_get_robust_list, 0, &head, &length) != 0 && errno == ENOSYS)
        return "get_robust_list(2) is ENOSYS, so no robust mutex is released when its holder dies "
               "(qemu-user does not implement robust futex lists)";
    return "";
}

/// Ends the test as UNRESOLVED (skipped: never counted as passed) when it runs
/// under qemu-user and `missing`, the reason a run-time probe such as
/// robust_mutexes_unavailable() gives, is not empty.
#define SHMDS_UNRESOLVED_UNDER_QEMU_IF(missing)                      \
    do {                                                             \
        const std::string shmds_missing = (missing);                 \
        if (!shmds_missing.empty() && ::shmds_test::under_qemu())    \
            GTEST_SKIP() << ::shmds_test::unresolved(shmds_missing); \
    } while (0)

/// Waits (polling) until `pred` holds or `limit` passes; returns pred().
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(20000)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return pred();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
}

}  // namespace shmds_test
