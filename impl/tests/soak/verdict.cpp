// impl/tests/soak/verdict.cpp: the end-of-run checks (see verdict.hpp for
// what the verdict owns and must never do).
#include "verdict.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <utility>

namespace soak {

bool segment_name_exists(const std::string& segment) {
    struct stat st {};
    return ::stat(("/dev/shm" + segment).c_str(), &st) == 0;
}

namespace {

// ---- every element's fate -----------------------------------------------------------------------

/// The elements in doubt of producer slot p: those whose push a kill cut
/// short, and the one a producer stopped by force was pushing.
std::set<std::uint64_t> in_doubt_of(const structure_tally& t, std::uint32_t p, std::uint64_t started,
                                    std::uint64_t completed) {
    std::set<std::uint64_t> doubt;
    if (auto it = t.in_doubt.find(p); it != t.in_doubt.end()) doubt = it->second;
    if (started > completed) doubt.insert(started - 1);  // (only if a producer was stopped by force)
    return doubt;
}

/// SPSC: the elements consumer deaths inside a pop call can explain (see
/// spsc_consumer_deaths); in-doubt elements that never arrived were never
/// published: skip them.
std::set<std::uint64_t> explained_by_consumer_deaths(const context& cx, std::uint32_t p,
                                                     const structure_tally& t, std::uint64_t completed,
                                                     const std::set<std::uint64_t>& doubt) {
    std::set<std::uint64_t> explained;
    for (const auto& death : t.spsc_consumer_deaths) {
        if (death.holding != in_pop_call) continue;
        std::uint64_t k = death.seen;
        while (k < completed && doubt.count(k) != 0 && !cx.shared.is_marked(spsc_index, p, k)) ++k;
        explained.insert(k);
    }
    return explained;
}

/// "; element K of producer slot P (consumer deaths nearest it had seen up
/// to A and B; in doubt nearby: ...)": what a lost SPSC element that no
/// consumer death explains had around it.
std::string describe_unexplained(const structure_tally& t, std::uint32_t p, std::uint64_t k,
                                 const std::set<std::uint64_t>& doubt) {
    std::uint64_t below = 0, above = ~std::uint64_t{0};
    for (const auto& death : t.spsc_consumer_deaths) {
        const std::uint64_t d = death.seen;
        if (d <= k) below = std::max(below, d);
        if (d >= k) above = std::min(above, d);
    }
    std::string out = "; element " + std::to_string(k) + " of producer slot " + std::to_string(p) +
                      " (consumer deaths nearest it had seen up to " + std::to_string(below) + " and " +
                      (above == ~std::uint64_t{0} ? std::string("none above") : std::to_string(above)) +
                      "; in doubt within 300 of it:";
    const std::size_t before = out.size();
    for (auto it = doubt.lower_bound(k >= 300 ? k - 300 : 0); it != doubt.end() && *it <= k + 300; ++it)
        out += " " + std::to_string(*it);
    out += out.size() == before ? " none" : "";
    // Every death that came near it: where that incarnation began, where its
    // last-seen mark stood, and what it held (k, or - for nothing).
    auto k_of = [](std::uint64_t code) {
        return code == 0             ? std::string("-")
               : code == in_pop_call ? std::string("none: in a pop call")
                                     : std::to_string(held_k(code));
    };
    auto near = [k](std::uint64_t code) {
        return code != 0 && code != in_pop_call && held_k(code) + 3 >= k && held_k(code) <= k + 3;
    };
    for (std::size_t i = 0; i < t.spsc_consumer_deaths.size(); ++i) {
        const auto& d = t.spsc_consumer_deaths[i];
        if ((d.seen + 3 >= k && d.seen <= k + 3) || near(d.first_popped) || near(d.holding))
            out += "; death " + std::to_string(i) + ": first popped " + k_of(d.first_popped) +
                   ", seen up to " + std::to_string(d.seen) + ", holding " + k_of(d.holding);
    }
    return out + ")";
}

/// Adds producer slot p's elements to `r`: a word at a time for the
/// completed range (one pass over about 1/8 byte per element), and one by
/// one only in the rare words with a missing element.
void scan_producer(const context& cx, unsigned s, std::uint32_t p, const structure_tally& t,
                   element_fates& r) {
    const producer_stream& stream = cx.shared.book->structures[s].streams[p];
    const std::uint64_t completed = stream.completed.load();
    const std::uint64_t started = stream.started.load();
    const std::set<std::uint64_t> doubt = in_doubt_of(t, p, started, completed);
    const std::set<std::uint64_t> no_elements;
    auto unmarked_it = t.popped_unmarked.find(p);
    const std::set<std::uint64_t>& unmarked =
        unmarked_it != t.popped_unmarked.end() ? unmarked_it->second : no_elements;
    auto has = [&](std::uint64_t k) { return cx.shared.is_marked(s, p, k); };
    const std::set<std::uint64_t> explained = s == spsc_index
                                                  ? explained_by_consumer_deaths(cx, p, t, completed, doubt)
                                                  : std::set<std::uint64_t>{};
    for (std::uint64_t k : doubt) {
        ++r.in_doubt;
        if (has(k)) ++r.in_doubt_seen;
    }
    for (std::uint64_t w = 0; w * 64 < completed; ++w) {
        const std::uint64_t bits = cx.shared.bitmap_word(s, p, w * 64).load();
        const std::uint64_t in_range = completed - w * 64 >= 64 ? 64 : completed - w * 64;
        const std::uint64_t all = in_range == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << in_range) - 1;
        if ((bits & all) == all) continue;
        for (std::uint64_t k = w * 64; k < w * 64 + in_range; ++k) {
            if (has(k) || doubt.count(k) != 0) continue;
            ++r.lost;
            if (unmarked.count(k) != 0) ++r.lost_unmarked;
            // An element a killed consumer held unmarked (its holding record
            // says the library had handed it over) is that consumer's one loss.
            if (s == spsc_index && explained.count(k) == 0 && unmarked.count(k) == 0 &&
                ++r.lost_unexplained <= 3)
                r.unexplained_detail += describe_unexplained(t, p, k, doubt);
        }
    }
    std::uint64_t doubt_below = 0;
    for (std::uint64_t k : doubt) doubt_below += k < completed ? 1 : 0;
    r.completed += completed - doubt_below;
    // Bits beyond `started` cannot be set (record() refuses them);
    // look at the next word's worth to prove the bitmap agrees.
    for (std::uint64_t k = started; k < std::min(started + 64, max_elements_per_slot); ++k)
        if (has(k)) ++r.beyond_started;
}

element_fates scan(const context& cx, unsigned s, const structure_tally& t) {
    element_fates r;
    for (std::uint32_t p = 0; p < cx.producers_of[s]; ++p) scan_producer(cx, s, p, t, r);
    r.seen_once = r.completed - r.lost;
    return r;
}

// ---- one structure ------------------------------------------------------------------------------

/// Its figures: the scan, the tally, the worker records and the ledger's counters.
structure_verdict figures_of(const context& cx, unsigned s, const structure_tally& t) {
    const structure_ledger& sl = cx.shared.book->structures[s];
    structure_verdict v;
    v.structure = s;
    v.producers = cx.producers_of[s];
    v.consumers = cx.consumers_of[s];
    v.counts = t.counts;
    v.elements = scan(cx, s, t);
    v.loss_allowance = t.counts.consumer_kills;
    for (std::uint32_t i = 0; i < max_slots; ++i) {
        for (const worker_record* rec : {&sl.producer[i], &sl.consumer[i]}) {
            v.longest_call_ns = std::max(v.longest_call_ns, rec->longest_call_ns.load());
            v.role_retries += rec->role_retries.load();
            v.calls += rec->calls.load();
            v.late_calls += rec->late_calls.load();
        }
    }
    v.duplicates = sl.duplicates.load();
    v.order_violations = sl.order_violations.load();
    v.corrupt = sl.corrupt.load();
    v.phantom = sl.phantom.load() + v.elements.beyond_started;
    v.lock_recoveries = sl.lock_recoveries.load();
    return v;
}

/// What its figures show is wrong, each reason naming the structure.
std::vector<std::string> failures_of(const structure_verdict& v, const options& o) {
    std::vector<std::string> failures;
    const std::string prefix = std::string(structure_names[v.structure]) + ": ";
    const element_fates& r = v.elements;
    if (r.lost_unexplained != 0)
        failures.push_back(
            prefix + std::to_string(r.lost_unexplained) +
            " lost elements that no consumer death explains (SPSC has one consumer: a kill inside its pop "
            "call can lose only the element after the last one it had seen, and a kill after the call only "
            "the element it held unmarked)" +
            r.unexplained_detail);
    if (r.lost > v.loss_allowance)
        failures.push_back(prefix + std::to_string(r.lost) + " completed elements lost, more than the " +
                           std::to_string(v.loss_allowance) + " consumer kills allow");
    if (v.duplicates != 0) failures.push_back(prefix + std::to_string(v.duplicates) + " duplicates");
    if (v.order_violations != 0)
        failures.push_back(prefix + std::to_string(v.order_violations) + " order violations");
    if (v.corrupt != 0) failures.push_back(prefix + std::to_string(v.corrupt) + " corrupt elements");
    if (v.phantom != 0) failures.push_back(prefix + "elements popped that were never pushed");
    const std::int64_t limit = (std::int64_t{o.timeout_ms} + o.slack_ms) * 1'000'000;
    if (v.longest_call_ns > limit)
        failures.push_back(prefix + "a call took " + std::to_string(v.longest_call_ns / 1'000'000) +
                           " ms, beyond timeout + slack");
    if (r.completed == 0) failures.push_back(prefix + "no element was completed: nothing was checked");
    return failures;
}

// ---- processes and the segment ------------------------------------------------------------------

/// Processes we are still the parent of (workers or, through the
/// subreaper, their orphaned children).
std::vector<pid_t> children_left() {
    std::vector<pid_t> left;
    std::ifstream children("/proc/self/task/" + std::to_string(::getpid()) + "/children");
    pid_t pid;
    while (children >> pid) left.push_back(pid);
    return left;
}

/// Kills and reaps processes left behind, and says which they were.
std::string kill_left_behind(const std::vector<pid_t>& left) {
    std::string pids;
    for (pid_t pid : left) pids += " " + std::to_string(pid);
    for (pid_t pid : left) ::kill(pid, SIGKILL);
    for (pid_t pid : left) ::waitpid(pid, nullptr, 0);
    return pids;
}

/// Every process we started has been reaped, nothing else is ours, the
/// library gave no notice, and the segment's name went with the last
/// worker's detach. Fills in `v`'s process figures and process_failures.
void check_processes(const context& cx, const run_record& run, soak_verdict& v) {
    std::vector<std::string>& fail = v.process_failures;
    const std::vector<pid_t> left = children_left();
    if (left.empty() && ::waitpid(-1, nullptr, WNOHANG) == 0)
        fail.emplace_back("children remain, pids unknown (no /proc children list)");
    if (!left.empty())
        fail.push_back("processes left behind after every worker exited:" + kill_left_behind(left) +
                       " (killed now)");
    std::uint64_t unreaped = 0;
    std::uint64_t still_running = 0;
    for (pid_t pid : run.started_pids) {
        if (run.reaped_pids.count(pid) == 0) ++unreaped;
        // A reaped pid may have been reused by an unrelated process: only ours count.
        if (::kill(pid, 0) == 0 && std::find(left.begin(), left.end(), pid) != left.end()) ++still_running;
    }
    if (v.library_notices != 0)
        fail.push_back(std::to_string(v.library_notices) +
                       " notices from the library (a stale segment reclaimed?) while a worker was attached");
    if (unreaped != 0) fail.push_back(std::to_string(unreaped) + " started workers were never reaped");
    if (still_running != 0)
        fail.push_back(std::to_string(still_running) + " started workers still running at the end");
    v.segment_name_left = segment_name_exists(cx.opt.segment);
    if (v.segment_name_left) {
        fail.push_back("the segment's name " + cx.opt.segment +
                       " is still in /dev/shm after the last worker exited (removed now)");
        ::shm_unlink(cx.opt.segment.c_str());
    }
    v.processes_started = run.started_pids.size();
    v.processes_reaped = run.reaped_pids.size();
    v.processes_left_behind = left.size();
}

}  // namespace

soak_verdict judge(const context& cx, const run_record& run, double ran_s) {
    const options& o = cx.opt;
    soak_verdict v;
    v.seed = o.seed;
    v.ran_s = ran_s;
    v.capacity = o.capacity;
    v.timeout_ms = o.timeout_ms;
    v.fault_injected = o.inject != injected_fault::none;
    v.segment = o.segment;
    v.library_notices = cx.shared.book->segment_notices.load();
    v.postponed_kills = run.postponed_kills;
    check_processes(cx, run, v);
    v.reasons = run.reasons;
    v.reasons.insert(v.reasons.end(), v.process_failures.begin(), v.process_failures.end());
    for (unsigned s = 0; s < structure_count; ++s) {
        if (!o.run[s]) continue;
        structure_verdict sv = figures_of(cx, s, run.tally[s]);
        sv.failures = failures_of(sv, o);
        v.reasons.insert(v.reasons.end(), sv.failures.begin(), sv.failures.end());
        v.kills += sv.counts.producer_kills + sv.counts.consumer_kills;
        v.restarts += sv.counts.restarts;
        v.elements_checked += sv.elements.completed + sv.elements.in_doubt;
        v.structures.push_back(std::move(sv));
    }
    v.problems_logged = cx.shared.book->problems_logged.load();
    return v;
}

}  // namespace soak
