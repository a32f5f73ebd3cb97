// bench/gate_probe.cpp: one small wall-clock benchmark (push+pop of the SPSC
// queue, one process) for the regression gate's own tests: built once as is
// and once with SHMDS_INJECT_SLOWDOWN, the gate must pass two runs of the
// first and fail the second against the first (bench/tests/gate_proof.sh).
#include <cstdint>
#include <string>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include <shmds/shmds.hpp>

namespace {

void spsc_push_pop(benchmark::State& state) {
    shmds::posix_shm seg(shmds::create_only, "/shmds-gate-probe-" + std::to_string(::getpid()), 1 << 20);
    shmds::shm_spsc_queue<std::uint64_t> q(seg, "q", 64);
    std::uint64_t v = 0;
    for (auto _ : state) {
        (void)q.try_push(v++);
        benchmark::DoNotOptimize(q.try_pop());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(spsc_push_pop);

}  // namespace

BENCHMARK_MAIN();
