// compare/peers/ipc_endpoint.hpp: the ipc:// address of a messaging
// library's channel (ZeroMQ, NNG: both carry ipc:// over a UNIX domain
// socket bound to a file). The parent makes a private directory for the
// socket file before forking and removes the file and the directory in its
// destructor, whatever the members did; the receiver binds the file there,
// and the senders connect to it.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace shmds_compare {

/// How long an end waits for its peer at open (the other end's bind) and at
/// close (for what it sent to be taken): a bound, so that a dead peer cannot
/// hold a member for ever; the harness's own deadline is longer.
inline constexpr std::chrono::seconds ipc_patience{10};

class ipc_endpoint {
public:
    /// A fresh directory /tmp/shmds-cmp-LIBRARY-XXXXXX (short enough for a
    /// socket address's 108 bytes whatever TMPDIR says).
    explicit ipc_endpoint(const std::string& library) {
        std::string pattern = "/tmp/shmds-cmp-" + library + "-XXXXXX";
        std::vector<char> text(pattern.begin(), pattern.end());
        text.push_back('\0');
        if (::mkdtemp(text.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(), "mkdtemp(" + pattern + ")");
        directory_ = text.data();
        path_ = directory_ + "/socket";
    }
    ~ipc_endpoint() {
        (void)::unlink(path_.c_str());  // the libraries remove it too when the binder closes
        (void)::rmdir(directory_.c_str());
    }
    ipc_endpoint(const ipc_endpoint&) = delete;
    ipc_endpoint& operator=(const ipc_endpoint&) = delete;

    [[nodiscard]] std::string url() const { return "ipc://" + path_; }

    /// Waits until the receiver has bound the socket file (so that a
    /// connection made now is made at once, not on a reconnect timer).
    /// Throws after ipc_patience.
    void wait_for_binder() const {
        const auto give_up = std::chrono::steady_clock::now() + ipc_patience;
        struct stat st {};
        while (::stat(path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
            if (std::chrono::steady_clock::now() >= give_up)
                throw std::runtime_error("nothing bound " + path_ + " in time");
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

private:
    std::string directory_;
    std::string path_;
};

/// Messages a library's queue holds: the channel's capacity, but no more
/// than 4 MiB of payload (16 messages at the least; the socket peer's
/// buffers are capped so too) nor `most` (the library's own limit).
inline int library_queue_messages(std::size_t capacity, std::size_t payload, std::size_t most) {
    const std::size_t by_bytes = std::max<std::size_t>(16, (std::size_t{4} << 20) / payload);
    return static_cast<int>(std::min({capacity, by_bytes, most}));
}

}  // namespace shmds_compare
