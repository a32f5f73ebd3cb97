// shmds/shm_message_queue.hpp: a bounded queue of variable-length byte
// messages for one producer and one consumer, in different processes (or
// threads), found or created by name.
//
// (Longer than the project's 450-line limit: the record format, the two
// loans, the waiting forms and the checks of every header a consumer reads
// share one invariant, the positions and the records between them, and are
// kept in one file so that it can be checked whole; the shared layout is the
// short first part.)
//
// Shared state (all in the segment; offsets only):
//   tail       bytes published so far (a 64-bit position that never wraps in
//              practice); written by the producer only, on its own 128-byte pair
//   head       bytes freed so far; written by the consumer only, on its own pair
//   not_empty, not_full   wait channels (futex words) for blocking calls
//   capacity   the ring's size in bytes (a multiple of 8), immutable
//   max_message   the largest message, in bytes, immutable (chosen at creation)
//   the ring   `capacity` bytes of records. The byte at position p lives at
//              ring offset p % capacity.
// A record is an 8-byte header {length, type} and the message's bytes, padded
// to a multiple of 8, so that every header is aligned and every message
// starts 8-byte aligned. A record is never split across the end of the ring:
// one that does not fit before the end is written at offset 0, and a `wrap`
// header at the old offset tells the consumer to skip to the start. The
// producer writes the record (and the wrap header), then stores tail with
// release; the consumer loads tail with acquire before it reads any header,
// so a record is published whole or not at all, by one store. Each side
// caches the other's position and reads it again only when the cache says
// full (producer) or empty (consumer).
//
// Invariants: head <= tail <= head + capacity; both are multiples of 8; every
// record between them is whole. A message of max_message bytes always fits
// once the queue has drained: capacity >= 2 x record_bytes(max_message), so
// either the bytes before the end or those after the start hold it.
//
// Loans. try_reserve(bytes) lends the producer the space of the next record
// to write in place; commit(used) writes its header and publishes it as
// try_send would, with one store of tail. try_peek() lends the consumer the
// front message to read in place; release() frees it with one store of head.
// Neither moves a shared word before it ends, so a crash mid-loan is a crash
// before the send or receive began. A handle has at most one loan a side.
//
// Roles. The first send or reservation through a handle takes the producer
// role, the first receive or peek the consumer role: kernel locks, as the
// SPSC queue's (participants.hpp), released when the handle is destroyed or
// its process dies; a second live handle that tries a held role gets
// role_error.
//
// Crashes. A producer killed mid-send (or holding a loan) loses only that
// message: tail was not stored, and its successor writes from the stored
// tail. A consumer killed mid-receive (or holding a peek) loses nothing: head
// was not stored, and the message is delivered to the next consumer.
//
// Hostile writers. Every header is read once into a local and checked before
// use: its type, its length against max_message, its record against the end
// of the ring and against the published bytes. Positions read from shared
// memory are checked against each other and for alignment. A damaged queue
// throws corrupted_error naming the field; nothing reads or writes outside
// the ring.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/blocking_handle.hpp"
#include "shmds/detail/durations.hpp"
#include "shmds/detail/fault.hpp"
#include "shmds/detail/participants.hpp"
#include "shmds/detail/structure.hpp"
#include "shmds/detail/waiting.hpp"

namespace shmds {

namespace detail {

struct message_control {
    alignas(false_sharing_range) detail::atomic<std::uint64_t> tail;  ///< producer's: bytes published
    alignas(false_sharing_range) detail::atomic<std::uint64_t> head;  ///< consumer's: bytes freed
    alignas(false_sharing_range) wait_channel not_empty;              ///< the consumer sleeps here
    alignas(false_sharing_range) wait_channel not_full;               ///< the producer sleeps here
    alignas(false_sharing_range) std::uint64_t capacity;              ///< ring bytes; immutable
    std::uint64_t max_message;                                        ///< largest message in bytes; immutable
    detail::atomic<std::int32_t> producer_pid;                        ///< for messages only
    detail::atomic<std::int32_t> consumer_pid;
};

static_assert(offsetof(message_control, head) - offsetof(message_control, tail) >= false_sharing_range,
              "producer and consumer positions must not share a cache-line pair");
static_assert(offsetof(message_control, not_empty) - offsetof(message_control, head) >= false_sharing_range,
              "the wait channels must not share the positions' lines");
static_assert(detail::atomic<std::uint64_t>::is_always_lock_free &&
                  sizeof(detail::atomic<std::uint64_t>) == 8,
              "positions are plain 64-bit words shared between processes");
static_assert(std::is_standard_layout_v<message_control>, "the control block is shared bytes");

/// Record header types: arbitrary 32-bit values, so that zeros or a stray
/// message byte are not taken for a header.
inline constexpr std::uint32_t record_message = 0x4753'4d31;  // "1MSG"
inline constexpr std::uint32_t record_wrap = 0x5041'5257;     // "WRAP": the rest of the ring is skipped
/// Bytes of a record's header; records and messages are aligned to it.
inline constexpr std::uint64_t record_header_bytes = 8;
/// The largest message any queue accepts (a header's length is 32 bits).
inline constexpr std::uint64_t message_length_limit = 0xffff'ff00u;

/// Bytes of the record holding a message of `length` bytes.
constexpr std::uint64_t record_bytes(std::uint64_t length) noexcept {
    return record_header_bytes +
           (length + record_header_bytes - 1) / record_header_bytes * record_header_bytes;
}

/// A header as one 64-bit word: length in the low half, type in the high.
constexpr std::uint64_t header_word(std::uint32_t type, std::uint64_t length) noexcept {
    return static_cast<std::uint64_t>(type) << 32 | length;
}

struct message_layout : control_then_elements<message_control, std::byte> {
    static constexpr structure_kind kind = structure_kind::message_queue;
    using base = control_then_elements<message_control, std::byte>;
    static_assert(elements_offset % record_header_bytes == 0, "the ring starts aligned for its headers");

    static std::optional<std::size_t> bytes_for(std::uint64_t capacity) noexcept {
        return base::bytes_for(capacity);
    }
    static void initialise(std::byte* block, std::uint64_t capacity, std::uint64_t max_message) noexcept {
        control(block)->capacity = capacity;
        control(block)->max_message = max_message;
    }

    /// Why a ring of `capacity` bytes cannot take messages of up to
    /// `max_message` bytes ("" when it can).
    static std::string sizes_refused(std::uint64_t capacity, std::uint64_t max_message) {
        if (max_message > message_length_limit)
            return "a largest message of " + std::to_string(max_message) + " bytes is over the limit of " +
                   std::to_string(message_length_limit);
        if (capacity % record_header_bytes != 0)
            return "a capacity of " + std::to_string(capacity) + " bytes is not a multiple of " +
                   std::to_string(record_header_bytes);
        if (capacity / 2 < record_bytes(max_message))
            return "a capacity of " + std::to_string(capacity) +
                   " bytes is less than twice the record of a " + std::to_string(max_message) +
                   "-byte message (" + std::to_string(record_bytes(max_message)) +
                   " bytes: an 8-byte header, the message padded to 8)";
        return {};
    }

    /// Checked at open (see blocking_handle.hpp): the sizes, and the
    /// positions against each other.
    static std::string damage(message_control& control, std::uint64_t capacity) {
        const std::uint64_t max_message = read_once(control.max_message);
        if (std::string why = sizes_refused(capacity, max_message); !why.empty())
            return "its control block records " + why;
        const std::uint64_t tail = control.tail.load(std::memory_order_acquire);
        const std::uint64_t head = control.head.load(std::memory_order_acquire);
        return describe_positions(head, tail, capacity);
    }
    /// Why head and tail are not a valid pair ("" when they are). The tail is
    /// read first, so a healthy head read after it is at most a ring ahead.
    static std::string describe_positions(std::uint64_t head, std::uint64_t tail, std::uint64_t capacity) {
        if (head % record_header_bytes != 0 || tail % record_header_bytes != 0)
            return "its head position " + std::to_string(head) + " or tail position " + std::to_string(tail) +
                   " is not a multiple of " + std::to_string(record_header_bytes);
        if (tail - head > capacity && head - tail > capacity)
            return "its head position " + std::to_string(head) + " and tail position " +
                   std::to_string(tail) + " are more than its capacity " + std::to_string(capacity) +
                   " bytes apart";
        return {};
    }
};

}  // namespace detail

/// A bounded queue of byte messages of 0 to max_message_size() bytes each,
/// for one producer and one consumer. Not a template: its table entry
/// records std::byte elements, and capacity() counts bytes of the ring.
class shm_message_queue
    : private detail::blocking_handle<shm_message_queue, std::byte, detail::message_layout> {
    using layout = detail::message_layout;
    using handle = detail::blocking_handle<shm_message_queue, std::byte, layout>;
    friend handle;

public:
    /// The kind a table entry records for this structure (structure_kind.hpp).
    static constexpr structure_kind kind = layout::kind;
    using value_type = std::byte;

    /// Finds the queue `name` in `segment`, or creates it empty with a ring
    /// of `capacity` bytes for messages of up to `max_message` bytes.
    /// Throws invalid_argument_error (invalid_size) unless capacity is a
    /// multiple of 8 and at least twice record_bytes(max_message)
    /// (8 + max_message rounded up to 8); mismatch_error if `name` exists as
    /// another kind, capacity or largest message; out_of_space_error and
    /// corrupted_error as every structure does. Takes no role yet.
    shm_message_queue(posix_shm& segment, std::string_view name, std::size_t capacity,
                      std::size_t max_message, wait_options wait = {})
        : shm_message_queue(segment, name, open_mode::open_or_create, capacity, max_message, wait) {}
    /// Opens the existing queue `name`; not_found_error if absent.
    shm_message_queue(posix_shm& segment, std::string_view name)
        : shm_message_queue(segment, name, open_mode::open_only, 0, 0, {}) {}
    shm_message_queue(create_only_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                      std::size_t max_message, wait_options wait = {})
        : shm_message_queue(segment, name, open_mode::create_only, capacity, max_message, wait) {}
    shm_message_queue(open_only_t, posix_shm& segment, std::string_view name, wait_options wait = {})
        : shm_message_queue(segment, name, open_mode::open_only, 0, 0, wait) {}
    shm_message_queue(open_or_create_t, posix_shm& segment, std::string_view name, std::size_t capacity,
                      std::size_t max_message, wait_options wait = {})
        : shm_message_queue(segment, name, open_mode::open_or_create, capacity, max_message, wait) {}

    shm_message_queue(shm_message_queue&&) noexcept = default;
    /// (Not assignable: a role would have to change hands mid-assignment.)
    shm_message_queue& operator=(shm_message_queue&&) = delete;
    /// Releases the roles this handle holds. The handle keeps its segment's
    /// mapping for as long as it lives.
    ~shm_message_queue() { release_roles(); }

private:
    /// Where a record goes: its header's offset, and how far tail moves
    /// when it is published (the skipped end of the ring included).
    struct placement {
        std::uint64_t offset = 0, advance = 0;
        bool wraps = false;  ///< a wrap header goes at tail_offset_, the record at 0
        explicit operator bool() const noexcept { return advance != 0; }
    };
    /// The front record: its header's offset, its message's length, how far
    /// head moves when it is freed (a skipped end of the ring included), and
    /// the ring offset after it.
    struct front_record {
        std::uint64_t offset = 0, length = 0, advance = 0, next_offset = 0;
    };

public:
    using structure_identity::created;
    using structure_identity::name;
    using structure_identity::segment_name;
    /// How this handle's blocking calls wait from now on. This handle only.
    using handle::set_wait_options;

    /// The ring's size in bytes (headers and padding included).
    [[nodiscard]] std::size_t capacity() const noexcept { return static_cast<std::size_t>(capacity_); }
    /// The largest message this queue takes, in bytes (fixed at creation).
    [[nodiscard]] std::size_t max_message_size() const noexcept {
        return static_cast<std::size_t>(max_message_);
    }

    // ---- producer: one handle at a time, in any process ---------------------------------------

    /// Appends a copy of `message` unless there is no room for its record.
    /// Producer only (the first call takes the role; role_error if another
    /// live handle has it). Never blocks. invalid_argument_error
    /// (invalid_size) when message.size() > max_message_size(), before
    /// anything else.
    [[nodiscard]] bool try_send(std::span<const std::byte> message) {
        const placement at = place(message.size(), "try_send");
        if (!at) return false;
        if (!message.empty())  // (an empty span's data() may be null, which memcpy may not take)
            std::memcpy(ring_ + at.offset + detail::record_header_bytes, message.data(), message.size());
        publish(at, message.size());
        return true;
    }
    /// As try_send, waiting for room as the wait options say.
    void send(std::span<const std::byte> message) {
        if (!try_send(message)) [[unlikely]]
            wait_to_send(message, detail::forever);
    }
    /// As send, waiting at most `timeout`; false when the time ran out. A
    /// zero or negative timeout is exactly try_send.
    template <class Rep, class Period>
    [[nodiscard]] bool try_send_for(std::span<const std::byte> message,
                                    std::chrono::duration<Rep, Period> timeout) {
        return try_send(message) ||
               (!detail::is_poll(timeout) && wait_to_send(message, detail::bounded(timeout)));
    }

    /// The space of one message lent to the producer by try_reserve (or
    /// reserve, try_reserve_for): write the message in place, then commit().
    /// The bytes hold whatever they held before: write every byte that
    /// matters. Dropped (destroyed or assigned over) before commit(), it
    /// publishes nothing. Move-only; empty when nothing was lent.
    ///
    /// It must not outlive the queue handle that lent it, and the handle
    /// must not be moved while it is open. While it is open, the handle's
    /// other producer calls throw loan_error. A producer killed while it
    /// holds a loan loses that message and nothing else.
    class write_loan {
    public:
        write_loan() noexcept = default;
        write_loan(write_loan&& other) noexcept
            : queue_(other.queue_), at_(other.at_), size_(std::exchange(other.size_, npos)) {}
        write_loan& operator=(write_loan&& other) noexcept {
            if (this != &other) {
                drop();
                queue_ = other.queue_;
                at_ = other.at_;
                size_ = std::exchange(other.size_, npos);
            }
            return *this;
        }
        /// Publishes nothing that was not committed.
        ~write_loan() { drop(); }

        /// Whether space is lent (false: there was no room, or committed).
        explicit operator bool() const noexcept { return size_ != npos; }
        /// The bytes lent: as many as were reserved, 8-byte aligned, in the segment.
        [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data(), size()}; }
        /// Null for an empty loan (whose bytes() are empty).
        [[nodiscard]] std::byte* data() const noexcept {
            return size_ != npos ? queue_->ring_ + at_.offset + detail::record_header_bytes : nullptr;
        }
        [[nodiscard]] std::size_t size() const noexcept { return size_ == npos ? 0 : size_; }

        /// Publishes the first `used` bytes as one message (used <= size());
        /// the loan is empty afterwards. Never blocks. invalid_argument_error
        /// when used > size() (the loan stays open); role_error when the
        /// handle gave up the producer role or this is a forked child's copy
        /// (nothing published; the loan ends).
        void commit(std::size_t used) {
            if (size_ == npos || used > size_) [[unlikely]]
                detail::throw_beyond_loan("commit", used, size());
            size_ = npos;
            queue_->commit_lent(at_, used);
        }
        /// Publishes every byte lent as one message.
        void commit() { commit(size()); }

    private:
        friend shm_message_queue;
        static constexpr std::size_t npos = static_cast<std::size_t>(-1);
        write_loan(shm_message_queue* queue, placement at, std::size_t size) noexcept
            : queue_(queue), at_(at), size_(size) {}
        void drop() noexcept {
            if (size_ != npos) queue_->producer_lent_ = false;
            size_ = npos;
        }
        shm_message_queue* queue_ = nullptr;
        placement at_;
        std::size_t size_ = npos;  ///< npos: nothing lent (a loan may lend 0 bytes)
    };

    /// Lends the space of a `bytes`-byte message, or nothing when there is no
    /// room for its record. Producer only (the first call takes the role).
    /// Never blocks. invalid_argument_error (invalid_size) when bytes >
    /// max_message_size().
    [[nodiscard]] write_loan try_reserve(std::size_t bytes) {
        const placement at = place(bytes, "try_reserve");
        if (!at) return {};
        producer_lent_ = true;
        return write_loan(this, at, bytes);
    }
    /// As try_reserve, waiting for room as the wait options say.
    [[nodiscard]] write_loan reserve(std::size_t bytes) {
        write_loan loan = try_reserve(bytes);
        if (!loan) [[unlikely]]
            wait_until(control_->not_full, detail::forever,
                       [&] { return static_cast<bool>(loan = try_reserve(bytes)); });
        return loan;
    }
    /// As reserve, waiting at most `timeout`: an empty loan when the time ran out.
    template <class Rep, class Period>
    [[nodiscard]] write_loan try_reserve_for(std::size_t bytes, std::chrono::duration<Rep, Period> timeout) {
        write_loan loan = try_reserve(bytes);
        if (!loan && !detail::is_poll(timeout))
            wait_until(control_->not_full, detail::bounded(timeout),
                       [&] { return static_cast<bool>(loan = try_reserve(bytes)); });
        return loan;
    }

    // ---- consumer: one handle at a time, in any process ---------------------------------------

    /// The front message lent to the consumer by try_peek (or peek,
    /// try_peek_for), read in place; release() removes it. Dropped before
    /// release(), it leaves the message at the front. Move-only; empty when
    /// nothing was lent.
    ///
    /// It must not outlive the queue handle that lent it, and the handle
    /// must not be moved while it is open. While it is open, the handle's
    /// other consumer calls throw loan_error. A consumer killed while it
    /// holds one loses nothing: the message stays for the next consumer.
    class read_loan {
    public:
        read_loan() noexcept = default;
        read_loan(read_loan&& other) noexcept
            : queue_(other.queue_), front_(other.front_), lent_(std::exchange(other.lent_, false)) {}
        read_loan& operator=(read_loan&& other) noexcept {
            if (this != &other) {
                drop();
                queue_ = other.queue_;
                front_ = other.front_;
                lent_ = std::exchange(other.lent_, false);
            }
            return *this;
        }
        /// Leaves the message at the front unless released.
        ~read_loan() { drop(); }

        /// Whether a message is lent (false: the queue was empty, or released).
        explicit operator bool() const noexcept { return lent_; }
        /// The message, in the segment (8-byte aligned).
        [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data(), size()}; }
        /// Null for an empty loan (whose bytes() are empty).
        [[nodiscard]] const std::byte* data() const noexcept {
            return lent_ ? queue_->ring_ + front_.offset + detail::record_header_bytes : nullptr;
        }
        [[nodiscard]] std::size_t size() const noexcept { return lent_ ? front_.length : 0; }

        /// Removes the message; the loan is empty afterwards. Never blocks.
        /// invalid_argument_error on an empty loan; role_error (nothing
        /// removed) when the handle gave up the consumer role meanwhile or
        /// this is a forked child's copy.
        void release() {
            if (!lent_) [[unlikely]]
                detail::throw_beyond_loan("release", 1, 0);
            lent_ = false;
            queue_->free_front(front_);
        }

    private:
        friend shm_message_queue;
        void drop() noexcept {
            if (lent_) queue_->consumer_lent_ = false;
            lent_ = false;
        }
        shm_message_queue* queue_ = nullptr;
        front_record front_;
        bool lent_ = false;
    };

    /// Lends the front message, or nothing when the queue is empty. Consumer
    /// only (the first call takes the role). Never blocks. corrupted_error
    /// when the front record's header is damaged (the queue then stays as it is).
    [[nodiscard]] read_loan try_peek() {
        read_loan loan;
        if (!front(loan.front_, "try_peek")) return loan;
        consumer_lent_ = true;
        loan.queue_ = this;
        loan.lent_ = true;
        return loan;
    }
    /// As try_peek, waiting for a message as the wait options say.
    [[nodiscard]] read_loan peek() {
        read_loan loan = try_peek();
        if (!loan) [[unlikely]]
            wait_until(control_->not_empty, detail::forever,
                       [&] { return static_cast<bool>(loan = try_peek()); });
        return loan;
    }
    /// As peek, waiting at most `timeout`: an empty loan when the time ran out.
    template <class Rep, class Period>
    [[nodiscard]] read_loan try_peek_for(std::chrono::duration<Rep, Period> timeout) {
        read_loan loan = try_peek();
        if (!loan && !detail::is_poll(timeout))
            wait_until(control_->not_empty, detail::bounded(timeout),
                       [&] { return static_cast<bool>(loan = try_peek()); });
        return loan;
    }

    /// Moves the front message into `buffer` and returns its length, or
    /// nullopt when the queue is empty. Consumer only. Never blocks.
    /// invalid_argument_error (invalid_size) when the message is longer
    /// than the buffer: it stays at the front (a buffer of
    /// max_message_size() bytes always suffices).
    [[nodiscard]] std::optional<std::size_t> try_receive(std::span<std::byte> buffer) {
        front_record f;
        if (!front(f, "try_receive")) return std::nullopt;
        if (f.length > buffer.size()) [[unlikely]]
            throw_buffer_too_small(f.length, buffer.size());
        if (f.length != 0)
            std::memcpy(buffer.data(), ring_ + f.offset + detail::record_header_bytes, f.length);
        free_front(f);
        return static_cast<std::size_t>(f.length);
    }
    /// The front message as a vector of its own, or nullopt when empty.
    [[nodiscard]] std::optional<std::vector<std::byte>> try_receive() {
        front_record f;
        if (!front(f, "try_receive")) return std::nullopt;
        const std::byte* at = ring_ + f.offset + detail::record_header_bytes;
        std::optional<std::vector<std::byte>> message(std::in_place, at, at + f.length);
        free_front(f);
        return message;
    }
    /// As try_receive(buffer), waiting for a message as the wait options say.
    std::size_t receive(std::span<std::byte> buffer) {
        std::optional<std::size_t> length = try_receive(buffer);
        if (!length) [[unlikely]]
            wait_until(control_->not_empty, detail::forever,
                       [&] { return static_cast<bool>(length = try_receive(buffer)); });
        return *length;
    }
    /// As receive, waiting at most `timeout`; nullopt when the time ran out.
    template <class Rep, class Period>
    [[nodiscard]] std::optional<std::size_t> try_receive_for(std::span<std::byte> buffer,
                                                             std::chrono::duration<Rep, Period> timeout) {
        std::optional<std::size_t> length = try_receive(buffer);
        if (!length && !detail::is_poll(timeout))
            wait_until(control_->not_empty, detail::bounded(timeout),
                       [&] { return static_cast<bool>(length = try_receive(buffer)); });
        return length;
    }

    // ---- anyone ----------------------------------------------------------------------------------

    /// Bytes of the ring in use (records, headers, padding); a snapshot.
    [[nodiscard]] std::size_t size_bytes() const {
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        check_positions(head, tail);
        return tail - head <= capacity_ ? static_cast<std::size_t>(tail - head) : 0;
    }
    /// Whether no message is queued; a snapshot.
    [[nodiscard]] bool empty() const { return size_bytes() == 0; }

    /// Gives up the roles this handle holds, so another handle may take
    /// them. Also done by the destructor and by the kernel when the process dies.
    void release_roles() noexcept {
        if (producer_.active() && control_->producer_pid.load() == ::getpid())
            control_->producer_pid.store(0);
        if (consumer_.active() && control_->consumer_pid.load() == ::getpid())
            control_->consumer_pid.store(0);
        producer_.leave();
        consumer_.leave();
    }
    [[nodiscard]] bool is_producer() const noexcept { return producer_.active(); }
    [[nodiscard]] bool is_consumer() const noexcept { return consumer_.active(); }

private:
    static constexpr std::uint32_t producer_role = 0;
    static constexpr std::uint32_t consumer_role = 1;
    using handle::capacity_;
    using handle::control_;
    using handle::kind_name;
    using handle::wait_;

    shm_message_queue(posix_shm& segment, std::string_view name, open_mode mode, std::size_t capacity,
                      std::size_t max_message, wait_options wait)
        : handle(segment, name, wait, open_block(segment, name, mode, capacity, max_message)) {
        // Read once more and checked again: damage() checked its own read,
        // and another process may have written the field since.
        max_message_ = detail::read_once(control_->max_message);
        if (std::string why = layout::sizes_refused(capacity_, max_message_); !why.empty())
            throw_corrupted(kind_name, "its control block records " + why);
        if (mode != open_mode::open_only && max_message != max_message_)
            throw mismatch_error(errc::capacity_mismatch, describe(kind_name) + " takes messages of up to " +
                                                              std::to_string(max_message_) + " bytes, but " +
                                                              std::to_string(max_message) +
                                                              " were requested");
    }
    static detail::opened_block open_block(posix_shm& segment, std::string_view name, open_mode mode,
                                           std::size_t capacity, std::size_t max_message) {
        if (mode != open_mode::open_only) {
            if (std::string why = layout::sizes_refused(capacity, max_message); !why.empty())
                throw invalid_argument_error(
                    errc::invalid_size, "cannot make " + std::string(kind_name) + " '" + std::string(name) +
                                            "' in segment '" + segment.name() + "': " + why);
        }
        return segment.table().open<layout>(name, mode, capacity, fingerprint_of<std::byte>(), max_message);
    }

    /// Each side sleeps alone on its own channel, under bit 0.
    static std::uint32_t sleeper_id() noexcept { return 0; }

    /// Room for a message of `length` bytes, or an empty placement when there is none.
    [[gnu::always_inline]] placement place(std::size_t length, const char* call) {
        ensure_producer();
        if (producer_lent_) [[unlikely]]
            throw_loan_open(call, "write");
        if (length > max_message_) [[unlikely]]
            throw_too_large(call, length);
        const std::uint64_t record = detail::record_bytes(length);
        const std::uint64_t to_end = capacity_ - tail_offset_;
        placement at{tail_offset_, record, false};
        if (record > to_end) at = {0, to_end + record, true};
        if (tail_ + at.advance > room_end_) {
            room_end_ = load_head() + capacity_;
            if (tail_ + at.advance > room_end_) return {};
        }
        return at;
    }

    /// Writes the header of a `length`-byte message placed at `at` (its bytes
    /// written by now) and publishes it with one store of tail.
    [[gnu::always_inline]] void publish(const placement& at, std::uint64_t length) {
        SHMDS_FAULT_POINT("message.send.written");
        if (at.wraps) store_header(tail_offset_, detail::record_wrap, capacity_ - tail_offset_);
        store_header(at.offset, detail::record_message, length);
        const std::uint64_t record = detail::record_bytes(length);
        // A committed loan may use less than it reserved: tail moves by what was used.
        tail_ += (at.wraps ? capacity_ - tail_offset_ : 0) + record;
        tail_offset_ = at.offset + record == capacity_ ? 0 : at.offset + record;
        detail::message_control* const control = control_;
        control->tail.store(tail_, std::memory_order_release);
        SHMDS_FAULT_POINT("message.send.published");
        detail::notify(control->not_empty);
    }
    void store_header(std::uint64_t offset, std::uint32_t type, std::uint64_t length) noexcept {
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(ring_ + offset))
            .store(detail::header_word(type, length), std::memory_order_relaxed);
    }

    /// A write loan placed at `at` committed with `used` bytes.
    void commit_lent(const placement& at, std::size_t used) {
        producer_lent_ = false;
        if (!producer_.active()) [[unlikely]]
            throw_role_given_up("commit()", "producer");
        publish(at, used);
    }

    /// The front message's record, or false when the queue is empty. Takes
    /// the consumer role.
    bool front(front_record& f, const char* call) {
        ensure_consumer();
        if (consumer_lent_) [[unlikely]]
            throw_loan_open(call, "read");
        if (head_ == ready_end_) {
            ready_end_ = load_tail();
            if (head_ == ready_end_) return false;
        }
        const std::uint64_t published = ready_end_ - head_;
        std::uint64_t offset = head_offset_;
        std::uint64_t skipped = 0;
        std::uint64_t word = load_header(offset);
        if (static_cast<std::uint32_t>(word >> 32) == detail::record_wrap) {
            skipped = capacity_ - offset;
            if (offset == 0 || skipped >= published) [[unlikely]]
                throw_bad_header(offset, word,
                                 "a wrap record at the start of the ring or as the last record");
            offset = 0;
            word = load_header(0);
        }
        const std::uint64_t length = word & 0xffff'ffffu;
        if (static_cast<std::uint32_t>(word >> 32) != detail::record_message) [[unlikely]]
            throw_bad_header(offset, word, "an unknown record type");
        const std::uint64_t record = detail::record_bytes(length);
        if (length > max_message_ || offset + record > capacity_ || skipped + record > published) [[unlikely]]
            throw_bad_header(offset, word,
                             "a length past the largest message, the ring's end or the published bytes");
        f.offset = offset;
        f.length = length;
        f.advance = skipped + record;
        f.next_offset = offset + record == capacity_ ? 0 : offset + record;
        return true;
    }
    std::uint64_t load_header(std::uint64_t offset) const noexcept {
        return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(ring_ + offset))
            .load(std::memory_order_relaxed);
    }

    /// Frees the front record `f` (read by now) with one store of head.
    void free_front(const front_record& f) {
        consumer_lent_ = false;
        if (!consumer_.active()) [[unlikely]]
            throw_role_given_up("release()", "consumer");
        SHMDS_FAULT_POINT("message.receive.read");
        head_ += f.advance;
        head_offset_ = f.next_offset;
        detail::message_control* const control = control_;
        control->head.store(head_, std::memory_order_release);
        detail::notify(control->not_full);
    }

    /// Waits on `channel` until `attempt` succeeds, at most `timeout`.
    template <class Attempt>
    bool wait_until(detail::wait_channel& channel, std::chrono::nanoseconds timeout, Attempt&& attempt) {
        return detail::wait_for(channel, sleeper_id(), wait_, timeout, attempt, [] {});
    }
    [[gnu::noinline]] bool wait_to_send(std::span<const std::byte> message,
                                        std::chrono::nanoseconds timeout) {
        return wait_until(control_->not_full, timeout, [&] { return try_send(message); });
    }

    [[noreturn, gnu::noinline, gnu::cold]] void throw_too_large(const char* call,
                                                                std::uint64_t length) const {
        throw invalid_argument_error(errc::invalid_size, describe(kind_name) + ": " + call + " of a " +
                                                             std::to_string(length) +
                                                             "-byte message; it takes messages of up to " +
                                                             std::to_string(max_message_) + " bytes");
    }
    [[noreturn, gnu::noinline, gnu::cold]] void throw_buffer_too_small(std::uint64_t length,
                                                                       std::size_t buffer) const {
        throw invalid_argument_error(
            errc::invalid_size, describe(kind_name) + ": the front message has " + std::to_string(length) +
                                    " bytes, the buffer " + std::to_string(buffer) +
                                    " (it stays at the front; max_message_size() bytes always suffice)");
    }
    [[noreturn, gnu::noinline, gnu::cold]] void throw_bad_header(std::uint64_t offset, std::uint64_t word,
                                                                 const char* what) const {
        throw_corrupted(kind_name, "the record header at ring offset " + std::to_string(offset) +
                                       " (length " + std::to_string(word & 0xffff'ffffu) + ", type " +
                                       std::to_string(word >> 32) + ") has " + what);
    }
    [[noreturn, gnu::noinline, gnu::cold]] void throw_loan_open(const char* call, const char* side) const {
        throw loan_error(describe(kind_name) + ": " + call + " while this handle's " + side +
                         " loan is open (" + (side[0] == 'w' ? "commit" : "release") + " or drop it first)");
    }
    [[noreturn, gnu::noinline, gnu::cold]] void throw_role_given_up(const char* call,
                                                                    const char* role) const {
        throw role_error(errc::role_taken,
                         describe(kind_name) + ": " + call + " after this handle gave up the " + role +
                             " role (release_roles(), or a forked child's copy); nothing done");
    }

    void check_positions(std::uint64_t head, std::uint64_t tail) const {
        if (std::string why = layout::describe_positions(head, tail, capacity_); !why.empty()) [[unlikely]]
            throw_corrupted(kind_name, why);
    }
    /// The consumer's position, as the producer sees it: aligned, never ahead
    /// of what this producer published, never more than a ring behind.
    std::uint64_t load_head() const {
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        if (tail_ - head > capacity_ || head % detail::record_header_bytes != 0) [[unlikely]]
            throw_corrupted(kind_name, "its head position " + std::to_string(head) +
                                           " is not an aligned position within " + std::to_string(capacity_) +
                                           " bytes behind the producer's " + std::to_string(tail_));
        return head;
    }
    /// The producer's position, as the consumer sees it: aligned, never
    /// behind what this consumer freed, never more than a ring ahead.
    std::uint64_t load_tail() const {
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        if (tail - head_ > capacity_ || tail % detail::record_header_bytes != 0) [[unlikely]]
            throw_corrupted(kind_name, "its tail position " + std::to_string(tail) +
                                           " is not an aligned position within " + std::to_string(capacity_) +
                                           " bytes ahead of the consumer's " + std::to_string(head_));
        return tail;
    }

    void ensure_producer() {
        if (!producer_.active()) [[unlikely]]
            take_role(producer_, producer_role, control_->not_full, control_->producer_pid, "producer");
    }
    void ensure_consumer() {
        if (!consumer_.active()) [[unlikely]]
            take_role(consumer_, consumer_role, control_->not_empty, control_->consumer_pid, "consumer");
    }
    [[gnu::noinline, gnu::cold]] void take_role(detail::participation& role, std::uint32_t id,
                                                detail::wait_channel& its_channel,
                                                detail::atomic<std::int32_t>& pid, const char* what) {
        if (!this->join_role(role, id, its_channel))
            throw role_error(errc::role_taken, describe(kind_name) + " already has a live " + what +
                                                   " (pid " + std::to_string(pid.load()) +
                                                   "); a message queue takes one producer and one consumer");
        // The predecessor is gone (the role lock says so); whatever it did
        // not publish (or free) with its one store is as if never begun.
        const std::uint64_t tail = control_->tail.load(std::memory_order_acquire);
        const std::uint64_t head = control_->head.load(std::memory_order_acquire);
        try {
            check_positions(head, tail);
            if (tail - head > capacity_)
                throw_corrupted(kind_name, "its consumer has freed " + std::to_string(head) +
                                               " bytes, but only " + std::to_string(tail) +
                                               " were published");
        } catch (...) {
            role.leave();
            throw;
        }
        if (id == producer_role) {
            tail_ = tail;
            tail_offset_ = tail % capacity_;
            room_end_ = head + capacity_;
        } else {
            head_ = head;
            head_offset_ = head % capacity_;
            ready_end_ = head;
        }
        pid.store(static_cast<std::int32_t>(::getpid()));
    }

    std::byte* ring_ = layout::elements(this->block_);
    std::uint64_t max_message_ = 0;
    // Producer side, meaningful while producer_ is active.
    detail::participation producer_;
    std::uint64_t tail_ = 0;         ///< position of the next record
    std::uint64_t tail_offset_ = 0;  ///< tail_ % capacity
    std::uint64_t room_end_ = 0;     ///< the head last read + capacity: tail may not pass it
    bool producer_lent_ = false;     ///< a write loan is open
    // Consumer side, meaningful while consumer_ is active.
    detail::participation consumer_;
    std::uint64_t head_ = 0;         ///< position of the next record
    std::uint64_t head_offset_ = 0;  ///< head_ % capacity
    std::uint64_t ready_end_ = 0;    ///< the tail last read: bytes up to it are published
    bool consumer_lent_ = false;     ///< a read loan is open
};

}  // namespace shmds
