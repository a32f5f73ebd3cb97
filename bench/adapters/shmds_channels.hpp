// bench/adapters/shmds_channels.hpp: the project's process-safe structures
// as benchmark channels. The parent creates a segment and the structure;
// each member opens both by name, as a user's process would.
//
// The queues move a message as a user who has it in a buffer would: through
// loans, the sender's bytes copied into a lent slot and committed, the slot
// read in place into the receiver's bytes and released (two copies; a push
// and a pop would make four: into an element, into the slot, out to an
// element, out to the buffer). The stack lends nothing: push and pop.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include <shmds/shmds.hpp>

#include "harness/channel.hpp"

namespace shmds_bench {

/// The harness's wait mode as the library's wait strategy.
constexpr shmds::wait_strategy strategy_for(wait_mode wait) noexcept {
    switch (wait) {
        case wait_mode::spin:
            return shmds::wait_strategy::spin;
        case wait_mode::spin_then_sleep:
            return shmds::wait_strategy::spin_then_sleep;
        case wait_mode::sleep:
            return shmds::wait_strategy::sleep;
    }
    return shmds::wait_strategy::spin_then_sleep;
}

template <template <class> class Structure, std::size_t Payload>
class shmds_channel {
    using element = message<Payload>;
    using structure = Structure<element>;

    /// Whether messages go through loans: the structure lends its slots (the
    /// queues do). At every size: at 8 B a loan's bookkeeping costs about
    /// what the copies it saves do, above that it saves time
    /// (docs/benchmarks.md, "Loans in the benchmark channels").
    static constexpr bool lends = requires(structure & s) { s.try_reserve(); };

public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 64;
    /// Copies of a message's bytes from the sender's buffer to the receiver's.
    static constexpr int copies = lends ? 2 : 4;

    explicit shmds_channel(const channel_config& config)
        : config_(config),
          segment_name_("/shmds-bench-" + config.tag),
          segment_(std::make_unique<shmds::posix_shm>(shmds::create_only, segment_name_,
                                                      segment_bytes(config),
                                                      shmds::segment_options{.table_capacity = 4})) {
        structure created(*segment_, "channel", config.capacity);
    }

    class endpoint {
    public:
        endpoint(const std::string& segment_name, shmds::wait_options wait)
            : segment_(segment_name), structure_(shmds::open_only, segment_, "channel", wait) {}
        void send(const std::byte* bytes) {
            if constexpr (lends) {
                auto slot = structure_.reserve();
                std::memcpy(slot->bytes.data(), bytes, Payload);
                slot.commit();
            } else {
                element e;
                std::memcpy(e.bytes.data(), bytes, Payload);
                structure_.push(e);
            }
        }
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            if constexpr (lends) {
                auto front = structure_.try_peek_for(timeout);
                if (!front) return false;
                std::memcpy(bytes, front->bytes.data(), Payload);
                front.release();
            } else {
                element e;
                if (!structure_.try_pop_for(e, timeout)) return false;
                std::memcpy(bytes, e.bytes.data(), Payload);
            }
            return true;
        }

    private:
        shmds::posix_shm segment_;
        structure structure_;
    };

    endpoint open_sender() const { return endpoint(segment_name_, wait()); }
    endpoint open_receiver() const { return endpoint(segment_name_, wait()); }

private:
    shmds::wait_options wait() const { return {.strategy = strategy_for(config_.wait)}; }

    static std::size_t segment_bytes(const channel_config& config) {
        // Slots padded to cache lines (MPMC) plus headers, with room to spare.
        const std::size_t slot = (Payload + 8 + 63) / 64 * 64;
        return (config.capacity + 2) * slot + (1u << 20);
    }

    channel_config config_;
    std::string segment_name_;
    std::unique_ptr<shmds::posix_shm> segment_;
};

template <std::size_t Payload>
struct shmds_spsc : shmds_channel<shmds::shm_spsc_queue, Payload> {
    using shmds_channel<shmds::shm_spsc_queue, Payload>::shmds_channel;
    static constexpr std::size_t max_senders = 1;
    static constexpr std::size_t max_receivers = 1;
    static std::string name() { return "shmds_spsc"; }
};

template <std::size_t Payload>
struct shmds_mpmc : shmds_channel<shmds::shm_mpmc_queue, Payload> {
    using shmds_channel<shmds::shm_mpmc_queue, Payload>::shmds_channel;
    static std::string name() { return "shmds_mpmc"; }
};

template <std::size_t Payload>
struct shmds_stack : shmds_channel<shmds::shm_concurrent_stack, Payload> {
    using shmds_channel<shmds::shm_concurrent_stack, Payload>::shmds_channel;
    static constexpr bool lifo = true;  // delivery checks skip the order check
    static std::string name() { return "shmds_concurrent_stack"; }
};

/// shm_message_queue as a channel of Payload-byte messages: a ring of
/// `capacity` records (at least two, the queue's minimum), each message
/// written into a write loan and read through a peek (two copies, as the
/// queues' above). One producer and one consumer.
template <std::size_t Payload>
class shmds_message_queue {
public:
    static constexpr std::size_t max_senders = 1;
    static constexpr std::size_t max_receivers = 1;
    static constexpr int copies = 2;
    static std::string name() { return "shmds_message_queue"; }

    explicit shmds_message_queue(const channel_config& config)
        : config_(config),
          segment_name_("/shmds-bench-" + config.tag),
          segment_(std::make_unique<shmds::posix_shm>(shmds::create_only, segment_name_,
                                                      ring_bytes(config) + (1u << 20),
                                                      shmds::segment_options{.table_capacity = 4})) {
        shmds::shm_message_queue created(*segment_, "channel", ring_bytes(config), Payload);
    }

    class endpoint {
    public:
        endpoint(const std::string& segment_name, shmds::wait_options wait)
            : segment_(segment_name), queue_(shmds::open_only, segment_, "channel", wait) {}
        void send(const std::byte* bytes) {
            auto loan = queue_.reserve(Payload);
            std::memcpy(loan.data(), bytes, Payload);
            loan.commit();
        }
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            auto front = queue_.try_peek_for(timeout);
            if (!front) return false;
            std::memcpy(bytes, front.data(), Payload);
            front.release();
            return true;
        }

    private:
        shmds::posix_shm segment_;
        shmds::shm_message_queue queue_;
    };

    endpoint open_sender() const { return endpoint(segment_name_, wait()); }
    endpoint open_receiver() const { return endpoint(segment_name_, wait()); }

private:
    shmds::wait_options wait() const { return {.strategy = strategy_for(config_.wait)}; }
    static std::size_t ring_bytes(const channel_config& config) {
        return std::max<std::size_t>(config.capacity, 2) * shmds::detail::record_bytes(Payload);
    }

    channel_config config_;
    std::string segment_name_;
    std::unique_ptr<shmds::posix_shm> segment_;
};

}  // namespace shmds_bench
