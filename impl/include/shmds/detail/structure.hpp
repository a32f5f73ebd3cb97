// shmds/detail/structure.hpp: what every structure handle shares: its
// identity for messages, and the block layout of structures that keep a
// control block in front of their elements.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "shmds/config.hpp"
#include "shmds/detail/os.hpp"
#include "shmds/error.hpp"

namespace shmds::detail {

/// Reads a control field of a structure exactly once. The value is checked
/// and then used; a plain read would let the compiler read it again after the
/// check, and another process may have written garbage in between.
inline std::uint64_t read_once(std::uint64_t& field) noexcept {
    return std::atomic_ref<std::uint64_t>(field).load(std::memory_order_relaxed);
}

/// The names of an opened structure and whether this handle created it.
class structure_identity {
public:
    /// The structure's name in its segment's table.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const std::string& segment_name() const noexcept { return segment_name_; }
    /// True when this handle created the structure (rather than finding it).
    [[nodiscard]] bool created() const noexcept { return created_; }

protected:
    structure_identity(std::string segment_name, std::string_view name, bool created)
        : segment_name_(std::move(segment_name)), name_(name), created_(created) {}

    /// "shm_queue 'jobs' in segment '/demo'"
    [[nodiscard]] std::string describe(std::string_view kind) const {
        return std::string(kind) + " '" + name_ + "' in segment '" + segment_name_ + "'";
    }

    /// A control field read from shared memory is out of range: someone wrote
    /// garbage there. Never returns.
    [[noreturn]] void throw_corrupted(std::string_view kind, const std::string& what) const {
        throw corrupted_error(describe(kind) + " is damaged: " + what);
    }

    /// The check every structure with a control block makes at open: the
    /// capacity its control block records is its table entry's.
    void check_recorded_capacity(std::string_view kind, std::uint64_t recorded, std::uint64_t entry) const {
        if (recorded != entry) [[unlikely]]
            throw_corrupted(kind, "its control block records capacity " + std::to_string(recorded) +
                                      ", its table entry " + std::to_string(entry));
    }

private:
    std::string segment_name_;
    std::string name_;
    bool created_;
};

/// Block = Control, then the elements starting on the next cache line (so the
/// control fields and the first elements never share a line).
template <class Control, class T>
struct control_then_elements {
    using control_type = Control;
    static constexpr std::size_t block_alignment = std::max(alignof(Control), alignof(T));
    static constexpr std::size_t elements_offset =
        align_up(sizeof(Control), std::max(alignof(T), cache_line_size));

    static std::optional<std::size_t> bytes_for(std::uint64_t capacity) noexcept {
        auto elements = checked_mul(capacity, sizeof(T));
        return elements ? checked_add(elements_offset, *elements) : std::nullopt;
    }

    static Control* control(std::byte* block) noexcept { return reinterpret_cast<Control*>(block); }
    static T* elements(std::byte* block) noexcept { return reinterpret_cast<T*>(block + elements_offset); }
};

/// The body of every structure's try_pop(T& out) that wraps its try_pop():
/// true and `out` assigned, or false with `out` left alone.
template <class T>
[[gnu::always_inline]] inline bool assign_if_present(std::optional<T>&& value, T& out) {
    if (!value) return false;
    out = *value;
    return true;
}

}  // namespace shmds::detail
