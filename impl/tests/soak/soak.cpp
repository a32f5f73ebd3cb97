// shmds-soak: the kill-and-restart soak test of the process-safe structures
// (shm_spsc_queue, shm_mpmc_queue, shm_concurrent_stack).
//
// Why: the unit tests (impl/tests/test_concurrent.cpp, RandomKills.*) kill a
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
//  - The supervisor (this process's main) never attaches to the segment, so
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
//    each must be the element right after a killed consumer's last one.
//  - At the end producers stop, consumers drain, everyone exits normally,
//    and the ledger is scanned for every element's fate.
//
// Self-test: the --self-test-{duplicate,loss,reorder,block,leak,orphan}
// flags (last in --help) make workers misbehave on purpose (mark an element
// twice, drop elements, mark two out of order, stop answering, leave a
// process holding the segment; the supervisor kills every worker at once),
// so that a test can check that each check can fail.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <shmds/shmds.hpp>

namespace {

// ---- what flows through the structures --------------------------------------------------------

/// One element: which producer slot pushed it, its number in that slot's
/// stream, and a checksum of both (and of the structure), so that a torn or
/// foreign element is told from a real one.
struct soak_element {
    std::uint32_t slot;
    std::uint32_t check;
    std::uint64_t k;
};
static_assert(sizeof(soak_element) == 16, "the element is two words, copied whole by the structures");

constexpr std::size_t structure_count = 3;
enum structure_index : unsigned { spsc_index = 0, mpmc_index = 1, stack_index = 2 };
constexpr const char* structure_names[structure_count] = {"spsc", "mpmc", "stack"};
constexpr bool structure_is_fifo[structure_count] = {true, true, false};

constexpr std::uint32_t checksum_of(unsigned structure, std::uint32_t slot, std::uint64_t k) {
    // splitmix64 finaliser: every input bit affects every output bit.
    std::uint64_t x =
        k ^ (std::uint64_t{slot} << 40) ^ (std::uint64_t{structure} << 56) ^ 0x5eed5eed5eed5eedULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::uint32_t>((x ^ (x >> 31)) >> 32);
}

// ---- the ledger: anonymous shared memory, mapped before any fork ---------------------------------

/// Most producer (or consumer) slots per structure.
constexpr std::uint32_t max_slots = 16;
/// Elements one producer slot may push in a run: its bitmap is this many
/// bits (512 MiB of address space, reserved lazily: only the pages the run
/// reaches take memory, one byte per 8 elements).
constexpr std::uint64_t max_elements_per_slot = std::uint64_t{1} << 32;
constexpr std::size_t bitmap_words_per_slot = max_elements_per_slot / 64;

constexpr std::size_t problem_lines = 64;
constexpr std::size_t problem_length = 240;

/// One worker slot (a role and a slot number), across its incarnations.
/// On its own 128-byte pair, as is each producer stream: workers should
/// contend in the structures, not in the ledger.
struct alignas(128) worker_record {
    std::atomic<std::int64_t>
        heartbeat_ns;  ///< CLOCK_MONOTONIC after every call; set by the supervisor at fork
    std::atomic<std::int64_t> longest_call_ns;  ///< longest single blocking call, all incarnations
    std::atomic<std::uint64_t> calls;
    std::atomic<std::uint64_t> marked;      ///< consumer: distinct elements it marked
    std::atomic<std::uint64_t> late_calls;  ///< calls that returned more than 100 ms after their timeout
    std::atomic<std::uint32_t>
        empty_pops_draining;                  ///< consumer: empty pops begun after every producer exited
    std::atomic<std::uint32_t> role_retries;  ///< SPSC: role_taken answers before the role came back
    /// Consumer: the element it has popped and not yet marked (held_code), 0
    /// when none. Stored the moment the pop returns, so that when a kill
    /// loses an element the supervisor can tell the consumer's own window
    /// (popped, not yet marked: the soak's doing) from a loss inside the
    /// library's call (between its commit and its return).
    std::atomic<std::uint64_t> holding;
};

/// An element's identity in one word, never 0 (0: holding nothing).
constexpr std::uint64_t held_code(std::uint32_t slot, std::uint64_t k) {
    return ((k << 4) | slot) + 1;
}
static_assert(max_slots <= 16 && max_elements_per_slot <= (std::uint64_t{1} << 59),
              "held_code packs slot and k");

/// Producer slot p's stream of elements, across incarnations.
struct alignas(128) producer_stream {
    std::atomic<std::uint64_t> started;         ///< k+1 of the element it is pushing (or pushed)
    std::atomic<std::uint64_t> completed;       ///< k+1 of its last push that returned true
    std::atomic<std::uint64_t> spsc_last_seen;  ///< SPSC consumer: k+1 last seen from it, across incarnations
};

struct structure_ledger {
    producer_stream streams[max_slots];
    worker_record producer[max_slots];
    worker_record consumer[max_slots];
    std::atomic<std::uint64_t> duplicates;
    std::atomic<std::uint64_t> order_violations;
    std::atomic<std::uint64_t> corrupt;          ///< bad slot or checksum
    std::atomic<std::uint64_t> phantom;          ///< an element whose push had not even started
    std::atomic<std::uint64_t> lock_recoveries;  ///< stack: robust-mutex recoveries seen by its workers
    std::atomic<std::uint32_t> injected;         ///< self-test: the fault was injected (once per structure)
};

struct ledger {
    std::atomic<std::uint32_t> stop_producers;
    std::atomic<std::uint32_t> stop_consumers;
    std::atomic<std::int64_t> producers_gone_at_ns;  ///< 0 until every producer has exited
    std::atomic<std::uint32_t> problems_logged;
    /// Notices from the library (a stale segment reclaimed, ...). The
    /// supervisor keeps one worker attached at every moment, so there must be none.
    std::atomic<std::uint64_t> segment_notices;
    std::atomic<std::uint32_t> problem_ready[problem_lines];
    char problems[problem_lines][problem_length];
    structure_ledger structures[structure_count];
};

std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}

/// Maps `bytes` of zeroed memory that every process forked later shares.
/// MAP_NORESERVE: the bitmaps are mostly address space that is never touched.
void* map_shared(std::size_t bytes) {
    void* p =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "shmds-soak: cannot map %zu bytes of shared memory: %s\n", bytes,
                     std::strerror(errno));
        std::exit(2);
    }
    return p;
}

// ---- options -------------------------------------------------------------------------------------

enum class injected_fault { none, duplicate, loss, reorder, block, leak, orphan };

struct options {
    double seconds = 60;
    std::uint32_t producers = 2;
    std::uint32_t consumers = 2;
    bool run[structure_count] = {true, true, true};
    double kill_every_ms = 250;      ///< mean interval between kills; 0: none
    std::uint32_t timeout_ms = 200;  ///< of every try_push_for / try_pop_for
    /// How much later than its timeout a call may return before its worker
    /// counts as blocked. A call returns on time, but its process must then
    /// be scheduled to say so: on a shared 2-vCPU VM with a dozen or more
    /// runnable workers (and other jobs), a runnable process can wait
    /// hundreds of milliseconds for a CPU (calls of 200 ms took up to 710 ms
    /// here at a load average of 10), and a sanitizer build is slower
    /// still. A hang is still caught: a call that never returns exceeds any
    /// slack.
    std::uint32_t slack_ms = 3000;
    std::size_t capacity = 256;
    std::uint64_t seed = 0;
    std::string segment;
    double progress_every_s = 10;
    std::string json_path;
    injected_fault inject = injected_fault::none;
};

/// The help (why == nullptr: asked for, on stdout, exit 0) or a usage error (on stderr, exit 2).
[[noreturn]] void usage(const char* why) {
    if (why != nullptr) std::fprintf(stderr, "shmds-soak: %s\n\n", why);
    std::fputs(
        "usage: shmds-soak [OPTION...]\n"
        "Runs P producers and C consumers on each structure (SPSC: always 1 x 1) for S seconds,\n"
        "SIGKILLs a random worker every M ms on average (exponential intervals) and restarts it,\n"
        "then checks every element's fate. Exit status 0: PASS, 1: FAIL, 2: could not run.\n"
        "\n"
        "  --seconds S             how long to run (60)\n"
        "  --producers P           producers per structure, 1 to 16 (2)\n"
        "  --consumers C           consumers per structure, 1 to 16 (2)\n"
        "  --structures LIST       which of spsc,mpmc,stack to run (all three)\n"
        "  --kill-every-ms M       mean interval between kills; 0: no kills (250)\n"
        "  --timeout-ms T          timeout of every try_push_for / try_pop_for (200)\n"
        "  --slack-ms L            how much later than its timeout a call may return (3000)\n"
        "  --capacity N            capacity of each structure, 1 to 2^24 (256)\n"
        "  --seed X                fixes the victims, intervals and styles, not the timing\n"
        "                          (from the clock; printed)\n"
        "  --segment /NAME         the segment's name; refused if it exists (/shmds-soak-<pid>)\n"
        "  --progress-every-s S    a progress line every S seconds (10)\n"
        "  --json FILE             also write the results as JSON to FILE (none)\n"
        "  -h, --help              this text\n"
        "Self-tests, which make workers misbehave on purpose so that the verdict must be FAIL\n"
        "(soak.detects_injected_faults; off):\n"
        "  --self-test-duplicate   mark an element twice\n"
        "  --self-test-loss        drop elements\n"
        "  --self-test-reorder     mark two elements out of order\n"
        "  --self-test-block       stop answering\n"
        "  --self-test-leak        leave a process holding the segment\n"
        "  --self-test-orphan      the supervisor kills every worker at once\n",
        why != nullptr ? stderr : stdout);
    std::exit(why != nullptr ? 2 : 0);
}

options parse_options(int argc, char** argv) {
    options o;
    auto number = [&](int& i) -> double {
        if (i + 1 >= argc) usage((std::string(argv[i]) + " needs a value").c_str());
        char* end = nullptr;
        const double v = std::strtod(argv[++i], &end);
        if (end == argv[i] || *end != '\0' || v < 0) usage((std::string("not a number: ") + argv[i]).c_str());
        return v;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seconds")
            o.seconds = number(i);
        else if (a == "--producers")
            o.producers = static_cast<std::uint32_t>(number(i));
        else if (a == "--consumers")
            o.consumers = static_cast<std::uint32_t>(number(i));
        else if (a == "--kill-every-ms")
            o.kill_every_ms = number(i);
        else if (a == "--timeout-ms")
            o.timeout_ms = static_cast<std::uint32_t>(number(i));
        else if (a == "--slack-ms")
            o.slack_ms = static_cast<std::uint32_t>(number(i));
        else if (a == "--capacity")
            o.capacity = static_cast<std::size_t>(number(i));
        else if (a == "--seed") {
            // Exactly, as printed by an earlier run (a double would round it).
            if (i + 1 >= argc) usage("--seed needs a value");
            char* end = nullptr;
            o.seed = std::strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end != '\0') usage((std::string("not a seed: ") + argv[i]).c_str());
        } else if (a == "--progress-every-s")
            o.progress_every_s = number(i);
        else if (a == "--segment" || a == "--json" || a == "--structures") {
            if (i + 1 >= argc) usage((a + " needs a value").c_str());
            const std::string v = argv[++i];
            if (a == "--segment")
                o.segment = v;
            else if (a == "--json")
                o.json_path = v;
            else {
                std::fill(std::begin(o.run), std::end(o.run), false);
                std::size_t start = 0;
                while (start <= v.size()) {
                    const std::size_t comma = std::min(v.find(',', start), v.size());
                    const std::string name = v.substr(start, comma - start);
                    bool known = false;
                    for (unsigned s = 0; s < structure_count; ++s)
                        if (name == structure_names[s]) o.run[s] = known = true;
                    if (!known) usage(("unknown structure: " + name).c_str());
                    start = comma + 1;
                }
            }
        } else if (a == "--self-test-orphan")
            o.inject = injected_fault::orphan;
        else if (a == "--self-test-duplicate")
            o.inject = injected_fault::duplicate;
        else if (a == "--self-test-loss")
            o.inject = injected_fault::loss;
        else if (a == "--self-test-reorder")
            o.inject = injected_fault::reorder;
        else if (a == "--self-test-block")
            o.inject = injected_fault::block;
        else if (a == "--self-test-leak")
            o.inject = injected_fault::leak;
        else if (a == "--help" || a == "-h")
            usage(nullptr);
        else
            usage(("unknown option: " + a).c_str());
    }
    if (o.producers < 1 || o.producers > max_slots || o.consumers < 1 || o.consumers > max_slots)
        usage("--producers and --consumers must be 1 to 16");
    if (o.timeout_ms < 1) usage("--timeout-ms must be at least 1");
    if (o.capacity < 1 || o.capacity > (1u << 24)) usage("--capacity must be 1 to 2^24");
    if (o.seed == 0) o.seed = static_cast<std::uint64_t>(now_ns()) ^ static_cast<std::uint64_t>(::getpid());
    if (o.segment.empty()) o.segment = "/shmds-soak-" + std::to_string(::getpid());
    if (auto problem = shmds::segment_name_problem(o.segment))
        usage(("--segment " + o.segment + ": " + *problem).c_str());
    return o;
}

// ---- the workers ---------------------------------------------------------------------------------

enum class role { producer, consumer };

/// What every process shares: options, the ledger and the bitmaps
/// (inherited through fork, never changed after it).
struct context {
    options opt;
    ledger* book = nullptr;
    std::atomic<std::uint64_t>* bitmaps = nullptr;
    std::size_t segment_bytes = 0;
    std::uint32_t producers_of[structure_count] = {};
    std::uint32_t consumers_of[structure_count] = {};

    std::atomic<std::uint64_t>& bitmap_word(unsigned s, std::uint32_t slot, std::uint64_t k) const {
        return bitmaps[(std::size_t{s} * max_slots + slot) * bitmap_words_per_slot + k / 64];
    }
    /// Adds a line to the ledger's problem log, which the supervisor prints
    /// as soon as it sees it (the continuous check).
    [[gnu::format(printf, 2, 3)]] void problem(const char* format, ...) const {
        const std::uint32_t line = book->problems_logged.fetch_add(1);
        if (line >= problem_lines) return;  // counted; the counters hold the totals
        va_list args;
        va_start(args, format);
        std::vsnprintf(book->problems[line], problem_length, format, args);
        va_end(args);
        book->problem_ready[line].store(1, std::memory_order_release);
    }
};

/// The worker's context, for forward_notice (a plain function pointer).
const context* worker_context = nullptr;

/// segment_options::notice for workers: into the ledger's problem log.
void forward_notice(const std::string& message) {
    worker_context->book->segment_notices.fetch_add(1);
    worker_context->problem("NOTICE from the library (pid %d): %s", static_cast<int>(::getpid()),
                            message.c_str());
}

/// Attaches to the segment by name, creating it if it is not there.
shmds::posix_shm attach(const context& cx) {
    shmds::segment_options options;
    options.notice = forward_notice;
    return shmds::posix_shm(cx.opt.segment, cx.segment_bytes, options);
}

/// Runs `call` (one blocking call of the structure) and records it in
/// `me`: heartbeat after it returns, longest duration.
template <class Call>
auto timed_call(const context& cx, worker_record& me, Call&& call) {
    const std::int64_t start = now_ns();
    auto result = call();
    const std::int64_t end = now_ns();
    me.heartbeat_ns.store(end, std::memory_order_relaxed);
    me.calls.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t took = end - start;
    if (took > (std::int64_t{cx.opt.timeout_ms} + 100) * 1'000'000)
        me.late_calls.fetch_add(1, std::memory_order_relaxed);
    std::int64_t longest = me.longest_call_ns.load(std::memory_order_relaxed);
    while (took > longest && !me.longest_call_ns.compare_exchange_weak(longest, took)) {
    }
    return result;
}

/// Retries `call` while the SPSC role it needs is still held (role_taken):
/// the previous holder is dead and reaped by then, so this should not
/// happen; each retry is counted, and the heartbeat is not updated, so a role
/// that never comes back is reported as a blocked worker.
template <class Call>
auto with_role_retry(worker_record& me, std::atomic<std::uint32_t>& stop, Call&& call) -> decltype(call()) {
    for (;;) {
        try {
            return call();
        } catch (const shmds::role_error& e) {
            if (e.code() != shmds::errc::role_taken) throw;
            me.role_retries.fetch_add(1);
            if (stop.load() != 0) return {};
            sleep_ns(1'000'000);
        }
    }
}

/// How one incarnation of a worker behaves, drawn by the supervisor from
/// the seeded generator so that a run is varied and yet repeatable.
struct incarnation_style {
    /// Producer: sleeps 50 us every 16 elements, so the structure also
    /// spends time near empty (consumers then sleep) rather than always full.
    bool paced = false;
    /// Waits with wait_strategy::sleep instead of the default
    /// spin_then_sleep: handles with different strategies must work together.
    bool sleep_at_once = false;
};

template <class S>
S open_structure(const context& cx, shmds::posix_shm& seg, unsigned s, const incarnation_style& style) {
    shmds::wait_options wait;
    if (style.sleep_at_once) wait.strategy = shmds::wait_strategy::sleep;
    // Find or create by name, as a restarted service would.
    return S(seg, std::string("soak-") + structure_names[s], cx.opt.capacity, wait);
}

/// Producer slot `slot` of structure `s`: pushes its stream from where the
/// previous incarnation stopped until told to stop.
template <class S>
void produce(const context& cx, unsigned s, std::uint32_t slot, const incarnation_style& style) {
    shmds::posix_shm seg = attach(cx);
    S structure = open_structure<S>(cx, seg, s, style);
    structure_ledger& sl = cx.book->structures[s];
    worker_record& me = sl.producer[slot];
    const auto timeout = std::chrono::milliseconds(cx.opt.timeout_ms);
    std::uint64_t k = sl.streams[slot].started.load();
    std::uint64_t pushed_here = 0;
    while (cx.book->stop_producers.load() == 0) {
        if (k >= max_elements_per_slot) {  // the ledger is full for this slot: idle, still answering
            timed_call(cx, me, [&] {
                sleep_ns(cx.opt.timeout_ms * 1'000'000LL);
                return true;
            });
            continue;
        }
        sl.streams[slot].started.store(k + 1);
        const soak_element e{slot, checksum_of(s, slot, k), k};
        bool pushed = false;
        while (!pushed && cx.book->stop_producers.load() == 0)
            pushed = with_role_retry(me, cx.book->stop_producers, [&] {
                return timed_call(cx, me, [&] { return structure.try_push_for(e, timeout); });
            });
        if (!pushed) {
            sl.streams[slot].started.store(k);  // stopping, alive: k was never pushed, so it is not in doubt
            break;
        }
        sl.streams[slot].completed.store(k + 1);
        ++k;
        ++pushed_here;
        if (style.paced && pushed_here % 16 == 0) sleep_ns(50'000);
        if (cx.opt.inject == injected_fault::block && slot == 0 && pushed_here == 2000 &&
            sl.injected.exchange(1) == 0)
            sleep_ns((cx.opt.timeout_ms + cx.opt.slack_ms) * 1'500'000LL);  // silent: no heartbeat
    }
}

/// Checks element `e`, popped by a consumer of structure `s`, and marks it
/// in the bitmap, for consumer slot `consumer_slot`. `last_k`: this
/// incarnation's k+1 last seen per producer slot.
void record(const context& cx, unsigned s, std::uint32_t consumer_slot, const soak_element& e,
            std::uint64_t* last_k) {
    structure_ledger& sl = cx.book->structures[s];
    const char* name = structure_names[s];
    if (e.slot >= cx.producers_of[s] || e.check != checksum_of(s, e.slot, e.k)) {
        sl.corrupt.fetch_add(1);
        cx.problem("CORRUPT: %s: element {slot %u, k %llu, check %08x} fails its checksum (consumer pid %d)",
                   name, e.slot, static_cast<unsigned long long>(e.k), e.check, static_cast<int>(::getpid()));
        return;
    }
    if (e.k >= sl.streams[e.slot].started.load()) {
        sl.phantom.fetch_add(1);
        cx.problem("PHANTOM: %s: producer slot %u element %llu was popped before its push began", name,
                   e.slot, static_cast<unsigned long long>(e.k));
        return;
    }
    const std::uint64_t bit = std::uint64_t{1} << (e.k % 64);
    if ((cx.bitmap_word(s, e.slot, e.k).fetch_or(bit) & bit) != 0) {
        sl.duplicates.fetch_add(1);
        cx.problem("DUPLICATE: %s: producer slot %u element %llu delivered a second time (consumer pid %d)",
                   name, e.slot, static_cast<unsigned long long>(e.k), static_cast<int>(::getpid()));
    } else {
        cx.book->structures[s].consumer[consumer_slot].marked.fetch_add(1, std::memory_order_relaxed);
    }
    if (!structure_is_fifo[s]) return;
    // SPSC has one consumer at a time, so its order holds across consumer
    // incarnations; MPMC consumers each see an increasing subsequence.
    const std::uint64_t previous =
        s == spsc_index ? sl.streams[e.slot].spsc_last_seen.load() : last_k[e.slot];
    if (e.k + 1 <= previous) {
        sl.order_violations.fetch_add(1);
        cx.problem("ORDER: %s: producer slot %u element %llu popped after element %llu (consumer pid %d)",
                   name, e.slot, static_cast<unsigned long long>(e.k),
                   static_cast<unsigned long long>(previous - 1), static_cast<int>(::getpid()));
    }
    last_k[e.slot] = e.k + 1;
    if (s == spsc_index) sl.streams[e.slot].spsc_last_seen.store(e.k + 1);
}

/// Consumer slot `slot` of structure `s`: pops and records until told to stop.
template <class S>
void consume(const context& cx, unsigned s, std::uint32_t slot, const incarnation_style& style) {
    shmds::posix_shm seg = attach(cx);
    S structure = open_structure<S>(cx, seg, s, style);
    structure_ledger& sl = cx.book->structures[s];
    worker_record& me = sl.consumer[slot];
    const auto timeout = std::chrono::milliseconds(cx.opt.timeout_ms);
    std::uint64_t last_k[max_slots] = {};
    std::uint64_t popped_here = 0;
    std::uint64_t drop_next = 0;  // self-test: elements to leave unmarked
    std::optional<soak_element>
        held_back;  // self-test: an element to mark after the next one of its producer
    while (cx.book->stop_consumers.load() == 0) {
        // (holding keeps the last element after it is marked, until the next
        // pop returns: the supervisor then finds its bit set, nothing lost.)
        const std::int64_t call_start = now_ns();
        const std::optional<soak_element> v = with_role_retry(me, cx.book->stop_consumers, [&] {
            return timed_call(cx, me, [&] {
                std::optional<soak_element> popped = structure.try_pop_for(timeout);
                // At once: from here on, a kill's loss is the soak's doing, not the library's.
                if (popped) me.holding.store(held_code(popped->slot, popped->k), std::memory_order_relaxed);
                return popped;
            });
        });
        if constexpr (std::is_same_v<S, shmds::shm_concurrent_stack<soak_element>>)
            sl.lock_recoveries.store(structure.lock_recoveries(), std::memory_order_relaxed);
        if (!v) {
            me.holding.store(0);
            const std::int64_t gone_at = cx.book->producers_gone_at_ns.load();
            if (gone_at != 0 && call_start > gone_at) me.empty_pops_draining.fetch_add(1);
            continue;
        }
        ++popped_here;
        if (drop_next > 0) {
            --drop_next;
            continue;
        }
        if (held_back && held_back->slot == v->slot) {
            record(cx, s, slot, *v, last_k);
            record(cx, s, slot, *held_back, last_k);
            held_back.reset();
            continue;
        }
        if (cx.opt.inject != injected_fault::none && slot == 0 && popped_here == 2000) {
            switch (cx.opt.inject) {
                case injected_fault::duplicate:
                    if (sl.injected.exchange(1) == 0) record(cx, s, slot, *v, last_k);  // marked twice below
                    break;
                case injected_fault::loss:
                    if (sl.injected.exchange(1) == 0) {
                        drop_next = 500;
                        continue;
                    }
                    break;
                case injected_fault::reorder:
                    if (sl.injected.exchange(1) == 0) {
                        held_back = *v;
                        continue;
                    }
                    break;
                case injected_fault::leak:
                    if (s == mpmc_index && sl.injected.exchange(1) == 0 && ::fork() == 0) {
                        // A process that keeps the segment attached (its copy of
                        // the posix_shm holds its own lock) and outlives us.
                        ::prctl(PR_SET_PDEATHSIG, 0);
                        for (;;) ::pause();
                    }
                    break;
                default:
                    break;
            }
        }
        record(cx, s, slot, *v, last_k);
    }
}

/// A worker process's whole life; never returns.
[[noreturn]] void worker_main(const context& cx, unsigned s, role r, std::uint32_t slot,
                              const incarnation_style& style) {
    // Die with the supervisor, and leave Ctrl-C to it: it stops everyone in order.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    worker_context = &cx;
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_DFL);
    int status = 0;
    try {
        using spsc = shmds::shm_spsc_queue<soak_element>;
        using mpmc = shmds::shm_mpmc_queue<soak_element>;
        using stack = shmds::shm_concurrent_stack<soak_element>;
        if (r == role::producer) {
            if (s == spsc_index)
                produce<spsc>(cx, s, slot, style);
            else if (s == mpmc_index)
                produce<mpmc>(cx, s, slot, style);
            else
                produce<stack>(cx, s, slot, style);
        } else {
            if (s == spsc_index)
                consume<spsc>(cx, s, slot, style);
            else if (s == mpmc_index)
                consume<mpmc>(cx, s, slot, style);
            else
                consume<stack>(cx, s, slot, style);
        }
    } catch (const std::exception& e) {
        cx.problem("ERROR: %s %s %u (pid %d): %s", structure_names[s],
                   r == role::producer ? "producer" : "consumer", slot, static_cast<int>(::getpid()),
                   e.what());
        status = 3;
    }
    std::fflush(nullptr);
    ::_exit(status);
}

// ---- the supervisor ------------------------------------------------------------------------------

volatile std::sig_atomic_t interrupted = 0;

/// One worker slot and its current incarnation.
struct worker {
    unsigned structure;
    role r;
    std::uint32_t slot;
    pid_t pid = 0;
    bool alive = false;
    std::uint64_t calls_at_start = 0;  ///< its record's call count when this incarnation was forked
    bool reported_blocked = false;
};

struct structure_tally {
    std::uint64_t producer_kills = 0;
    std::uint64_t consumer_kills = 0;
    std::uint64_t restarts = 0;
    std::uint64_t paced_incarnations = 0;
    std::uint64_t sleeping_incarnations = 0;  ///< wait_strategy::sleep instead of spin_then_sleep
    std::int64_t longest_heartbeat_gap_ns = 0;
    std::map<std::uint32_t, std::set<std::uint64_t>> in_doubt;  ///< per producer slot: k of elements in doubt
    /// Per producer slot: k of elements a killed consumer had popped and not marked.
    std::map<std::uint32_t, std::set<std::uint64_t>> popped_unmarked;
    /// SPSC: at each consumer death, k+1 of the last element the consumer
    /// side had marked. The only element that death can have lost is the
    /// next one the producer published, so every SPSC loss must sit there.
    std::vector<std::uint64_t> spsc_consumer_deaths;
};

class supervisor {
public:
    explicit supervisor(const options& o) : rng_(o.seed) {
        cx_.opt = o;
        for (unsigned s = 0; s < structure_count; ++s) {
            cx_.producers_of[s] = s == spsc_index ? 1 : o.producers;
            cx_.consumers_of[s] = s == spsc_index ? 1 : o.consumers;
        }
        // Room for three structures of slots up to a few cache lines each.
        cx_.segment_bytes = (std::size_t{1} << 20) + structure_count * o.capacity * 256;
        cx_.book = new (map_shared(sizeof(ledger))) ledger();
        cx_.bitmaps = static_cast<std::atomic<std::uint64_t>*>(
            map_shared(structure_count * max_slots * bitmap_words_per_slot * sizeof(std::uint64_t)));
    }

    /// Runs the whole soak; returns the process exit status.
    int run() {
        const options& o = cx_.opt;
        if (segment_name_exists()) {
            std::fprintf(stderr, "shmds-soak: segment %s already exists; remove it first (rm /dev/shm%s)\n",
                         o.segment.c_str(), o.segment.c_str());
            return 2;
        }
        // Orphaned grandchildren become ours, so "no process left behind" sees them too.
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
        print_header();
        for (unsigned s = 0; s < structure_count; ++s) {
            if (!o.run[s]) continue;
            for (std::uint32_t p = 0; p < cx_.producers_of[s]; ++p)
                workers_.push_back({s, role::producer, p});
            for (std::uint32_t c = 0; c < cx_.consumers_of[s]; ++c)
                workers_.push_back({s, role::consumer, c});
        }
        const std::int64_t launch = now_ns();
        for (worker& w : workers_) start(w);
        // Kills start once every worker has returned from a call: a creator
        // killed while initialising the segment holds up the others for the
        // segment's timeout (5 s, documented), which would read as "blocked".
        if (!wait_until([&] { return all_running(launch); }, launch + 60'000'000'000LL)) {
            fail("the workers did not all start within 60 s");
            stop_everyone();
            return verdict(0);
        }
        std::printf("started %zu workers in %.0f ms\n", workers_.size(),
                    static_cast<double>(now_ns() - launch) / 1e6);

        bool orphaned = false;  // self-test
        const std::int64_t begin = now_ns();
        const std::int64_t end = begin + static_cast<std::int64_t>(o.seconds * 1e9);
        std::exponential_distribution<double> interval(o.kill_every_ms > 0 ? 1.0 / (o.kill_every_ms * 1e6)
                                                                           : 1.0);
        std::int64_t next_kill = begin + static_cast<std::int64_t>(interval(rng_));
        std::int64_t next_progress = begin + static_cast<std::int64_t>(o.progress_every_s * 1e9);
        // (A run that keeps failing stops early: its first failures say why.)
        while (now_ns() < end && interrupted == 0 && reasons_.size() < 50) {
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
                    ++postponed_kills_;  // tried again at the next tick
            }
            if (o.progress_every_s > 0 && now_ns() >= next_progress) {
                print_progress(now_ns() - begin);
                next_progress += static_cast<std::int64_t>(o.progress_every_s * 1e9);
            }
        }
        if (interrupted != 0) std::printf("interrupted: stopping early, in order\n");
        const double ran_s = static_cast<double>(now_ns() - begin) / 1e9;
        stop_everyone();
        return verdict(ran_s);
    }

private:
    bool segment_name_exists() const {
        struct stat st {};
        return ::stat(("/dev/shm" + cx_.opt.segment).c_str(), &st) == 0;
    }

    worker_record& record_of(const worker& w) {
        structure_ledger& sl = cx_.book->structures[w.structure];
        return w.r == role::producer ? sl.producer[w.slot] : sl.consumer[w.slot];
    }

    std::string describe(const worker& w) const {
        return std::string(structure_names[w.structure]) +
               (w.r == role::producer ? " producer " : " consumer ") + std::to_string(w.slot) + " (pid " +
               std::to_string(w.pid) + ")";
    }

    void fail(const std::string& reason) {
        std::printf("FAIL: %s\n", reason.c_str());
        std::fflush(stdout);
        reasons_.push_back(reason);
    }

    /// Forks a new incarnation of `w`.
    void start(worker& w) {
        incarnation_style style;
        style.paced = w.r == role::producer && rng_() % 2 == 0;
        style.sleep_at_once = rng_() % 4 == 0;
        tally_[w.structure].paced_incarnations += style.paced;
        tally_[w.structure].sleeping_incarnations += style.sleep_at_once;
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
        started_pids_.push_back(pid);
    }

    /// Notes what a worker that just died took with it. A producer: the
    /// element it had started and not completed, now in doubt (its
    /// replacement starts after it). A consumer: the element it had popped
    /// and not marked, if any, now lost by the soak's own window.
    void note_what_died_with(const worker& w) {
        const structure_ledger& sl = cx_.book->structures[w.structure];
        structure_tally& t = tally_[w.structure];
        if (w.r == role::producer) {
            const std::uint64_t started = sl.streams[w.slot].started.load();
            if (started > sl.streams[w.slot].completed.load()) t.in_doubt[w.slot].insert(started - 1);
            return;
        }
        if (w.structure == spsc_index) t.spsc_consumer_deaths.push_back(sl.streams[0].spsc_last_seen.load());
        const std::uint64_t code = record_of(w).holding.exchange(0);
        if (code == 0) return;
        const auto slot = static_cast<std::uint32_t>((code - 1) & 15);
        const std::uint64_t k = (code - 1) >> 4;
        if (slot < cx_.producers_of[w.structure] &&
            (cx_.bitmap_word(w.structure, slot, k).load() >> (k % 64) & 1) == 0)
            t.popped_unmarked[slot].insert(k);
    }

    /// Records the reaping of `pid` with `status`; returns its worker, if any.
    worker* reaped(pid_t pid, int status) {
        reaped_pids_.insert(pid);
        for (worker& w : workers_) {
            if (w.pid == pid && w.alive) {
                w.alive = false;
                last_status_[pid] = status;
                return &w;
            }
        }
        std::printf("note: process %d (not a worker: left behind by one) exited\n", static_cast<int>(pid));
        return nullptr;
    }

    /// The continuous checks: new problems in the ledger, workers that
    /// exited on their own, heartbeats. `restart`: replace workers that exited.
    void watch(bool restart) {
        print_new_problems();
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            worker* w = reaped(pid, status);
            if (w == nullptr) continue;
            if (expecting_exit(*w) && WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
            fail(describe(*w) + " exited by itself (" + status_text(status) + ")");
            note_what_died_with(*w);
            if (restart) {
                ++tally_[w->structure].restarts;
                start(*w);
            }
        }
        const std::int64_t now = now_ns();
        const std::int64_t limit = (std::int64_t{cx_.opt.timeout_ms} + cx_.opt.slack_ms) * 1'000'000;
        for (worker& w : workers_) {
            if (!w.alive) continue;
            const std::int64_t gap = now - record_of(w).heartbeat_ns.load();
            auto& longest = tally_[w.structure].longest_heartbeat_gap_ns;
            longest = std::max(longest, gap);
            if (gap > limit && !w.reported_blocked) {
                w.reported_blocked = true;
                fail("BLOCKED: " + describe(w) + " has not returned from a call for " +
                     std::to_string(gap / 1'000'000) + " ms (timeout " + std::to_string(cx_.opt.timeout_ms) +
                     " ms + slack " + std::to_string(cx_.opt.slack_ms) + " ms)");
            }
        }
    }

    bool expecting_exit(const worker& w) const {
        return w.r == role::producer ? cx_.book->stop_producers.load() != 0
                                     : cx_.book->stop_consumers.load() != 0;
    }

    static std::string status_text(int status) {
        if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
        if (WIFSIGNALED(status)) return std::string("signal ") + strsignal(WTERMSIG(status));
        return "status " + std::to_string(status);
    }

    void print_new_problems() {
        const std::uint32_t logged = std::min<std::uint32_t>(cx_.book->problems_logged.load(), problem_lines);
        while (problems_printed_ < logged &&
               cx_.book->problem_ready[problems_printed_].load(std::memory_order_acquire)) {
            std::printf("%s\n", cx_.book->problems[problems_printed_]);
            ++problems_printed_;
        }
        std::fflush(stdout);
    }

    /// SIGKILLs a random worker (structure, then role, then slot, each
    /// uniform), reaps it, notes what it may have left in doubt, and starts
    /// its replacement. Returns false (and kills nobody) when the victim is
    /// the only worker attached at the moment.
    bool kill_one() {
        std::vector<unsigned> running;
        for (unsigned s = 0; s < structure_count; ++s)
            if (cx_.opt.run[s]) running.push_back(s);
        const unsigned s = running[rng_() % running.size()];
        const role r = rng_() % 2 == 0 ? role::producer : role::consumer;
        const std::uint32_t slots = r == role::producer ? cx_.producers_of[s] : cx_.consumers_of[s];
        const auto slot = static_cast<std::uint32_t>(rng_() % slots);
        worker* victim = nullptr;
        for (worker& w : workers_)
            if (w.structure == s && w.r == r && w.slot == slot) victim = &w;
        if (victim == nullptr || !victim->alive) return true;  // it exited by itself; watch() restarts it
        // Someone else must stay attached: with every attacher dead, the
        // segment is stale and the next opener starts afresh (documented),
        // dropping every element in it.
        const bool another_attached = std::any_of(workers_.begin(), workers_.end(), [&](const worker& w) {
            return &w != victim && w.alive && record_of(w).calls.load() > w.calls_at_start;
        });
        if (!another_attached) return false;
        ::kill(victim->pid, SIGKILL);
        int status = 0;
        while (::waitpid(victim->pid, &status, 0) < 0 && errno == EINTR) {
        }
        reaped(victim->pid, status);
        structure_tally& t = tally_[s];
        note_what_died_with(*victim);
        ++(r == role::producer ? t.producer_kills : t.consumer_kills);
        ++t.restarts;
        start(*victim);
        return true;
    }

    /// Self-test: kills every worker, then restarts them all. The segment
    /// has no live attacher in between, so the first replacement reclaims
    /// it as stale (a notice) and the elements in it are gone: both must fail.
    void kill_everyone_at_once() {
        for (worker& w : workers_) ::kill(w.pid, SIGKILL);
        for (worker& w : workers_) {
            int status = 0;
            while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
            }
            reaped(w.pid, status);
            note_what_died_with(w);
            ++(w.r == role::producer ? tally_[w.structure].producer_kills
                                     : tally_[w.structure].consumer_kills);
        }
        for (worker& w : workers_) {
            ++tally_[w.structure].restarts;
            start(w);
        }
    }

    /// Waits until `done()` or `deadline_ns`, watching meanwhile. Returns done().
    template <class Done>
    bool wait_until(Done&& done, std::int64_t deadline_ns) {
        while (!done()) {
            if (now_ns() >= deadline_ns) return false;
            sleep_ns(2'000'000);
            watch(false);
        }
        return true;
    }

    /// Whether every worker has returned from a call since `since_ns`.
    bool all_running(std::int64_t since_ns) {
        return std::all_of(workers_.begin(), workers_.end(), [&](const worker& w) {
            return record_of(w).calls.load() > 0 && record_of(w).heartbeat_ns.load() > since_ns;
        });
    }

    bool all_exited(role r) const {
        return std::none_of(workers_.begin(), workers_.end(),
                            [&](const worker& w) { return w.r == r && w.alive; });
    }

    /// Kills (and reaps) whoever of role `r` is still alive after its deadline.
    void kill_stragglers(role r) {
        for (worker& w : workers_) {
            if (w.r != r || !w.alive) continue;
            fail(describe(w) + " did not exit when told to stop");
            ::kill(w.pid, SIGKILL);
            int status = 0;
            while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
            }
            reaped(w.pid, status);
        }
    }

    /// The end: producers stop; consumers drain until each has found its
    /// structure empty twice after the last producer left (bounded); then
    /// consumers stop. Everyone exits normally, so the last detach is a
    /// normal one.
    void stop_everyone() {
        const std::int64_t grace =
            (std::int64_t{cx_.opt.timeout_ms} + cx_.opt.slack_ms) * 1'000'000 + 10'000'000'000;
        const std::int64_t stop_begin = now_ns();
        cx_.book->stop_producers.store(1);
        if (!wait_until([&] { return all_exited(role::producer); }, now_ns() + grace))
            kill_stragglers(role::producer);
        const std::int64_t producers_gone = now_ns();
        cx_.book->producers_gone_at_ns.store(producers_gone);
        auto drained = [&] {
            for (const worker& w : workers_)
                if (w.r == role::consumer && w.alive && record_of(w).empty_pops_draining.load() < 2)
                    return false;
            return true;
        };
        if (!wait_until(drained, now_ns() + grace + 60'000'000'000))
            fail("the consumers did not drain within the deadline");
        const std::int64_t drained_at = now_ns();
        cx_.book->stop_consumers.store(1);
        if (!wait_until([&] { return all_exited(role::consumer); }, now_ns() + grace))
            kill_stragglers(role::consumer);
        print_new_problems();
        std::printf(
            "end: producers stopped in %.0f ms, consumers drained in %.0f ms and stopped in %.0f ms\n",
            static_cast<double>(producers_gone - stop_begin) / 1e6,
            static_cast<double>(drained_at - producers_gone) / 1e6,
            static_cast<double>(now_ns() - drained_at) / 1e6);
    }

    /// Per-structure figures from the final scan of the ledger.
    struct structure_result {
        std::uint64_t completed = 0;         ///< completed pushes (in-doubt elements excluded)
        std::uint64_t seen_once = 0;         ///< of those, seen exactly once
        std::uint64_t lost = 0;              ///< of those, never seen
        std::uint64_t lost_unmarked = 0;     ///< of those, popped by a consumer killed before it marked them
        std::uint64_t lost_unexplained = 0;  ///< SPSC: of those, not the element after a dead consumer's last
        std::uint64_t in_doubt = 0;
        std::uint64_t in_doubt_seen = 0;
        std::uint64_t beyond_started = 0;  ///< bits set for elements never started (phantoms)
    };

    /// Counts every element's fate from the bitmaps: a word at a time for
    /// the completed range (one pass over about 1/8 byte per element), and
    /// one by one only in the rare words with a missing element.
    structure_result scan(unsigned s) {
        structure_result r;
        const structure_ledger& sl = cx_.book->structures[s];
        const structure_tally& t = tally_[s];
        for (std::uint32_t p = 0; p < cx_.producers_of[s]; ++p) {
            const std::uint64_t completed = sl.streams[p].completed.load();
            const std::uint64_t started = sl.streams[p].started.load();
            std::set<std::uint64_t> doubt;
            if (auto it = t.in_doubt.find(p); it != t.in_doubt.end()) doubt = it->second;
            if (started > completed) doubt.insert(started - 1);  // (only if a producer was stopped by force)
            const std::set<std::uint64_t> no_elements;
            auto unmarked_it = t.popped_unmarked.find(p);
            const std::set<std::uint64_t>& unmarked =
                unmarked_it != t.popped_unmarked.end() ? unmarked_it->second : no_elements;
            auto has = [&](std::uint64_t k) {
                return (cx_.bitmap_word(s, p, k).load() >> (k % 64) & 1) != 0;
            };
            // SPSC: the elements consumer deaths can explain (see spsc_consumer_deaths);
            // in-doubt elements that never arrived were never published: skip them.
            std::set<std::uint64_t> explained;
            if (s == spsc_index) {
                for (std::uint64_t k : t.spsc_consumer_deaths) {
                    while (k < completed && doubt.count(k) != 0 && !has(k)) ++k;
                    explained.insert(k);
                }
            }
            for (std::uint64_t k : doubt) {
                ++r.in_doubt;
                if (has(k)) ++r.in_doubt_seen;
            }
            for (std::uint64_t w = 0; w * 64 < completed; ++w) {
                const std::uint64_t bits = cx_.bitmap_word(s, p, w * 64).load();
                const std::uint64_t in_range = completed - w * 64 >= 64 ? 64 : completed - w * 64;
                const std::uint64_t all =
                    in_range == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << in_range) - 1;
                if ((bits & all) == all) continue;
                for (std::uint64_t k = w * 64; k < w * 64 + in_range; ++k) {
                    if (has(k) || doubt.count(k) != 0) continue;
                    ++r.lost;
                    if (unmarked.count(k) != 0) ++r.lost_unmarked;
                    if (s == spsc_index && explained.count(k) == 0) ++r.lost_unexplained;
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
        r.seen_once = r.completed - r.lost;
        return r;
    }

    /// Processes we are still the parent of (workers or, through the
    /// subreaper, their orphaned children).
    static std::vector<pid_t> children_left() {
        std::vector<pid_t> left;
        std::ifstream children("/proc/self/task/" + std::to_string(::getpid()) + "/children");
        pid_t pid;
        while (children >> pid) left.push_back(pid);
        return left;
    }

    int verdict(double ran_s) {
        const options& o = cx_.opt;
        // Processes: every one we started has been reaped, and nothing else is ours.
        std::vector<pid_t> left = children_left();
        if (left.empty() && ::waitpid(-1, nullptr, WNOHANG) == 0)
            fail("children remain, pids unknown (no /proc children list)");
        if (!left.empty()) {
            std::string pids;
            for (pid_t pid : left) pids += " " + std::to_string(pid);
            fail("processes left behind after every worker exited:" + pids + " (killed now)");
            for (pid_t pid : left) ::kill(pid, SIGKILL);
            for (pid_t pid : left) ::waitpid(pid, nullptr, 0);
        }
        std::uint64_t unreaped = 0;
        std::uint64_t still_running = 0;
        for (pid_t pid : started_pids_) {
            if (reaped_pids_.count(pid) == 0) ++unreaped;
            // A reaped pid may have been reused by an unrelated process: only ours count.
            if (::kill(pid, 0) == 0 && std::find(left.begin(), left.end(), pid) != left.end())
                ++still_running;
        }
        if (cx_.book->segment_notices.load() != 0)
            fail(std::to_string(cx_.book->segment_notices.load()) +
                 " notices from the library (a stale segment reclaimed?) while a worker was attached");
        if (unreaped != 0) fail(std::to_string(unreaped) + " started workers were never reaped");
        if (still_running != 0)
            fail(std::to_string(still_running) + " started workers still running at the end");
        // The segment's name went with the last worker's detach.
        const bool name_left = segment_name_exists();
        if (name_left) {
            fail("the segment's name " + o.segment +
                 " is still in /dev/shm after the last worker exited (removed now)");
            ::shm_unlink(o.segment.c_str());
        }

        std::uint64_t total_kills = 0;
        std::uint64_t total_restarts = 0;
        std::uint64_t total_checked = 0;
        std::string json = "{\n  \"seed\": " + std::to_string(o.seed) +
                           ",\n  \"seconds\": " + std::to_string(ran_s) + ",\n  \"structures\": {";
        bool first_json = true;
        for (unsigned s = 0; s < structure_count; ++s) {
            if (!o.run[s]) continue;
            const structure_ledger& sl = cx_.book->structures[s];
            const structure_tally& t = tally_[s];
            const structure_result r = scan(s);
            std::int64_t longest_call = 0;
            std::uint64_t role_retries = 0;
            std::uint64_t calls = 0;
            std::uint64_t late_calls = 0;
            for (std::uint32_t i = 0; i < max_slots; ++i) {
                for (const worker_record* rec : {&sl.producer[i], &sl.consumer[i]}) {
                    longest_call = std::max(longest_call, rec->longest_call_ns.load());
                    role_retries += rec->role_retries.load();
                    calls += rec->calls.load();
                    late_calls += rec->late_calls.load();
                }
            }
            const std::uint64_t allowance = t.consumer_kills;
            const char* name = structure_names[s];
            std::printf("%s: %u producer%s x %u consumer%s, capacity %zu\n", name, cx_.producers_of[s],
                        cx_.producers_of[s] == 1 ? "" : "s", cx_.consumers_of[s],
                        cx_.consumers_of[s] == 1 ? "" : "s", o.capacity);
            std::printf(
                "  kills: %llu producers, %llu consumers; restarts: %llu; incarnations paced %llu, "
                "sleeping at once %llu%s\n",
                ull(t.producer_kills), ull(t.consumer_kills), ull(t.restarts), ull(t.paced_incarnations),
                ull(t.sleeping_incarnations),
                s == spsc_index ? ("; role retries " + std::to_string(role_retries)).c_str() : "");
            std::printf(
                "  elements: %llu completed, %llu seen exactly once, %llu lost (allowed: %llu, one per "
                "consumer kill): %llu taken by a killed consumer before it marked them, %llu otherwise (in a "
                "pop cut short by a kill, or by the structure)\n",
                ull(r.completed), ull(r.seen_once), ull(r.lost), ull(allowance), ull(r.lost_unmarked),
                ull(r.lost - r.lost_unmarked));
            if (s == spsc_index)
                std::printf(
                    "  losses not at a consumer death (the element after the dead consumer's last): %llu\n",
                    ull(r.lost_unexplained));
            std::printf(
                "  in doubt (push cut short by a kill): %llu, of which %llu delivered once and %llu absent\n",
                ull(r.in_doubt), ull(r.in_doubt_seen), ull(r.in_doubt - r.in_doubt_seen));
            std::printf("  duplicates %llu, order violations %llu%s, corrupt %llu, phantom %llu\n",
                        ull(sl.duplicates.load()), ull(sl.order_violations.load()),
                        structure_is_fifo[s]
                            ? (s == spsc_index ? " (per producer, across consumer incarnations)"
                                               : " (per producer, per consumer incarnation)")
                            : " (a stack has no order to check)",
                        ull(sl.corrupt.load()), ull(sl.phantom.load() + r.beyond_started));
            std::printf(
                "  calls %llu (%llu returned over 100 ms late), longest call %.1f ms, longest heartbeat gap "
                "seen %.1f ms (timeout %u ms)%s\n",
                ull(calls), ull(late_calls), static_cast<double>(longest_call) / 1e6,
                static_cast<double>(t.longest_heartbeat_gap_ns) / 1e6, o.timeout_ms,
                s == stack_index ? (", lock recoveries " + std::to_string(sl.lock_recoveries.load())).c_str()
                                 : "");
            const std::string prefix = std::string(name) + ": ";
            if (r.lost_unexplained != 0)
                fail(
                    prefix + std::to_string(r.lost_unexplained) +
                    " lost elements are not the one after a killed consumer's last (SPSC has one consumer: a "
                    "consumer kill can lose only that one)");
            if (r.lost > allowance)
                fail(prefix + std::to_string(r.lost) + " completed elements lost, more than the " +
                     std::to_string(allowance) + " consumer kills allow");
            if (sl.duplicates.load() != 0)
                fail(prefix + std::to_string(sl.duplicates.load()) + " duplicates");
            if (sl.order_violations.load() != 0)
                fail(prefix + std::to_string(sl.order_violations.load()) + " order violations");
            if (sl.corrupt.load() != 0)
                fail(prefix + std::to_string(sl.corrupt.load()) + " corrupt elements");
            if (sl.phantom.load() + r.beyond_started != 0)
                fail(prefix + "elements popped that were never pushed");
            const std::int64_t limit = (std::int64_t{o.timeout_ms} + o.slack_ms) * 1'000'000;
            if (longest_call > limit)
                fail(prefix + "a call took " + std::to_string(longest_call / 1'000'000) +
                     " ms, beyond timeout + slack");
            if (r.completed == 0) fail(prefix + "no element was completed: nothing was checked");
            total_kills += t.producer_kills + t.consumer_kills;
            total_restarts += t.restarts;
            total_checked += r.completed + r.in_doubt;
            json += std::string(first_json ? "" : ",") + "\n    \"" + name +
                    "\": {\"producer_kills\": " + std::to_string(t.producer_kills) +
                    ", \"consumer_kills\": " + std::to_string(t.consumer_kills) +
                    ", \"restarts\": " + std::to_string(t.restarts) +
                    ", \"completed\": " + std::to_string(r.completed) +
                    ", \"seen_once\": " + std::to_string(r.seen_once) +
                    ", \"lost\": " + std::to_string(r.lost) +
                    ", \"lost_popped_unmarked\": " + std::to_string(r.lost_unmarked) +
                    ", \"loss_allowance\": " + std::to_string(allowance) +
                    ", \"in_doubt\": " + std::to_string(r.in_doubt) +
                    ", \"in_doubt_delivered\": " + std::to_string(r.in_doubt_seen) +
                    ", \"duplicates\": " + std::to_string(sl.duplicates.load()) +
                    ", \"order_violations\": " + std::to_string(sl.order_violations.load()) +
                    ", \"corrupt\": " + std::to_string(sl.corrupt.load()) +
                    ", \"longest_call_ms\": " + std::to_string(static_cast<double>(longest_call) / 1e6) + "}";
            first_json = false;
        }
        const std::uint32_t problems = cx_.book->problems_logged.load();
        if (problems > problem_lines)
            std::printf("(%u problem lines logged by workers; the first %zu shown)\n", problems,
                        problem_lines);
        std::printf("processes: %zu started, %zu reaped, %zu left behind; segment name %s: %s\n",
                    started_pids_.size(), reaped_pids_.size(), left.size(), o.segment.c_str(),
                    name_left ? "STILL THERE" : "gone");
        std::printf(
            "total: %.1f s, %llu kills (%llu postponed a moment: the victim was the only worker "
            "attached), %llu restarts, %llu elements checked, %llu library notices, seed %llu\n",
            ran_s, ull(total_kills), ull(postponed_kills_), ull(total_restarts), ull(total_checked),
            ull(cx_.book->segment_notices.load()), ull(o.seed));
        if (o.inject != injected_fault::none) std::printf("(self-test: a fault was injected on purpose)\n");
        std::string verdict_line = "VERDICT: PASS";
        if (!reasons_.empty()) {
            verdict_line = "VERDICT: FAIL (";
            for (std::size_t i = 0; i < reasons_.size(); ++i) verdict_line += (i ? "; " : "") + reasons_[i];
            verdict_line += ")";
        }
        std::printf("%s\n", verdict_line.c_str());
        if (!o.json_path.empty()) {
            std::string reasons_json;
            for (const std::string& reason : reasons_) {
                std::string escaped;
                for (char c : reason) {
                    if (c == '"' || c == '\\') escaped += '\\';
                    escaped += c;
                }
                reasons_json += std::string(reasons_json.empty() ? "" : ", ") + "\"" + escaped + "\"";
            }
            json += "\n  },\n  \"kills\": " + std::to_string(total_kills) +
                    ",\n  \"elements_checked\": " + std::to_string(total_checked) +
                    ",\n  \"pass\": " + (reasons_.empty() ? "true" : "false") + ",\n  \"reasons\": [" +
                    reasons_json + "]\n}\n";
            std::ofstream(o.json_path) << json;
        }
        return reasons_.empty() ? 0 : 1;
    }

    void print_header() const {
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

    void print_progress(std::int64_t elapsed_ns) const {
        std::printf("[%5.0f s]", static_cast<double>(elapsed_ns) / 1e9);
        for (unsigned s = 0; s < structure_count; ++s) {
            if (!cx_.opt.run[s]) continue;
            const structure_tally& t = tally_[s];
            std::printf(" %s: %llu seen, %llu kills;", structure_names[s], ull(marked_total(s)),
                        ull(t.producer_kills + t.consumer_kills));
        }
        std::printf(" problems %zu\n", reasons_.size() + cx_.book->problems_logged.load());
        std::fflush(stdout);
    }

    std::uint64_t marked_total(unsigned s) const {
        std::uint64_t total = 0;
        for (const worker_record& rec : cx_.book->structures[s].consumer) total += rec.marked.load();
        return total;
    }

    static unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

    context cx_;
    std::mt19937_64 rng_;
    std::vector<worker> workers_;
    std::vector<pid_t> started_pids_;
    std::set<pid_t> reaped_pids_;
    std::map<pid_t, int> last_status_;
    structure_tally tally_[structure_count];
    std::uint32_t problems_printed_ = 0;
    std::uint64_t postponed_kills_ = 0;
    std::vector<std::string> reasons_;
};

}  // namespace

int main(int argc, char** argv) {
    const options o = parse_options(argc, argv);
    struct sigaction stop {};
    stop.sa_handler = [](int) { interrupted = 1; };
    ::sigaction(SIGINT, &stop, nullptr);
    ::sigaction(SIGTERM, &stop, nullptr);
    supervisor soak(o);
    return soak.run();
}
