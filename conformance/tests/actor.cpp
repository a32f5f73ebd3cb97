// The conformance suite's actor: a separate program (started with exec, so
// it maps segments at addresses of its own) that does one thing to a
// segment through the adapter and reports on stdout. Built per adapter by
// shmconf_add_implementation, like the tests.
//
//   actor SEGMENT read-array NAME N          prints the N elements, one per line
//   actor SEGMENT write-array NAME N K       writes element i = i * K
//   actor SEGMENT produce KIND NAME ID COUNT pushes (ID << 32 | i) for i < COUNT
//   actor SEGMENT consume KIND NAME COUNT    pops COUNT elements (waiting), prints each
//   actor SEGMENT attach-and-wait            attaches, prints "attached", sleeps
//   actor SEGMENT race-create BYTES          create-only: prints "created" (then stays
//                                            attached until killed) or the error category
//   actor SEGMENT race-make NAME SLOT        find-or-create array NAME (8 elements), sets
//                                            element SLOT to 1, prints the array's size
//   actor SEGMENT try-open                   open-only: prints "opened" or the error category
//   actor SEGMENT attach-until-eof           attaches, prints "attached", detaches at EOF on stdin
//   actor SEGMENT try-push KIND NAME VALUE   one try_push: prints "pushed", "full" or the error category
// KIND: queue, spsc_queue, mpmc_queue, stack, concurrent_stack.
// Exit status 0 on success, 1 with a message on stderr otherwise.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include <unistd.h>

#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

namespace {

using impl = SHMCONF_ADAPTER;

template <class S>
int produce(typename impl::segment& seg, const std::string& name, std::uint64_t id, std::uint64_t count) {
    S s = impl::template find<S>(seg, name);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (std::uint64_t i = 0; i < count; ++i)
        while (!s.try_push((id << 32) | i)) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "actor: push %llu never found room\n",
                             static_cast<unsigned long long>(i));
                return 1;
            }
            std::this_thread::yield();
        }
    return 0;
}

template <class S>
int consume(typename impl::segment& seg, const std::string& name, std::uint64_t count) {
    S s = impl::template find<S>(seg, name);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (std::uint64_t got = 0; got < count;) {
        if (const std::optional<std::uint64_t> v = s.try_pop()) {
            std::printf("%llu\n", static_cast<unsigned long long>(*v));
            ++got;
        } else if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "actor: only %llu of %llu elements came\n",
                         static_cast<unsigned long long>(got), static_cast<unsigned long long>(count));
            return 1;
        } else {
            std::this_thread::yield();
        }
    }
    return 0;
}

template <template <class> class Op>
int with_kind(const std::string& kind, auto&&... args) {
    if (kind == "queue" && impl::caps.queue)
        return Op<typename impl::template queue<std::uint64_t>>::run(args...);
    if (kind == "spsc_queue" && impl::caps.spsc_queue)
        return Op<typename impl::template spsc_queue<std::uint64_t>>::run(args...);
    if (kind == "mpmc_queue" && impl::caps.mpmc_queue)
        return Op<typename impl::template mpmc_queue<std::uint64_t>>::run(args...);
    if (kind == "stack" && impl::caps.stack)
        return Op<typename impl::template stack<std::uint64_t>>::run(args...);
    if (kind == "concurrent_stack" && impl::caps.concurrent_stack)
        return Op<typename impl::template concurrent_stack<std::uint64_t>>::run(args...);
    std::fprintf(stderr, "actor: no structure kind '%s' here\n", kind.c_str());
    return 1;
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
struct producing {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t id,
                   std::uint64_t count) {
        return produce<S>(seg, name, id, count);
    }
};
template <class S>
struct consuming {
    static int run(typename impl::segment& seg, const std::string& name, std::uint64_t count) {
        return consume<S>(seg, name, count);
    }
};

int act(int argc, char** argv) {
    if (argc < 3) return 2;
    const std::string segment_name = argv[1], what = argv[2];
    auto arg = [&](int i) { return i < argc ? std::string(argv[i]) : std::string(); };
    auto number = [&](int i) { return std::strtoull(arg(i).c_str(), nullptr, 10); };
    if (what == "race-create" || what == "try-open") {
        // Stays attached (until killed) after creating, so that the racers
        // that come later find the segment still there.
        std::optional<typename impl::segment> kept;
        const auto category = shmconf::category_of<impl>([&] {
            if (what == "race-create")
                kept.emplace(impl::create(segment_name, number(3)));
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
    auto seg = impl::open(segment_name);
    if (what == "race-make") {
        auto a = impl::template make<typename impl::template array<std::uint64_t>>(seg, arg(3), 8);
        a.at(number(4)) = 1;
        std::printf("%zu\n", static_cast<std::size_t>(a.size()));
        return 0;
    }
    if (what == "read-array") {
        auto a = impl::template find<typename impl::template array<std::uint64_t>>(seg, arg(3));
        for (std::uint64_t i = 0; i < number(4); ++i)
            std::printf("%llu\n", static_cast<unsigned long long>(a.at(i)));
        return 0;
    }
    if (what == "write-array") {
        auto a = impl::template find<typename impl::template array<std::uint64_t>>(seg, arg(3));
        for (std::uint64_t i = 0; i < number(4); ++i) a.at(i) = i * number(5);
        return 0;
    }
    if (what == "try-push") return with_kind<pushing_once>(arg(3), seg, arg(4), number(5));
    if (what == "attach-until-eof") {
        std::printf("attached\n");
        std::fflush(stdout);
        char c;
        while (::read(STDIN_FILENO, &c, 1) > 0) {
        }
        return 0;  // the segment handle detaches on the way out
    }
    if (what == "produce") return with_kind<producing>(arg(3), seg, arg(4), number(5), number(6));
    if (what == "consume") return with_kind<consuming>(arg(3), seg, arg(4), number(5));
    if (what == "attach-and-wait") {
        std::printf("attached\n");
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::seconds(60));
        return 0;
    }
    std::fprintf(stderr, "actor: unknown action '%s'\n", what.c_str());
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return act(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "actor: %s (%s)\n", e.what(),
                     shmconf::to_string(impl::categorize(std::current_exception())));
        return 1;
    }
}
