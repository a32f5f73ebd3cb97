// The conformance suite's actor: a separate program (started with exec, so
// it maps segments at addresses of its own) that does one thing to a
// segment through the adapter and reports on stdout. Built per adapter by
// shmconf_add_implementation, like the tests.
//
//   actor SEGMENT read-array NAME N          prints the N elements, one per line
//   actor SEGMENT write-array NAME N K       writes element i = i * K
//   actor SEGMENT produce KIND NAME ID COUNT [BATCH]
//                                            pushes (ID << 32 | i) for i < COUNT; with BATCH > 0,
//                                            by try_push_n in batches of 1 to BATCH (varying)
//   actor SEGMENT consume KIND NAME COUNT [BATCH]
//                                            pops COUNT elements (waiting), prints each; with
//                                            BATCH > 0, by try_pop_n of 1 to BATCH (varying)
//   actor SEGMENT produce-paced KIND NAME COUNT START
//                                            from CLOCK_MONOTONIC time START (ns), pushes 0..COUNT-1,
//                                            pausing a varying 0-500 loop turns after each
//   actor SEGMENT consume-in-order KIND NAME COUNT START
//                                            from START, pops COUNT elements by spinning on try_pop
//                                            (no yield: it polls the very slot being filled); prints
//                                            "in order" or the first element that is not the next
//   actor SEGMENT attach-and-wait            attaches, prints "attached", sleeps
//   actor SEGMENT race-create BYTES          create-only: prints "created" (then stays
//                                            attached until killed) or the error category
//   actor SEGMENT race-make NAME SLOT START COUNT [STALL]
//                                            waits until CLOCK_MONOTONIC reaches START (ns),
//                                            then for k < COUNT: find-or-create array NAME-k
//                                            (8 elements) and set its element SLOT to 1;
//                                            prints the size of the last; with STALL (ms) and
//                                            an adapter that can, stalls that long each time
//                                            before it takes the table's lock
//   actor SEGMENT try-open                   open-only: prints "opened" or the error category
//   actor SEGMENT open-as-created START      from CLOCK_MONOTONIC time START (ns), open-only until
//                                            the segment exists (5 s at most), then find-or-create
//                                            array "seen" (4 elements): prints "opened" or the category
//   actor SEGMENT attach-until-eof [STALL]   attaches, prints "attached", detaches at EOF on stdin;
//                                            with STALL (ms) and an adapter that can, stalls that
//                                            long after deciding whether it was the last attacher
//   actor SEGMENT try-push KIND NAME VALUE [STALL]  one try_push: prints "pushed", "full" or the
//                                            error category; STALL as for pop-for, at "push.claimed"
//                                            when it names no point
//   actor SEGMENT pop-for KIND NAME MS [STALL]  prints "waiting", then one try_pop_for(MS):
//                                            "value V after T" or "nothing after T" (T in ms); with
//                                            STALL (ms) and an adapter that can, stalls that long
//                                            each time it has announced itself as a waiter (or,
//                                            with STALL = POINT=MS, at that stall point)
//   actor SEGMENT push-for KIND NAME N MS [STALL]  try_push_for(i, MS) for i = 1..N: "pushed i
//                                            after T" each, or "full after T" and stops; STALL as
//                                            for pop-for
//   (pop-for and push-for print "unsupported" without the blocking forms)
//   actor SEGMENT send-messages NAME COUNT SEED     sends COUNT messages of random lengths
//                                            (messages_support.hpp) into the message queue NAME
//   actor SEGMENT receive-messages NAME COUNT SEED  receives and checks them: prints "received
//                                            COUNT in order" or the first that is not as sent
//   (both print "unsupported" without message queues)
// KIND: queue, spsc_queue, mpmc_queue, stack, concurrent_stack.
// Exit status 0 on success, 1 with a message on stderr otherwise.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "actor_support.hpp"
#include "messages_support.hpp"

namespace {

using shmconf_actors::arguments;
using shmconf_actors::impl;
using shmconf_actors::wait_until;

/// Asks the adapter to stall this process at `point` (stall_at), when it
/// can; otherwise nothing.
template <class A = impl>
void stall_if_able(std::string_view point, std::chrono::milliseconds how_long) {
    if constexpr (shmconf::stalls_at_points<A>) (void)A::stall_at(point, how_long);
}

/// Stalls as a STALL argument asks: "MS" at `usual_point`, or "POINT=MS".
void stall_as_asked(const std::string& spec, std::string_view usual_point) {
    if (spec.empty()) return;
    const auto equals = spec.find('=');
    const std::string_view point =
        equals == std::string::npos ? usual_point : std::string_view(spec).substr(0, equals);
    const std::string ms = equals == std::string::npos ? spec : spec.substr(equals + 1);
    stall_if_able(point, std::chrono::milliseconds(std::strtoull(ms.c_str(), nullptr, 10)));
}

/// The size of the next batch: 1 to `most`, varying (an inline generator).
std::size_t next_batch(std::uint64_t& state, std::uint64_t most) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    return static_cast<std::size_t>(1 + (state >> 33) % most);
}

/// Gives up on a producer or consumer that makes no progress for this long:
/// a livelock (a batch that can never be stored) fails in seconds, not at
/// the test's timeout. A correct implementation moves thousands of
/// elements a second here, whatever else runs.
constexpr std::chrono::seconds stall_limit{15};

/// The moment after which an actor without progress gives up.
struct progress_deadline {
    std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now() + stall_limit;
    void progressed() { at = std::chrono::steady_clock::now() + stall_limit; }
    bool passed() const { return std::chrono::steady_clock::now() > at; }
};

/// Stores values[0..n) with as many try_push (batch == 0) or try_push_n
/// calls as it takes; false when `deadline` passed without progress.
template <class S>
bool push_all(S& s, const std::uint64_t* values, std::size_t n, std::uint64_t batch,
              progress_deadline& deadline) {
    for (std::size_t done = 0; done < n;) {
        std::size_t stored = 0;
        if constexpr (shmconf::batch_handle<S, std::uint64_t>) {
            if (batch > 0) stored = s.try_push_n(values + done, n - done);
        }
        if (batch == 0) stored = s.try_push(values[done]) ? 1 : 0;
        done += stored;
        if (stored != 0) {
            deadline.progressed();
        } else {
            if (deadline.passed()) return false;
            std::this_thread::yield();
        }
    }
    return true;
}

/// Whether S has what `batch` asks for: batch forms when it is not 0 (when
/// not, says that S has no `form`).
template <class S>
bool has_batches_if_asked(std::uint64_t batch, const char* form) {
    if constexpr (!shmconf::batch_handle<S, std::uint64_t>) {
        if (batch > 0) {
            std::fprintf(stderr, "actor: this handle has no %s\n", form);
            return false;
        }
    }
    return true;
}

template <class S>
int produce(typename impl::segment& seg, const std::string& name, std::uint64_t id, std::uint64_t count,
            std::uint64_t batch) {
    if (!has_batches_if_asked<S>(batch, "try_push_n")) return 1;
    S s = impl::template find<S>(seg, name);
    progress_deadline deadline;
    std::uint64_t state = id + 1;
    std::vector<std::uint64_t> values;
    for (std::uint64_t i = 0; i < count;) {
        const std::size_t n = std::min<std::uint64_t>(batch > 0 ? next_batch(state, batch) : 1, count - i);
        values.clear();
        for (std::size_t k = 0; k < n; ++k) values.push_back((id << 32) | (i + k));
        if (!push_all(s, values.data(), n, batch, deadline)) {
            std::fprintf(stderr, "actor: push %llu found no room for %lld s\n",
                         static_cast<unsigned long long>(i), static_cast<long long>(stall_limit.count()));
            return 1;
        }
        i += n;
    }
    return 0;
}

template <class S>
int consume(typename impl::segment& seg, const std::string& name, std::uint64_t count, std::uint64_t batch) {
    if (!has_batches_if_asked<S>(batch, "try_pop_n")) return 1;
    S s = impl::template find<S>(seg, name);
    progress_deadline deadline;
    std::uint64_t state = count;
    std::vector<std::uint64_t> out(batch > 0 ? batch : 1);
    for (std::uint64_t got = 0; got < count;) {
        std::size_t taken = 0;
        if constexpr (shmconf::batch_handle<S, std::uint64_t>) {
            if (batch > 0)
                taken =
                    s.try_pop_n(out.data(), std::min<std::uint64_t>(next_batch(state, batch), count - got));
        }
        if (batch == 0)
            if (const std::optional<std::uint64_t> v = s.try_pop()) {
                out[0] = *v;
                taken = 1;
            }
        for (std::size_t k = 0; k < taken; ++k)
            std::printf("%llu\n", static_cast<unsigned long long>(out[k]));
        got += taken;
        if (taken > 0) {
            deadline.progressed();
            continue;
        }
        if (deadline.passed()) {
            std::fprintf(stderr, "actor: only %llu of %llu elements came (none for %lld s)\n",
                         static_cast<unsigned long long>(got), static_cast<unsigned long long>(count),
                         static_cast<long long>(stall_limit.count()));
            return 1;
        }
        std::this_thread::yield();
    }
    return 0;
}

/// A varying pause of 0 to about 500 loop turns (an inline generator, no system call):
/// a consumer that keeps up then finds the queue empty before most pushes.
void pause_a_little(std::uint64_t& state) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    for (std::uint64_t spins = (state >> 58) * 8; spins > 0; --spins) asm volatile("" ::: "memory");
}

template <class S>
struct producing_paced {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                   std::uint64_t start);
};
template <class S>
struct consuming_in_order {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                   std::uint64_t start);
};

/// Op<S>::run(args...) for the structure kind named `kind`.
template <template <class> class Op, class... Args>
int with_kind(const std::string& kind, Args&&... args) {
    return shmconf_actors::with_kind<Op>("actor", 1, kind, std::forward<Args>(args)...);
}

template <class S>
struct pushing_once {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t value) {
        const auto category = shmconf::category_of<impl>([&] {
            S s = impl::template find<S>(seg, name);
            std::printf("%s\n", s.try_push(value) ? "pushed" : "full");
        });
        if (category != shmconf::error_category::none) std::printf("%s\n", shmconf::to_string(category));
        return 0;
    }
};

template <class S>
int producing_paced<S>::run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                            std::uint64_t start) {
    S s = impl::template find<S>(seg, name);
    std::uint64_t state = start;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    wait_until(start);
    for (std::uint64_t i = 0; i < count; ++i) {
        while (!s.try_push(i))
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "actor: push %llu never found room\n",
                             static_cast<unsigned long long>(i));
                return 1;
            }
        pause_a_little(state);
    }
    return 0;
}

template <class S>
int consuming_in_order<S>::run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                               std::uint64_t start) {
    S s = impl::template find<S>(seg, name);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    wait_until(start);
    for (std::uint64_t next = 0; next < count;) {
        if (const std::optional<std::uint64_t> v = s.try_pop()) {
            if (*v != next) {
                std::printf("element %llu came where %llu was next\n", static_cast<unsigned long long>(*v),
                            static_cast<unsigned long long>(next));
                return 0;
            }
            ++next;
        } else if ((next & 0xff) == 0 && std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "actor: only %llu of %llu elements came\n",
                         static_cast<unsigned long long>(next), static_cast<unsigned long long>(count));
            return 1;
        }
    }
    std::printf("in order\n");
    return 0;
}

using clock = std::chrono::steady_clock;
long long ms_since(clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t).count();
}

template <class S>
struct popping_for {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t ms) {
        if constexpr (shmconf::blocking_handle<S, std::uint64_t>) {
            S s = impl::template find<S>(seg, name);
            std::printf("waiting\n");
            std::fflush(stdout);
            const auto start = clock::now();
            const std::optional<std::uint64_t> v = s.try_pop_for(std::chrono::milliseconds(ms));
            if (v)
                std::printf("value %llu after %lld\n", static_cast<unsigned long long>(*v), ms_since(start));
            else
                std::printf("nothing after %lld\n", ms_since(start));
        } else {
            std::printf("unsupported\n");
        }
        return 0;
    }
};

template <class S>
struct pushing_for {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                   std::uint64_t ms) {
        if constexpr (shmconf::blocking_handle<S, std::uint64_t>) {
            S s = impl::template find<S>(seg, name);
            for (std::uint64_t i = 1; i <= count; ++i) {
                const auto start = clock::now();
                const bool pushed = s.try_push_for(i, std::chrono::milliseconds(ms));
                if (pushed)
                    std::printf("pushed %llu after %lld\n", static_cast<unsigned long long>(i),
                                ms_since(start));
                else
                    std::printf("full after %lld\n", ms_since(start));
                std::fflush(stdout);
                if (!pushed) break;
            }
        } else {
            std::printf("unsupported\n");
        }
        return 0;
    }
};

template <class S>
struct producing {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t id,
                   std::uint64_t count, std::uint64_t batch) {
        return produce<S>(seg, name, id, count, batch);
    }
};
template <class S>
struct consuming {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t count,
                   std::uint64_t batch) {
        return consume<S>(seg, name, count, batch);
    }
};

using array = typename impl::template array<std::uint64_t>;

/// open-as-created START: opens while another process creates; whatever
/// it sees must be whole.
int open_as_created(const std::string& segment_name, std::uint64_t start) {
    wait_until(start);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto category = shmconf::error_category::not_found;
    while (category == shmconf::error_category::not_found && std::chrono::steady_clock::now() < give_up)
        category = shmconf::category_of<impl>([&] {
            auto seg = impl::open(segment_name);
            auto a = impl::template make<array>(seg, "seen", 4);
            a.at(3) = 3;
        });
    std::printf("%s\n", category == shmconf::error_category::none ? "opened" : shmconf::to_string(category));
    return 0;
}

/// race-create BYTES or try-open. Stays attached (until killed) after
/// creating, so that the racers that come later find the segment still there.
int create_or_open(const std::string& segment_name, const std::string& what, const arguments& a) {
    std::optional<typename impl::segment> kept;
    const auto category = shmconf::category_of<impl>([&] {
        if (what == "race-create")
            kept.emplace(impl::create(segment_name, a.number(3)));
        else
            kept.emplace(impl::open(segment_name));
    });
    std::printf("%s\n", category == shmconf::error_category::none
                            ? (what == "race-create" ? "created" : "opened")
                            : shmconf::to_string(category));
    std::fflush(stdout);
    if (kept && what == "race-create") std::this_thread::sleep_for(std::chrono::seconds(60));
    return 0;
}

/// race-make NAME SLOT START COUNT [STALL]. Every racer starts at the same instant,
/// so the creations overlap (exec and open alone would spread them over
/// milliseconds).
int race_make(typename impl::segment& seg, const arguments& a) {
    if (!a.text(7).empty()) stall_if_able("table.before_lock", std::chrono::milliseconds(a.number(7)));
    wait_until(a.number(5));
    std::size_t size = 0;
    for (std::uint64_t k = 0; k < a.number(6); ++k) {
        auto array_k = impl::template make<array>(seg, a.text(3) + "-" + std::to_string(k), 8);
        array_k.at(a.number(4)) = 1;
        size = static_cast<std::size_t>(array_k.size());
    }
    std::printf("%zu\n", size);
    return 0;
}

/// read-array NAME N and write-array NAME N K.
int read_or_write_array(typename impl::segment& seg, const std::string& what, const arguments& a) {
    auto array_a = impl::template find<array>(seg, a.text(3));
    if (what == "read-array") {
        for (std::uint64_t i = 0; i < a.number(4); ++i)
            std::printf("%llu\n", static_cast<unsigned long long>(array_a.at(i)));
    } else {
        for (std::uint64_t i = 0; i < a.number(4); ++i) array_a.at(i) = i * a.number(5);
    }
    return 0;
}

/// attach-until-eof [STALL] and attach-and-wait: prints "attached", then
/// waits for the end of stdin or 60 s; the segment handle detaches on the
/// way out.
int stay_attached(const std::string& what, const arguments& a) {
    if (what == "attach-until-eof" && !a.text(3).empty())
        stall_if_able("detach.after_last_check", std::chrono::milliseconds(a.number(3)));
    std::printf("attached\n");
    std::fflush(stdout);
    if (what == "attach-until-eof") {
        char c;
        while (::read(STDIN_FILENO, &c, 1) > 0) {
        }
    } else {
        std::this_thread::sleep_for(std::chrono::seconds(60));
    }
    return 0;
}

/// send-messages NAME COUNT SEED and receive-messages NAME COUNT SEED: the
/// message queue NAME (found, not made), COUNT messages of random lengths
/// (messages_support.hpp), sent by polling try_send, or received by polling
/// try_receive and checked one by one; the receiver prints "received COUNT
/// in order", or the number of the first message that was not as sent.
template <class A>
int move_messages(typename A::segment& seg, const std::string& what, const arguments& a) {
    if constexpr (!shmconf::has_message_queues<A>) {
        std::printf("unsupported\n");
        return 0;
    } else {
        auto q = A::find_message_queue(seg, a.text(3));
        const std::uint64_t count = a.number(4), seed = a.number(5);
        const std::size_t largest = q.max_message_size();
        for (std::uint64_t i = 0; i < count; ++i) {
            const std::vector<std::byte> m =
                shmconf_tests::numbered_message(shmconf_tests::random_length(i, seed, largest), i, seed);
            if (what == "send-messages") {
                while (!q.try_send(std::span<const std::byte>(m.data(), m.size()))) {
                }
                continue;
            }
            std::optional<std::vector<std::byte>> got;
            while (!(got = q.try_receive())) {
            }
            if (*got != m) {
                std::printf("message %llu is not as sent (%zu bytes, %zu expected)\n",
                            static_cast<unsigned long long>(i), got->size(), m.size());
                return 0;
            }
        }
        if (what == "receive-messages")
            std::printf("received %llu in order\n", static_cast<unsigned long long>(count));
        return 0;
    }
}

/// The actions on a structure of a kind: KIND is argument 3, NAME 4.
int act_on_structure(typename impl::segment& seg, const std::string& what, const arguments& a) {
    const std::string kind = a.text(3), name = a.text(4);
    if (what == "try-push") {
        stall_as_asked(a.text(6), "push.claimed");
        return with_kind<pushing_once>(kind, seg, name, a.number(5));
    }
    if (what == "pop-for") {
        stall_as_asked(a.text(6), "wait.announced");
        return with_kind<popping_for>(kind, seg, name, a.number(5));
    }
    if (what == "push-for") {
        stall_as_asked(a.text(7), "wait.announced");
        return with_kind<pushing_for>(kind, seg, name, a.number(5), a.number(6));
    }
    if (what == "produce")
        return with_kind<producing>(kind, seg, name, a.number(5), a.number(6), a.number(7));
    if (what == "consume") return with_kind<consuming>(kind, seg, name, a.number(5), a.number(6));
    if (what == "produce-paced") return with_kind<producing_paced>(kind, seg, name, a.number(5), a.number(6));
    if (what == "consume-in-order")
        return with_kind<consuming_in_order>(kind, seg, name, a.number(5), a.number(6));
    std::fprintf(stderr, "actor: unknown action '%s'\n", what.c_str());
    return 2;
}

int act(int argc, char** argv) {
    if (argc < 3) return 2;
    const arguments a(argc, argv);
    const std::string segment_name = a.text(1), what = a.text(2);
    if (what == "open-as-created") return open_as_created(segment_name, a.number(3));
    if (what == "race-create" || what == "try-open") return create_or_open(segment_name, what, a);
    auto seg = impl::open(segment_name);
    if (what == "race-make") return race_make(seg, a);
    if (what == "read-array" || what == "write-array") return read_or_write_array(seg, what, a);
    if (what == "attach-until-eof" || what == "attach-and-wait") return stay_attached(what, a);
    if (what == "send-messages" || what == "receive-messages") return move_messages<impl>(seg, what, a);
    return act_on_structure(seg, what, a);
}

}  // namespace

int main(int argc, char** argv) {
    return shmconf_actors::run_reporting_exceptions("actor", act, argc, argv);
}
