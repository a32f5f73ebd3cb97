// impl/tests/soak/worker.cpp: the producers and consumers (see worker.hpp for
// what a worker owns and must never do).
//
// A producer's k counts on across restarts: before a push it stores
// started[p] = k+1, after it completed[p] = k+1, and a replacement resumes
// at started[p], so k is never reused and only element started-1 of a
// killed producer is "in doubt" (it may be absent, never twice).
// A consumer sets bit (p, k) of the bitmap right after each pop; a bit
// already set is a duplicate, reported at once. Every call is a blocking call
// with a timeout (try_push_for / try_pop_for), so workers sleep rather than
// spin, and each updates its heartbeat after every call.
#include "worker.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>

#include <shmds/shmds.hpp>

namespace soak {
namespace {

using spsc = shmds::shm_spsc_queue<soak_element>;
using mpmc = shmds::shm_mpmc_queue<soak_element>;
using stack = shmds::shm_concurrent_stack<soak_element>;

/// The worker's context, for forward_notice (a plain function pointer).
const context* worker_context = nullptr;

/// segment_options::notice for workers: into the ledger's problem log.
void forward_notice(const std::string& message) {
    worker_context->shared.book->segment_notices.fetch_add(1);
    worker_context->shared.problem("NOTICE from the library (pid %d): %s", static_cast<int>(::getpid()),
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

template <class S>
S open_structure(const context& cx, shmds::posix_shm& seg, unsigned s, const incarnation_style& style) {
    shmds::wait_options wait;
    if (style.sleep_at_once) wait.strategy = shmds::wait_strategy::sleep;
    // Find or create by name, as a restarted service would.
    return S(seg, std::string("soak-") + structure_names[s], cx.opt.capacity, wait);
}

/// What a worker holds once it has started: the segment attached and the
/// structure opened by name (as a restarted service would), and its
/// records in the ledger.
template <class S>
struct worker_handles {
    worker_handles(const context& cx, unsigned s, role r, std::uint32_t slot, const incarnation_style& style)
        : seg(attach(cx)),
          structure(open_structure<S>(cx, seg, s, style)),
          sl(cx.shared.book->structures[s]),
          me(r == role::producer ? sl.producer[slot] : sl.consumer[slot]),
          timeout(cx.opt.timeout_ms) {}

    shmds::posix_shm seg;
    S structure;
    structure_ledger& sl;
    worker_record& me;  ///< this worker slot's record
    std::chrono::milliseconds timeout;
};

/// Producer slot `slot` of structure `s`: pushes its stream from where the
/// previous incarnation stopped until told to stop.
template <class S>
void produce(const context& cx, unsigned s, std::uint32_t slot, const incarnation_style& style,
             worker_handles<S>& handles) {
    structure_ledger& sl = handles.sl;
    worker_record& me = handles.me;
    std::atomic<std::uint32_t>& stop = cx.shared.book->stop_producers;
    std::uint64_t k = sl.streams[slot].started.load();
    std::uint64_t pushed_here = 0;
    while (stop.load() == 0) {
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
        while (!pushed && stop.load() == 0)
            pushed = with_role_retry(me, stop, [&] {
                return timed_call(cx, me, [&] { return handles.structure.try_push_for(e, handles.timeout); });
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

/// Whether popped element `e` is one that producer slot `e.slot` of
/// structure `s` really pushed; logs it as CORRUPT or PHANTOM if not.
bool is_genuine(const context& cx, unsigned s, const soak_element& e) {
    structure_ledger& sl = cx.shared.book->structures[s];
    const char* name = structure_names[s];
    if (e.slot >= cx.producers_of[s] || e.check != checksum_of(s, e.slot, e.k)) {
        sl.corrupt.fetch_add(1);
        cx.shared.problem(
            "CORRUPT: %s: element {slot %u, k %llu, check %08x} fails its checksum (consumer pid %d)", name,
            e.slot, static_cast<unsigned long long>(e.k), e.check, static_cast<int>(::getpid()));
        return false;
    }
    if (e.k >= sl.streams[e.slot].started.load()) {
        sl.phantom.fetch_add(1);
        cx.shared.problem("PHANTOM: %s: producer slot %u element %llu was popped before its push began", name,
                          e.slot, static_cast<unsigned long long>(e.k));
        return false;
    }
    return true;
}

/// Checks element `e`, popped by a consumer of structure `s`, and marks it
/// in the bitmap, for consumer slot `consumer_slot`. `last_k`: this
/// incarnation's k+1 last seen per producer slot.
void record(const context& cx, unsigned s, std::uint32_t consumer_slot, const soak_element& e,
            std::uint64_t* last_k) {
    if (!is_genuine(cx, s, e)) return;
    structure_ledger& sl = cx.shared.book->structures[s];
    const char* name = structure_names[s];
    // The order first: SPSC's last-seen mark is moved before the bitmap,
    // so that it never lags the elements marked. A consumer killed between
    // the two leaves its element popped and unmarked (its holding record
    // says which) and the mark past it, where its successor's pop call, if
    // killed, loses the next element (a lagging mark made that loss look
    // like the library's).
    if (structure_is_fifo[s]) {
        // SPSC has one consumer at a time, so its order holds across consumer
        // incarnations; MPMC consumers each see an increasing subsequence.
        const std::uint64_t previous =
            s == spsc_index ? sl.streams[e.slot].spsc_last_seen.load() : last_k[e.slot];
        if (e.k + 1 <= previous) {
            sl.order_violations.fetch_add(1);
            cx.shared.problem(
                "ORDER: %s: producer slot %u element %llu popped after element %llu (consumer pid %d)", name,
                e.slot, static_cast<unsigned long long>(e.k), static_cast<unsigned long long>(previous - 1),
                static_cast<int>(::getpid()));
        }
        last_k[e.slot] = e.k + 1;
        if (s == spsc_index) sl.streams[e.slot].spsc_last_seen.store(e.k + 1);
    }
    if (cx.shared.mark(s, e.slot, e.k)) {
        sl.duplicates.fetch_add(1);
        cx.shared.problem(
            "DUPLICATE: %s: producer slot %u element %llu delivered a second time (consumer pid %d)", name,
            e.slot, static_cast<unsigned long long>(e.k), static_cast<int>(::getpid()));
    } else {
        sl.consumer[consumer_slot].marked.fetch_add(1, std::memory_order_relaxed);
    }
}

/// What one consumer incarnation keeps between pops.
struct consumer_state {
    std::uint64_t last_k[max_slots] = {};  ///< k+1 last seen per producer slot (order check)
    std::uint64_t popped_here = 0;
    std::uint64_t drop_next = 0;  ///< self-test: elements to leave unmarked
    /// Self-test: an element to mark after the next one of its producer.
    std::optional<soak_element> held_back;
};

/// Self-test: a process that keeps the segment attached (its copy of the
/// posix_shm holds its own lock) and outlives the consumer that forks it.
void leave_a_holder_behind() {
    if (::fork() != 0) return;
    ::prctl(PR_SET_PDEATHSIG, 0);
    for (;;) ::pause();
}

/// Self-test: consumer slot 0's 2000th element meets the injected fault.
/// Returns true when the fault took the element (it must not be recorded now).
bool inject_fault(const context& cx, unsigned s, std::uint32_t slot, const soak_element& e,
                  consumer_state& st) {
    structure_ledger& sl = cx.shared.book->structures[s];
    switch (cx.opt.inject) {
        case injected_fault::duplicate:
            if (sl.injected.exchange(1) == 0) record(cx, s, slot, e, st.last_k);  // and again by the caller
            return false;
        case injected_fault::loss:
            if (sl.injected.exchange(1) != 0) return false;
            st.drop_next = 500;
            return true;
        // One element: with kills, the allowance covers it, and only SPSC's
        // exact account of each loss can catch it.
        case injected_fault::lose_one:
            return sl.injected.exchange(1) == 0;
        case injected_fault::reorder:
            if (sl.injected.exchange(1) != 0) return false;
            st.held_back = e;
            return true;
        case injected_fault::leak:
            if (s == mpmc_index && sl.injected.exchange(1) == 0) leave_a_holder_behind();
            return false;
        default:
            return false;
    }
}

/// What becomes of popped element `e`: recorded, or (self-tests) dropped,
/// held back, recorded twice or after the next one.
void take(const context& cx, unsigned s, std::uint32_t slot, const soak_element& e, consumer_state& st) {
    ++st.popped_here;
    if (st.drop_next > 0) {
        --st.drop_next;
        return;
    }
    if (st.held_back && st.held_back->slot == e.slot) {
        record(cx, s, slot, e, st.last_k);
        record(cx, s, slot, *st.held_back, st.last_k);
        st.held_back.reset();
        return;
    }
    if (cx.opt.inject != injected_fault::none && slot == 0 && st.popped_here == 2000 &&
        inject_fault(cx, s, slot, e, st))
        return;
    record(cx, s, slot, e, st.last_k);
}

/// Consumer slot `slot` of structure `s`: pops and records until told to stop.
template <class S>
void consume(const context& cx, unsigned s, std::uint32_t slot, worker_handles<S>& handles) {
    structure_ledger& sl = handles.sl;
    worker_record& me = handles.me;
    consumer_state st;
    me.first_held.store(0);
    while (cx.shared.book->stop_consumers.load() == 0) {
        const std::int64_t call_start = now_ns();
        const std::optional<soak_element> v = with_role_retry(me, cx.shared.book->stop_consumers, [&] {
            return timed_call(cx, me, [&] {
                // The stores around the call stay in program order with its
                // commit (seq_cst, and no compiler motion across the fences):
                // a kill lands between two instructions.
                me.holding.store(in_pop_call);
                std::atomic_signal_fence(std::memory_order_seq_cst);
                std::optional<soak_element> popped = handles.structure.try_pop_for(handles.timeout);
                std::atomic_signal_fence(std::memory_order_seq_cst);
                // At once: from here on, a kill's loss is the soak's doing, not the library's.
                me.holding.store(popped ? held_code(popped->slot, popped->k) : 0);
                if (popped && st.popped_here == 0) me.first_held.store(held_code(popped->slot, popped->k));
                return popped;
            });
        });
        if constexpr (std::is_same_v<S, stack>)
            sl.lock_recoveries.store(handles.structure.lock_recoveries(), std::memory_order_relaxed);
        if (v) {
            take(cx, s, slot, *v, st);
            continue;
        }
        const std::int64_t gone_at = cx.shared.book->producers_gone_at_ns.load();
        if (gone_at != 0 && call_start > gone_at) me.empty_pops_draining.fetch_add(1);
    }
}

template <class S>
void play(const context& cx, unsigned s, role r, std::uint32_t slot, const incarnation_style& style) {
    worker_handles<S> handles(cx, s, r, slot, style);
    if (r == role::producer)
        produce<S>(cx, s, slot, style, handles);
    else
        consume<S>(cx, s, slot, handles);
}

}  // namespace

void worker_main(const context& cx, unsigned s, role r, std::uint32_t slot, const incarnation_style& style) {
    // Die with the supervisor, and leave Ctrl-C to it: it stops everyone in order.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    worker_context = &cx;
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_DFL);
    int status = 0;
    try {
        if (s == spsc_index)
            play<spsc>(cx, s, r, slot, style);
        else if (s == mpmc_index)
            play<mpmc>(cx, s, r, slot, style);
        else
            play<stack>(cx, s, r, slot, style);
    } catch (const std::exception& e) {
        cx.shared.problem("ERROR: %s %s %u (pid %d): %s", structure_names[s], role_name(r), slot,
                          static_cast<int>(::getpid()), e.what());
        status = 3;
    }
    std::fflush(nullptr);
    ::_exit(status);
}

}  // namespace soak
