// compare/peers/zeromq_channels.hpp: ZeroMQ (libzmq 4.3, Debian's
// libzmq3-dev) as a benchmark channel (see bench/harness/channel.hpp), over
// its ipc:// transport (a UNIX domain stream socket; ZeroMQ frames the
// messages and moves them through an I/O thread per context). What people
// reach for when they want fast local messaging without shared-memory code.
//
// Sockets, as ZeroMQ's guide pairs them:
//   a stream (throughput, latency under load, the delivery check): PUSH ->
//     PULL. The receiver's PULL binds; each sender's PUSH connects to it. A
//     PULL fair-queues among its senders; each sender's messages arrive in
//     its order.
//   one direction of a round trip (`config.round_trip`, which the ping-pong
//     workload sets: it bounces a message through two channels): PAIR ->
//     PAIR, ZeroMQ's socket for one exclusive peer.
//
// Shapes: up to 64 senders and 1 receiver (a PUSH deals round-robin to
// several PULLs, but several senders *and* several receivers need a broker,
// zmq_proxy, which is another thing to measure; a round trip is 1 x 1).
//
// Waiting, for receivers (senders always block in zmq_send while the
// high-water mark is reached, as the kernel peers' senders block while full):
//   spin             zmq_recv(ZMQ_DONTWAIT) again and again until a message
//                    comes or the timeout passes (peer_wait.hpp);
//   sleep            one blocking zmq_recv with ZMQ_RCVTIMEO set to the time
//                    left (whole milliseconds, at least 1): ZeroMQ sleeps in
//                    poll(2) on its mailbox until its I/O thread hands over a
//                    message;
//   spin_then_sleep  ZMQ_DONTWAIT for the same 20 us as the project's
//                    structures, then as sleep.
// The I/O threads that move the bytes sleep in epoll whatever the mode:
// spinning spins the receiving caller only, and on a member's one CPU it
// takes the time the I/O thread needs (round trips' p99 of about 2 ms here).
//
// Capacity: ZMQ_SNDHWM and ZMQ_RCVHWM are each the channel's capacity (at
// most 4 MiB of payload): ZeroMQ queues per connection at both ends, so up to
// twice that plus the kernel's socket buffers can be in flight, and the marks
// are approximate.
//
// Closing: ZMQ_LINGER is not enough to deliver everything. It makes the
// context's termination write what the sender still queues into the socket,
// but a PULL that is behind (its high-water mark reached, data left in the
// kernel) drops what it has not read when the PUSH hangs up: 15 to 1,200 of
// 2,000 messages were lost so here, a sender closing right after its last
// send (none with a high-water mark above 2,000). So a sender's end, when
// it closes, first waits for the receiver to hang up (ZMQ_EVENT_DISCONNECTED
// from zmq_socket_monitor), at most ipc_patience: the harness's receivers
// close only once they have what they expect. A process that holds both ends of two channels (ping-pong) must
// close its receiver first, as the workloads do by declaring it last.
//
// Processes: one context per process, made by the first end a member opens
// (never by the parent: no context may cross a fork) and shared by that
// process's ends, as a ZeroMQ application has one; its I/O thread runs on the
// member's CPU. The last end to close terminates the context (ZMQ_LINGER is
// ipc_patience, so that a dead receiver cannot hold a sender for ever). The
// parent owns the socket file's directory (ipc_endpoint.hpp).
#pragma once

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <unistd.h>
#include <zmq.h>

#include "harness/channel.hpp"
#include "peers/ipc_endpoint.hpp"
#include "peers/peer_wait.hpp"

namespace shmds_compare {

[[noreturn]] inline void throw_zmq(const std::string& what) {
    throw std::runtime_error(what + ": " + ::zmq_strerror(::zmq_errno()));
}

/// The calling process's ZeroMQ context, shared by its ends and terminated
/// with the last of them. A child of a fork makes its own.
inline std::shared_ptr<void> zmq_process_context() {
    static std::weak_ptr<void> current;
    static pid_t owner = 0;
    if (owner == ::getpid())
        if (std::shared_ptr<void> context = current.lock()) return context;
    void* raw = ::zmq_ctx_new();
    if (raw == nullptr) throw_zmq("zmq_ctx_new");
    std::shared_ptr<void> context(raw, [](void* c) {
        while (::zmq_ctx_term(c) != 0 && ::zmq_errno() == EINTR) {
        }
    });
    current = context;
    owner = ::getpid();
    return context;
}

/// One ZeroMQ socket of a member process, closed before its context is let go.
class zmq_end_socket {
public:
    zmq_end_socket(int type, int queue_messages)
        : context_(zmq_process_context()), handle_(::zmq_socket(context_.get(), type)) {
        if (handle_ == nullptr) throw_zmq("zmq_socket");
        try {
            set(ZMQ_SNDHWM, queue_messages);
            set(ZMQ_RCVHWM, queue_messages);
            set(ZMQ_LINGER, static_cast<int>(std::chrono::milliseconds(ipc_patience).count()));
            // A connect that races the bind is retried in 1 ms, not 100.
            set(ZMQ_RECONNECT_IVL, 1);
        } catch (...) {
            ::zmq_close(handle_);  // or terminating the context would wait for it for ever
            throw;
        }
    }
    ~zmq_end_socket() {
        if (handle_ != nullptr) ::zmq_close(handle_);
    }
    zmq_end_socket(zmq_end_socket&& other) noexcept
        : context_(std::move(other.context_)), handle_(std::exchange(other.handle_, nullptr)) {}
    zmq_end_socket(const zmq_end_socket&) = delete;
    zmq_end_socket& operator=(const zmq_end_socket&) = delete;
    zmq_end_socket& operator=(zmq_end_socket&&) = delete;

    void set(int option, int value) {
        if (::zmq_setsockopt(handle_, option, &value, sizeof value) != 0) throw_zmq("zmq_setsockopt");
    }
    [[nodiscard]] void* get() const { return handle_; }

private:
    std::shared_ptr<void> context_;  // declared first: released after the socket is closed
    void* handle_;
};

template <std::size_t Payload>
class zeromq_channel {
public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 1;
    static std::string name() { return "zeromq"; }
    /// Into a message, into the kernel (the I/O thread's write), out of it
    /// (its read), out to the receiver's bytes (zmq_recv).
    static constexpr int copies = 4;

    explicit zeromq_channel(const shmds_bench::channel_config& config)
        : wait_(config.wait),
          round_trip_(config.round_trip),
          queue_messages_(library_queue_messages(config.capacity, Payload, INT_MAX)),
          endpoint_("zeromq") {}

    class sender {
    public:
        sender(zmq_end_socket socket, zmq_end_socket hang_ups)
            : socket_(std::move(socket)), hang_ups_(std::move(hang_ups)) {}
        /// Waits for the receiver to hang up (see the top of the file), then closes.
        ~sender() {
            if (hang_ups_.get() == nullptr) return;  // moved from
            try {
                hang_ups_.set(ZMQ_RCVTIMEO,
                              static_cast<int>(std::chrono::milliseconds(ipc_patience).count()));
                // One event: two frames, the event's number and value, then the address.
                std::byte frame[256];
                if (::zmq_recv(hang_ups_.get(), frame, sizeof frame, 0) >= 0)
                    while (more(hang_ups_.get()) &&
                           ::zmq_recv(hang_ups_.get(), frame, sizeof frame, 0) >= 0) {
                    }
            } catch (const std::exception&) {  // closing anyway
            }
            (void)::zmq_socket_monitor(socket_.get(), nullptr, 0);
        }
        sender(sender&&) noexcept = default;
        sender(const sender&) = delete;
        sender& operator=(const sender&) = delete;
        sender& operator=(sender&&) = delete;

        void send(const std::byte* bytes) {
            while (::zmq_send(socket_.get(), bytes, Payload, 0) != static_cast<int>(Payload))
                if (::zmq_errno() != EINTR) throw_zmq("zmq_send");
        }

    private:
        static bool more(void* socket) {
            int more = 0;
            std::size_t size = sizeof more;
            return ::zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &size) == 0 && more != 0;
        }

        zmq_end_socket socket_;
        zmq_end_socket hang_ups_;  // the monitor's events: ZMQ_EVENT_DISCONNECTED of socket_
    };

    class receiver {
    public:
        receiver(zmq_end_socket socket, shmds_bench::wait_mode wait)
            : socket_(std::move(socket)), wait_(wait) {}

        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            const auto poll_once = [&] { return take(bytes, ZMQ_DONTWAIT); };
            return peer_wait(wait_, timeout, poll_once, [&](std::chrono::nanoseconds left) {
                return receive_within(
                    left, timeout_ms_, [&](int ms) { socket_.set(ZMQ_RCVTIMEO, ms); }, poll_once,
                    [&] { return take(bytes, 0); });
            });
        }

    private:
        bool take(std::byte* bytes, int flags) {
            for (;;) {
                const int n = ::zmq_recv(socket_.get(), bytes, Payload, flags);
                if (n == static_cast<int>(Payload)) return true;
                if (n >= 0)
                    throw std::runtime_error("zmq_recv: a message of " + std::to_string(n) + " bytes, not " +
                                             std::to_string(Payload));
                if (::zmq_errno() == EAGAIN) return false;  // none waiting, or the timeout passed
                if (::zmq_errno() != EINTR) throw_zmq("zmq_recv");
            }
        }

        zmq_end_socket socket_;
        shmds_bench::wait_mode wait_;
        int timeout_ms_ = -1;  // ZMQ_RCVTIMEO as last set (-1: ZeroMQ's default, for ever)
    };

    sender open_sender() const {
        zmq_end_socket socket(round_trip_ ? ZMQ_PAIR : ZMQ_PUSH, queue_messages_);
        // The monitor's address is the process's own (inproc://): unique per end.
        static unsigned ends = 0;
        const std::string monitor = "inproc://shmds-cmp-hang-ups-" + std::to_string(ends++);
        if (::zmq_socket_monitor(socket.get(), monitor.c_str(), ZMQ_EVENT_DISCONNECTED) != 0)
            throw_zmq("zmq_socket_monitor");
        zmq_end_socket hang_ups(ZMQ_PAIR, 16);
        if (::zmq_connect(hang_ups.get(), monitor.c_str()) != 0) throw_zmq("zmq_connect(" + monitor + ")");
        endpoint_.wait_for_binder();
        if (::zmq_connect(socket.get(), endpoint_.url().c_str()) != 0)
            throw_zmq("zmq_connect(" + endpoint_.url() + ")");
        return sender(std::move(socket), std::move(hang_ups));
    }
    receiver open_receiver() const {
        zmq_end_socket socket(round_trip_ ? ZMQ_PAIR : ZMQ_PULL, queue_messages_);
        if (::zmq_bind(socket.get(), endpoint_.url().c_str()) != 0)
            throw_zmq("zmq_bind(" + endpoint_.url() + ")");
        return receiver(std::move(socket), wait_);
    }

private:
    shmds_bench::wait_mode wait_;
    bool round_trip_;
    int queue_messages_;
    ipc_endpoint endpoint_;
};

}  // namespace shmds_compare
