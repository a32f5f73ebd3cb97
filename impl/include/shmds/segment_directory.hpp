// shmds/segment_directory.hpp: the shmds segments in /dev/shm, as an
// administrator sees them: who is attached, what they hold, which are stale.
//
// - A file is a shmds segment when its header carries the shmds magic number;
//   other files in the directory are never listed, opened for writing or
//   removed.
// - The live attachers are the holders of the file's attach locks, the same
//   truth posix_shm::attach_count() reads (visible from any PID namespace).
//   Listing removes nothing and holds no lock: a live segment is read through
//   a short look that is not counted as an attacher, does not hold off the
//   last detacher's removal, and leaves the segment in place if its last
//   attacher has died meanwhile (it is then listed as stale).
// - Stale: ready, and nobody attached (every attacher died). Unfinished: its
//   creator has not (or never) stored `ready`, and nobody holds it.
// - remove_if_stale() removes a segment only if it is still stale at the
//   moment of removal, under the same exclusive lock an opener's reclamation
//   takes, so it can never remove a segment a process has just attached to.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmds/detail/fault.hpp"
#include "shmds/detail/fork_guard.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/posix_shm.hpp"
#include "shmds/shm_table.hpp"

namespace shmds {

enum class segment_status {
    live,        ///< at least one live process is attached
    stale,       ///< ready, but every process attached to it has died
    unfinished,  ///< nobody attached and not ready: a creator died (or is starting)
    unreadable,  ///< has the shmds magic but this process cannot read or validate it
};

constexpr std::string_view to_string(segment_status status) noexcept {
    switch (status) {
        case segment_status::live:
            return "live";
        case segment_status::stale:
            return "stale";
        case segment_status::unfinished:
            return "unfinished";
        case segment_status::unreadable:
            return "unreadable";
    }
    return "unknown";
}

/// One shmds segment found in the directory.
struct segment_listing {
    std::string name;  ///< as passed to posix_shm ("/name")
    segment_status status = segment_status::unreadable;
    std::uint64_t file_bytes = 0;
    uid_t owner = 0;
    mode_t mode = 0;
    std::size_t attachers = 0;             ///< live attachers (holders of attach slots)
    std::uint64_t segment_id = 0;          ///< 0 until ready
    std::int32_t creator_pid = 0;          ///< 0 until ready
    std::int64_t created_unix_ns = 0;      ///< 0 until ready
    std::int64_t changed_unix_s = 0;       ///< the file's ctime
    std::vector<structure_info> structures;  ///< ready segments whose table could be read
    std::size_t damaged_entries = 0;       ///< used entries that failed validation (stale segments)
    std::string problem;                   ///< why the structures are unknown, if they are
};

namespace detail {

/// Reads the identity at the start of an open segment file; nullopt when the
/// file is too short or not readable.
inline std::optional<segment_identity> read_identity(int fd) noexcept {
    segment_identity id{};
    if (::pread(fd, &id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) return std::nullopt;
    return id;
}

/// The structures of a stale segment, read from a private read-only mapping
/// without locking (nobody can write a stale segment: an opener removes it
/// rather than attach to it).
inline void read_stale_structures(int fd, const segment_identity& id, segment_listing& out) {
    if (auto problem = identity_problem(id, out.file_bytes)) {
        out.problem = *problem;
        return;
    }
    void* base = ::mmap(nullptr, out.file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        out.problem = "cannot map it: ";
        out.problem += std::strerror(errno);
        return;
    }
    try {
        const shm_table table(static_cast<std::byte*>(base), id, out.name, std::chrono::milliseconds(0));
        out.structures = table.list_unattached(out.damaged_entries);
    } catch (...) {
        ::munmap(base, out.file_bytes);
        throw;
    }
    ::munmap(base, out.file_bytes);
}

/// The structures of a live segment, through a short look (an observer's
/// mapping: validated like an attachment, but holding no lock, so it neither
/// counts as an attacher nor holds off the last detacher's removal, and never
/// reclaiming). If the last attacher died since it was counted, the segment
/// is stale and is left in place (returns false).
inline bool read_live_structures(segment_listing& out) {
    try {
        segment_options options;
        options.mode = 0666;  // only listing: accept whatever mode and owner it has
        options.allow_other_owner = true;
        options.timeout = std::chrono::milliseconds(1000);
        options.notice = [](const std::string&) {};
        const attachment_ptr attached =
            segment_opener(open_mode::open_only, out.name, 0, options, segment_opener::purpose::observe)
                .run();
        if (!attached) return false;
        SHMDS_FAULT_POINT("directory.list.attached");
        const shm_table table(attached->base, attached->identity, attached->name, options.timeout);
        out.structures = table.list();
    } catch (const std::exception& e) {
        out.problem = e.what();
    }
    return true;
}

}  // namespace detail

/// Every shmds segment in `directory` (where shm_open keeps its files), in
/// name order. Reads only: takes no lock on stale segments, removes nothing.
/// Throws std::system_error when the directory is unreadable or the kernel
/// refuses to report locks.
inline std::vector<segment_listing> list_segments(const std::string& directory = "/dev/shm") {
    std::vector<segment_listing> found;
    DIR* dir = ::opendir(directory.c_str());
    if (!dir) detail::throw_os_error(errno, "cannot read " + directory);
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(dir)) {
        std::string_view file(entry->d_name);
        if (file != "." && file != "..") names.emplace_back(file);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());

    for (const std::string& file : names) {
        std::string path = directory;
        path += '/';
        path += file;
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;  // another user's private file, or gone
        detail::unique_fd holder(fd);
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        const auto id = detail::read_identity(fd);
        if (!id || id->magic != detail::segment_magic) continue;

        segment_listing s;
        s.name = "/" + file;
        s.file_bytes = static_cast<std::uint64_t>(st.st_size);
        s.owner = st.st_uid;
        s.mode = st.st_mode & 0777;
        s.changed_unix_s = static_cast<std::int64_t>(st.st_ctime);
        s.attachers = detail::count_attach_slots(fd);
        SHMDS_FAULT_POINT("directory.list.counted");
        const std::uint32_t state = id->state;
        if (state == detail::state_ready) {
            s.segment_id = id->segment_id;
            s.creator_pid = id->creator_pid;
            s.created_unix_ns = id->created_unix_ns;
        }
        if (s.attachers > 0 && state == detail::state_ready && !detail::read_live_structures(s))
            s.attachers = 0;  // its last attacher died while we looked
        if (s.attachers > 0) {
            s.status = segment_status::live;
        } else if (state == detail::state_ready) {
            s.status = segment_status::stale;
            detail::read_stale_structures(fd, *id, s);
        } else if (state == detail::state_uninitialised || state == detail::state_initialising) {
            s.status = segment_status::unfinished;
        } else {
            s.status = segment_status::unreadable;
            s.problem = "invalid state word " + std::to_string(state);
        }
        found.push_back(std::move(s));
    }
    return found;
}

/// Removes the segment `name` if, at the moment of removal, nobody is
/// attached and it is ready (stale), or it is unfinished and its file has not
/// changed for `unfinished_age` (a creator that died before finishing).
/// Returns true if it removed it. Never blocks; throws
/// invalid_argument_error for a bad name, std::system_error when the name
/// exists but cannot be opened or unlinked (another user's segment, say).
inline bool remove_if_stale(std::string_view name,
                            std::chrono::seconds unfinished_age = std::chrono::seconds(60)) {
    detail::check_segment_name(name);
    const std::string path(name);
    // A fork() by another thread while we hold the exclusive lock must not
    // hand the lock (and with it every opener's wait) to the child.
    const detail::fork_private_fd holder =
        detail::fork_private_fd::open([&] { return ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0); });
    if (!holder) {
        if (errno == ENOENT) return false;
        detail::throw_os_error(errno, "cannot open segment '" + path + "'");
    }
    const int fd = holder.get();
    // The exclusive lock an opener needs to reclaim: while we hold it nobody
    // can attach, and if anybody is attached we cannot get it.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0) detail::throw_os_error(errno, "cannot stat segment '" + path + "'");
    const auto id = detail::read_identity(fd);
    if (!id || id->magic != detail::segment_magic) return false;  // not ours to judge
    const detail::file_look look = detail::look_at_file(fd);
    const bool old_enough = ::time(nullptr) - st.st_ctime >= unfinished_age.count();
    if (look != detail::file_look::ready && !(look == detail::file_look::unfinished && old_enough)) return false;
    if (!detail::name_refers_to(path, st.st_dev, st.st_ino)) return false;  // replaced meanwhile
    if (::shm_unlink(path.c_str()) != 0) detail::throw_os_error(errno, "cannot remove segment '" + path + "'");
    return true;
}

}  // namespace shmds
