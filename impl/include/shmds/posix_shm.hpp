// shmds/posix_shm.hpp: a named POSIX shared-memory segment, reference counted
// by the kernel, holding a table of named structures.
//
// The pieces: options (segment_options.hpp), one attachment and what keeps
// the count true (detail/attachment.hpp: locks, the fork registry, detach),
// and the attach protocol (detail/segment_opener.hpp: create, wait for
// ready, validate, reclaim). This class is the handle users hold.
//
// Lifetime and reference counting
// - Every attached handle holds a shared flock(2) on its own open file
//   description of the segment's file. The kernel drops that lock when the
//   handle is destroyed or its process dies in any way (SIGKILL included), so
//   the set of locks is the set of live attachers: no count is stored in the
//   segment that a crash could leave wrong.
// - Detaching tries to upgrade to an exclusive lock; only the last live
//   attacher gets it, and it unlinks the name. An opener that raced with that
//   unlink sees the file's link count at 0 after taking its lock and starts
//   again.
// - Counting is separate: each attachment also holds an OFD lock on one byte
//   of its own far beyond the file's end (its attach slot, os.hpp), and
//   attach_count() probes those bytes, which works from any PID namespace.
// - No mapping is made through the locked description (map_segment): a
//   mapping keeps its description alive, in any fork() child that inherits
//   it too, and with it the locks.
// - A handle copied into a child by fork() re-registers in the child (its own
//   open file description and locks), so parent and child count separately.
//   Descriptors that carry locks are registered for the fork handlers in the
//   step that opens them (fork_guard.hpp), and unlocked before they are
//   closed, so a fork() by another thread at any moment copies no lock.
// - Process-safe structure handles share the attachment (attachment_ref):
//   the mapping lasts until the posix_shm and every such handle are gone.
// - A ready segment that nobody holds (every attacher died) is stale: the next
//   opener removes it, reports so through the notice handler, and proceeds as
//   if the name were free.
//
// Initialisation
// - The creator makes the file with O_EXCL, reserves every byte with
//   posix_fallocate (so a full /dev/shm fails here with ENOSPC, never later
//   with SIGBUS), writes the header and table, and stores `ready` into the
//   state word last. Openers read nothing before they see `ready`, then
//   validate magic, version, size and every offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

#include "shmds/config.hpp"
#include "shmds/detail/attachment.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/detail/segment_layout.hpp"
#include "shmds/detail/segment_opener.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"
#include "shmds/open_mode.hpp"
#include "shmds/segment_options.hpp"
#include "shmds/shm_table.hpp"

namespace shmds {

class posix_shm {
public:
    /// Opens the segment `name`, creating it with `size` bytes if it does not
    /// exist. Throws mismatch_error (size_mismatch) if it exists but is
    /// smaller; untrusted_error if it exists but another user owns it or it
    /// lets others write more than options.mode (see segment_options);
    /// invalid_argument_error for a bad name, size or option;
    /// corrupted_error for a segment that fails validation; std::system_error
    /// for an OS failure (ENOSPC when /dev/shm cannot hold it). Blocks at most
    /// options.timeout for another process.
    posix_shm(std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_or_create, name, size, options) {}

    /// Opens the existing segment `name`; throws not_found_error if absent,
    /// untrusted_error if another user owns it or it lets others write more
    /// than options.mode (see segment_options).
    explicit posix_shm(std::string_view name, const segment_options& options = {})
        : posix_shm(open_only, name, options) {}

    /// Creates `name`; throws already_exists_error if it exists.
    posix_shm(create_only_t, std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_mode::create_only, name, size, options) {}

    posix_shm(open_only_t, std::string_view name, const segment_options& options = {})
        : posix_shm(open_mode::open_only, name, 0, options) {}

    posix_shm(open_or_create_t, std::string_view name, std::size_t size, const segment_options& options = {})
        : posix_shm(open_mode::open_or_create, name, size, options) {}

    posix_shm(posix_shm&&) noexcept = default;
    posix_shm& operator=(posix_shm&&) noexcept = default;
    posix_shm(const posix_shm&) = delete;
    posix_shm& operator=(const posix_shm&) = delete;

    /// Detaches, once the process-safe structure handles opened through this
    /// handle are gone too (they keep the mapping: see shared_attachment()).
    /// The last live attacher's detach removes the name. Plain structure
    /// handles (shm_array, shm_queue, shm_stack, shm_span) must not be used
    /// afterwards.
    ~posix_shm() = default;

    [[nodiscard]] const std::string& name() const noexcept { return attachment_->name; }
    /// Total bytes of the segment, header and table included.
    [[nodiscard]] std::size_t size() const noexcept { return attachment_->size; }
    [[nodiscard]] void* base() const noexcept { return attachment_->base; }
    /// True when this handle created the segment (rather than opening it).
    [[nodiscard]] bool created() const noexcept { return attachment_->created; }
    /// Random identity chosen at creation: two handles with the same id see
    /// the same segment, even across a remove and re-create of the name.
    [[nodiscard]] std::uint64_t segment_id() const noexcept { return attachment_->identity.segment_id; }
    [[nodiscard]] std::uint32_t alignment() const noexcept { return attachment_->identity.alignment; }
    /// The validated identity and geometry recorded at creation.
    [[nodiscard]] const detail::segment_identity& identity() const noexcept { return attachment_->identity; }

    /// Live attachments of this segment by any process, as the kernel counts
    /// them (one per handle; a handle inherited across fork counts in each
    /// process; processes in other PID namespaces count too). Probes the
    /// attach locks (two system calls per attacher); throws
    /// std::system_error if the kernel refuses.
    [[nodiscard]] std::size_t attach_count() const {
        return detail::count_attach_slots(attachment_->fd) + (attachment_->holds_slot ? 1 : 0);
    }

    /// This process's attachment (descriptor, mapping); stable while this
    /// handle lives, even if the handle moves.
    [[nodiscard]] const detail::attachment* native_attachment() const noexcept { return attachment_.get(); }
    /// The same, shared: structure handles keep it (and with it the mapping)
    /// for as long as they live, even past this handle.
    [[nodiscard]] detail::attachment_ref shared_attachment() const noexcept {
        return detail::attachment_ref(attachment_);
    }

    /// The segment's directory of structures.
    [[nodiscard]] shm_table& table() noexcept { return table_; }
    [[nodiscard]] const shm_table& table() const noexcept { return table_; }

    /// Removes the structure `name` and frees its space for reuse. Throws
    /// not_found_error if there is none. Handles to it, in any process, must
    /// not be used afterwards.
    void destroy(std::string_view structure_name) { table_.destroy(structure_name); }

    [[nodiscard]] bool contains(std::string_view structure_name) const {
        return table_.contains(structure_name);
    }

    /// Removes the name `name` now, whoever is attached (they keep their
    /// mappings). Returns false if it did not exist or was not valid. Never
    /// throws.
    static bool remove(std::string_view name) noexcept {
        if (!is_valid_segment_name(name)) return false;
        try {
            return ::shm_unlink(std::string(name).c_str()) == 0;
        } catch (...) {
            return false;
        }
    }

    /// True when a segment called `name` exists. Never throws.
    static bool exists(std::string_view name) noexcept {
        if (!is_valid_segment_name(name)) return false;
        try {
            int fd = ::shm_open(std::string(name).c_str(), O_RDONLY | O_CLOEXEC, 0);
            if (fd < 0) return errno == EACCES;
            ::close(fd);
            return true;
        } catch (...) {
            return false;
        }
    }

private:
    posix_shm(open_mode mode, std::string_view name, std::size_t size, const segment_options& options)
        : attachment_(detail::segment_opener(mode, name, size, options).run()),
          table_(attachment_->base, attachment_->identity, attachment_->name, attachment_->timeout) {}

    std::shared_ptr<detail::attachment> attachment_;
    shm_table table_;
};

}  // namespace shmds
