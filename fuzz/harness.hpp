// fuzz/harness.hpp: what the fuzz targets, their replay driver and the seed
// generator share: the element types the seeds use, a segment planted from
// raw bytes, a reader of operation bytes, and one routine per structure
// template that runs every non-blocking (or bounded) operation it has.
//
// Why: every byte of a segment can be written by another process, so the
// library must answer any contents with a shmds::error or std::system_error,
// or with correct behaviour; never a crash, a hang, an access outside the
// mapping or undefined behaviour. The targets feed it arbitrary contents and
// let the sanitizers and libFuzzer's timeout judge.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <shmds/shmds.hpp>

/// libFuzzer's entry point, defined by each target; the replay driver calls it.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace shmds_fuzz {

/// A 16-byte element aligned to 16: slots and strides differ from uint64_t's.
struct alignas(16) record {
    std::uint64_t key;
    std::uint64_t check;  ///< ~key when written by the seeds
};

/// Largest input worth running: segments in the seeds are at most this big,
/// and a small segment keeps each run fast (pass -max_len to libFuzzer).
inline constexpr std::size_t max_input_bytes = std::size_t{64} * 1024;

/// Every wait for "another process" (an unready state word, a held lock) ends
/// after this long, so a hostile state word costs a run milliseconds, not the
/// library's default of seconds.
inline constexpr std::chrono::milliseconds short_timeout{2};

/// The longest a bounded push or pop waits in the targets.
inline constexpr std::chrono::microseconds bounded_wait{5};

/// Most iterations of a "until full / until empty" loop: hostile capacities
/// are bounded by the segment, but a run should stay short.
inline constexpr int loop_bound = 40;

inline void ignore_notice(const std::string&) {}

/// Options for opening or creating segments inside the targets.
inline shmds::segment_options quiet_options(std::uint32_t table_capacity = 8, std::uint32_t alignment = 64) {
    shmds::segment_options options;
    options.table_capacity = table_capacity;
    options.alignment = alignment;
    options.timeout = short_timeout;
    options.notice = ignore_notice;
    return options;
}

/// Wait options that keep bounded waits short but still reach the futex.
inline shmds::wait_options wait_for_strategy(std::uint8_t which) {
    shmds::wait_options wait;
    wait.strategy = static_cast<shmds::wait_strategy>(which % 3);
    wait.spin_for = std::chrono::microseconds(5);
    wait.recheck_after = std::chrono::microseconds(50);
    return wait;
}

/// A segment name unique to this process and tag ("/shmds-fuzz-<pid>-<tag>").
inline std::string process_segment_name(std::string_view tag) {
    return "/shmds-fuzz-" + std::to_string(::getpid()) + "-" + std::string(tag);
}

/// A file under a segment name holding exactly the given bytes, held with a
/// shared flock as a live attacher would hold it (otherwise posix_shm would
/// rightly remove it as stale). The name is removed on destruction.
class planted_segment {
public:
    planted_segment(std::string name, const std::uint8_t* data, std::size_t size) : name_(std::move(name)) {
        ::shm_unlink(name_.c_str());  // a leftover of a run that crashed
        fd_ = ::shm_open(name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd_ < 0) return;
        std::size_t written = 0;
        while (written < size) {
            const ssize_t n = ::write(fd_, data + written, size - written);
            if (n <= 0) return;
            written += static_cast<std::size_t>(n);
        }
        ok_ = ::flock(fd_, LOCK_SH) == 0;
    }
    ~planted_segment() {
        if (fd_ >= 0) ::close(fd_);
        ::shm_unlink(name_.c_str());
    }
    planted_segment(const planted_segment&) = delete;
    planted_segment& operator=(const planted_segment&) = delete;

    /// False when the file could not be made (a failure of the machine, not
    /// of the library: the run is skipped).
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
    int fd_ = -1;
    bool ok_ = false;
};

/// Reads operation bytes from the input; zeros once it runs out.
class byte_reader {
public:
    byte_reader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}
    [[nodiscard]] bool done() const noexcept { return at_ >= size_; }
    std::uint8_t byte() noexcept { return at_ < size_ ? data_[at_++] : 0; }
    std::uint16_t u16() noexcept {
        const std::uint16_t low = byte();
        return static_cast<std::uint16_t>(low | (byte() << 8));
    }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

/// Runs `step`; an error the library documents (shmds::error, including
/// corrupted, timeout, empty and full; std::system_error) is an acceptable
/// answer to hostile bytes. Anything else escapes and is a finding.
/// SHMDS_FUZZ_VERBOSE=1 in the environment prints each such error (to see
/// how far an input gets).
template <class Step>
bool attempt(Step&& step) {
    static const bool verbose = std::getenv("SHMDS_FUZZ_VERBOSE") != nullptr;
    try {
        step();
        return true;
    } catch (const shmds::error& e) {
        if (verbose) std::fprintf(stderr, "  %s\n", e.what());
    } catch (const std::system_error& e) {
        if (verbose) std::fprintf(stderr, "  %s\n", e.what());
    }
    return false;
}

// ---- element values -------------------------------------------------------------------------

template <class T>
T value_of(std::uint64_t n) {
    if constexpr (std::is_same_v<T, record>)
        return record{n, ~n};
    else
        return static_cast<T>(n);
}

/// Folds an element into a number so that reads are not optimised away.
template <class T>
std::uint64_t digest(const T& value) {
    if constexpr (std::is_same_v<T, record>)
        return value.key ^ value.check;
    else
        return static_cast<std::uint64_t>(value);
}

/// Sink for digests: a volatile store the optimiser must keep.
inline volatile std::uint64_t digest_sink = 0;

// ---- one operation per call, per structure --------------------------------------------------
//
// Each run_op overload executes operation `op` (taken modulo the structure's
// op_count) with argument `arg` on an opened handle; the handle's type picks
// the overload, so code that holds a handle of any kind calls run_op and
// op_count without naming the kind. The blocking push()/pop() of the
// concurrent structures wait for ever by contract, so they are run through
// their bounded forms (the same slow path with a deadline).

inline constexpr int array_ops = 5;
inline constexpr int bounded_ops = 9;  // shm_queue, shm_stack
inline constexpr int spsc_ops = 13;
inline constexpr int mpmc_ops = 13;
inline constexpr int concurrent_stack_ops = 8;
inline constexpr int message_queue_ops = 12;

// The number of operations of each structure template: an overload per
// template, so a template without one (a new kind) does not compile.
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_array<T>>) {
    return array_ops;
}
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_queue<T>>) {
    return bounded_ops;
}
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_stack<T>>) {
    return bounded_ops;
}
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_spsc_queue<T>>) {
    return spsc_ops;
}
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_mpmc_queue<T>>) {
    return mpmc_ops;
}
template <class T>
constexpr int op_count(std::type_identity<shmds::shm_concurrent_stack<T>>) {
    return concurrent_stack_ops;
}

constexpr int op_count(std::type_identity<shmds::shm_message_queue>) {
    return message_queue_ops;
}

template <class T>
void run_op(shmds::shm_array<T>& a, int op, std::uint8_t arg) {
    if (a.empty()) return;
    switch (op % array_ops) {
        case 0: {
            std::uint64_t sum = 0;
            for (const T& value : a) sum += digest(value);
            digest_sink = sum + a.span().size();
            break;
        }
        case 1:
            a[arg % a.size()] = value_of<T>(arg);
            break;
        case 2:
            digest_sink = digest(a.at(arg % a.size()));
            break;
        case 3:
            digest_sink = digest(a.front()) ^ digest(a.back());
            break;
        default:
            a.fill(value_of<T>(arg));
            break;
    }
}

/// shm_queue and shm_stack: `peek` is front() or top().
template <class Bounded, class Peek>
void run_bounded_op(Bounded& s, int op, std::uint8_t arg, Peek&& peek) {
    using T = typename Bounded::value_type;
    switch (op % bounded_ops) {
        case 0:
            (void)s.try_push(value_of<T>(arg));
            break;
        case 1:
            s.push(value_of<T>(arg));
            break;
        case 2:
            if (auto v = s.try_pop()) digest_sink = digest(*v);
            break;
        case 3:
            digest_sink = digest(s.pop());
            break;
        case 4:
            digest_sink = digest(peek(s));
            break;
        case 5:
            digest_sink = s.size() + s.capacity() + s.empty() + s.full();
            break;
        case 6:
            s.clear();
            break;
        case 7:
            for (int i = 0; i < loop_bound && s.try_push(value_of<T>(arg + i)); ++i) {
            }
            break;
        default:
            for (int i = 0; i < loop_bound && s.try_pop(); ++i) {
            }
            break;
    }
}

template <class T>
void run_op(shmds::shm_queue<T>& q, int op, std::uint8_t arg) {
    run_bounded_op(q, op, arg, [](auto& s) -> T { return s.front(); });
}

template <class T>
void run_op(shmds::shm_stack<T>& s, int op, std::uint8_t arg) {
    run_bounded_op(s, op, arg, [](auto& st) -> T { return st.top(); });
}

/// shm_spsc_queue and shm_mpmc_queue share their interface but for the way
/// a handle gives up its part: release_roles() or leave().
template <class Queue, class Leave>
void run_lock_free_queue_op(Queue& q, int op, std::uint8_t arg, Leave&& leave) {
    using T = typename Queue::value_type;
    std::array<T, 6> items{};
    switch (op % spsc_ops) {
        case 0:
            (void)q.try_push(value_of<T>(arg));
            break;
        case 1:
            for (std::size_t i = 0; i < items.size(); ++i) items[i] = value_of<T>(arg + i);
            (void)q.try_push_n(items.data(), arg % (items.size() + 1));
            break;
        case 2:
            (void)q.try_push_for(value_of<T>(arg), bounded_wait);
            break;
        case 3:
            if (auto v = q.try_pop()) digest_sink = digest(*v);
            break;
        case 4:
            if (std::size_t n = q.try_pop_n(items.data(), arg % (items.size() + 1)); n != 0)
                digest_sink = digest(items[n - 1]);
            break;
        case 5:
            if (auto v = q.try_pop_for(bounded_wait)) digest_sink = digest(*v);
            break;
        case 6:
            digest_sink = shmds::element_count(q) + q.capacity() + q.empty() + q.full();
            break;
        case 7:
            leave(q);
            break;
        case 8:
            q.set_wait_options(wait_for_strategy(arg));
            break;
        case 9:
            for (int i = 0; i < loop_bound && q.try_push(value_of<T>(arg + i)); ++i) {
            }
            break;
        case 11: {  // up to six slots lent, written in place, some committed (the rest dropped)
            auto loan = q.try_reserve_n(arg % 7);
            for (std::size_t i = 0; i < loan.size(); ++i) loan[i] = value_of<T>(arg + i);
            if (arg & 0x80) loan.commit(arg % (loan.size() + 1));
            break;
        }
        case 12: {  // up to six elements lent, read in place, released (or the loan dropped)
            auto loan = q.try_peek_n(arg % 7);
            for (std::size_t i = 0; i < loan.size(); ++i) digest_sink = digest(loan[i]);
            if constexpr (requires { loan.release(std::size_t{0}); }) {
                if (arg & 0x80) loan.release(arg % (loan.size() + 1));
            } else {
                if (arg & 0x80) loan.release();
            }
            break;
        }
        default:
            for (int i = 0; i < loop_bound && q.try_pop(); ++i) {
            }
            break;
    }
}

template <class T>
void run_op(shmds::shm_spsc_queue<T>& q, int op, std::uint8_t arg) {
    run_lock_free_queue_op(q, op, arg, [](auto& h) { h.release_roles(); });
}

template <class T>
void run_op(shmds::shm_mpmc_queue<T>& q, int op, std::uint8_t arg) {
    run_lock_free_queue_op(q, op, arg, [](auto& h) { h.leave(); });
}

template <class T>
void run_op(shmds::shm_concurrent_stack<T>& s, int op, std::uint8_t arg) {
    switch (op % concurrent_stack_ops) {
        case 0:
            (void)s.try_push(value_of<T>(arg));
            break;
        case 1:
            (void)s.try_push_for(value_of<T>(arg), bounded_wait);
            break;
        case 2:
            if (auto v = s.try_pop()) digest_sink = digest(*v);
            break;
        case 3:
            if (auto v = s.try_pop_for(bounded_wait)) digest_sink = digest(*v);
            break;
        case 4:
            digest_sink = s.size() + s.capacity() + s.empty() + s.full() + s.lock_recoveries();
            break;
        case 5:
            s.set_wait_options(wait_for_strategy(arg));
            break;
        case 6:
            for (int i = 0; i < loop_bound && s.try_push(value_of<T>(arg + i)); ++i) {
            }
            break;
        default:
            for (int i = 0; i < loop_bound && s.try_pop(); ++i) {
            }
            break;
    }
}

/// The message queue: messages of arg % (largest + 1) bytes, sent, lent,
/// received into buffers of every size and peeked.
inline void run_op(shmds::shm_message_queue& q, int op, std::uint8_t arg) {
    std::array<std::byte, 256> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(arg + i);
    const std::size_t length = std::min<std::size_t>(arg % (q.max_message_size() + 1), bytes.size());
    const std::span<const std::byte> message(bytes.data(), length);
    switch (op % message_queue_ops) {
        case 0:
            (void)q.try_send(message);
            break;
        case 1:
            (void)q.try_send_for(message, bounded_wait);
            break;
        case 2: {  // a buffer of any size: too small is an error that leaves the message
            std::array<std::byte, 256> out{};
            if (auto n = q.try_receive(std::span(out.data(), arg % out.size()))) digest_sink = *n;
            break;
        }
        case 3:
            if (auto m = q.try_receive()) digest_sink = m->size();
            break;
        case 4: {
            std::array<std::byte, 256> out{};
            if (auto n = q.try_receive_for(out, bounded_wait)) digest_sink = *n;
            break;
        }
        case 5: {  // lent, written in place, committed short (or dropped)
            auto loan = q.try_reserve(length);
            for (std::size_t i = 0; i < loan.size(); ++i) loan.data()[i] = bytes[i];
            if (loan && (arg & 0x80)) loan.commit(arg % (loan.size() + 1));
            break;
        }
        case 6: {  // read in place, released (or dropped)
            auto loan = q.try_peek_for(bounded_wait);
            for (const std::byte b : loan.bytes()) digest_sink = static_cast<std::uint64_t>(b);
            if (loan && (arg & 0x80)) loan.release();
            break;
        }
        case 7:
            digest_sink = q.size_bytes() + q.capacity() + q.max_message_size() + q.empty();
            break;
        case 8:
            q.release_roles();
            break;
        case 9:
            q.set_wait_options(wait_for_strategy(arg));
            break;
        case 10:
            for (int i = 0; i < loop_bound && q.try_send(message); ++i) {
            }
            break;
        default:
            for (int i = 0; i < loop_bound && q.try_receive(); ++i) {
            }
            break;
    }
}

// ---- opening a handle -----------------------------------------------------------------------

/// Whether S's constructors take wait options last: the process-safe
/// structures, whose waits for another process the targets keep short.
template <class S>
inline constexpr bool takes_wait_options =
    std::is_constructible_v<S, shmds::open_only_t, shmds::posix_shm&, std::string_view, shmds::wait_options>;

/// Calls make(args..., wait_for_strategy(0)) when S takes wait options, else
/// make(args...): given open_only, segment, name (or create_only, segment,
/// name, capacity), the arguments with which the targets construct a handle
/// of S. A callback rather than a returned handle, so the caller constructs
/// it in place (a local, an optional's emplace) and no handle is moved.
template <class S, class Make, class... Args>
decltype(auto) with_handle_arguments(Make&& make, Args&&... args) {
    if constexpr (takes_wait_options<S>)
        return make(std::forward<Args>(args)..., wait_for_strategy(0));
    else
        return make(std::forward<Args>(args)...);
}

/// A message queue made for `capacity` elements has a ring of 16 bytes an
/// element and takes messages of up to 8 bytes: `capacity` 8-byte messages.
inline constexpr std::size_t message_ring_bytes_per_element = 16;
inline constexpr std::size_t message_largest = 8;

/// As with_handle_arguments(make, create_only, seg, name, capacity), with the
/// largest message after the capacity for the message queue.
template <class S, class Make>
decltype(auto) with_creation_arguments(Make&& make, shmds::posix_shm& seg, std::string_view name,
                                       std::size_t capacity) {
    if constexpr (std::is_same_v<S, shmds::shm_message_queue>)
        return with_handle_arguments<S>(std::forward<Make>(make), shmds::create_only, seg, name,
                                        capacity * message_ring_bytes_per_element, message_largest);
    else
        return with_handle_arguments<S>(std::forward<Make>(make), shmds::create_only, seg, name, capacity);
}

// ---- a structure found in a table -----------------------------------------------------------

struct operation {
    int op;
    std::uint8_t arg;
};

/// Number of operations of a kind (the largest op_count, spsc_ops, for kinds
/// not known).
inline int ops_of(shmds::structure_kind kind) {
    if (!shmds::is_known_kind(static_cast<std::uint32_t>(kind))) return spsc_ops;
    return shmds::visit_structure_type<std::uint64_t>(kind, [](auto type) { return op_count(type); });
}

/// Opens the structure `info` describes as its kind with element type T and
/// runs `ops` operations, the i-th being next(i). Every operation is
/// attempted separately, so one error does not hide the rest. A kind not
/// known is not opened at all (no template to open it with).
template <class T, class OpSource>
void open_and_run(shmds::posix_shm& seg, const shmds::structure_info& info, int ops, OpSource&& next) {
    if (!shmds::is_known_kind(static_cast<std::uint32_t>(info.kind))) return;
    attempt([&] {
        shmds::visit_structure_type<T>(info.kind, [&]<class S>(std::type_identity<S>) {
            auto open_and_run_all = [&](auto&&... args) {
                S handle(args...);
                for (int i = 0; i < ops; ++i) {
                    const operation o = next(i);
                    attempt([&] { run_op(handle, o.op, o.arg); });
                }
            };
            with_handle_arguments<S>(open_and_run_all, shmds::open_only, seg, info.name);
        });
    });
}

/// Opens `info` with the seeds' element type its fingerprint names (uint64_t
/// for anything else, which the table must refuse) and runs the operations.
template <class OpSource>
void open_and_run_any(shmds::posix_shm& seg, const shmds::structure_info& info, int ops, OpSource&& next) {
    if (info.type_hash == shmds::fingerprint_of<std::uint8_t>().name_hash)
        open_and_run<std::uint8_t>(seg, info, ops, next);
    else if (info.type_hash == shmds::fingerprint_of<record>().name_hash)
        open_and_run<record>(seg, info, ops, next);
    else
        open_and_run<std::uint64_t>(seg, info, ops, next);
}

}  // namespace shmds_fuzz

// ---- the command language of fuzz_structures ------------------------------------------------
//
// An input of fuzz_structures is a sequence of commands. A command byte c
// names a target (c % target_count) and an operation (c / target_count);
// with S = structure_count (one target per kind):
//   target 0 to S-1   structure_names[target]: operation < model_ops is checked
//                against a model while the structure is untouched by pokes;
//                operation >= model_ops runs run_op(operation - model_ops)
//                (and ends the model). Followed by one argument byte.
//   target S     a table operation (table_op), followed by one argument byte.
//   target S+1   a poke: region byte (% (S + 1): a structure's block, or S,
//                the table lock and bookkeeping through the index), a 16-bit
//                offset into the region, a length byte (1 + length % 32),
//                then that many bytes written there.
namespace shmds_fuzz::structures_script {

/// Target s is the structure of kind number s + 1: the order of
/// shmds::structure_kinds and shmds::structure_types.
inline constexpr int structure_count = 7;
inline constexpr const char* structure_names[structure_count] = {"array", "queue",  "stack",   "spsc",
                                                                 "mpmc",  "cstack", "messages"};
/// Elements (for the message queue: 8-byte messages, with_creation_arguments).
inline constexpr std::uint64_t capacities[structure_count] = {16, 8, 8, 8, 8, 8, 8};
inline constexpr int table_target = structure_count;
inline constexpr int poke_target = structure_count + 1;
inline constexpr int target_count = structure_count + 2;
inline constexpr int table_region = structure_count;

/// Model-checked operations on an untouched structure.
enum model_op : int { model_push = 0, model_pop = 1, model_size = 2, model_ops = 3 };

enum table_op : int {
    table_list = 0,
    table_counts = 1,
    table_destroy_and_recreate = 2,
    table_reopen = 3,
    table_create_and_destroy_extra = 4,
    table_missing_names = 5,
    table_ops = 6,
};

inline std::uint8_t command(int target, int op) {
    return static_cast<std::uint8_t>(op * target_count + target);
}

}  // namespace shmds_fuzz::structures_script
