// compare/peers/nng_channels.hpp: NNG (nanomsg-next-generation 1.5,
// Debian's libnng-dev) as a benchmark channel (see
// bench/harness/channel.hpp), over its ipc:// transport (a UNIX domain
// stream socket, served by NNG's own threads). ZeroMQ's lighter successor in
// spirit, what people pick for scalability protocols without a broker.
//
// Sockets, NNG's protocols:
//   a stream (throughput, latency under load, the delivery check): push0 ->
//     pull0. The receiver's pull0 listens; each sender's push0 dials it. A
//     pull0 takes from its senders as they come; each sender's messages
//     arrive in its order.
//   one direction of a round trip (`config.round_trip`, which the ping-pong
//     workload sets: it bounces a message through two channels): pair0 ->
//     pair0, NNG's protocol for one exclusive peer.
//
// Shapes: up to 64 senders and 1 receiver (a push0 deals round-robin to
// several pull0s, but several senders *and* several receivers need a device
// in between; a round trip is 1 x 1).
//
// Waiting, for receivers (senders always block in nng_send while the queues
// are full, as the kernel peers' senders block while full):
//   spin             nng_recv(NNG_FLAG_NONBLOCK) again and again until a
//                    message comes or the timeout passes (peer_wait.hpp);
//   sleep            one blocking nng_recv with NNG_OPT_RECVTIMEO set to the
//                    time left (whole milliseconds, at least 1): the caller
//                    sleeps on a condition variable until one of NNG's
//                    threads, woken by epoll, hands it a message;
//   spin_then_sleep  NNG_FLAG_NONBLOCK for the same 20 us as the project's
//                    structures, then as sleep.
// NNG's threads that move the bytes sleep in epoll whatever the mode:
// spinning spins the receiving caller only, and on a member's one CPU it
// takes the time those threads need (round trips' p99 of about 3.5 ms here).
//
// Speed: NNG 1.5 moves 20-40 thousand small messages a second here, in every
// mode, pinned or not, with its buffers set or not: each message passes
// through its task threads. Known upstream (nanomsg/nng issues 808, 972,
// 1663; reworked in later releases), not the adapter's doing.
//
// Capacity: NNG_OPT_SENDBUF (sender) and NNG_OPT_RECVBUF (receiver) are each
// the channel's capacity, at most 4 MiB of payload and NNG's limit of 8192
// messages; messages in the pipes and the kernel's socket buffers come on
// top.
//
// Closing: NNG has no linger (it was removed in 2018: nng_close drops what is
// still queued to send; about 60 of 2,000 messages were lost so here, a
// sender closing right after its last send), so a sender's end, when it
// closes, first waits for
// the receiver to hang up (NNG_PIPE_EV_REM_POST on its pipe), at most
// ipc_patience: the harness's receivers close only once they have what they
// expect. A process that holds both ends of two channels (ping-pong) must
// close its receiver first, as the workloads do by declaring it last.
//
// Processes: NNG starts its threads in the first process that opens a socket,
// which is never the parent (it only makes the socket file's directory,
// ipc_endpoint.hpp, and removes it).
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "harness/channel.hpp"
#include "peers/ipc_endpoint.hpp"
#include "peers/peer_wait.hpp"

namespace shmds_compare {

[[noreturn]] inline void throw_nng(const std::string& what, int error) {
    throw std::runtime_error(what + ": " + ::nng_strerror(error));
}

/// NNG's queues hold at most this many messages (NNG_OPT_SENDBUF, NNG_OPT_RECVBUF).
inline constexpr std::size_t nng_max_buffer = 8192;

/// One NNG socket of a member process, closed with it.
class nng_end_socket {
public:
    explicit nng_end_socket(int (*open)(nng_socket*)) {
        if (const int rv = open(&handle_); rv != 0) throw_nng("nng socket open", rv);
        open_ = true;
    }
    ~nng_end_socket() {
        if (open_) ::nng_close(handle_);
    }
    nng_end_socket(nng_end_socket&& other) noexcept
        : handle_(other.handle_), open_(std::exchange(other.open_, false)) {}
    nng_end_socket(const nng_end_socket&) = delete;
    nng_end_socket& operator=(const nng_end_socket&) = delete;
    nng_end_socket& operator=(nng_end_socket&&) = delete;

    void set_int(const char* option, int value) {
        if (const int rv = ::nng_socket_set_int(handle_, option, value); rv != 0)
            throw_nng(std::string("nng_socket_set_int(") + option + ")", rv);
    }
    void set_ms(const char* option, nng_duration value) {
        if (const int rv = ::nng_socket_set_ms(handle_, option, value); rv != 0)
            throw_nng(std::string("nng_socket_set_ms(") + option + ")", rv);
    }
    [[nodiscard]] nng_socket get() const { return handle_; }

private:
    nng_socket handle_ = NNG_SOCKET_INITIALIZER;
    bool open_ = false;
};

template <std::size_t Payload>
class nng_channel {
public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 1;
    static std::string name() { return "nng"; }
    /// Into a message, into the kernel, out of it, out to the receiver's
    /// bytes (nng_recv without NNG_FLAG_ALLOC).
    static constexpr int copies = 4;

    explicit nng_channel(const shmds_bench::channel_config& config)
        : wait_(config.wait),
          round_trip_(config.round_trip),
          queue_messages_(library_queue_messages(config.capacity, Payload, nng_max_buffer)),
          endpoint_("nng") {}

    class sender {
    public:
        sender(std::unique_ptr<std::atomic<int>> hang_ups, nng_end_socket socket)
            : hang_ups_(std::move(hang_ups)), socket_(std::move(socket)) {}
        /// Waits for the receiver to hang up (see the top of the file), then closes.
        ~sender() {
            if (hang_ups_ == nullptr) return;  // moved from
            const auto give_up = std::chrono::steady_clock::now() + ipc_patience;
            while (hang_ups_->load() == 0 && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        sender(sender&&) noexcept = default;
        sender(const sender&) = delete;
        sender& operator=(const sender&) = delete;
        sender& operator=(sender&&) = delete;

        void send(const std::byte* bytes) {
            // nng_send only reads the buffer (it would take it over with NNG_FLAG_ALLOC).
            // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast)
            if (const int rv = ::nng_send(socket_.get(), const_cast<std::byte*>(bytes), Payload, 0); rv != 0)
                throw_nng("nng_send", rv);
        }

    private:
        std::unique_ptr<std::atomic<int>> hang_ups_;  // declared first: outlives the socket's callbacks
        nng_end_socket socket_;
    };

    class receiver {
    public:
        receiver(nng_end_socket socket, shmds_bench::wait_mode wait)
            : socket_(std::move(socket)), wait_(wait) {}

        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            const auto poll_once = [&] { return take(bytes, NNG_FLAG_NONBLOCK); };
            return peer_wait(wait_, timeout, poll_once, [&](std::chrono::nanoseconds left) {
                return receive_within(
                    left, timeout_ms_, [&](nng_duration ms) { socket_.set_ms(NNG_OPT_RECVTIMEO, ms); },
                    poll_once, [&] { return take(bytes, 0); });
            });
        }

    private:
        bool take(std::byte* bytes, int flags) {
            std::size_t size = Payload;
            const int rv = ::nng_recv(socket_.get(), bytes, &size, flags);
            if (rv == NNG_EAGAIN || rv == NNG_ETIMEDOUT) return false;
            if (rv != 0) throw_nng("nng_recv", rv);
            if (size != Payload)  // the message's own size, even when the buffer took less
                throw std::runtime_error("nng_recv: a message of " + std::to_string(size) + " bytes, not " +
                                         std::to_string(Payload));
            return true;
        }

        nng_end_socket socket_;
        shmds_bench::wait_mode wait_;
        nng_duration timeout_ms_ = NNG_DURATION_DEFAULT;  // NNG_OPT_RECVTIMEO as last set
    };

    sender open_sender() const {
        auto hang_ups = std::make_unique<std::atomic<int>>(0);
        nng_end_socket socket(round_trip_ ? ::nng_pair0_open : ::nng_push0_open);
        socket.set_int(NNG_OPT_SENDBUF, queue_messages_);
        const auto count_hang_up = [](nng_pipe, nng_pipe_ev, void* count) {
            static_cast<std::atomic<int>*>(count)->fetch_add(1);
        };
        if (const int rv =
                ::nng_pipe_notify(socket.get(), NNG_PIPE_EV_REM_POST, count_hang_up, hang_ups.get());
            rv != 0)
            throw_nng("nng_pipe_notify", rv);
        // A synchronous dial: the pipe is up when it returns. Until the
        // receiver listens it is refused; try again until then.
        const auto give_up = std::chrono::steady_clock::now() + ipc_patience;
        for (;;) {
            const int rv = ::nng_dial(socket.get(), endpoint_.url().c_str(), nullptr, 0);
            if (rv == 0) break;
            if ((rv != NNG_ECONNREFUSED && rv != NNG_ENOENT) || std::chrono::steady_clock::now() >= give_up)
                throw_nng("nng_dial(" + endpoint_.url() + ")", rv);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        return sender(std::move(hang_ups), std::move(socket));
    }
    receiver open_receiver() const {
        nng_end_socket socket(round_trip_ ? ::nng_pair0_open : ::nng_pull0_open);
        socket.set_int(NNG_OPT_RECVBUF, queue_messages_);
        if (const int rv = ::nng_listen(socket.get(), endpoint_.url().c_str(), nullptr, 0); rv != 0)
            throw_nng("nng_listen(" + endpoint_.url() + ")", rv);
        return receiver(std::move(socket), wait_);
    }

private:
    shmds_bench::wait_mode wait_;
    bool round_trip_;
    int queue_messages_;
    ipc_endpoint endpoint_;
};

}  // namespace shmds_compare
