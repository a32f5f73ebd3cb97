// What every conformance test file shares: the adapter under test, how a
// test cites its requirements and reports an outcome the report tool reads,
// and fresh segment names.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include <unistd.h>

#include <gtest/gtest.h>

#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

namespace shmconf_tests {

using impl = SHMCONF_ADAPTER;
static_assert(shmconf::implementation<impl>, "the adapter does not satisfy the conformance contract");

/// The profile the suite runs in: SHMCONF_PROFILE=full for long stress runs,
/// anything else (the default) for the quick one CI uses.
inline bool full_profile() {
    const char* p = std::getenv("SHMCONF_PROFILE");
    return p != nullptr && std::string(p) == "full";
}
/// `quick` in the quick profile, `full` in the full one.
template <class N>
N by_profile(N quick, N full) {
    return full_profile() ? full : quick;
}

/// The parts joined into one string, built in place: failure messages made in
/// loops, without a temporary per `+`.
template <class... Parts>
std::string concat(const Parts&... parts) {
    std::string text;
    (text.append(std::string_view(parts)), ...);
    return text;
}

/// Whether a segment name exists: the adapter's `exists` where it has one;
/// otherwise open-only, where `not_found` means gone and anything else (a
/// handle, detached at once, or another error) means there
/// (shmconf::reports_existence says why an adapter may lack `exists`).
/// (A template, so that an adapter without `exists` still compiles.)
template <class A = impl>
bool name_exists(const std::string& name) {
    if constexpr (shmconf::reports_existence<A>) {
        return A::exists(name);
    } else {
        return shmconf::category_of<A>([&] { (void)A::open(name); }) != shmconf::error_category::not_found;
    }
}

/// The adapter's attach_count, for tests that skip as UNSUPPORTED unless
/// shmconf::counts_attachments<impl> (a template, so that an adapter without
/// it still compiles).
template <class A = impl>
std::size_t attach_count(typename A::segment& seg) {
    if constexpr (shmconf::counts_attachments<A>)
        return A::attach_count(seg);
    else
        throw std::logic_error("the adapter has no attach_count");
}

/// A segment name no other test or run uses, removed at the end. Names
/// start with SHMCONF_NAME_TAG when it is set (conformance/run.py sets one per
/// test), so that a runner can remove what a test left behind, even names a
/// test's forked checkers made, whose process ids it never learns.
class fresh_segment {
public:
    fresh_segment()
        : name_("/shmconf-" + tag() + std::to_string(::getpid()) + "-" + std::to_string(counter()++)) {
        impl::remove(name_);
    }
    ~fresh_segment() { impl::remove(name_); }
    fresh_segment(const fresh_segment&) = delete;
    fresh_segment& operator=(const fresh_segment&) = delete;
    const std::string& name() const { return name_; }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }
    static std::string tag() {
        const char* tag = std::getenv("SHMCONF_NAME_TAG");
        return tag != nullptr && *tag != '\0' ? std::string(tag) + "-" : std::string();
    }
    std::string name_;
};

}  // namespace shmconf_tests

/// Names the requirement IDs a test checks (space-separated): in
/// GoogleTest's output, and on stderr first, so that conformance/run.py still
/// knows which requirements a test that crashed or hung was checking.
#define CHECKS_REQUIREMENTS(ids)                                   \
    do {                                                           \
        std::fprintf(stderr, "[shmconf] requirements: %s\n", ids); \
        std::fflush(stderr);                                       \
        ::testing::Test::RecordProperty("requirements", ids);      \
    } while (0)

/// Ends the test as `kind` ("UNSUPPORTED": a capability not claimed;
/// "UNRESOLVED": could not be set up here), saying why where the report finds it.
#define SHMCONF_SKIP_AS(kind, why)                                                  \
    do {                                                                            \
        ::testing::Test::RecordProperty("outcome", std::string(kind ": ") + (why)); \
        GTEST_SKIP() << kind ": " << (why);                                         \
    } while (0)

#define UNSUPPORTED_UNLESS(claimed, what)                     \
    do {                                                      \
        if (!(claimed)) SHMCONF_SKIP_AS("UNSUPPORTED", what); \
    } while (0)
