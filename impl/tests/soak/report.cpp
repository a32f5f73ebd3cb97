// impl/tests/soak/report.cpp: the verdict as text and as JSON (see
// report.hpp for what the report owns and must never do).
#include "report.hpp"

#include <cstdio>
#include <fstream>
#include <utility>

#include "json_writer.hpp"

namespace soak {
namespace {

void print_failures(const std::vector<std::string>& reasons) {
    for (const std::string& reason : reasons) print_failure(reason);
}

const char* order_checked(unsigned s) {
    if (!structure_is_fifo[s]) return " (a stack has no order to check)";
    return s == spsc_index ? " (per producer, across consumer incarnations)"
                           : " (per producer, per consumer incarnation)";
}

/// One structure's figures, six or seven lines.
void print_structure(const soak_verdict& v, const structure_verdict& sv) {
    const unsigned s = sv.structure;
    const structure_counts& t = sv.counts;
    const element_fates& r = sv.elements;
    std::printf("%s: %u producer%s x %u consumer%s, capacity %zu\n", structure_names[s], sv.producers,
                sv.producers == 1 ? "" : "s", sv.consumers, sv.consumers == 1 ? "" : "s", v.capacity);
    std::printf(
        "  kills: %llu producers, %llu consumers; restarts: %llu; incarnations paced %llu, "
        "sleeping at once %llu%s\n",
        ull(t.producer_kills), ull(t.consumer_kills), ull(t.restarts), ull(t.paced_incarnations),
        ull(t.sleeping_incarnations),
        s == spsc_index ? ("; role retries " + std::to_string(sv.role_retries)).c_str() : "");
    std::printf(
        "  elements: %llu completed, %llu seen exactly once, %llu lost (allowed: %llu, one per "
        "consumer kill): %llu taken by a killed consumer before it marked them, %llu otherwise (in a "
        "pop cut short by a kill, or by the structure)\n",
        ull(r.completed), ull(r.seen_once), ull(r.lost), ull(sv.loss_allowance), ull(r.lost_unmarked),
        ull(r.lost - r.lost_unmarked));
    if (s == spsc_index)
        std::printf(
            "  losses no consumer death explains (the element after the last one a consumer killed in a pop "
            "call had seen, or one a killed consumer held unmarked): %llu\n",
            ull(r.lost_unexplained));
    std::printf("  in doubt (push cut short by a kill): %llu, of which %llu delivered once and %llu absent\n",
                ull(r.in_doubt), ull(r.in_doubt_seen), ull(r.in_doubt - r.in_doubt_seen));
    std::printf("  duplicates %llu, order violations %llu%s, corrupt %llu, phantom %llu\n",
                ull(sv.duplicates), ull(sv.order_violations), order_checked(s), ull(sv.corrupt),
                ull(sv.phantom));
    std::printf(
        "  calls %llu (%llu returned over 100 ms late), longest call %.1f ms, longest heartbeat gap "
        "seen %.1f ms (timeout %u ms)%s\n",
        ull(sv.calls), ull(sv.late_calls), static_cast<double>(sv.longest_call_ns) / 1e6,
        static_cast<double>(t.longest_heartbeat_gap_ns) / 1e6, v.timeout_ms,
        s == stack_index ? (", lock recoveries " + std::to_string(sv.lock_recoveries)).c_str() : "");
}

std::string verdict_line(const soak_verdict& v) {
    if (v.pass()) return "VERDICT: PASS";
    std::string line = "VERDICT: FAIL (";
    for (std::size_t i = 0; i < v.reasons.size(); ++i) line += (i ? "; " : "") + v.reasons[i];
    return line + ")";
}

/// The totals, the self-test's note, and the VERDICT line.
void print_totals(const soak_verdict& v) {
    if (v.problems_logged > problem_lines)
        std::printf("(%u problem lines logged by workers; the first %zu shown)\n", v.problems_logged,
                    problem_lines);
    std::printf("processes: %zu started, %zu reaped, %zu left behind; segment name %s: %s\n",
                v.processes_started, v.processes_reaped, v.processes_left_behind, v.segment.c_str(),
                v.segment_name_left ? "STILL THERE" : "gone");
    std::printf(
        "total: %.1f s, %llu kills (%llu postponed a moment: the victim was the only worker "
        "attached), %llu restarts, %llu elements checked, %llu library notices, seed %llu\n",
        v.ran_s, ull(v.kills), ull(v.postponed_kills), ull(v.restarts), ull(v.elements_checked),
        ull(v.library_notices), ull(v.seed));
    if (v.fault_injected) std::printf("(self-test: a fault was injected on purpose)\n");
    std::printf("%s\n", verdict_line(v).c_str());
}

/// One structure's member of "structures", on one line.
void write_structure(json_writer& json, const structure_verdict& sv) {
    const structure_counts& t = sv.counts;
    const element_fates& r = sv.elements;
    // In this order: readers of earlier results files have seen it.
    const std::pair<const char*, std::uint64_t> counts[] = {{"producer_kills", t.producer_kills},
                                                            {"consumer_kills", t.consumer_kills},
                                                            {"restarts", t.restarts},
                                                            {"completed", r.completed},
                                                            {"seen_once", r.seen_once},
                                                            {"lost", r.lost},
                                                            {"lost_popped_unmarked", r.lost_unmarked},
                                                            {"loss_allowance", sv.loss_allowance},
                                                            {"in_doubt", r.in_doubt},
                                                            {"in_doubt_delivered", r.in_doubt_seen},
                                                            {"duplicates", sv.duplicates},
                                                            {"order_violations", sv.order_violations},
                                                            {"corrupt", sv.corrupt}};
    json.key(structure_names[sv.structure]);
    json.begin_object(json_writer::layout::on_one_line);
    for (const auto& [name, count] : counts) json.member(name, count);
    json.member("longest_call_ms", static_cast<double>(sv.longest_call_ns) / 1e6);
    json.end_object();
}

}  // namespace

void print_failure(const std::string& reason) {
    std::printf("FAIL: %s\n", reason.c_str());
    std::fflush(stdout);
}

void print_verdict(const soak_verdict& v) {
    // In the order the checks were made: a structure's failures follow its figures.
    print_failures(v.process_failures);
    for (const structure_verdict& sv : v.structures) {
        print_structure(v, sv);
        print_failures(sv.failures);
    }
    print_totals(v);
}

void write_verdict_json(const soak_verdict& v, const std::string& path) {
    json_writer json;
    json.begin_object(json_writer::layout::one_per_line);
    json.member("seed", v.seed);
    json.member("seconds", v.ran_s);
    json.key("structures");
    json.begin_object(json_writer::layout::one_per_line);
    for (const structure_verdict& sv : v.structures) write_structure(json, sv);
    json.end_object();
    json.member("kills", v.kills);
    json.member("elements_checked", v.elements_checked);
    json.member("pass", v.pass());
    json.key("reasons");
    json.begin_array(json_writer::layout::on_one_line);
    for (const std::string& reason : v.reasons) json.value(reason);
    json.end_array();
    json.end_object();
    std::ofstream(path) << json.text();
}

}  // namespace soak
