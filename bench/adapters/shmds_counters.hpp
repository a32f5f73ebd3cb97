// bench/adapters/shmds_counters.hpp: counters for the false-sharing workload
// (workloads/false_sharing.hpp) placed as the library's allocator places
// them: one one-element shm_array per process, in one segment, so that the
// workload measures whether the allocator keeps separate structures off
// each other's cache lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <shmds/shmds.hpp>

namespace shmds_bench {

class shmds_allocated_counters {
public:
    /// `members` zeroed counters in a new segment named after `tag`.
    shmds_allocated_counters(std::size_t members, const std::string& tag)
        : segment_("/shmds-bench-" + tag, 1 << 20, {.table_capacity = 16}) {
        for (std::size_t m = 0; m < members; ++m) {
            shmds::shm_array<std::uint64_t> own(segment_, "counter-" + std::to_string(m), 1);
            pointers_.push_back(own.data());
        }
    }
    [[nodiscard]] const std::vector<std::uint64_t*>& pointers() const noexcept { return pointers_; }

private:
    shmds::posix_shm segment_;  ///< removed with this object (the last detach)
    std::vector<std::uint64_t*> pointers_;
};

}  // namespace shmds_bench
