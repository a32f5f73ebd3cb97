// bench/ipc/schedule.hpp: which benchmarks one run of shmds_ipc_bench
// registers, and in what order (the headline groups' rounds spread over the
// run, the plain benchmarks between them), over every transport it measures.
#pragma once

#include <string>

namespace shmds_bench::ipc {

/// Every transport this run measures, as "name:role,..." (role: project for
/// the project's structures, named shmds_*; peer; ring for the in-process
/// yardsticks), for the results' context: the scripts check their own list
/// (scripts/results.py, TRANSPORTS) against it (bench/tests/check_results.py).
std::string transports_for_context();

/// Every channel transport this run measures with its copies per message
/// (its adapter's `copies`), as "name:copies,...", for the summary's table.
/// (The in-process rings are not channels: they move a counter, no copies.)
std::string copies_for_context();

/// Registers every benchmark of the run the options describe (--only-round:
/// one round's share), in the order they run.
void register_all();

}  // namespace shmds_bench::ipc
