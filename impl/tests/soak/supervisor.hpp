// impl/tests/soak/supervisor.hpp: the soak's supervisor, the process that
// forks the workers, kills random ones with SIGKILL and starts their
// replacements, watches them as they run, stops them in order at the end,
// and hands what it saw to the verdict.
//
// Owns: every process of the run (spawning, killing, reaping,
// restarting), the choice of victims and of each incarnation's style from
// the seeded generator, the continuous checks (problems the workers log,
// workers that exit by themselves, heartbeats older than timeout + slack),
// and the progress lines.
// Must never: attach to the segment or open a structure. It reads the
// ledger only, so that "the name is gone when the last worker exits" is a
// real check of the library's reference counting. Nor may it kill the only
// worker attached at a moment: with no live attacher the segment is stale,
// and the next opener rightly starts afresh, dropping every element in it
// (--self-test-orphan does that on purpose).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "context.hpp"
#include "verdict.hpp"
#include "worker.hpp"

namespace soak {

/// Makes SIGINT and SIGTERM stop the run early, in order, with a verdict.
void stop_early_on_interrupt();

class supervisor {
public:
    explicit supervisor(const options& o);

    /// Runs the whole soak; returns the process exit status (0 PASS, 1 FAIL, 2 could not run).
    int run();

private:
    /// One worker slot and its current incarnation.
    struct worker_slot {
        unsigned structure;
        role r;
        std::uint32_t slot;
        pid_t pid = 0;
        bool alive = false;
        std::uint64_t calls_at_start = 0;  ///< its record's call count when this incarnation was forked
        bool reported_blocked = false;
    };

    // Starting and watching.
    bool start_everyone();
    double run_for_the_time_asked();
    void start(worker_slot& w);
    worker_record& record_of(const worker_slot& w) const;
    std::string describe(const worker_slot& w) const;
    void fail(const std::string& reason);
    void note_what_died_with(const worker_slot& w);
    worker_slot* reaped(pid_t pid);
    void watch(bool restart);
    void reap_exited(bool restart);
    void check_heartbeats();
    bool expecting_exit(const worker_slot& w) const;
    void print_new_problems();
    template <class Done>
    bool wait_until(Done&& done, std::int64_t deadline_ns);
    bool all_running(std::int64_t since_ns) const;

    // Killing and stopping.
    bool kill_one();
    worker_slot* draw_victim();
    bool another_attached(const worker_slot& victim) const;
    void reap(worker_slot& w);
    void kill_and_reap(worker_slot& w);
    void kill_everyone_at_once();
    bool all_exited(role r) const;
    void kill_stragglers(role r);
    bool drained() const;
    void stop_everyone();

    // Printing, and the end.
    void print_header() const;
    void print_progress(std::int64_t elapsed_ns) const;
    std::uint64_t marked_total(unsigned s) const;
    int finish(double ran_s);

    context cx_;
    std::mt19937_64 rng_;
    std::vector<worker_slot> workers_;
    run_record record_;
    std::uint32_t problems_printed_ = 0;
};

}  // namespace soak
