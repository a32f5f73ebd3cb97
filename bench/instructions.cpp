// bench/instructions.cpp: fixed amounts of single-process work whose
// instruction counts (under valgrind's callgrind) do not move with machine
// load, for the deterministic regression gate (scripts/count-instructions).
//
//   shmds_instructions --list          the measurement names, one per line
//   shmds_instructions --run NAME      sets up NAME, then runs its work inside
//                                      shmds_measure() (callgrind collects
//                                      only there: --toggle-collect=shmds_measure)
//   shmds_instructions --ops NAME      how many operations that work is
//
// Each measurement is `operations` repetitions of one operation (an element
// access, a push+pop, a poll of an empty structure, a lookup, ...), so
// instructions / operations is the cost of one.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <unistd.h>

#include <shmds/shmds.hpp>

#include "adapters/shm_ring_channel.hpp"
#include "adapters/shmds_channels.hpp"

namespace {

constexpr std::uint64_t operations = 10'000;

std::string segment_name() {
    return "/shmds-instr-" + std::to_string(::getpid());
}

/// Keeps a value alive without costing instructions of its own.
template <class T>
void keep(const T& value) {
    asm volatile("" : : "r,m"(value) : "memory");
}

struct measurement {
    std::function<std::function<void()>(shmds::posix_shm&)> setup;  ///< returns the work
};

/// try_push, then try_pop: into a variable (`try_pop(T&)`, the form for
/// loops) or, with `as_optional`, returning a std::optional. The handle is
/// reached through a local reference: through the closure's shared_ptr,
/// the compiler reloaded the pointer after every store into the segment
/// (it may alias the closure, as far as it knows), one instruction a call
/// that a user's loop over a local handle does not pay.
/// A message of `bytes` sent with try_send and received into a buffer, or
/// (with `in_place`) written into a write loan and read through a peek.
measurement message_send_receive(std::size_t bytes, bool in_place) {
    return {[bytes, in_place](shmds::posix_shm& seg) -> std::function<void()> {
        auto q = std::make_shared<shmds::shm_message_queue>(seg, "m", 4096, 256);
        auto buffer = std::make_shared<std::vector<std::byte>>(256, std::byte{1});
        (void)q->try_send({buffer->data(), bytes});  // takes its roles, outside the count
        (void)q->try_receive(*buffer);
        return [q, buffer, bytes, in_place] {
            shmds::shm_message_queue& queue = *q;
            std::byte* const data = buffer->data();
            for (std::uint64_t i = 0; i < operations; ++i) {
                if (in_place) {
                    auto loan = queue.try_reserve(bytes);
                    std::memcpy(loan.data(), data, bytes);
                    loan.commit();
                    auto front = queue.try_peek();
                    keep(front.data()[0]);
                    front.release();
                } else {
                    (void)queue.try_send({data, bytes});
                    keep(queue.try_receive({data, 256}));
                }
            }
        };
    }};
}

template <class Structure>
measurement push_pop(bool as_optional = false) {
    return {[as_optional](shmds::posix_shm& seg) -> std::function<void()> {
        auto s = std::make_shared<Structure>(seg, "s", 64);
        (void)s->try_push(0);  // takes its roles, outside the count
        (void)s->try_pop();
        if (as_optional)
            return [s] {
                Structure& q = *s;
                for (std::uint64_t i = 0; i < operations; ++i) {
                    (void)q.try_push(i);
                    keep(q.try_pop());
                }
            };
        return [s] {
            Structure& q = *s;
            std::uint64_t out = 0;
            for (std::uint64_t i = 0; i < operations; ++i) {
                (void)q.try_push(i);
                (void)q.try_pop(out);
                keep(out);
            }
        };
    }};
}

/// An element written in place and read in place: try_reserve, a store,
/// commit; try_peek, a load, release (the loans' counterpart of push_pop).
template <class Queue>
measurement loan_write_read() {
    return {[](shmds::posix_shm& seg) -> std::function<void()> {
        auto s = std::make_shared<Queue>(seg, "s", 64);
        (void)s->try_push(0);  // takes its roles, outside the count
        (void)s->try_pop();
        return [s] {
            Queue& q = *s;
            for (std::uint64_t i = 0; i < operations; ++i) {
                if (auto slot = q.try_reserve()) {
                    *slot = i;
                    slot.commit();
                }
                if (auto front = q.try_peek()) {
                    keep(*front);
                    front.release();
                }
            }
        };
    }};
}

template <class Queue>
measurement push_pop_batch() {
    return {[](shmds::posix_shm& seg) -> std::function<void()> {
        auto q = std::make_shared<Queue>(seg, "s", 128);
        (void)q->try_push(0);
        (void)q->try_pop();
        return [q] {
            std::uint64_t in[64], out[64];
            std::iota(in, in + 64, 0u);
            for (std::uint64_t i = 0; i < operations / 64; ++i) {
                keep(q->try_push_n(in, 64));
                keep(q->try_pop_n(out, 64));
            }
        };
    }};
}

/// try_pop on an empty structure, or the same with a zero timeout: a poll,
/// which must cost no more than try_pop (no announcement, no barrier).
template <class Structure>
measurement pop_empty(bool zero_timeout) {
    return {[zero_timeout](shmds::posix_shm& seg) -> std::function<void()> {
        auto s = std::make_shared<Structure>(seg, "s", 64);
        (void)s->try_push(0);  // takes its roles, outside the count
        (void)s->try_pop();
        if (zero_timeout)
            return [s] {
                for (std::uint64_t i = 0; i < operations; ++i)
                    keep(s->try_pop_for(std::chrono::nanoseconds::zero()));
            };
        return [s] {
            for (std::uint64_t i = 0; i < operations; ++i) keep(s->try_pop());
        };
    }};
}

/// One 8-byte message sent and received through a benchmark channel
/// (bench/adapters/), as the throughput workload does, with its 5 ms poll:
/// the project's queues beside the textbook rings that are their yardsticks
/// in the cross-process runs, through the same copies, so that the
/// difference is what the library adds (role and fork checks, blocking
/// waits, crash recovery, validation), counted rather than timed.
template <template <std::size_t> class Channel>
measurement channel_send_receive() {
    return {[](shmds::posix_shm&) -> std::function<void()> {
        shmds_bench::channel_config config;
        config.tag = "instr-" + std::to_string(::getpid());
        config.capacity = 64;
        auto channel = std::make_shared<Channel<8>>(config);
        auto sender = std::make_shared<decltype(channel->open_sender())>(channel->open_sender());
        auto receiver = std::make_shared<decltype(channel->open_receiver())>(channel->open_receiver());
        std::byte out[8] = {}, in[8];
        sender->send(out);  // takes its roles, outside the count
        (void)receiver->receive_for(in, std::chrono::milliseconds(5));
        return [channel, sender, receiver] {
            std::byte message[8] = {};
            for (std::uint64_t i = 0; i < operations; ++i) {
                std::memcpy(message, &i, sizeof i);
                sender->send(message);
                keep(receiver->receive_for(message, std::chrono::milliseconds(5)));
            }
        };
    }};
}

/// `operations` lookups by name (`look(segment, name)`) among 1,024
/// structures, in a scattered order.
template <class Look>
measurement lookup_among_1024(Look look) {
    return {[look](shmds::posix_shm& seg) -> std::function<void()> {
        for (int i = 0; i < 1024; ++i) shmds::shm_array<char> a(seg, "s" + std::to_string(i), 1);
        auto names = std::make_shared<std::vector<std::string>>();
        for (std::uint64_t i = 0; i < operations; ++i)
            names->push_back("s" + std::to_string((i * 7919) % 1024));
        return [&seg, names, look] {
            for (const auto& name : *names) look(seg, name);
        };
    }};
}

std::map<std::string, measurement> measurements() {
    std::map<std::string, measurement> m;
    // The loop around every per-operation measurement, with nothing in it:
    // what each row's figure includes besides the operation (3 on x86-64).
    m["measuring_loop"] = {[](shmds::posix_shm&) -> std::function<void()> {
        return [] {
            for (std::uint64_t i = 0; i < operations; ++i) keep(i);
        };
    }};
    m["array_sequential_read"] = {[](shmds::posix_shm& seg) -> std::function<void()> {
        auto a = std::make_shared<shmds::shm_array<std::uint64_t>>(seg, "a", operations);
        std::iota(a->begin(), a->end(), 0);
        return [a] {
            std::uint64_t sum = 0;
            for (std::uint64_t i = 0; i < operations; ++i) sum += (*a)[i];
            keep(sum);
        };
    }};
    m["array_random_write"] = {[](shmds::posix_shm& seg) -> std::function<void()> {
        auto a = std::make_shared<shmds::shm_array<std::uint64_t>>(seg, "a", operations);
        auto order = std::make_shared<std::vector<std::uint32_t>>(operations);
        for (std::uint64_t i = 0; i < operations; ++i)
            (*order)[i] = static_cast<std::uint32_t>((i * 7919) % operations);
        return [a, order] {
            for (std::uint32_t i : *order) (*a)[i] = i;
            keep(a->data());
        };
    }};
    m["array_at"] = {[](shmds::posix_shm& seg) -> std::function<void()> {
        auto a = std::make_shared<shmds::shm_array<std::uint64_t>>(seg, "a", operations);
        return [a] {
            std::uint64_t sum = 0;
            for (std::uint64_t i = 0; i < operations; ++i) sum += a->at(i);
            keep(sum);
        };
    }};
    m["queue_push_pop"] = push_pop<shmds::shm_queue<std::uint64_t>>();
    m["stack_push_pop"] = push_pop<shmds::shm_stack<std::uint64_t>>();
    m["spsc_push_pop"] = push_pop<shmds::shm_spsc_queue<std::uint64_t>>();
    m["spsc_push_pop_optional"] = push_pop<shmds::shm_spsc_queue<std::uint64_t>>(true);
    m["mpmc_push_pop"] = push_pop<shmds::shm_mpmc_queue<std::uint64_t>>();
    m["concurrent_stack_push_pop"] = push_pop<shmds::shm_concurrent_stack<std::uint64_t>>();
    m["spsc_try_pop_empty"] = pop_empty<shmds::shm_spsc_queue<std::uint64_t>>(false);
    m["spsc_poll_empty"] = pop_empty<shmds::shm_spsc_queue<std::uint64_t>>(true);
    m["mpmc_try_pop_empty"] = pop_empty<shmds::shm_mpmc_queue<std::uint64_t>>(false);
    m["mpmc_poll_empty"] = pop_empty<shmds::shm_mpmc_queue<std::uint64_t>>(true);
    m["concurrent_stack_try_pop_empty"] = pop_empty<shmds::shm_concurrent_stack<std::uint64_t>>(false);
    m["concurrent_stack_poll_empty"] = pop_empty<shmds::shm_concurrent_stack<std::uint64_t>>(true);
    m["channel_shmds_spsc"] = channel_send_receive<shmds_bench::shmds_spsc>();
    m["channel_shm_spsc_ring"] = channel_send_receive<shmds_bench::shm_spsc_ring>();
    m["channel_shmds_mpmc"] = channel_send_receive<shmds_bench::shmds_mpmc>();
    m["channel_shm_mpmc_ring"] = channel_send_receive<shmds_bench::shm_mpmc_ring>();
    m["spsc_batch_of_64"] = push_pop_batch<shmds::shm_spsc_queue<std::uint64_t>>();
    m["spsc_loan_write_read"] = loan_write_read<shmds::shm_spsc_queue<std::uint64_t>>();
    m["mpmc_loan_write_read"] = loan_write_read<shmds::shm_mpmc_queue<std::uint64_t>>();
    m["mpmc_batch_of_64"] = push_pop_batch<shmds::shm_mpmc_queue<std::uint64_t>>();
    m["message_send_receive_8"] = message_send_receive(8, false);
    m["message_loan_write_read_8"] = message_send_receive(8, true);
    m["table_find_among_1024"] = lookup_among_1024(
        [](shmds::posix_shm& seg, const std::string& name) { keep(seg.table().find(name)); });
    m["table_locate_among_1024"] = lookup_among_1024(
        [](shmds::posix_shm& seg, const std::string& name) { keep(seg.table().locate(name)); });
    m["table_create_destroy"] = {[](shmds::posix_shm& seg) -> std::function<void()> {
        return [&seg] {
            for (std::uint64_t i = 0; i < operations / 10; ++i) {
                { shmds::shm_array<char> a(seg, "new", 1); }
                seg.destroy("new");
            }
        };
    }};
    return m;
}

/// The operations each measurement's work counts (batches count elements).
std::uint64_t operations_of(const std::string& name) {
    return name == "table_create_destroy"            ? operations / 10
           : name.find("batch") != std::string::npos ? operations / 64 * 64
                                                     : operations;
}

}  // namespace

/// Callgrind collects inside this function only.
extern "C" [[gnu::noinline]] void shmds_measure(const std::function<void()>* work) {
    (*work)();
}

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    auto all = measurements();
    if (mode == "--list") {
        for (const auto& [name, m] : all) std::printf("%s\n", name.c_str());
        return 0;
    }
    if ((mode == "--run" || mode == "--ops") && argc > 2 && all.count(argv[2])) {
        if (mode == "--ops") {
            std::printf("%llu\n", static_cast<unsigned long long>(operations_of(argv[2])));
            return 0;
        }
        shmds::posix_shm seg(shmds::create_only, segment_name(), 8u << 20, {.table_capacity = 2048});
        const std::function<void()> work = all[argv[2]].setup(seg);
        work();  // once outside the count: first-touch page faults and lazy binding
        shmds_measure(&work);
        return 0;
    }
    std::fprintf(stderr, "usage: %s --list | --run NAME | --ops NAME\n", argv[0]);
    return 2;
}
