// What the actor programs (actor.cpp, fault_actor.cpp, history_actor.cpp)
// share: the adapter they are built with, their command-line arguments, the
// monotonic clock by which several actors start together, the choice of a
// handle type by a structure kind's name, and a main that reports an
// exception escaping the program.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <string>
#include <utility>

#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

namespace shmconf_actors {

using impl = SHMCONF_ADAPTER;

/// The command line, read by position.
class arguments {
public:
    arguments(int argc, char** argv) : argc_(argc), argv_(argv) {}
    int count() const { return argc_; }
    /// Argument `i`, "" when there is none.
    std::string text(int i) const { return i < argc_ ? std::string(argv_[i]) : std::string(); }
    /// Argument `i` as a decimal number (0 when there is none).
    std::uint64_t number(int i) const { return std::strtoull(text(i).c_str(), nullptr, 10); }

private:
    int argc_;
    char** argv_;
};

/// CLOCK_MONOTONIC now, in ns: a clock common to every process.
inline std::uint64_t monotonic_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

/// Spins until CLOCK_MONOTONIC reaches `ns`: several actors start together.
inline void wait_until(std::uint64_t ns) {
    while (monotonic_ns() < ns) {
    }
}

/// Op<S>::run(args...) with S the handle of uint64 for the structure kind
/// named `kind` (queue, spsc_queue, mpmc_queue, stack, concurrent_stack);
/// a kind the adapter does not claim, or no kind, is reported on stderr as
/// `program`'s and ends it with `no_kind_status`.
template <template <class> class Op, class... Args>
int with_kind(const char* program, int no_kind_status, const std::string& kind, Args&&... args) {
    if (kind == "queue" && impl::caps.queue)
        return Op<typename impl::template queue<std::uint64_t>>::run(std::forward<Args>(args)...);
    if (kind == "spsc_queue" && impl::caps.spsc_queue)
        return Op<typename impl::template spsc_queue<std::uint64_t>>::run(std::forward<Args>(args)...);
    if (kind == "mpmc_queue" && impl::caps.mpmc_queue)
        return Op<typename impl::template mpmc_queue<std::uint64_t>>::run(std::forward<Args>(args)...);
    if (kind == "stack" && impl::caps.stack)
        return Op<typename impl::template stack<std::uint64_t>>::run(std::forward<Args>(args)...);
    if (kind == "concurrent_stack" && impl::caps.concurrent_stack)
        return Op<typename impl::template concurrent_stack<std::uint64_t>>::run(std::forward<Args>(args)...);
    std::fprintf(stderr, "%s: no structure kind '%s' here\n", program, kind.c_str());
    return no_kind_status;
}

/// The body of an actor's main: act(argc, argv), and a std::exception that
/// escapes it reported on stderr as "PROGRAM: WHAT (CATEGORY)", status 1.
inline int run_reporting_exceptions(const char* program, int (*act)(int, char**), int argc, char** argv) {
    try {
        return act(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s (%s)\n", program, e.what(),
                     shmconf::to_string(impl::categorize(std::current_exception())));
        return 1;
    }
}

}  // namespace shmconf_actors
