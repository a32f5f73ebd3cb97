// bench/harness/progress.hpp: runs the registered benchmarks with a line of
// progress on stderr after each one ("[12/87] name, elapsed 34 s, about
// 210 s left"), so that a long run on someone's target machine says where it
// is. The console table on stdout and the JSON file are Google Benchmark's own.
// Also --help: the program's own options, then Google Benchmark's flags.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

namespace shmds_bench {

/// Google Benchmark's console reporter, plus a progress line on stderr each
/// time a benchmark (all its repetitions) is done.
class progress_reporter : public benchmark::ConsoleReporter {
public:
    explicit progress_reporter(std::size_t total)
        : benchmark::ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular), total_(total) {}

    void ReportRuns(const std::vector<Run>& runs) override {
        benchmark::ConsoleReporter::ReportRuns(runs);
        if (runs.empty()) return;
        // Runs and their aggregates arrive in separate calls: count names.
        const std::string name = runs.front().run_name.str();
        if (name == last_) return;
        last_ = name;
        ++done_;
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double left =
            done_ < total_ ? elapsed / static_cast<double>(done_) * static_cast<double>(total_ - done_) : 0;
        std::fprintf(stderr, "progress: [%zu/%zu] %s, elapsed %.0f s, about %.0f s left\n", done_, total_,
                     name.c_str(), elapsed, left);
    }

private:
    std::size_t total_;
    std::size_t done_ = 0;
    std::string last_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// --help: prints the program's own options, then the Google Benchmark flags
/// it also accepts (Google Benchmark's own help, which exits 0).
[[noreturn]] inline void print_help_and_exit(const char* own_options, char* program) {
    std::fputs(own_options, stdout);
    std::fputs(
        "\nGoogle Benchmark's flags, also accepted (--benchmark_list_tests=true lists the names\n"
        "that --benchmark_filter=REGEX selects from):\n",
        stdout);
    std::fflush(stdout);
    char help[] = "--help";
    char* argv[] = {program, help, nullptr};
    int argc = 2;
    benchmark::Initialize(&argc, argv);
    std::exit(0);
}

/// Initialises Google Benchmark from `argv` (after the caller took its own
/// flags out), counts the benchmarks the filter selects, and runs them with
/// progress lines. Returns the process exit code.
inline int run_with_progress(std::vector<char*> argv) {
    // Counting: Google Benchmark lists the selected names when asked to, into
    // the display reporter's stream. The flag is then set back explicitly.
    std::string list_on = "--benchmark_list_tests=true", list_off = "--benchmark_list_tests=false";
    std::vector<char*> counting = argv;
    counting.push_back(list_on.data());
    int counting_count = static_cast<int>(counting.size());
    benchmark::Initialize(&counting_count, counting.data());
    if (benchmark::ReportUnrecognizedArguments(counting_count, counting.data())) return 1;
    std::ostringstream names;
    benchmark::ConsoleReporter lister;
    lister.SetOutputStream(&names);
    lister.SetErrorStream(&names);
    const std::size_t total = benchmark::RunSpecifiedBenchmarks(&lister);

    argv.insert(argv.begin() + 1, list_off.data());  // before the caller's flags: theirs win
    int count = static_cast<int>(argv.size());
    benchmark::Initialize(&count, argv.data());
    progress_reporter progress(total);
    benchmark::RunSpecifiedBenchmarks(&progress);
    benchmark::Shutdown();
    return 0;
}

}  // namespace shmds_bench
