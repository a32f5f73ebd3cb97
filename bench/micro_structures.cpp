// Single-process microbenchmarks: element access through shm_array beside a
// raw pointer into the same mapping and a std::vector, push/pop of every
// queue and stack (uncontended), and lookup by name. The fork-based harness and the full
// suite come with the benchmark issue; this is what exists so far.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include <shmds/shmds.hpp>

namespace {

std::string segment_name(const char* what) {
    return "/shmds-bench-" + std::to_string(::getpid()) + "-" + what;
}

/// Sums the elements of a contiguous range: the access pattern of a reader.
template <class Range>
std::uint64_t sum(const Range& r) {
    std::uint64_t s = 0;
    for (auto v : r) s += v;
    return s;
}

void array_sequential_read_shm(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds::posix_shm seg(segment_name("seq"), n * sizeof(std::uint64_t) + (1 << 20));
    shmds::shm_array<std::uint64_t> a(seg, "a", n);
    std::iota(a.begin(), a.end(), 0);
    for (auto _ : state) benchmark::DoNotOptimize(sum(a));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(std::uint64_t)));
}

void array_sequential_read_raw_pointer(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds::posix_shm seg(segment_name("raw"), n * sizeof(std::uint64_t) + (1 << 20));
    shmds::shm_array<std::uint64_t> a(seg, "a", n);
    std::iota(a.begin(), a.end(), 0);
    const std::uint64_t* raw = a.data();
    for (auto _ : state) {
        std::uint64_t s = 0;
        for (std::size_t i = 0; i < n; ++i) s += raw[i];
        benchmark::DoNotOptimize(s);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(std::uint64_t)));
}

void array_sequential_read_vector(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    std::vector<std::uint64_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    for (auto _ : state) benchmark::DoNotOptimize(sum(v));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(std::uint64_t)));
}

/// A random permutation of [0, n): the order of random accesses.
std::vector<std::uint32_t> random_order(std::size_t n) {
    std::vector<std::uint32_t> order(n);
    std::iota(order.begin(), order.end(), 0u);
    std::mt19937 rng(1234);
    std::shuffle(order.begin(), order.end(), rng);
    return order;
}

/// Random reads then writes through `access(i)`, which returns an element
/// reference: the same loop for shm_array, a raw pointer and std::vector.
template <class Access>
void random_read_write(benchmark::State& state, std::size_t n, Access&& access) {
    const auto order = random_order(n);
    for (auto _ : state) {
        std::uint64_t s = 0;
        for (std::uint32_t i : order) s += access(i);
        for (std::uint32_t i : order) access(i) = s;
        benchmark::DoNotOptimize(s);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n * 2));
}

void array_random_shm(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds::posix_shm seg(segment_name("rnd"), n * sizeof(std::uint64_t) + (1 << 20));
    shmds::shm_array<std::uint64_t> a(seg, "a", n);
    random_read_write(state, n, [&](std::size_t i) -> std::uint64_t& { return a[i]; });
}

void array_random_raw_pointer(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds::posix_shm seg(segment_name("rndraw"), n * sizeof(std::uint64_t) + (1 << 20));
    shmds::shm_array<std::uint64_t> a(seg, "a", n);
    std::uint64_t* raw = a.data();
    random_read_write(state, n, [&](std::size_t i) -> std::uint64_t& { return raw[i]; });
}

void array_random_vector(benchmark::State& state) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    std::vector<std::uint64_t> v(n);
    random_read_write(state, n, [&](std::size_t i) -> std::uint64_t& { return v[i]; });
}

/// Batches of 64 in and out.
template <class Queue>
void push_pop_batch(benchmark::State& state) {
    shmds::posix_shm seg(segment_name("batch"), 1 << 20);
    Queue q(seg, "q", 256);
    std::uint64_t in[64], out[64];
    std::iota(in, in + 64, 0u);
    for (auto _ : state) {
        benchmark::DoNotOptimize(q.try_push_n(in, 64));
        benchmark::DoNotOptimize(q.try_pop_n(out, 64));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 64));
}

template <class Structure>
void push_pop(benchmark::State& state) {
    shmds::posix_shm seg(segment_name("pushpop"), 1 << 20);
    Structure s(seg, "s", static_cast<std::size_t>(state.range(0)));
    std::uint64_t v = 0;
    for (auto _ : state) {
        (void)s.try_push(v++);
        benchmark::DoNotOptimize(s.try_pop());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void table_find(benchmark::State& state) {
    const auto n = static_cast<std::uint32_t>(state.range(0));
    shmds::posix_shm seg(segment_name("find"), (n + 16) * 512 + (1 << 20), {.table_capacity = n});
    for (std::uint32_t i = 0; i < n; ++i) shmds::shm_array<char> a(seg, "s" + std::to_string(i), 1);
    std::vector<std::string> names;
    for (std::uint32_t i = 0; i < n; ++i) names.push_back("s" + std::to_string((i * 7919u) % n));
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(seg.table().find(names[i]));
        if (++i == names.size()) i = 0;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// Create and destroy one structure in a table that already holds n - 1.
void table_create_destroy(benchmark::State& state) {
    const auto n = static_cast<std::uint32_t>(state.range(0));
    shmds::posix_shm seg(segment_name("create"), (n + 16) * 512 + (1 << 20), {.table_capacity = n});
    for (std::uint32_t i = 0; i + 1 < n; ++i) shmds::shm_array<char> a(seg, "s" + std::to_string(i), 1);
    for (auto _ : state) {
        { shmds::shm_array<char> a(seg, "new", 1); }
        seg.destroy("new");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// Create a 1 MiB segment and detach (the last detach removes it).
void segment_create_detach(benchmark::State& state) {
    const std::string name = segment_name("lifecycle");
    for (auto _ : state) shmds::posix_shm seg(shmds::create_only, name, 1 << 20);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// Attach to an existing segment and detach (someone else keeps it alive).
void segment_attach_detach(benchmark::State& state) {
    shmds::posix_shm owner(segment_name("attach"), 1 << 20);
    for (auto _ : state) shmds::posix_shm seg(owner.name());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(array_sequential_read_shm)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(array_sequential_read_raw_pointer)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(array_sequential_read_vector)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(array_random_shm)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(array_random_raw_pointer)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(array_random_vector)->RangeMultiplier(8)->Range(4096, 256 << 20);
BENCHMARK(push_pop_batch<shmds::shm_spsc_queue<std::uint64_t>>);
BENCHMARK(push_pop_batch<shmds::shm_mpmc_queue<std::uint64_t>>);
BENCHMARK(push_pop<shmds::shm_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_stack<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_spsc_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_mpmc_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_concurrent_stack<std::uint64_t>>)->Arg(64);
BENCHMARK(table_find)->RangeMultiplier(16)->Range(1, 65536);
BENCHMARK(table_create_destroy)->RangeMultiplier(16)->Range(1, 65536);
BENCHMARK(segment_create_detach);
BENCHMARK(segment_attach_detach);

}  // namespace

BENCHMARK_MAIN();
