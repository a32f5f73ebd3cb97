// impl/tests/soak/report.hpp: a soak verdict written out: as text on stdout
// (the figures per structure, the totals, "VERDICT: PASS" or "VERDICT: FAIL
// (reasons)") and as the JSON results file of --json.
//
// Owns: the wording and layout of those, which scripts and people read
// (self_test.sh greps "^VERDICT: FAIL.*<what>"; keep both stable).
// Must never: decide anything: every figure and reason comes from the
// verdict (verdict.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "verdict.hpp"

namespace soak {

/// A failure, as the supervisor finds it: "FAIL: reason", flushed at once.
void print_failure(const std::string& reason);

/// The verdict as text on stdout, ending with the VERDICT line.
void print_verdict(const soak_verdict& v);

/// The verdict as JSON, into the file at `path`.
void write_verdict_json(const soak_verdict& v, const std::string& path);

/// For printf's %llu.
inline unsigned long long ull(std::uint64_t v) {
    return static_cast<unsigned long long>(v);
}

}  // namespace soak
