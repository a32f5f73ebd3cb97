// bench/ipc/runs.cpp: the parts of runs.hpp that are not templates: run
// lengths, the limits, the histogram files and the latency counters.
#include "ipc/runs.hpp"

#include <algorithm>
#include <atomic>
#include <fstream>

#include <unistd.h>

#include "harness/limits.hpp"

namespace shmds_bench::ipc {

settings options;

std::uint64_t scaled(std::uint64_t full, std::uint64_t minimum) {
    const double n = static_cast<double>(full) * options.scale * (options.quick ? 0.1 : 1.0);
    return std::max<std::uint64_t>(minimum, static_cast<std::uint64_t>(n));
}
std::chrono::nanoseconds scaled(std::chrono::milliseconds full) {
    return std::chrono::nanoseconds(scaled(static_cast<std::uint64_t>(full.count()) * 1'000'000, 1'000'000));
}

std::string unique_tag() {
    static std::atomic<unsigned> counter{0};
    return std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

double limit_round_trip_ns(int lines) {
    const auto where = placement::for_members(2);
    return cacheline_round_trip_ns(where.cpus[0], where.cpus[1], options.quick ? 20'000 : 100'000, lines);
}

double memcpy_limit() {
    static const double bytes_per_second = memcpy_bytes_per_second();
    return bytes_per_second;
}

void write_histogram(const std::string& name, const latency_histogram& h, int round) {
    if (options.histogram_dir.empty()) return;
    static std::map<std::string, int> repetitions;
    std::string file = name + (round >= 0 ? "/round:" + std::to_string(round) : "") +
                       "/repetition:" + std::to_string(repetitions[name]++);
    for (char& c : file)
        if (c == '/' || c == ':' || c == '%') c = '_';
    std::ofstream out(options.histogram_dir + "/" + file + ".json");
    out << "{\"name\": \"" << name << "\", \"repetition\": " << repetitions[name] - 1
        << ", \"unit\": \"ns\", \"count\": " << h.count() << ", \"buckets\": [";
    bool first = true;
    for (std::size_t b = 0; b < latency_histogram::bucket_count; ++b) {
        if (h.count_in(b) == 0) continue;
        out << (first ? "" : ", ") << "[" << latency_histogram::bucket_low(b) << ", "
            << latency_histogram::bucket_high(b) << ", " << h.count_in(b) << "]";
        first = false;
    }
    out << "]}\n";
}

void report_latency(benchmark::State& state, const std::string& name, const latency_result& r,
                    double limit_ns, int round) {
    state.SetIterationTime(r.seconds);
    state.SetItemsProcessed(static_cast<std::int64_t>(r.messages));
    const auto& h = r.histogram;
    state.counters["p50_ns"] = static_cast<double>(h.percentile(50));
    // The headline ratios use this, not p50: see latency_histogram::mid_mean.
    state.counters["mid_mean_ns"] = h.mid_mean(25, 75);
    state.counters["p90_ns"] = static_cast<double>(h.percentile(90));
    state.counters["p99_ns"] = static_cast<double>(h.percentile(99));
    state.counters["p99_9_ns"] = static_cast<double>(h.percentile(99.9));
    state.counters["p99_99_ns"] = static_cast<double>(h.percentile(99.99));
    state.counters["max_ns"] = static_cast<double>(h.max());
    state.counters["mean_ns"] = h.mean();
    if (limit_ns > 0 && h.percentile(50) > 0)
        state.counters["fraction_of_limit"] = limit_ns / static_cast<double>(h.percentile(50));
    state.counters["oversubscribed"] = r.oversubscribed ? 1 : 0;
    if (r.oversubscribed) state.SetLabel("oversubscribed: more processes than CPUs");
    if (r.sender_cpu_seconds >= 0 && r.receiver_cpu_seconds >= 0 && r.messages > 0) {
        const double per_message = 1e9 / static_cast<double>(r.messages);
        state.counters["sender_cpu_ns_per_message"] = r.sender_cpu_seconds * per_message;
        state.counters["receiver_cpu_ns_per_message"] = r.receiver_cpu_seconds * per_message;
        state.counters["cpu_ns_per_message"] = (r.sender_cpu_seconds + r.receiver_cpu_seconds) * per_message;
    }
    write_histogram(name, h, round);
}

channel_config with_fresh_tag(channel_config config) {
    config.tag = unique_tag();
    return config;
}

}  // namespace shmds_bench::ipc
