// Faults injected at named points inside the library (SHMDS_FAULT_INJECTION,
// shmds::detail::fault_hook): a process armed at a point dies there
// (SIGKILL), or stalls there for a while or until released. Shared by the
// fault tests, with the short names of the test support they use:
// test_faults.cpp (segments and the table) and test_structure_faults_*.cpp
// (the process-safe structures).
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "concurrent_support.hpp"
#include "support.hpp"

namespace shmds_faults {

// The test support the fault tests use, by its short names.
using namespace std::chrono_literals;
using shmds_test::child_ok;
using shmds_test::cstack;
using shmds_test::mpmc;
using shmds_test::notices;
using shmds_test::record_notice;
using shmds_test::shared_block;
using shmds_test::shm_name_exists;
using shmds_test::spawn;
using shmds_test::spsc;
using shmds_test::unique_segment_name;
using shmds_test::wait_child;
using shmds_test::wait_until;

/// How a child killed at its fault point ends, as wait_child gives it.
constexpr int killed = 128 + SIGKILL;

/// What the hook does at the point it is armed for (in this process only).
struct fault_plan {
    const char* point = nullptr;
    bool stall = false;  ///< stall instead of dying
    std::chrono::milliseconds stall_for{0};
    std::atomic<int>* reached = nullptr;  ///< set to 1 when the point is reached
    std::atomic<int>* release = nullptr;  ///< if set, stall until it is 1 (at most a minute) instead
};
inline fault_plan plan;

inline void fault_hook(const char* point) {
    if (!plan.point || std::strcmp(point, plan.point) != 0) return;
    if (plan.reached) plan.reached->store(1);
    if (!plan.stall) ::raise(SIGKILL);
    plan.point = nullptr;  // once
    if (plan.release)
        (void)wait_until([] { return plan.release->load() == 1; }, std::chrono::minutes(1));
    else
        std::this_thread::sleep_for(plan.stall_for);
}

/// Arms the hook in the calling (child) process.
inline void arm(const char* point, bool stall = false, std::chrono::milliseconds stall_for = {},
                std::atomic<int>* reached = nullptr) {
    plan = {point, stall, stall_for, reached, nullptr};
    shmds::detail::fault_hook = fault_hook;
}

/// Arms the hook to stall at `point` until `release` is 1.
inline void arm_until(const char* point, std::atomic<int>* reached, std::atomic<int>* release) {
    plan = {point, true, {}, reached, release};
    shmds::detail::fault_hook = fault_hook;
}

/// The name of a test parameterised by fault point: the point, '.' made '_'.
inline std::string test_name_of(const ::testing::TestParamInfo<const char*>& info) {
    std::string name = info.param;
    for (char& c : name)
        if (c == '.') c = '_';
    return name;
}

/// Everything left in `s`, taking each element within 100 ms.
template <class S>
std::vector<std::uint64_t> drain(S& s) {
    std::vector<std::uint64_t> out;
    while (auto v = s.try_pop_for(100ms)) out.push_back(*v);
    return out;
}

}  // namespace shmds_faults
