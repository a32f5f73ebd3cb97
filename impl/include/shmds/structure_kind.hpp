// shmds/structure_kind.hpp: the kinds of structure a segment's table can
// hold, and the registry that every name and check of a kind derives from.
// A kind's number is stored in segments: it is never renumbered or reused.
// A new kind is added here first; everything that names kinds reads this list.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace shmds {

/// The kinds of structure a table entry can describe. Values are stored in
/// segments and must never be renumbered.
enum class structure_kind : std::uint32_t {
    array = 1,
    queue = 2,
    stack = 3,
    spsc_queue = 4,
    mpmc_queue = 5,
    concurrent_stack = 6,
    message_queue = 7,
};

/// One kind and the name of the structure template that makes it.
struct structure_kind_info {
    structure_kind kind;
    std::string_view name;
};

/// Every kind, in number order (the size follows the list).
inline constexpr auto structure_kinds = std::to_array<structure_kind_info>({
    {structure_kind::array, "shm_array"},
    {structure_kind::queue, "shm_queue"},
    {structure_kind::stack, "shm_stack"},
    {structure_kind::spsc_queue, "shm_spsc_queue"},
    {structure_kind::mpmc_queue, "shm_mpmc_queue"},
    {structure_kind::concurrent_stack, "shm_concurrent_stack"},
    {structure_kind::message_queue, "shm_message_queue"},
});

/// The structure template's name for `kind` ("unknown structure" for a
/// number no kind has, as read from a damaged segment).
constexpr std::string_view to_string(structure_kind kind) noexcept {
    for (const structure_kind_info& known : structure_kinds)
        if (known.kind == kind) return known.name;
    return "unknown structure";
}

/// Whether `kind`, as stored in a table entry, names a kind of this library.
constexpr bool is_known_kind(std::uint32_t kind) noexcept {
    for (const structure_kind_info& known : structure_kinds)
        if (static_cast<std::uint32_t>(known.kind) == kind) return true;
    return false;
}

static_assert(
    [] {
        for (std::size_t i = 0; i < structure_kinds.size(); ++i)
            if (static_cast<std::size_t>(structure_kinds[i].kind) != i + 1) return false;
        return true;
    }(),
    "structure_kinds lists every kind once, in number order from 1: a kind's number is stored in segments");

}  // namespace shmds
