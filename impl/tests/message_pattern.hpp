// The messages the message-queue tests send: message number `i` of a run
// seeded `seed` has a length of 0 to `max` bytes and bytes that follow from
// both, so that a receiver in another program can check each one alone
// (test_message_queue.cpp and the peer's send-messages / receive-messages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shmds_test {

inline std::vector<std::byte> message_of(std::uint64_t seed, std::uint64_t i, std::size_t max) {
    std::uint64_t x = (seed + 1) * 0x9e37'79b9'7f4a'7c15ULL ^ (i + 1) * 0xbf58'476d'1ce4'e5b9ULL;
    x ^= x >> 31;
    std::vector<std::byte> m(static_cast<std::size_t>(x % (max + 1)));
    for (std::size_t k = 0; k < m.size(); ++k)
        m[k] = static_cast<std::byte>(static_cast<unsigned char>(x >> (k % 7 * 8)) + k);
    return m;
}

}  // namespace shmds_test
