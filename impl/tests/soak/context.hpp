// impl/tests/soak/context.hpp: what every process of a soak run shares: its
// options, the shared ledger, and what follows from the options (how many
// workers each structure has, how large the segment is).
//
// Owns: that one value, built by the supervisor before any fork and
// inherited by every worker.
// Must never: change after the first fork (a worker's copy would disagree
// with the supervisor's), nor hold anything a process owns alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ledger.hpp"
#include "options.hpp"

namespace soak {

struct context {
    options opt;
    shared_ledger shared;
    std::size_t segment_bytes = 0;
    std::uint32_t producers_of[structure_count] = {};
    std::uint32_t consumers_of[structure_count] = {};
};

/// The context of a run with options `o`: maps the ledger (so call it
/// before forking anyone). Defined in supervisor.cpp, its one caller.
context make_context(const options& o);

}  // namespace soak
