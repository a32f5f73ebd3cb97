// shmds-soak: the kill-and-restart soak test of the process-safe structures
// (shm_spsc_queue, shm_mpmc_queue, shm_concurrent_stack).
//
// Why: the unit tests (impl/tests/test_concurrent_delivery.cpp, RandomKills.*) kill a
// few dozen processes inside one short test. This command runs producers and
// consumers for as long as asked, kills random ones with SIGKILL at random
// moments, starts replacements that re-attach by name like a real restarted
// service would, and checks what docs/guarantees.md promises: no element that a
// producer completed is lost (beyond one per killed consumer) or duplicated,
// each producer's order is kept by the queues, no call blocks longer than its
// timeout, and when the last process exits the segment's name is gone and no
// process is left behind.
//
// How:
//  - The supervisor (this process, supervisor.cpp) never attaches to the segment, so
//    "the name is gone when the last worker exits" is a real check of the
//    library's reference counting. Before forking it maps an anonymous
//    MAP_SHARED ledger that every worker and replacement inherits.
//  - Producer slot p of a structure pushes elements (p, k, checksum) with
//    k counting on across restarts: before a push it stores started[p] = k+1,
//    after it completed[p] = k+1; a replacement resumes at started[p], so k is
//    never reused and only element started-1 of a killed producer is "in
//    doubt" (it may be absent, never twice).
//  - Consumers set bit (p, k) of a bitmap in the ledger right after each pop;
//    a bit already set is a duplicate, reported at once. A FIFO queue's
//    consumer incarnation must see each producer's k increase (for SPSC,
//    which has one consumer at a time, across incarnations too). The stack
//    has no order to check.
//  - A consumer killed after its pop took an element and before it marked
//    it takes that element with it, whether the kill lands in the soak's
//    code (popped, not yet marked) or in the library's (after the pop's
//    commit, before it returns: waking a sleeping producer, the stack's
//    unlock). A consumer takes one element at a time, so at most one loss
//    per consumer kill is allowed; more is a failure. The report separates
//    the two windows: a consumer notes what it holds the moment a pop returns.
//  - Every call is a blocking call with a timeout (try_push_for /
//    try_pop_for), so workers sleep rather than spin; each updates its
//    heartbeat after every call, and the supervisor reports any live worker
//    whose heartbeat is older than the timeout plus a slack.
//  - The supervisor kills a random worker (structure, role and slot drawn
//    from a generator seeded by --seed) at exponentially distributed
//    intervals, reaps it, and forks a replacement for the same slot. Kills
//    start once every worker is running, so the segment and structures
//    exist (killing their creators is the unit tests' job: Faults.*), and
//    the only worker attached at a moment is never killed: with no live
//    attacher the segment is stale, and the next opener rightly starts
//    afresh, dropping every element in it (--self-test-orphan does that).
//  - SPSC has one consumer at a time, so its losses are checked exactly:
//    each must be the element right after the last one recorded by a
//    consumer killed inside a pop call, or one a consumer killed after its
//    call held unmarked.
//  - At the end producers stop, consumers drain, everyone exits normally,
//    and the ledger is scanned for every element's fate.
//
// Self-test: the --self-test-{duplicate,loss,lose-one,reorder,block,leak,orphan}
// flags (last in --help) make workers misbehave on purpose (mark an element
// twice, drop elements or one, mark two out of order, stop answering, leave a
// process holding the segment; the supervisor kills every worker at once),
// so that a test can check that each check can fail.
//
// The files, each owning one part (its opening comment says what, and what it
// must never do):
//   soak.cpp        this overview, and main
//   options.*       the command line and --help
//   ledger.*        the element, the ledger's layout, its problem log and bitmaps
//   context.hpp     what every process of a run shares
//   worker.*        what a producer and a consumer process do
//   supervisor.*    spawning, killing, restarting, watching and stopping the workers
//   verdict.*       the checks at the end, computed as data
//   report.*        the verdict as text and as JSON (json_writer.*: the JSON syntax)
//   self_test.sh    soak.detects_injected_faults: each --self-test-* flag must FAIL
#include "options.hpp"
#include "supervisor.hpp"

int main(int argc, char** argv) {
    const soak::options o = soak::parse_options(argc, argv);
    soak::stop_early_on_interrupt();
    soak::supervisor run(o);
    return run.run();
}
