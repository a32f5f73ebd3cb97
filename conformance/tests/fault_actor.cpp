// The conformance suite's fault actor: a separate program (started with exec)
// that runs operations in a loop through the adapter until the fault tests
// (test_faults_*.cpp) kill it with SIGKILL at a random moment. What it did is
// kept in a record file the test names: a MAP_SHARED mapping of an ordinary
// file, so every store survives the kill, and nothing of it lives in the
// segment under test.
//
//   fault_actor RECORD SEGMENT produce KIND NAME ID START
//       pushes (ID << 32 | i) for i = START, START + 1, ...; `done` is the
//       i after the last push that completed
//   fault_actor RECORD SEGMENT consume KIND NAME
//       pops; appends every popped value to the log, then counts it in `done`
//   fault_actor RECORD SEGMENT produce-loans KIND NAME ID START
//   fault_actor RECORD SEGMENT consume-loans KIND NAME
//       the same through loans (LOAN-004): try_reserve, the value written in
//       place, commit; try_peek, the value read in place, release (exit 2
//       when the adapter's KIND lends nothing)
//   fault_actor RECORD SEGMENT hammer KIND NAME [PAUSE_US]
//       try_push then try_pop, over and over; errors are counted, not fatal
//   fault_actor RECORD SEGMENT hammer-table ID [PAUSE_US]
//       find the array "anchor", make the array "v-ID", destroy it, over and over
//   (PAUSE_US: a pause between rounds, so that a survivor leaves the lock to
//   the victims most of the time)
//   fault_actor RECORD SEGMENT churn NAME:CAPACITY...
//       make or destroy (at random) arrays of uint64 from the given set
//   fault_actor RECORD SEGMENT create-and-churn BYTES
//       open-or-create the segment, make the array "keep" (32 elements,
//       element i = i + 7), then make, fill and destroy arrays "r0".."r3"
//   fault_actor RECORD SEGMENT attach
//       open the segment and wait
// KIND: spsc_queue, mpmc_queue, concurrent_stack (and queue, stack).
//
// `started` is set once the loop has run one operation (so a role an SPSC
// queue refuses shows up before it). Every operation is bracketed by
// `in_op` = 1 / 0, so the test can tell whether a kill landed inside a call.
// Setup errors end the program with status 1 and the category in the record.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor_support.hpp"

namespace {

using shmconf_actors::arguments;
using shmconf_actors::impl;

// ---- the record file (word indices: keep in step with fault_support.hpp) ----
namespace word {
constexpr std::size_t started = 0;     ///< 1 once the loop has run an operation
constexpr std::size_t in_op = 1;       ///< 1 while inside an operation call
constexpr std::size_t done = 2;        ///< produce: next sequence; consume: values logged
constexpr std::size_t ok = 3;          ///< operations that completed without an error
constexpr std::size_t failed = 4;      ///< operations that threw
constexpr std::size_t last_error = 5;  ///< 1 + error_category of the last throw
constexpr std::size_t log = 16;        ///< consume: the popped values, in order
}  // namespace word

class record_file {
public:
    explicit record_file(const char* path) {
        const int fd = ::open(path, O_RDWR | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0) {
            std::fprintf(stderr, "fault_actor: cannot open the record file %s\n", path);
            std::exit(2);
        }
        words_ = static_cast<std::uint64_t*>(
            ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        if (words_ == MAP_FAILED) {
            std::fprintf(stderr, "fault_actor: cannot map the record file %s\n", path);
            std::exit(2);
        }
        log_capacity_ = static_cast<std::size_t>(st.st_size) / sizeof(std::uint64_t) - word::log;
    }
    void store(std::size_t i, std::uint64_t v) {
        std::atomic_ref<std::uint64_t>(words_[i]).store(v, std::memory_order_release);
    }
    std::uint64_t load(std::size_t i) { return std::atomic_ref<std::uint64_t>(words_[i]).load(); }
    void add(std::size_t i) { std::atomic_ref<std::uint64_t>(words_[i]).fetch_add(1); }
    void failure(const std::exception_ptr& e) {
        store(word::last_error, 1 + static_cast<std::uint64_t>(impl::categorize(e)));
        add(word::failed);
    }
    /// Logs a popped value, then counts it: a kill in between loses the value
    /// from the log, never counts a value that is not there.
    bool log(std::uint64_t v) {
        const std::uint64_t n = load(word::done);
        if (n >= log_capacity_) return false;
        store(word::log + n, v);
        store(word::done, n + 1);
        return true;
    }
    /// Brackets one operation: in_op is 1 from before the call until its
    /// result is recorded.
    template <class F>
    auto op(F&& f) {
        store(word::in_op, 1);
        auto result = f();
        return result;
    }
    void op_over() { store(word::in_op, 0); }

private:
    std::uint64_t* words_ = nullptr;
    std::size_t log_capacity_ = 0;
};

/// No actor outlives a test that forgot it.
bool past_lifetime() {
    static const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    return std::chrono::steady_clock::now() > end;
}

/// Holds a loan open a while (a few microseconds of polling the clock), so
/// that most of a loan-taking actor's life is spent holding one: a kill at
/// a random moment then nearly always lands on an open loan, which is what
/// LOAN-004 is about (without it, three runs of kills could all land
/// between loans: the mutant mpmc-loan-claimed-for-another once survived so).
inline void hold_the_loan() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    while (std::chrono::steady_clock::now() < until) {
    }
}

/// One push of `value` into `s`, through a loan when `loans` (try_reserve,
/// the value written in place, held a while, commit).
template <class S>
bool push_one(S& s, std::uint64_t value, bool loans) {
    if constexpr (shmconf::loan_handle<S, std::uint64_t>) {
        if (loans) {
            auto loan = s.try_reserve();
            if (!loan) return false;
            *loan = value;
            hold_the_loan();
            loan.commit();
            return true;
        }
    }
    return s.try_push(value);
}

/// One pop from `s`, through a loan when `loans` (try_peek, the value read
/// in place, release).
template <class S>
std::optional<std::uint64_t> pop_one(S& s, bool loans) {
    if constexpr (shmconf::loan_handle<S, std::uint64_t>) {
        if (loans) {
            auto loan = s.try_peek();
            if (!loan) return std::nullopt;
            const std::uint64_t value = *loan;
            hold_the_loan();
            loan.release();
            return value;
        }
    }
    return s.try_pop();
}

/// Exit status 2, with a message, when `loans` asks for what S lacks.
template <class S>
bool lends_if_asked(bool loans) {
    if (!loans || shmconf::loan_handle<S, std::uint64_t>) return true;
    std::fprintf(stderr, "fault_actor: this structure lends nothing (no try_reserve / try_peek)\n");
    return false;
}

template <class S>
int produce(record_file& r, typename impl::segment& seg, const std::string& name, std::uint64_t id,
            std::uint64_t start, bool loans) {
    if (!lends_if_asked<S>(loans)) return 2;
    S s = impl::template find<S>(seg, name);
    r.store(word::done, start);
    for (std::uint64_t i = start; !past_lifetime();) {
        const bool pushed = r.op([&] { return push_one(s, (id << 32) | i, loans); });
        if (pushed) r.store(word::done, ++i);
        r.op_over();
        r.store(word::started, 1);
        if (!pushed) std::this_thread::yield();
    }
    return 0;
}

template <class S>
int consume(record_file& r, typename impl::segment& seg, const std::string& name, bool loans) {
    if (!lends_if_asked<S>(loans)) return 2;
    S s = impl::template find<S>(seg, name);
    while (!past_lifetime()) {
        const std::optional<std::uint64_t> v = r.op([&] { return pop_one(s, loans); });
        if (v && !r.log(*v)) {
            std::fprintf(stderr, "fault_actor: the record's log is full\n");
            return 1;
        }
        r.op_over();
        r.store(word::started, 1);
        if (!v) std::this_thread::yield();
    }
    return 0;
}

void pause(std::uint64_t us) {
    if (us != 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

/// One round of a hammer: `operations` (each bracketed by r.op and
/// r.op_over), counted as ok; or, when one throws, the failure recorded and
/// a pause of 1 ms. Then `started`.
template <class F>
void hammer_round(record_file& r, F&& operations) {
    try {
        operations();
        r.add(word::ok);
    } catch (...) {
        r.op_over();
        r.failure(std::current_exception());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    r.store(word::started, 1);
}

template <class S>
int hammer(record_file& r, typename impl::segment& seg, const std::string& name, std::uint64_t pause_us) {
    S s = impl::template find<S>(seg, name);
    for (std::uint64_t i = 0; !past_lifetime(); ++i) {
        pause(pause_us);
        hammer_round(r, [&] {
            (void)r.op([&] { return s.try_push(i); });
            r.op_over();
            (void)r.op([&] { return s.try_pop(); });
            r.op_over();
        });
    }
    return 0;
}

/// Op<S>::run(args...) for the structure kind named `kind`.
template <template <class> class Op, class... Args>
int with_kind(const std::string& kind, Args&&... args) {
    return shmconf_actors::with_kind<Op>("fault_actor", 2, kind, std::forward<Args>(args)...);
}

template <class S>
struct producing {
    template <class... A>
    static int run(A&&... a) {
        return produce<S>(std::forward<A>(a)...);
    }
};
template <class S>
struct consuming {
    template <class... A>
    static int run(A&&... a) {
        return consume<S>(std::forward<A>(a)...);
    }
};
template <class S>
struct hammering {
    template <class... A>
    static int run(A&&... a) {
        return hammer<S>(std::forward<A>(a)...);
    }
};

using array = typename impl::template array<std::uint64_t>;

int hammer_table(record_file& r, typename impl::segment& seg, const std::string& id, std::uint64_t pause_us) {
    const std::string mine = "v-" + id;
    while (!past_lifetime()) {
        pause(pause_us);
        hammer_round(r, [&] {
            (void)r.op([&] { return impl::template find<array>(seg, "anchor").size(); });
            r.op_over();
            (void)r.op([&] { return impl::template make<array>(seg, mine, 16).size(); });
            r.op_over();
            r.op([&] {
                impl::destroy(seg, mine);
                return 0;
            });
            r.op_over();
        });
    }
    return 0;
}

/// One make or destroy, recorded as an operation; destroying a name that is
/// not there is part of the game, any other error a failure.
template <class F>
void table_update(record_file& r, F&& update) {
    try {
        r.op([&] {
            update();
            return 0;
        });
        r.op_over();
        r.add(word::ok);
    } catch (...) {
        r.op_over();
        if (impl::categorize(std::current_exception()) != shmconf::error_category::not_found)
            r.failure(std::current_exception());
    }
}

int churn(record_file& r, typename impl::segment& seg,
          const std::vector<std::pair<std::string, std::size_t>>& set) {
    std::mt19937_64 random(std::random_device{}());
    while (!past_lifetime()) {
        const auto& picked = set[random() % set.size()];
        const std::string& name = picked.first;  // (named, not bound: the lambda below captures them)
        const std::size_t capacity = picked.second;
        const bool make = random() % 2 == 0;
        table_update(r, [&] {
            if (make) {
                auto a = impl::template make<array>(seg, name, capacity);
                a[0] = capacity;
            } else {
                impl::destroy(seg, name);
            }
        });
        r.store(word::started, 1);
    }
    return 0;
}

int create_and_churn(record_file& r, const std::string& segment_name, std::size_t bytes) {
    auto seg = impl::open_or_create(segment_name, bytes);
    {
        auto keep = impl::template make<array>(seg, "keep", 32);
        for (std::size_t i = 0; i < 32; ++i) keep.at(i) = i + 7;
    }
    r.store(word::started, 1);
    std::mt19937_64 random(std::random_device{}());
    while (!past_lifetime()) {
        const std::string name = "r" + std::to_string(random() % 4);
        table_update(r, [&] {
            if (random() % 2 == 0) {
                auto a = impl::template make<array>(seg, name, 64);
                for (std::size_t i = 0; i < a.size(); ++i) a[i] = random();
            } else {
                impl::destroy(seg, name);
            }
        });
    }
    return 0;
}

int act(int argc, char** argv) {
    if (argc < 4) return 2;
    record_file r(argv[1]);
    const arguments a(argc, argv);
    const std::string segment_name = a.text(2), what = a.text(3);
    try {
        if (what == "create-and-churn") return create_and_churn(r, segment_name, a.number(4));
        auto seg = impl::open(segment_name);
        if (what == "produce" || what == "produce-loans")
            return with_kind<producing>(a.text(4), r, seg, a.text(5), a.number(6), a.number(7),
                                        what == "produce-loans");
        if (what == "consume" || what == "consume-loans")
            return with_kind<consuming>(a.text(4), r, seg, a.text(5), what == "consume-loans");
        if (what == "hammer") return with_kind<hammering>(a.text(4), r, seg, a.text(5), a.number(6));
        if (what == "hammer-table") return hammer_table(r, seg, a.text(4), a.number(5));
        if (what == "churn") {
            std::vector<std::pair<std::string, std::size_t>> set;
            for (int i = 4; i < argc; ++i) {
                const std::string spec = argv[i];
                const auto colon = spec.find(':');
                set.emplace_back(spec.substr(0, colon), std::strtoull(spec.c_str() + colon + 1, nullptr, 10));
            }
            return churn(r, seg, set);
        }
        if (what == "attach") {
            r.store(word::started, 1);
            while (!past_lifetime()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            return 0;
        }
    } catch (...) {
        r.op_over();
        r.failure(std::current_exception());
        try {
            throw;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "fault_actor %s: %s (%s)\n", what.c_str(), e.what(),
                         shmconf::to_string(impl::categorize(std::current_exception())));
        } catch (...) {
        }
        return 1;
    }
    std::fprintf(stderr, "fault_actor: unknown action '%s'\n", what.c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    return act(argc, argv);
}
