// bench/harness/machine.hpp: what the numbers were measured on, recorded in
// every result file's context.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "harness/clock.hpp"
#include "harness/team.hpp"

namespace shmds_bench {

/// First line of a file, or `fallback`.
inline std::string read_line(const std::string& path, const std::string& fallback = "unavailable") {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line)) return fallback;
    return line;
}

/// x86's "model name"; on ARM, whose /proc/cpuinfo names no model, the
/// implementer and part numbers (0x41 and 0xd0c: an Arm Neoverse N1). Under
/// qemu-user it is the host's CPU: qemu 7.2 shows an arm64 guest the host's
/// /proc/cpuinfo, while `kernel` (uname) says aarch64.
inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string implementer, part;
    for (std::string line; std::getline(in, line);) {
        const std::size_t colon = line.find(':');
        const std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        std::string trimmed = value.substr(std::min(value.size(), value.find_first_not_of(" \t")));
        if (line.rfind("model name", 0) == 0) return trimmed;
        if (implementer.empty() && line.rfind("CPU implementer", 0) == 0) implementer = trimmed;
        if (part.empty() && line.rfind("CPU part", 0) == 0) part = trimmed;
    }
    if (!implementer.empty()) return "CPU implementer " + implementer + ", part " + part;
    return "unknown";
}

/// "L1d 48K, L1i 32K, L2 2048K, L3 262144K" from sysfs.
inline std::string cache_summary() {
    std::string out;
    for (int i = 0; i < 8; ++i) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        const std::string level = read_line(dir + "level", "");
        if (level.empty()) break;
        std::string type = read_line(dir + "type", "");
        const std::string suffix = type == "Data" ? "d" : type == "Instruction" ? "i" : "";
        if (!out.empty()) out += ", ";
        out += "L";
        out += level;
        out += suffix;
        out += " ";
        out += read_line(dir + "size", "?");
    }
    return out.empty() ? "unavailable" : out;
}

inline std::string kernel_release() {
    utsname u{};
    if (uname(&u) != 0) return "unknown";
    return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

inline std::string compiler_description() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "g++ " __VERSION__;
#else
    return "unknown";
#endif
}

inline bool membarrier_available() {
    const long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return supported >= 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0;
}

/// Key/value pairs describing the machine and the build.
inline std::vector<std::pair<std::string, std::string>> machine_context() {
    std::vector<std::pair<std::string, std::string>> c;
    c.emplace_back("cpu_model", cpu_model());
    c.emplace_back("cpus_online", std::to_string(sysconf(_SC_NPROCESSORS_ONLN)));
    c.emplace_back("cpus_allowed", std::to_string(allowed_cpus().size()));
    c.emplace_back("caches", cache_summary());
    c.emplace_back("kernel", kernel_release());
    c.emplace_back("compiler", compiler_description());
#ifdef SHMDS_BENCH_FLAGS
    c.emplace_back("compiler_flags", SHMDS_BENCH_FLAGS);
#endif
#ifdef NDEBUG
    c.emplace_back("shmds_build_type", "release (NDEBUG)");
#else
    c.emplace_back("shmds_build_type", "debug (assertions on)");
#endif
    const char* commit = std::getenv("SHMDS_GIT_COMMIT");
    c.emplace_back("git_commit", commit ? commit : "unknown");
    c.emplace_back("transparent_hugepage", read_line("/sys/kernel/mm/transparent_hugepage/enabled"));
    c.emplace_back("cpufreq_governor", read_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"));
    c.emplace_back("clocksource",
                   read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource"));
    c.emplace_back("membarrier_global_expedited", membarrier_available() ? "yes" : "no");
    c.emplace_back("timestamp_clock", clock_description());
    c.emplace_back("clock_cost_ns", std::to_string(clock_cost_ns()));
    return c;
}

}  // namespace shmds_bench
