// The conformance suite's history actor: a separate program (started with
// exec, like actor.cpp) that makes try_push and try_pop calls on one
// structure, in rounds the test starts, and records each call's interval and
// result for the linearizability tests (test_linearizable.cpp). Built per
// adapter by shmconf_add_implementation; it uses the adapter only through
// the contract.
//
//   history_actor LOG SEGMENT KIND NAME ID ROLE SEED
//
// LOG: a file the test created, shmconf::lin::record::file_size(n) bytes,
// zeroed; the actor maps it shared and records every call there (see
// linearizability_history.hpp, namespace record), so the record survives a
// SIGKILL: an entry whose call has no return time is the call the actor was
// killed in.
// KIND: spsc_queue, mpmc_queue or concurrent_stack (only those the adapter
// claims). ID: pushed values are ID << 32 | a sequence number, unique across
// actors with distinct IDs. ROLE: push (only pushes), pop (only pops) or
// mixed (each call is a push or a pop at random). SEED: for the random
// choices and the short random pauses between calls that vary interleavings.
//
// Commands, one per line on stdin; each is answered on stdout by
// "done NEXT", NEXT being the index of the next free log entry:
//   go START_NS COUNT   starts the log over (at entry 0), waits until
//                       CLOCK_MONOTONIC reaches START_NS (so that every actor
//                       starts together), then makes COUNT calls
//   drain PATIENCE_US   try_pop until it returns nothing, and keeps trying
//                       until it has returned nothing for PATIENCE_US (a
//                       crashed participant may hold an element up for a
//                       while); consecutive empty results share one entry,
//                       the last one
//   quit                exits
// Exit status 0 after quit or at the end of stdin, 1 with a message on
// stderr otherwise.
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "actor_support.hpp"
#include "linearizability_history.hpp"

namespace {

using shmconf_actors::impl;
using shmconf_actors::monotonic_ns;
namespace record = shmconf::lin::record;
using shmconf::lin::op_kind;

/// The log file, mapped shared: what is written there stays when we die.
class log_file {
public:
    explicit log_file(const std::string& path) {
        const int fd = ::open(path.c_str(), O_RDWR);
        if (fd < 0) throw std::runtime_error("cannot open the log " + path + ": " + std::strerror(errno));
        const off_t bytes = ::lseek(fd, 0, SEEK_END);
        if (bytes < static_cast<off_t>(sizeof(record::header))) {
            ::close(fd);
            throw std::runtime_error("the log " + path + " is too small");
        }
        base_ = ::mmap(nullptr, static_cast<std::size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (base_ == MAP_FAILED) throw std::runtime_error("cannot map the log " + path);
        header_ = static_cast<record::header*>(base_);
        if (header_->magic != record::magic ||
            record::file_size(header_->capacity) > static_cast<std::size_t>(bytes))
            throw std::runtime_error("the log " + path + " has no valid header");
        entries_ = reinterpret_cast<record::entry*>(header_ + 1);
    }
    log_file(const log_file&) = delete;
    log_file& operator=(const log_file&) = delete;

    /// Entry `i`, or an error when the log is full.
    record::entry& at(std::size_t i) {
        if (i >= header_->capacity) throw std::runtime_error("the log is full");
        return entries_[i];
    }

private:
    void* base_ = nullptr;
    record::header* header_ = nullptr;
    record::entry* entries_ = nullptr;
};

/// Records one call in `e` around `call()`: kind and value, then the call
/// time, then (after the call) the result, then the return time. Each time
/// is stored with release order after what it covers, so that an entry
/// with a time is whole up to it, whatever instant we are killed at.
template <class Call>
void recorded(record::entry& e, op_kind kind, std::uint64_t value, Call&& call) {
    e.kind = static_cast<std::uint32_t>(kind);
    e.value = value;
    e.ok = 0;
    std::atomic_ref<std::uint64_t>(e.return_ns).store(0, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(e.call_ns).store(monotonic_ns(), std::memory_order_release);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const std::optional<std::uint64_t> out = call();
    const std::uint64_t returned = monotonic_ns();
    std::atomic_signal_fence(std::memory_order_seq_cst);
    e.ok = out.has_value() ? 1 : 0;
    if (kind == op_kind::pop && out) e.value = *out;
    std::atomic_ref<std::uint64_t>(e.return_ns).store(returned, std::memory_order_release);
}

template <class S>
int run(log_file& log, S& s, std::uint64_t id, const std::string& role, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uint64_t sequence = 0;
    std::size_t next = 0;  // the next free log entry
    auto push = [&](record::entry& e) {
        const std::uint64_t v = (id << 32) | sequence++;
        recorded(e, op_kind::push, v, [&]() -> std::optional<std::uint64_t> {
            if (s.try_push(v)) return v;
            return std::nullopt;
        });
    };
    auto pop = [&](record::entry& e) { recorded(e, op_kind::pop, 0, [&] { return s.try_pop(); }); };
    char line[256];
    while (std::fgets(line, sizeof line, stdin)) {
        const std::string command(line);
        if (command.rfind("go ", 0) == 0) {
            char* end = nullptr;
            errno = 0;
            const unsigned long long start = std::strtoull(line + 3, &end, 10);
            const char* after_start = end;
            const unsigned long long count = std::strtoull(after_start, &end, 10);
            if (errno != 0 || after_start == line + 3 || end == after_start)
                throw std::runtime_error("bad go: " + command);
            next = 0;
            shmconf_actors::wait_until(start);
            for (unsigned long long i = 0; i < count; ++i) {
                // A short random pause now and then, so that the actors'
                // calls do not stay in one lockstep.
                if (rng() % 4 == 0) {
                    const std::uint64_t until = monotonic_ns() + rng() % 3000;
                    while (monotonic_ns() < until) {
                    }
                }
                const bool pushing = role == "push" || (role == "mixed" && rng() % 2 == 0);
                if (pushing)
                    push(log.at(next++));
                else
                    pop(log.at(next++));
            }
        } else if (command.rfind("drain ", 0) == 0) {
            const std::uint64_t patience_ns = std::strtoull(line + 6, nullptr, 10) * 1000;
            std::uint64_t empty_since = 0;
            for (;;) {
                record::entry& e = log.at(next);
                pop(e);
                if (e.ok) {
                    ++next;
                    empty_since = 0;
                    continue;
                }
                if (empty_since == 0) empty_since = e.call_ns;
                if (e.return_ns - empty_since >= patience_ns) {
                    ++next;  // keep the last empty result
                    break;
                }
                ::usleep(100);  // and try again in this entry
            }
        } else if (command.rfind("quit", 0) == 0) {
            return 0;
        } else {
            throw std::runtime_error("unknown command: " + command);
        }
        std::printf("done %zu\n", next);
        std::fflush(stdout);
    }
    return 0;
}

template <class S>
int with(typename impl::segment& seg, const std::string& name, log_file& log, std::uint64_t id,
         const std::string& role, std::uint64_t seed) {
    S s = impl::template find<S>(seg, name);
    return run(log, s, id, role, seed);
}

int act(int argc, char** argv) {
    if (argc != 8) {
        std::fprintf(stderr, "usage: history_actor LOG SEGMENT KIND NAME ID ROLE SEED\n");
        return 1;
    }
    const std::string kind = argv[3], name = argv[4], role = argv[6];
    const std::uint64_t id = std::strtoull(argv[5], nullptr, 10), seed = std::strtoull(argv[7], nullptr, 10);
    if (role != "push" && role != "pop" && role != "mixed") {
        std::fprintf(stderr, "history_actor: unknown role '%s'\n", role.c_str());
        return 1;
    }
    log_file log(argv[1]);
    auto seg = impl::open(argv[2]);
    if (kind == "spsc_queue" && impl::caps.spsc_queue)
        return with<impl::spsc_queue<std::uint64_t>>(seg, name, log, id, role, seed);
    if (kind == "mpmc_queue" && impl::caps.mpmc_queue)
        return with<impl::mpmc_queue<std::uint64_t>>(seg, name, log, id, role, seed);
    if (kind == "concurrent_stack" && impl::caps.concurrent_stack)
        return with<impl::concurrent_stack<std::uint64_t>>(seg, name, log, id, role, seed);
    std::fprintf(stderr, "history_actor: no structure kind '%s' here\n", kind.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    return shmconf_actors::run_reporting_exceptions("history_actor", act, argc, argv);
}
