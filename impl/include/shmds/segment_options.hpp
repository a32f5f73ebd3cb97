// shmds/segment_options.hpp: how a segment is created and opened (public):
// its mode, whose segments to trust, its table's geometry, how long to wait
// for other processes, and where notices of recoveries go.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <sys/types.h>

#include "shmds/config.hpp"

namespace shmds {

/// Receives messages about recoveries the library performed on its own (a
/// stale segment removed, for instance). Never called on the hot path.
using notice_handler = void (*)(const std::string& message);

inline void print_notice_to_stderr(const std::string& message) {
    std::fprintf(stderr, "shmds: %s\n", message.c_str());
}

/// Creation parameters, trust and waits. When opening an existing segment,
/// `mode`, `allow_other_owner`, `timeout` and `notice` matter; the others are
/// fixed when it is created.
struct segment_options {
    /// Permission bits of a new segment (applied exactly, whatever the umask).
    /// Also what the caller accepts of an existing one: a segment that lets
    /// group or others write when `mode` does not is refused with
    /// untrusted_error, since any process that can write it can damage what
    /// this one reads. Pass the wider mode (0660, 0666) to accept it.
    mode_t mode = 0600;
    /// Accept an existing segment whose file another user owns. Off by
    /// default: another user's segment is refused with untrusted_error.
    bool allow_other_owner = false;
    /// Most structures the segment's table can hold.
    std::uint32_t table_capacity = 64;
    /// Every structure starts on this boundary: 64 (a cache line) or 128
    /// (an adjacent-line pair); any power of two up to 4096.
    std::uint32_t alignment = cache_line_size;
    /// Longest wait for another process: a creator to finish initialising,
    /// a last detacher to finish unlinking, the table's lock, a concurrent
    /// stack's lock.
    std::chrono::milliseconds timeout{5000};
    notice_handler notice = print_notice_to_stderr;
};

}  // namespace shmds
