// shmds/open_mode.hpp: how a segment or a structure is attached (public):
// create it, open it, or whichever applies; the tag objects select the
// constructor that says so explicitly.
#pragma once

namespace shmds {

/// How a segment or structure is attached: create it (fail if it exists),
/// open it (fail if it does not), or whichever applies.
enum class open_mode { create_only, open_only, open_or_create };

struct create_only_t {
    explicit create_only_t() = default;
};
struct open_only_t {
    explicit open_only_t() = default;
};
struct open_or_create_t {
    explicit open_or_create_t() = default;
};
inline constexpr create_only_t create_only{};
inline constexpr open_only_t open_only{};
inline constexpr open_or_create_t open_or_create{};

}  // namespace shmds
