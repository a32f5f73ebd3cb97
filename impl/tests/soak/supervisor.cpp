// impl/tests/soak/supervisor.cpp: the supervisor (see supervisor.hpp for what
// it owns and must never do).
//
// Kills start once every worker is running, so the segment and its
// structures exist (killing their creators is the unit tests' job:
// Faults.*). The victim (structure, role and slot) and the intervals
// (exponentially distributed) come from a generator seeded by --seed, as do
// the incarnations' styles: a seed repeats the choices, not the timing.
#include "supervisor.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "report.hpp"

namespace soak {
namespace {

volatile std::sig_atomic_t interrupted = 0;

std::string status_text(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

}  // namespace

void stop_early_on_interrupt() {
    struct sigaction stop {};
    stop.sa_handler = [](int) { interrupted = 1; };
    ::sigaction(SIGINT, &stop, nullptr);
    ::sigaction(SIGTERM, &stop, nullptr);
}

context make_context(const options& o) {
    context cx;
    cx.opt = o;
    for (unsigned s = 0; s < structure_count; ++s) {
        cx.producers_of[s] = s == spsc_index ? 1 : o.producers;
        cx.consumers_of[s] = s == spsc_index ? 1 : o.consumers;
    }
    // Room for three structures of slots up to a few cache lines each.
    cx.segment_bytes = (std::size_t{1} << 20) + structure_count * o.capacity * 256;
    cx.shared = shared_ledger::map();
    return cx;
}

supervisor::supervisor(const options& o) : cx_(make_context(o)), rng_(o.seed) {}

int supervisor::run() {
    const options& o = cx_.opt;
    if (segment_name_exists(o.segment)) {
        std::fprintf(stderr, "shmds-soak: segment %s already exists; remove it first (rm /dev/shm%s)\n",
                     o.segment.c_str(), o.segment.c_str());
        return 2;
    }
    // Orphaned grandchildren become ours, so "no process left behind" sees them too.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    print_header();
    if (!start_everyone()) {
        fail("the workers did not all start within 60 s");
        stop_everyone();
        return finish(0);
    }
    const double ran_s = run_for_the_time_asked();
    stop_everyone();
    return finish(ran_s);
}

// ---- starting and watching ------------------------------------------------------------------------

/// Forks every worker, and waits until each has returned from a call.
bool supervisor::start_everyone() {
    for (unsigned s = 0; s < structure_count; ++s) {
        if (!cx_.opt.run[s]) continue;
        for (std::uint32_t p = 0; p < cx_.producers_of[s]; ++p) workers_.push_back({s, role::producer, p});
        for (std::uint32_t c = 0; c < cx_.consumers_of[s]; ++c) workers_.push_back({s, role::consumer, c});
    }
    const std::int64_t launch = now_ns();
    for (worker_slot& w : workers_) start(w);
    // Kills start once every worker has returned from a call: a creator
    // killed while initialising the segment holds up the others for the
    // segment's timeout (5 s, documented), which would read as "blocked".
    if (!wait_until([&] { return all_running(launch); }, launch + 60'000'000'000LL)) return false;
    std::printf("started %zu workers in %.0f ms\n", workers_.size(),
                static_cast<double>(now_ns() - launch) / 1e6);
    return true;
}

/// The run proper: watching, killing and restarting until the time is up
/// (or Ctrl-C, or too many failures). Returns how long it ran, in seconds.
double supervisor::run_for_the_time_asked() {
    const options& o = cx_.opt;
    bool orphaned = false;  // self-test
    const std::int64_t begin = now_ns();
    const std::int64_t end = begin + static_cast<std::int64_t>(o.seconds * 1e9);
    std::exponential_distribution<double> interval(o.kill_every_ms > 0 ? 1.0 / (o.kill_every_ms * 1e6) : 1.0);
    std::int64_t next_kill = begin + static_cast<std::int64_t>(interval(rng_));
    std::int64_t next_progress = begin + static_cast<std::int64_t>(o.progress_every_s * 1e9);
    // (A run that keeps failing stops early: its first failures say why.)
    while (now_ns() < end && interrupted == 0 && record_.reasons.size() < 50) {
        sleep_ns(2'000'000);
        watch(true);
        if (o.inject == injected_fault::orphan && !orphaned && now_ns() >= begin + (end - begin) / 2) {
            orphaned = true;
            kill_everyone_at_once();
        }
        if (o.kill_every_ms > 0 && now_ns() >= next_kill) {
            if (kill_one())
                next_kill = now_ns() + static_cast<std::int64_t>(interval(rng_));
            else
                ++record_.postponed_kills;  // tried again at the next tick
        }
        if (o.progress_every_s > 0 && now_ns() >= next_progress) {
            print_progress(now_ns() - begin);
            next_progress += static_cast<std::int64_t>(o.progress_every_s * 1e9);
        }
    }
    if (interrupted != 0) std::printf("interrupted: stopping early, in order\n");
    return static_cast<double>(now_ns() - begin) / 1e9;
}

/// Forks a new incarnation of `w`.
void supervisor::start(worker_slot& w) {
    incarnation_style style;
    style.paced = w.r == role::producer && rng_() % 2 == 0;
    style.sleep_at_once = rng_() % 4 == 0;
    record_.tally[w.structure].counts.paced_incarnations += style.paced;
    record_.tally[w.structure].counts.sleeping_incarnations += style.sleep_at_once;
    worker_record& rec = record_of(w);
    rec.heartbeat_ns.store(now_ns());
    w.calls_at_start = rec.calls.load();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("shmds-soak: fork");
        std::exit(2);
    }
    if (pid == 0) worker_main(cx_, w.structure, w.r, w.slot, style);
    w.pid = pid;
    w.alive = true;
    w.reported_blocked = false;
    record_.started_pids.push_back(pid);
}

worker_record& supervisor::record_of(const worker_slot& w) const {
    structure_ledger& sl = cx_.shared.book->structures[w.structure];
    return w.r == role::producer ? sl.producer[w.slot] : sl.consumer[w.slot];
}

std::string supervisor::describe(const worker_slot& w) const {
    return std::string(structure_names[w.structure]) + " " + role_name(w.r) + " " + std::to_string(w.slot) +
           " (pid " + std::to_string(w.pid) + ")";
}

void supervisor::fail(const std::string& reason) {
    print_failure(reason);
    record_.reasons.push_back(reason);
}

/// Notes what a worker that just died took with it. A producer: the
/// element it had started and not completed, now in doubt (its
/// replacement starts after it). A consumer: the element it had popped
/// and not marked, if any, now lost by the soak's own window; for SPSC,
/// also where it died (inside a pop call, or after one) and what it had seen.
void supervisor::note_what_died_with(const worker_slot& w) {
    const structure_ledger& sl = cx_.shared.book->structures[w.structure];
    structure_tally& t = record_.tally[w.structure];
    if (w.r == role::producer) {
        const std::uint64_t started = sl.streams[w.slot].started.load();
        if (started > sl.streams[w.slot].completed.load()) t.in_doubt[w.slot].insert(started - 1);
        return;
    }
    const std::uint64_t code = record_of(w).holding.exchange(0);
    if (w.structure == spsc_index) {
        t.spsc_consumer_deaths.push_back(
            {sl.streams[0].spsc_last_seen.load(), record_of(w).first_held.exchange(0), code});
    }
    if (code == 0 || code == in_pop_call) return;
    const std::uint32_t slot = held_slot(code);
    const std::uint64_t k = held_k(code);
    if (slot < cx_.producers_of[w.structure] && !cx_.shared.is_marked(w.structure, slot, k))
        t.popped_unmarked[slot].insert(k);
}

/// Records the reaping of `pid`; returns its worker, if any.
supervisor::worker_slot* supervisor::reaped(pid_t pid) {
    record_.reaped_pids.insert(pid);
    for (worker_slot& w : workers_) {
        if (w.pid == pid && w.alive) {
            w.alive = false;
            return &w;
        }
    }
    std::printf("note: process %d (not a worker: left behind by one) exited\n", static_cast<int>(pid));
    return nullptr;
}

/// The continuous checks: new problems in the ledger, workers that
/// exited on their own, heartbeats. `restart`: replace workers that exited.
void supervisor::watch(bool restart) {
    print_new_problems();
    reap_exited(restart);
    check_heartbeats();
}

void supervisor::reap_exited(bool restart) {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        worker_slot* w = reaped(pid);
        if (w == nullptr) continue;
        if (expecting_exit(*w) && WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        fail(describe(*w) + " exited by itself (" + status_text(status) + ")");
        note_what_died_with(*w);
        if (restart) {
            ++record_.tally[w->structure].counts.restarts;
            start(*w);
        }
    }
}

/// Reports, once, each live worker whose heartbeat is older than its timeout plus the slack.
void supervisor::check_heartbeats() {
    const std::int64_t now = now_ns();
    const std::int64_t limit = (std::int64_t{cx_.opt.timeout_ms} + cx_.opt.slack_ms) * 1'000'000;
    for (worker_slot& w : workers_) {
        if (!w.alive) continue;
        const std::int64_t gap = now - record_of(w).heartbeat_ns.load();
        auto& longest = record_.tally[w.structure].counts.longest_heartbeat_gap_ns;
        longest = std::max(longest, gap);
        if (gap > limit && !w.reported_blocked) {
            w.reported_blocked = true;
            fail("BLOCKED: " + describe(w) + " has not returned from a call for " +
                 std::to_string(gap / 1'000'000) + " ms (timeout " + std::to_string(cx_.opt.timeout_ms) +
                 " ms + slack " + std::to_string(cx_.opt.slack_ms) + " ms)");
        }
    }
}

bool supervisor::expecting_exit(const worker_slot& w) const {
    return w.r == role::producer ? cx_.shared.book->stop_producers.load() != 0
                                 : cx_.shared.book->stop_consumers.load() != 0;
}

void supervisor::print_new_problems() {
    const std::uint32_t logged =
        std::min<std::uint32_t>(cx_.shared.book->problems_logged.load(), problem_lines);
    while (problems_printed_ < logged) {
        const char* line = cx_.shared.problem_line(problems_printed_);
        if (line == nullptr) break;  // claimed, not written yet: at the next look
        std::printf("%s\n", line);
        ++problems_printed_;
    }
    std::fflush(stdout);
}

/// Waits until `done()` or `deadline_ns`, watching meanwhile. Returns done().
template <class Done>
bool supervisor::wait_until(Done&& done, std::int64_t deadline_ns) {
    while (!done()) {
        if (now_ns() >= deadline_ns) return false;
        sleep_ns(2'000'000);
        watch(false);
    }
    return true;
}

/// Whether every worker has returned from a call since `since_ns`.
bool supervisor::all_running(std::int64_t since_ns) const {
    return std::all_of(workers_.begin(), workers_.end(), [&](const worker_slot& w) {
        return record_of(w).calls.load() > 0 && record_of(w).heartbeat_ns.load() > since_ns;
    });
}

// ---- killing and stopping -------------------------------------------------------------------------

/// SIGKILLs a random worker, reaps it, notes what it may have left in
/// doubt, and starts its replacement. Returns false (and kills nobody) when
/// the victim is the only worker attached at the moment.
bool supervisor::kill_one() {
    worker_slot* victim = draw_victim();
    if (victim == nullptr || !victim->alive) return true;  // it exited by itself; watch() restarts it
    if (!another_attached(*victim)) return false;
    kill_and_reap(*victim);
    structure_tally& t = record_.tally[victim->structure];
    note_what_died_with(*victim);
    ++(victim->r == role::producer ? t.counts.producer_kills : t.counts.consumer_kills);
    ++t.counts.restarts;
    start(*victim);
    return true;
}

/// The victim: structure, then role, then slot, each uniform.
supervisor::worker_slot* supervisor::draw_victim() {
    std::vector<unsigned> running;
    for (unsigned s = 0; s < structure_count; ++s)
        if (cx_.opt.run[s]) running.push_back(s);
    const unsigned s = running[rng_() % running.size()];
    const role r = rng_() % 2 == 0 ? role::producer : role::consumer;
    const std::uint32_t slots = r == role::producer ? cx_.producers_of[s] : cx_.consumers_of[s];
    const auto slot = static_cast<std::uint32_t>(rng_() % slots);
    worker_slot* victim = nullptr;
    for (worker_slot& w : workers_)
        if (w.structure == s && w.r == r && w.slot == slot) victim = &w;
    return victim;
}

/// Whether a worker other than `victim` is attached: with every attacher
/// dead, the segment is stale and the next opener starts afresh
/// (documented), dropping every element in it.
bool supervisor::another_attached(const worker_slot& victim) const {
    return std::any_of(workers_.begin(), workers_.end(), [&](const worker_slot& w) {
        return &w != &victim && w.alive && record_of(w).calls.load() > w.calls_at_start;
    });
}

/// Waits for `w`, already killed, to be gone.
void supervisor::reap(worker_slot& w) {
    int status = 0;
    while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
    reaped(w.pid);
}

void supervisor::kill_and_reap(worker_slot& w) {
    ::kill(w.pid, SIGKILL);
    reap(w);
}

/// Self-test: kills every worker, then restarts them all. The segment
/// has no live attacher in between, so the first replacement reclaims
/// it as stale (a notice) and the elements in it are gone: both must fail.
void supervisor::kill_everyone_at_once() {
    for (worker_slot& w : workers_) ::kill(w.pid, SIGKILL);
    for (worker_slot& w : workers_) {
        reap(w);
        note_what_died_with(w);
        structure_counts& counts = record_.tally[w.structure].counts;
        ++(w.r == role::producer ? counts.producer_kills : counts.consumer_kills);
    }
    for (worker_slot& w : workers_) {
        ++record_.tally[w.structure].counts.restarts;
        start(w);
    }
}

bool supervisor::all_exited(role r) const {
    return std::none_of(workers_.begin(), workers_.end(),
                        [&](const worker_slot& w) { return w.r == r && w.alive; });
}

/// Kills (and reaps) whoever of role `r` is still alive after its deadline.
void supervisor::kill_stragglers(role r) {
    for (worker_slot& w : workers_) {
        if (w.r != r || !w.alive) continue;
        fail(describe(w) + " did not exit when told to stop");
        kill_and_reap(w);
    }
}

/// Whether each live consumer has found its structure empty twice since the last producer left.
bool supervisor::drained() const {
    return std::none_of(workers_.begin(), workers_.end(), [&](const worker_slot& w) {
        return w.r == role::consumer && w.alive && record_of(w).empty_pops_draining.load() < 2;
    });
}

/// The end: producers stop; consumers drain until each has found its
/// structure empty twice after the last producer left (bounded); then
/// consumers stop. Everyone exits normally, so the last detach is a
/// normal one.
void supervisor::stop_everyone() {
    ledger& book = *cx_.shared.book;
    const std::int64_t grace =
        (std::int64_t{cx_.opt.timeout_ms} + cx_.opt.slack_ms) * 1'000'000 + 10'000'000'000;
    const std::int64_t stop_begin = now_ns();
    book.stop_producers.store(1);
    if (!wait_until([&] { return all_exited(role::producer); }, now_ns() + grace))
        kill_stragglers(role::producer);
    const std::int64_t producers_gone = now_ns();
    book.producers_gone_at_ns.store(producers_gone);
    if (!wait_until([&] { return drained(); }, now_ns() + grace + 60'000'000'000))
        fail("the consumers did not drain within the deadline");
    const std::int64_t drained_at = now_ns();
    book.stop_consumers.store(1);
    if (!wait_until([&] { return all_exited(role::consumer); }, now_ns() + grace))
        kill_stragglers(role::consumer);
    print_new_problems();
    std::printf("end: producers stopped in %.0f ms, consumers drained in %.0f ms and stopped in %.0f ms\n",
                static_cast<double>(producers_gone - stop_begin) / 1e6,
                static_cast<double>(drained_at - producers_gone) / 1e6,
                static_cast<double>(now_ns() - drained_at) / 1e6);
}

// ---- printing, and the end ------------------------------------------------------------------------

void supervisor::print_header() const {
    const options& o = cx_.opt;
    std::string which;
    for (unsigned s = 0; s < structure_count; ++s)
        if (o.run[s]) which += std::string(which.empty() ? "" : ",") + structure_names[s];
    std::printf(
        "shmds-soak: %s for %.0f s; %u producers x %u consumers (spsc: 1 x 1); kill every %.0f ms on "
        "average; timeout %u ms (+ slack %u ms); capacity %zu; segment %s; seed %llu\n",
        which.c_str(), o.seconds, o.producers, o.consumers, o.kill_every_ms, o.timeout_ms, o.slack_ms,
        o.capacity, o.segment.c_str(), ull(o.seed));
    std::fflush(stdout);
}

void supervisor::print_progress(std::int64_t elapsed_ns) const {
    std::printf("[%5.0f s]", static_cast<double>(elapsed_ns) / 1e9);
    for (unsigned s = 0; s < structure_count; ++s) {
        if (!cx_.opt.run[s]) continue;
        const structure_counts& t = record_.tally[s].counts;
        std::printf(" %s: %llu seen, %llu kills;", structure_names[s], ull(marked_total(s)),
                    ull(t.producer_kills + t.consumer_kills));
    }
    std::printf(" problems %zu\n", record_.reasons.size() + cx_.shared.book->problems_logged.load());
    std::fflush(stdout);
}

std::uint64_t supervisor::marked_total(unsigned s) const {
    std::uint64_t total = 0;
    for (const worker_record& rec : cx_.shared.book->structures[s].consumer) total += rec.marked.load();
    return total;
}

/// The verdict, as text and (with --json) as JSON; returns the exit status.
int supervisor::finish(double ran_s) {
    const soak_verdict v = judge(cx_, record_, ran_s);
    print_verdict(v);
    if (!cx_.opt.json_path.empty()) write_verdict_json(v, cx_.opt.json_path);
    return v.pass() ? 0 : 1;
}

}  // namespace soak
