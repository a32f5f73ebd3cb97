// compare/peers/kernel_channels.hpp: the kernel's own IPC as benchmark
// channels (see bench/harness/channel.hpp): pipe(2), a UNIX stream
// socketpair(2) and POSIX message queues (mq_open(3)). What people use when
// they do not use shared memory.
//
// Waiting maps onto the kernel's tools: `sleep` blocks in poll(2) (or
// mq_timedreceive); `spin` busy-polls with non-blocking calls; and
// `spin_then_sleep` busy-polls for the same 20 us as the project's
// structures before blocking. Senders always block while the channel is full.
//
// Pipes and sockets are byte streams: a message is `Payload` bytes, read in
// a loop until whole. A pipe takes several senders and receivers while a
// message fits in PIPE_BUF (writes up to PIPE_BUF are atomic, and Linux
// holds the pipe's lock for a whole read); a stream socket promises neither,
// so it is one sender and one receiver. Message queues are message-oriented
// and take any number of both.
#pragma once

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness/channel.hpp"
#include "peers/peer_wait.hpp"

namespace shmds_compare {

using shmds_bench::channel_config;

[[noreturn]] inline void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

/// Reads or writes exactly `size` bytes of a stream, waiting as `wait` says
/// (receive) or blocking (send). Returns false when `timeout` passed with
/// nothing read; once a message has begun it is finished whatever the time.
class stream_end {
public:
    stream_end(int fd, shmds_bench::wait_mode wait) : fd_(fd), wait_(wait) {}

    void send(const std::byte* bytes, std::size_t size) {
        std::size_t done = 0;
        while (done < size) {
            const ssize_t n = ::write(fd_, bytes + done, size - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EAGAIN) {
                block(POLLOUT, -1);
            } else if (n < 0 && errno != EINTR) {
                throw_errno("write");
            }
        }
    }

    bool receive_for(std::byte* bytes, std::size_t size, std::chrono::nanoseconds timeout) {
        std::size_t done = 0;
        // The clock is read only once a read found nothing, and then once
        // per 64 empty reads while spinning (as the project's own waits do).
        std::chrono::steady_clock::time_point deadline{}, spin_until{};
        bool timing = false;
        for (unsigned round = 0; done < size; ++round) {
            const ssize_t n = ::read(fd_, bytes + done, size - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n == 0) throw std::runtime_error("the other end closed the stream");
            if (errno == EINTR) continue;
            if (errno != EAGAIN) throw_errno("read");
            if (!timing) {
                const auto now = std::chrono::steady_clock::now();
                deadline = now + timeout;
                spin_until = now + peer_spin_for;
                timing = true;
            }
            if (wait_ == shmds_bench::wait_mode::spin && (round & 63) != 0) continue;
            const auto now = std::chrono::steady_clock::now();
            if (done == 0 && now >= deadline) return false;
            if (wait_ == shmds_bench::wait_mode::spin ||
                (wait_ == shmds_bench::wait_mode::spin_then_sleep && now < spin_until))
                continue;
            // Mid-message: wait for the rest however long it takes.
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
            block(POLLIN, done == 0 ? static_cast<int>(std::max<long long>(left, 1)) : -1);
        }
        return true;
    }

private:
    void block(short events, int timeout_ms) {
        pollfd p{fd_, events, 0};
        if (::poll(&p, 1, timeout_ms) < 0 && errno != EINTR) throw_errno("poll");
    }

    int fd_;
    shmds_bench::wait_mode wait_;
};

/// Makes `fd` non-blocking (waiting is done with poll, so that the same
/// descriptor serves spinning and sleeping ends).
inline void set_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
}

/// Two descriptors made by the parent before forking; each member uses its
/// end. Closed by the parent's destructor (members exit with _exit).
template <std::size_t Payload>
class fd_pair_channel {
public:
    fd_pair_channel(const channel_config& config, int read_fd, int write_fd)
        : wait_(config.wait), read_fd_(read_fd), write_fd_(write_fd) {
        set_nonblocking(read_fd_);
        set_nonblocking(write_fd_);
    }
    ~fd_pair_channel() {
        ::close(read_fd_);
        ::close(write_fd_);
    }
    fd_pair_channel(const fd_pair_channel&) = delete;
    fd_pair_channel& operator=(const fd_pair_channel&) = delete;

    class sender {
    public:
        explicit sender(stream_end end) : end_(end) {}
        void send(const std::byte* bytes) { end_.send(bytes, Payload); }

    private:
        stream_end end_;
    };
    class receiver {
    public:
        explicit receiver(stream_end end) : end_(end) {}
        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            return end_.receive_for(bytes, Payload, timeout);
        }

    private:
        stream_end end_;
    };

    sender open_sender() const { return sender(stream_end(write_fd_, wait_)); }
    receiver open_receiver() const { return receiver(stream_end(read_fd_, wait_)); }

private:
    shmds_bench::wait_mode wait_;
    int read_fd_;
    int write_fd_;
};

inline std::pair<int, int> make_pipe(std::size_t capacity_bytes) {
    int fds[2];
    if (::pipe(fds) != 0) throw_errno("pipe");
    // As much room as the shared-memory channels have (the kernel may give
    // less: /proc/sys/fs/pipe-max-size).
    (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(std::min<std::size_t>(capacity_bytes, 1u << 20)));
    return {fds[0], fds[1]};
}

template <std::size_t Payload>
struct pipe_channel : fd_pair_channel<Payload> {
    static constexpr std::size_t max_senders = Payload <= PIPE_BUF ? 64 : 1;
    static constexpr std::size_t max_receivers = Payload <= PIPE_BUF ? 64 : 1;
    static std::string name() { return "pipe"; }
    static constexpr int copies = 2;  // into the kernel, out of it
    explicit pipe_channel(const channel_config& config)
        : pipe_channel(config, make_pipe(config.capacity * Payload)) {}

private:
    pipe_channel(const channel_config& config, std::pair<int, int> fds)
        : fd_pair_channel<Payload>(config, fds.first, fds.second) {}
};

inline std::pair<int, int> make_socketpair(std::size_t capacity_bytes) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw_errno("socketpair");
    const int bytes = static_cast<int>(std::min<std::size_t>(capacity_bytes, 4u << 20));
    for (int fd : fds) {
        (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    }
    return {fds[0], fds[1]};
}

template <std::size_t Payload>
struct unix_socket_channel : fd_pair_channel<Payload> {
    static constexpr std::size_t max_senders = 1;
    static constexpr std::size_t max_receivers = 1;
    static std::string name() { return "unix_stream_socket"; }
    static constexpr int copies = 2;  // into the kernel, out of it
    // One direction of the pair: the sender writes fds[1], the receiver reads fds[0].
    explicit unix_socket_channel(const channel_config& config)
        : unix_socket_channel(config, make_socketpair(config.capacity * Payload)) {}

private:
    unix_socket_channel(const channel_config& config, std::pair<int, int> fds)
        : fd_pair_channel<Payload>(config, fds.first, fds.second) {}
};

/// A limit of POSIX message queues from /proc/sys/fs/mqueue (0 if unreadable).
inline long mqueue_limit(const char* which) {
    std::FILE* f = std::fopen((std::string("/proc/sys/fs/mqueue/") + which).c_str(), "r");
    long value = 0;
    if (f != nullptr) {
        char text[32] = {};
        if (std::fgets(text, sizeof text, f) != nullptr) {
            char* end = nullptr;
            errno = 0;
            value = std::strtol(text, &end, 10);
            if (end == text || errno != 0) value = 0;
        }
        std::fclose(f);
    }
    return value;
}

/// A POSIX message queue: the parent creates it by name (and removes it);
/// each member opens it by name. Without CAP_SYS_RESOURCE the kernel caps a
/// queue at /proc/sys/fs/mqueue/msg_max messages (10 by default; the
/// capacity is clamped to it) of at most msgsize_max bytes (8192 by
/// default; larger payloads are "not applicable", and say so). The memory
/// limit RLIMIT_MSGQUEUE is raised as far as the process may.
template <std::size_t Payload>
class posix_mq_channel {
public:
    static constexpr std::size_t max_senders = 64;
    static constexpr std::size_t max_receivers = 64;
    static std::string name() { return "posix_mq"; }
    static constexpr int copies = 2;  // into the kernel, out of it

    /// Why this payload cannot go through a POSIX message queue here ("" if it can).
    static std::string unavailable() {
        static const std::string reason = [] {
            raise_memory_limit();
            const std::string probe = "/shmds-cmp-mq-probe-" + std::to_string(::getpid());
            mq_attr attr{};
            attr.mq_maxmsg = 1;
            attr.mq_msgsize = static_cast<long>(Payload);
            const mqd_t q = ::mq_open(probe.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
            if (q == static_cast<mqd_t>(-1))
                return "mq_open refuses " + std::to_string(Payload) + "-byte messages (" +
                       std::strerror(errno) + "; /proc/sys/fs/mqueue/msgsize_max is " +
                       std::to_string(mqueue_limit("msgsize_max")) + ")";
            ::mq_close(q);
            ::mq_unlink(probe.c_str());
            return std::string();
        }();
        return reason;
    }

    explicit posix_mq_channel(const channel_config& config)
        : wait_(config.wait), name_("/shmds-cmp-mq-" + config.tag) {
        if (const std::string why = unavailable(); !why.empty()) throw std::invalid_argument(why);
        mq_attr attr{};
        attr.mq_maxmsg = static_cast<long>(config.capacity);
        attr.mq_msgsize = static_cast<long>(Payload);
        mqd_t q = ::mq_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
        if (q == static_cast<mqd_t>(-1) && errno == EINVAL && mqueue_limit("msg_max") > 0) {
            attr.mq_maxmsg = std::min(attr.mq_maxmsg, mqueue_limit("msg_max"));  // as many as allowed
            q = ::mq_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
        }
        if (q == static_cast<mqd_t>(-1))
            throw_errno("mq_open(" + name_ + ", " + std::to_string(attr.mq_maxmsg) + " x " +
                        std::to_string(Payload) + " B)");
        ::mq_close(q);
    }
    ~posix_mq_channel() { ::mq_unlink(name_.c_str()); }
    posix_mq_channel(const posix_mq_channel&) = delete;
    posix_mq_channel& operator=(const posix_mq_channel&) = delete;

    /// One member's end: a blocking descriptor (sends, and receives that
    /// sleep) and a non-blocking one (receives that spin), so that no flag
    /// changes per call.
    class end {
    public:
        end(const std::string& name, shmds_bench::wait_mode wait)
            : blocking_(open(name, O_RDWR)), polling_(open(name, O_RDWR | O_NONBLOCK)), wait_(wait) {}
        ~end() {
            if (blocking_ != closed) ::mq_close(blocking_);
            if (polling_ != closed) ::mq_close(polling_);
        }
        end(end&& other) noexcept : blocking_(other.blocking_), polling_(other.polling_), wait_(other.wait_) {
            other.blocking_ = other.polling_ = closed;
        }
        end& operator=(end&&) = delete;

        void send(const std::byte* bytes) {
            while (::mq_send(blocking_, reinterpret_cast<const char*>(bytes), Payload, 0) != 0)
                if (errno != EINTR) throw_errno("mq_send");
        }

        bool receive_for(std::byte* bytes, std::chrono::nanoseconds timeout) {
            auto got = [&](ssize_t n, bool timed) {
                if (n == static_cast<ssize_t>(Payload)) return true;
                if (n >= 0) throw std::runtime_error("mq_receive: a message of the wrong size");
                if (errno != EINTR && errno != EAGAIN && !(timed && errno == ETIMEDOUT))
                    throw_errno("mq_receive");
                return false;
            };
            return peer_wait(
                wait_, timeout,
                [&] {
                    return got(::mq_receive(polling_, reinterpret_cast<char*>(bytes), Payload, nullptr),
                               false);
                },
                [&](std::chrono::nanoseconds left) {
                    const timespec until = realtime_after(left);
                    for (;;) {
                        const ssize_t n = ::mq_timedreceive(blocking_, reinterpret_cast<char*>(bytes),
                                                            Payload, nullptr, &until);
                        if (got(n, true)) return true;
                        if (errno != EINTR) return false;  // timed out
                    }
                });
        }

    private:
        static constexpr mqd_t closed = static_cast<mqd_t>(-1);

        static mqd_t open(const std::string& name, int flags) {
            const mqd_t q = ::mq_open(name.c_str(), flags);
            if (q == closed) throw_errno("mq_open(" + name + ")");
            return q;
        }
        static timespec realtime_after(std::chrono::nanoseconds d) {
            timespec now{};
            clock_gettime(CLOCK_REALTIME, &now);
            const long long ns = now.tv_nsec + d.count() % 1'000'000'000;
            return timespec{static_cast<time_t>(now.tv_sec + d.count() / 1'000'000'000 + ns / 1'000'000'000),
                            static_cast<long>(ns % 1'000'000'000)};
        }

        mqd_t blocking_;
        mqd_t polling_;
        shmds_bench::wait_mode wait_;
    };

    end open_sender() const { return end(name_, wait_); }
    end open_receiver() const { return end(name_, wait_); }

private:
    static void raise_memory_limit() {
        rlimit limit{};
        if (::getrlimit(RLIMIT_MSGQUEUE, &limit) != 0) return;
        limit.rlim_cur = limit.rlim_max;
        if (::geteuid() == 0) limit.rlim_cur = limit.rlim_max = RLIM_INFINITY;
        (void)::setrlimit(RLIMIT_MSGQUEUE, &limit);
    }

    shmds_bench::wait_mode wait_;
    std::string name_;
};

}  // namespace shmds_compare
