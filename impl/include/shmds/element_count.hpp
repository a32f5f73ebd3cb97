// shmds/element_count.hpp: one way to ask any structure how many elements it
// holds, for code that is generic over structures (tests, fuzzers, adapters,
// the blocking handles' empty() and full()).
//
// Every structure answers size(), except the MPMC queue, whose count is only
// an estimate while others run and is therefore named size_estimate() (its
// size() is deprecated). The rule "size_estimate() where there is one,
// otherwise size()" lives here and nowhere else.
#pragma once

#include <cstddef>

namespace shmds {

/// The number of elements `structure` holds: its size_estimate() if it has
/// one, otherwise its size(). A snapshot, exactly as those calls are; it
/// throws what they throw (corrupted_error on damaged positions).
template <class Structure>
[[nodiscard]] std::size_t element_count(const Structure& structure) {
    if constexpr (requires { structure.size_estimate(); })
        return structure.size_estimate();
    else
        return structure.size();
}

}  // namespace shmds
