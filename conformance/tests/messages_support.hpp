// The messages of the message-queue tests (MSG-001..006): message `number`
// of `length` bytes whose bytes follow from both and a seed, so that a
// receiver in another program can check each one alone (test_messages.cpp,
// and the actor's send-messages and receive-messages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shmconf_tests {

inline std::vector<std::byte> numbered_message(std::size_t length, std::uint64_t number, std::uint64_t seed) {
    std::uint64_t x = (number + 1) * 0x9e37'79b9'7f4a'7c15ULL ^ (seed + 1) * 0xbf58'476d'1ce4'e5b9ULL;
    std::vector<std::byte> m(length);
    for (std::size_t k = 0; k < length; ++k) {
        x ^= x >> 29;
        x *= 0x94d0'49bb'1331'11ebULL;
        m[k] = static_cast<std::byte>(x >> 56);
    }
    return m;
}

/// The length of message `number` in a stream of random lengths up to `largest`.
inline std::size_t random_length(std::uint64_t number, std::uint64_t seed, std::size_t largest) {
    std::uint64_t x = (number + 7) * 0xd6e8'feb8'6659'fd93ULL ^ seed;
    x ^= x >> 32;
    return static_cast<std::size_t>(x % (largest + 1));
}

}  // namespace shmconf_tests
