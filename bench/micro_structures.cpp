// Single-process microbenchmarks: element access through shm_array beside a
// raw pointer into the same mapping and a std::vector (sequential and random
// reads and writes, 4 KiB to 256 MiB), push/pop of every queue and stack
// (uncontended, one at a time and in batches), lookup and creation by name
// among 1 to 65,536 structures, and the segment's own life cycle.
//
//   shmds_micro_bench [--quick | --smoke] [--no-lookup-pair | --lookup-round=K] [Google Benchmark flags]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <shmds/shmds.hpp>

#include "harness/machine.hpp"
#include "harness/progress.hpp"

#if SHMDS_WITH_COMPARE
#include "peers/boost_micro.hpp"
#else
#define SHMDS_WITH_COMPARE 0
#endif

namespace {

std::string segment_name(const char* what) {
    return "/shmds-bench-" + std::to_string(::getpid()) + "-" + what;
}

// ---- element access ------------------------------------------------------------------------------
// Every pattern is one loop over an accessor `at(i)` returning an element
// reference, so shm_array, a raw pointer into the same mapping and a
// std::vector run the same code and differ only in how they reach element i.

enum class pattern { sequential_read, sequential_write, random_read, random_write };

/// Random accesses per pass, at most: enough to leave the caches at 256 MiB,
/// few enough that a pass stays well under a second.
constexpr std::size_t max_random_accesses = std::size_t{1} << 20;

/// The indices a random pass visits (uniform over [0, n), fixed seed).
const std::vector<std::uint32_t>& random_indices(std::size_t n) {
    static std::map<std::size_t, std::vector<std::uint32_t>> cache;
    auto& indices = cache[n];
    if (indices.empty()) {
        std::mt19937 rng(1234);
        std::uniform_int_distribution<std::uint32_t> pick(0, static_cast<std::uint32_t>(n - 1));
        indices.resize(std::min(n, max_random_accesses));
        for (auto& i : indices) i = pick(rng);
    }
    return indices;
}

/// Elements one pass of `p` touches.
std::size_t accesses_per_pass(pattern p, std::size_t n) {
    return p == pattern::sequential_read || p == pattern::sequential_write ? n
                                                                           : std::min(n, max_random_accesses);
}

template <class At>
void one_pass(pattern p, std::size_t n, At&& at) {
    std::uint64_t s = 0;
    switch (p) {
        case pattern::sequential_read:
            for (std::size_t i = 0; i < n; ++i) s += at(i);
            break;
        case pattern::sequential_write:
            for (std::size_t i = 0; i < n; ++i) at(i) = i;
            break;
        case pattern::random_read:
            for (std::uint32_t i : random_indices(n)) s += at(i);
            break;
        case pattern::random_write:
            for (std::uint32_t i : random_indices(n)) at(i) = i;
            break;
    }
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
}

/// Passes per timed block, so that a block lasts long enough for the clock
/// (about 30 ns a read here) not to matter even at 4 KiB.
std::size_t passes_per_block(pattern p, std::size_t n) {
    return std::max<std::size_t>(1, (std::size_t{1} << 16) / accesses_per_pass(p, n));
}

template <class At>
double time_block(pattern p, std::size_t n, std::size_t passes, At&& at) {
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < passes; ++k) one_pass(p, n, at);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Sets the items and bytes processed by the run; returns the accesses made.
double report_accesses(benchmark::State& state, pattern p, std::size_t n, std::size_t passes) {
    const auto elements = static_cast<double>(state.iterations() * passes * accesses_per_pass(p, n));
    state.SetItemsProcessed(static_cast<std::int64_t>(elements));
    state.SetBytesProcessed(static_cast<std::int64_t>(elements * sizeof(std::uint64_t)));
    return elements;
}

/// shm_array against a raw pointer into the same mapping, interleaved block
/// by block (in alternating order) so that both see the same machine: the reported time is
/// shm_array's, and `shm_array_over_raw_pointer` is the ratio of the two
/// totals (the library's overhead; the target is at most 1.05).
void array_shm_vs_raw(benchmark::State& state, pattern p) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds::posix_shm seg(segment_name("array"), n * sizeof(std::uint64_t) + (1 << 20));
    shmds::shm_array<std::uint64_t> a(seg, "a", n);
    std::iota(a.begin(), a.end(), 0);
    std::uint64_t* raw = a.data();
    const std::size_t passes = passes_per_block(p, n);
    double shm_seconds = 0, raw_seconds = 0;
    auto through_shm = [&](std::size_t i) -> std::uint64_t& { return a[i]; };
    auto through_raw = [&](std::size_t i) -> std::uint64_t& { return raw[i]; };
    bool shm_first = true;  // alternates, so that neither always runs on a cache the other warmed
    for (auto _ : state) {
        double shm = 0;
        if (shm_first) {
            shm = time_block(p, n, passes, through_shm);
            raw_seconds += time_block(p, n, passes, through_raw);
        } else {
            raw_seconds += time_block(p, n, passes, through_raw);
            shm = time_block(p, n, passes, through_shm);
        }
        shm_first = !shm_first;
        shm_seconds += shm;
        state.SetIterationTime(shm);
    }
    const double elements = report_accesses(state, p, n, passes);
    state.counters["ns_per_access"] = shm_seconds * 1e9 / elements;
    state.counters["raw_pointer_ns_per_access"] = raw_seconds * 1e9 / elements;
    state.counters["shm_array_over_raw_pointer"] = shm_seconds / raw_seconds;
}

/// Times `at` block by block, one block per iteration, and reports the
/// access rate and `ns_per_access`: the benchmark of one container.
template <class At>
void time_container(benchmark::State& state, pattern p, std::size_t n, At&& at) {
    const std::size_t passes = passes_per_block(p, n);
    double seconds = 0;
    for (auto _ : state) {
        const double block = time_block(p, n, passes, at);
        seconds += block;
        state.SetIterationTime(block);
    }
    state.counters["ns_per_access"] = seconds * 1e9 / report_accesses(state, p, n, passes);
}

void array_vector(benchmark::State& state, pattern p) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    std::vector<std::uint64_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    time_container(state, p, n, [&](std::size_t i) -> std::uint64_t& { return v[i]; });
}

#if SHMDS_WITH_COMPARE
/// The same loops through a Boost vector in a managed segment (offset_ptr).
void array_boost_vector(benchmark::State& state, pattern p) {
    const auto n = static_cast<std::size_t>(state.range(0)) / sizeof(std::uint64_t);
    shmds_compare::boost_vector_in_segment v(n);
    time_container(state, p, n, [&](std::size_t i) -> std::uint64_t& { return v[i]; });
}
#endif

void register_array_access() {
    const std::pair<pattern, const char*> patterns[] = {{pattern::sequential_read, "sequential_read"},
                                                        {pattern::sequential_write, "sequential_write"},
                                                        {pattern::random_read, "random_read"},
                                                        {pattern::random_write, "random_write"}};
    for (const auto& [p, what] : patterns) {
        // The headline pairs: ten repetitions whatever --benchmark_repetitions
        // says. The summary takes the worst median of these 28, and with three
        // repetitions one disturbed block (a 1.14 among 1.02 and 1.07) was
        // enough to make a size the worst.
        benchmark::RegisterBenchmark((std::string("array/") + what + "/shm_array_vs_raw_pointer").c_str(),
                                     array_shm_vs_raw, p)
            ->RangeMultiplier(8)
            ->Range(4096, 256 << 20)
            ->Repetitions(10)
            ->UseManualTime();
        benchmark::RegisterBenchmark((std::string("array/") + what + "/vector").c_str(), array_vector, p)
            ->RangeMultiplier(8)
            ->Range(4096, 256 << 20)
            ->UseManualTime();
#if SHMDS_WITH_COMPARE
        benchmark::RegisterBenchmark((std::string("array/") + what + "/boost_offset_ptr_vector").c_str(),
                                     array_boost_vector, p)
            ->RangeMultiplier(8)
            ->Range(4096, 256 << 20)
            ->UseManualTime();
#endif
    }
}

// ---- queues and stacks, one process ------------------------------------------------------------

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

#if SHMDS_WITH_COMPARE
/// shm_table's lookup against Boost's named-object find among the same n
/// names, in interleaved blocks (turning which goes first) so that all see
/// the same machine. One repetition is one pair: the reported time is
/// shm_table's locate (the like of Boost's find: where the object lies and
/// its size), `shm_table_over_boost` the ratio of the two totals, and
/// `shm_table_find_over_boost` that of find (which also builds the names as
/// strings), timed in a third block. The directories are filled once per
/// process and count and kept for all repetitions (filling Boost's with
/// 65,536 names takes seconds).
///
/// Every block starts cold: a sweep empties the caches and the TLB first, so
/// a block counts the dependent misses of each find. Warm, the two
/// directories (12 MiB of table entries, Boost's tree) compete for the
/// last-level cache with the host's other tenants, and the ratio followed
/// that share: 0.25 to 0.47 over 30 runs of the pair alone in ten minutes
/// here. Cold, every pair of two full runs (48 processes) lay within
/// 0.34-0.40. What still moves it is the process (where its pages landed:
/// process medians 0.35-0.39), so scripts/run-benchmarks runs the pair in a
/// process per round (--lookup-round).
struct two_directories {
    explicit two_directories(std::uint32_t n)
        : table(segment_name(("find-pair-" + std::to_string(n)).c_str()), (n + 16) * 512 + (1 << 20),
                {.table_capacity = n}),
          boost("find-pair-" + std::to_string(n), shmds_compare::named_objects_bytes(n)) {
        for (std::uint32_t i = 0; i < n; ++i) {
            const std::string name = "s" + std::to_string(i);
            shmds::shm_array<char> a(table, name, 1);
            boost->construct<char>(name.c_str())[1]();
            names.push_back("s" + std::to_string((i * 7919u) % n));
        }
    }
    shmds::posix_shm table;
    shmds_compare::scoped_managed_segment boost;
    std::vector<std::string> names;  ///< every name once, in a scattered order
};

/// Reads a buffer twice the size of the last-level cache (at least 64 MiB),
/// one load per cache line on small pages, to push everything else out of
/// the caches and the TLB.
class cache_sweep {
public:
    cache_sweep() {
        const long llc = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
        bytes_ = std::max<std::size_t>(std::size_t{64} << 20, llc > 0 ? 2 * static_cast<std::size_t>(llc) : 0);
        void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("cache_sweep: mmap failed");
        ::madvise(p, bytes_, MADV_NOHUGEPAGE);
        data_ = static_cast<volatile unsigned char*>(p);
        for (std::size_t i = 0; i < bytes_; i += 64) data_[i] = 1;
    }
    ~cache_sweep() { ::munmap(const_cast<unsigned char*>(data_), bytes_); }
    cache_sweep(const cache_sweep&) = delete;
    cache_sweep& operator=(const cache_sweep&) = delete;
    void operator()() {
        unsigned sum = 0;
        for (std::size_t i = 0; i < bytes_; i += 64) sum += data_[i];
        benchmark::DoNotOptimize(sum);
    }

private:
    std::size_t bytes_ = 0;
    volatile unsigned char* data_ = nullptr;
};

void table_find_vs_boost(benchmark::State& state, std::uint32_t n) {
    static std::map<std::uint32_t, std::unique_ptr<two_directories>> filled;
    auto& dirs = filled[n];
    if (!dirs) dirs = std::make_unique<two_directories>(n);
    auto& seg = dirs->table;
    auto& boost = dirs->boost;
    const auto& names = dirs->names;
    constexpr std::size_t block = 4096;
    std::size_t next = 0;
    static cache_sweep sweep;
    auto time_block = [&](auto&& find) {
        sweep();
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t k = 0; k < block; ++k) {
            benchmark::DoNotOptimize(find(names[next]));
            if (++next == names.size()) next = 0;
        }
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    // locate is the like of Boost's find (where the object lies and its
    // size); find also builds the structure's names as strings.
    auto table_locate = [&](const std::string& name) { return seg.table().locate(name); };
    auto table_find = [&](const std::string& name) { return seg.table().find(name); };
    auto boost_find = [&](const std::string& name) { return boost->find<char>(name.c_str()).first; };
    double locate_seconds = 0, find_seconds = 0, boost_seconds = 0;
    int first = 0;  // which of the three opens this pair's blocks, in turn
    for (auto _ : state) {
        double locate = 0;
        for (int k = 0; k < 3; ++k) {
            switch ((first + k) % 3) {
                case 0:
                    locate = time_block(table_locate);
                    break;
                case 1:
                    find_seconds += time_block(table_find);
                    break;
                default:
                    boost_seconds += time_block(boost_find);
                    break;
            }
        }
        first = (first + 1) % 3;
        locate_seconds += locate;
        state.SetIterationTime(locate);
    }
    const auto finds = static_cast<double>(state.iterations() * block);
    state.SetItemsProcessed(static_cast<std::int64_t>(finds));
    state.counters["shm_table_ns_per_find"] = locate_seconds * 1e9 / finds;
    state.counters["shm_table_find_ns_per_find"] = find_seconds * 1e9 / finds;
    state.counters["boost_ns_per_find"] = boost_seconds * 1e9 / finds;
    state.counters["shm_table_over_boost"] = locate_seconds / boost_seconds;
    state.counters["shm_table_find_over_boost"] = find_seconds / boost_seconds;
}
#endif

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

BENCHMARK(push_pop_batch<shmds::shm_spsc_queue<std::uint64_t>>);
BENCHMARK(push_pop_batch<shmds::shm_mpmc_queue<std::uint64_t>>);
BENCHMARK(push_pop<shmds::shm_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_stack<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_spsc_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_mpmc_queue<std::uint64_t>>)->Arg(64);
BENCHMARK(push_pop<shmds::shm_concurrent_stack<std::uint64_t>>)->Arg(64);
BENCHMARK(segment_create_detach);
BENCHMARK(segment_attach_detach);

/// How this process runs the lookup pair: not at all, under its plain name
/// (fifteen repetitions, so that a run of the binary alone gives a median
/// with an interval), or as round k of the group "lookup" (three
/// repetitions, alone in its process).
constexpr int lookup_pair_none = -2;
constexpr int lookup_pair_plain = -1;

void register_lookup_pair(int round) {
#if SHMDS_WITH_COMPARE
    if (round == lookup_pair_none) return;
    // The counts of the target: one name, a few, a service's worth,
    // and the most a table holds in the reference run.
    for (const int n : {1, 16, 1024, 65536}) {
        const std::string plain = "discovery/find/shm_table_vs_boost_named_objects/" + std::to_string(n);
        benchmark::RegisterBenchmark(
            round == lookup_pair_plain
                ? plain.c_str()
                : ("paired/lookup/" + plain + "/round:" + std::to_string(round)).c_str(),
            table_find_vs_boost, static_cast<std::uint32_t>(n))
            ->Iterations(20)
            ->Repetitions(round == lookup_pair_plain ? 15 : 3)
            ->UseManualTime();
    }
#else
    (void)round;
#endif
}

}  // namespace

/// Lookup and creation by name among 1 to 65,536 structures: shm_table, and
/// (with the comparison) Boost's named objects in a managed segment.
void register_discovery(int lookup_round) {
    benchmark::RegisterBenchmark("discovery/find/shm_table", table_find)
        ->RangeMultiplier(16)
        ->Range(1, 65536);
#if SHMDS_WITH_COMPARE
    benchmark::RegisterBenchmark("discovery/find/boost_named_objects", shmds_compare::boost_named_find)
        ->RangeMultiplier(16)
        ->Range(1, 65536);
    register_lookup_pair(lookup_round);
#endif
    benchmark::RegisterBenchmark("discovery/create_destroy/shm_table", table_create_destroy)
        ->RangeMultiplier(16)
        ->Range(1, 65536);
#if SHMDS_WITH_COMPARE
    benchmark::RegisterBenchmark("discovery/create_destroy/boost_named_objects",
                                 shmds_compare::boost_named_create_destroy)
        ->RangeMultiplier(16)
        ->Range(1, 65536);
#endif
}

/// The named selections, defined here only (scripts/run-benchmarks --quick
/// and the ctest smoke run ask for them by name). --quick: the smallest size
/// of each family (names ending in /4096, /64 or /4096/manual_time), the
/// segment's life cycle, and discovery at every number of names (its curve
/// is the point). --smoke: one benchmark of each kind, discovery among 1 and
/// 16 names only (a sanitized build takes minutes to fill a table with
/// 65,536) and no lookup pair, to check that every kind runs and writes what
/// the scripts read.
constexpr const char* quick_filter = "/4096(/|$)|/64$|/1$|/256$|/65536$|segment|discovery.*/16$";
constexpr const char* smoke_filter = "/4096/|/1$|/64$|segment|discovery.*/16$";

int main(int argc, char** argv) {
    int lookup_round = lookup_pair_plain;
    bool lookup_only = false;
    const char* selection = nullptr;  // --quick or --smoke
    bool filtered = false;
    std::vector<char*> args{argv[0]};  // Google Benchmark's flags, ours removed
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg(argv[i]);
        if (arg == "--help" || arg == "-h") {
            shmds_bench::print_help_and_exit(
                "usage: shmds_micro_bench [options] [Google Benchmark flags]\n"
                "The single-process microbenchmarks: element access, push and pop, lookup by name,\n"
                "the segment's life cycle.\n"
                "  --quick            the smallest size of each family, discovery at every size\n"
                "  --smoke            one benchmark of each kind (for the ctest smoke run)\n"
                "                     (either gives way to --benchmark_filter)\n"
                "  --no-lookup-pair   leave out the shm_table/Boost lookup pair (default: run it,\n"
                "                     fifteen pairs, as discovery/find/shm_table_vs_boost_named_objects)\n"
                "  --lookup-round=K   run only the lookup pair, three pairs, as round K of the group\n"
                "                     'lookup' (scripts/run-benchmarks runs each round in a process\n"
                "                     of its own: where a process's pages land moves the ratio)\n"
                "  -h, --help         this text\n",
                argv[0]);
        } else if (arg == "--quick") {
            selection = quick_filter;
        } else if (arg == "--smoke") {
            selection = smoke_filter;
            // (Not the lookup pair: its cache sweeps take minutes in a
            // sanitized build, and it writes no counter the scripts need.)
            if (lookup_round == lookup_pair_plain) lookup_round = lookup_pair_none;
        } else if (arg == "--no-lookup-pair") {
            lookup_round = lookup_pair_none;
        } else if (arg.rfind("--lookup-round=", 0) == 0) {
            const std::string value(arg.substr(std::string_view("--lookup-round=").size()));
            char* end = nullptr;
            const long k = std::strtol(value.c_str(), &end, 10);
            if (value.empty() || *end != '\0' || k < 0 || k > 1'000'000) {
                std::fprintf(stderr, "shmds_micro_bench: --lookup-round wants a round number >= 0, not '%s'\n",
                             value.c_str());
                return 2;
            }
            lookup_round = static_cast<int>(k);
            lookup_only = true;
        } else {
            filtered = filtered || arg.rfind("--benchmark_filter=", 0) == 0;
            args.push_back(argv[i]);
        }
    }
    std::string selection_flag = std::string("--benchmark_filter=") + (selection ? selection : "");
    if (selection != nullptr && !filtered) args.push_back(selection_flag.data());
    for (const auto& [key, value] : shmds_bench::machine_context()) benchmark::AddCustomContext(key, value);
    benchmark::AddCustomContext("benchmark_library_note",
                                "Debian's libbenchmark 1.7.1 is a debug build; it says so at start-up.");
    benchmark::AddCustomContext("mode", "micro");
    benchmark::AddCustomContext("compare", SHMDS_WITH_COMPARE ? "yes" : "no");
    if (lookup_only) {
        benchmark::ClearRegisteredBenchmarks();  // the BENCHMARK() ones, registered statically
        register_lookup_pair(lookup_round);
    } else {
        register_discovery(lookup_round);
        register_array_access();
    }
    return shmds_bench::run_with_progress(args);
}
