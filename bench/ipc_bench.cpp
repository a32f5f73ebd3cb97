// bench/ipc_bench.cpp: the multi-process benchmarks, run through Google
// Benchmark so that results share its JSON format (context, repetitions,
// aggregates) with the microbenchmarks. Each benchmark iteration is one whole
// multi-process run timed by its members (manual time). Around every run the
// cache-line round trip between the CPUs used is measured again; a figure is
// also reported as a fraction of that limit (or of memcpy bandwidth).
//
//   shmds_ipc_bench [OPTION...] [Google Benchmark flags]
//
// The options, with their defaults, are in usage_text (above parse_options;
// --help prints it).
//
// The program's parts: bench/ipc/runs.hpp (what a run shares: options, limits,
// histograms), bench/ipc/families.hpp (the benchmark families) and
// bench/ipc/schedule.hpp (the transports, and the order the runs are
// registered in); this file has the options and the results' context.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "harness/clock.hpp"
#include "harness/machine.hpp"
#include "harness/progress.hpp"
#include "ipc/runs.hpp"
#include "ipc/schedule.hpp"

namespace shmds_bench::ipc {
namespace {

/// "8,64,512" -> {8, 64, 512}; throws naming the flag on anything else.
std::vector<std::size_t> parse_list(std::string_view flag, std::string_view text) {
    std::vector<std::size_t> values;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item(text.substr(start, comma - start));
        std::size_t used = 0;
        unsigned long value = 0;
        try {
            value = std::stoul(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || value == 0)
            throw std::invalid_argument(std::string(flag) + ": '" + item + "' is not a positive number");
        values.push_back(value);
        start = comma + 1;
    }
    return values;
}

/// --help: every option parse_options takes, with its default.
constexpr const char* usage_text =
    "usage: shmds_ipc_bench [OPTION...] [Google Benchmark flags]\n"
    "The multi-process benchmarks: throughput, ping-pong and latency under load of every transport,\n"
    "with the hardware's limits measured around every run; Google Benchmark's output formats.\n"
    "\n"
    "  --quick            a smoke run: shorter runs, fewer sizes and ways of waiting, no scaling runs\n"
    "  --no-compare       only the project's structures, not the comparison peers (Boost.Interprocess,\n"
    "                     pipes, UNIX sockets, POSIX message queues, ZeroMQ, NNG; on when they are\n"
    "                     compiled in)\n"
    "  --histograms=DIR   write every run's latency histogram as JSON into DIR (none written)\n"
    "  --clock=CLOCK      timestamps: auto (the TSC where invariant), tsc or monotonic (auto)\n"
    "  --payloads=LIST    sizes of the throughput sweep, of 8,16,64,256,512,1024,4096,16384,65536\n"
    "                     (8,64,512,4096,65536; --quick: 8)\n"
    "  --senders=LIST     senders of the scaling runs, each with every receivers count\n"
    "                     where the sum exceeds 2 (1,2)\n"
    "  --receivers=LIST   receivers of the scaling runs (1,2)\n"
    "  --scale=F          multiplies every run's length (1)\n"
    "  --pair-rounds=N    rounds of each interleaved group of headline runs, spread over the\n"
    "                     whole run (24; --quick: 2)\n"
    "  --seed=N           the order of the members in each round (from the clock; recorded\n"
    "                     in the context as pair_order_seed)\n"
    "  --only-round=K     only round K (from 0) of the groups and its share of the other runs,\n"
    "                     in the order a whole run with the same --seed has them (all rounds)\n"
    "  -h, --help         this text, then Google Benchmark's flags\n";

/// Takes the flags this program knows out of argv; returns the rest.
std::vector<char*> parse_options(int argc, char** argv) {
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const std::size_t equals = arg.find('=');
        const std::string_view flag = arg.substr(0, equals);
        const std::string value(equals == std::string_view::npos ? "" : arg.substr(equals + 1));
        if (arg == "--help" || arg == "-h") {
            print_help_and_exit(usage_text, argv[0]);
        } else if (arg == "--quick") {
            options.quick = true;
        } else if (arg == "--no-compare") {
            options.compare = false;
        } else if (flag == "--histograms") {
            options.histogram_dir = value;
        } else if (flag == "--clock") {
            options.clock = value;
        } else if (flag == "--payloads") {
            options.payloads = parse_list(flag, value);
        } else if (flag == "--senders") {
            options.senders = parse_list(flag, value);
        } else if (flag == "--receivers") {
            options.receivers = parse_list(flag, value);
        } else if (flag == "--pair-rounds") {
            options.pair_rounds = static_cast<int>(parse_list(flag, value).at(0));
        } else if (flag == "--only-round") {
            char* end = nullptr;
            const unsigned long round = std::strtoul(value.c_str(), &end, 10);
            if (value.empty() || value[0] == '-' || *end != '\0' || round > 1000000)
                throw std::invalid_argument("--only-round: '" + value +
                                            "' is not a round number (0, 1, ...)");
            options.only_round = static_cast<int>(round);
        } else if (flag == "--seed") {
            options.seed = parse_list(flag, value).at(0);
        } else if (flag == "--scale") {
            char* end = nullptr;
            options.scale = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end != '\0' || !(options.scale > 0))
                throw std::invalid_argument("--scale: '" + value + "' is not a positive number");
        } else {
            rest.push_back(argv[i]);
        }
    }
    return rest;
}

}  // namespace
}  // namespace shmds_bench::ipc

int main(int argc, char** argv) {
    using namespace shmds_bench;
    using namespace shmds_bench::ipc;
    try {
        std::vector<char*> rest = parse_options(argc, argv);
        select_clock(options.clock);
        if (options.seed == 0)
            options.seed =
                static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        benchmark::AddCustomContext("pair_order_seed", std::to_string(options.seed));
        if (options.only_round >= 0)
            benchmark::AddCustomContext("only_round", std::to_string(options.only_round));
        for (const auto& [key, value] : machine_context()) benchmark::AddCustomContext(key, value);
        benchmark::AddCustomContext("benchmark_library_note",
                                    "Debian's libbenchmark 1.7.1 is a debug build; it says so at start-up. "
                                    "Multi-process runs are timed by their members (manual time).");
        benchmark::AddCustomContext("mode", options.quick ? "quick" : "full");
        benchmark::AddCustomContext("compare", options.compare ? "yes" : "no");
        benchmark::AddCustomContext("transports", transports_for_context());
        benchmark::AddCustomContext("copies", copies_for_context());
        register_all();
        return run_with_progress(rest);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmds_ipc_bench: %s\n", e.what());
        return 2;
    }
}
