// compare/peers/boost_micro.hpp: Boost.Interprocess beside the project in the
// single-process microbenchmarks (bench/micro_structures.cpp):
//
//   discovery   a managed_shared_memory segment holding N named objects:
//               find<T>(name) of one of them, and construct<T>(name) +
//               destroy<T>(name) of one more (Boost's named-object index, a
//               red-black tree by default, against shm_table's hash index);
//   access      a boost::interprocess::vector in a managed segment, reached
//               through offset_ptr, with the same access loops as shm_array.
#pragma once

#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>

namespace shmds_compare {

namespace bip = boost::interprocess;

/// A managed segment removed when the benchmark ends, whatever happens.
class scoped_managed_segment {
public:
    scoped_managed_segment(const std::string& what, std::size_t bytes)
        : name_("shmds-cmp-micro-" + std::to_string(::getpid()) + "-" + what) {
        bip::shared_memory_object::remove(name_.c_str());
        segment_.emplace(bip::create_only, name_.c_str(), bytes);
    }
    ~scoped_managed_segment() {
        segment_.reset();
        bip::shared_memory_object::remove(name_.c_str());
    }
    scoped_managed_segment(const scoped_managed_segment&) = delete;
    scoped_managed_segment& operator=(const scoped_managed_segment&) = delete;
    bip::managed_shared_memory& operator*() { return *segment_; }
    bip::managed_shared_memory* operator->() { return &*segment_; }

private:
    std::string name_;
    std::optional<bip::managed_shared_memory> segment_;
};

/// Bytes for n small named objects with Boost's headers and index nodes.
inline std::size_t named_objects_bytes(std::uint32_t n) {
    return std::size_t{n} * 512 + (8u << 20);
}

/// find<char>(name) of one of n named objects, visited in a scattered order
/// (as discovery/find/shm_table does).
inline void boost_named_find(benchmark::State& state) {
    const auto n = static_cast<std::uint32_t>(state.range(0));
    scoped_managed_segment seg("find", named_objects_bytes(n));
    for (std::uint32_t i = 0; i < n; ++i) seg->construct<char>(("s" + std::to_string(i)).c_str())[1]();
    std::vector<std::string> names;
    for (std::uint32_t i = 0; i < n; ++i) names.push_back("s" + std::to_string((i * 7919u) % n));
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(seg->find<char>(names[i].c_str()).first);
        if (++i == names.size()) i = 0;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// construct<char>(name) + destroy<char>(name) of one object beside n - 1 others.
inline void boost_named_create_destroy(benchmark::State& state) {
    const auto n = static_cast<std::uint32_t>(state.range(0));
    scoped_managed_segment seg("create", named_objects_bytes(n));
    for (std::uint32_t i = 0; i + 1 < n; ++i) seg->construct<char>(("s" + std::to_string(i)).c_str())[1]();
    for (auto _ : state) {
        benchmark::DoNotOptimize(seg->construct<char>("new")[1]());
        seg->destroy<char>("new");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

using offset_vector =
    bip::vector<std::uint64_t, bip::allocator<std::uint64_t, bip::managed_shared_memory::segment_manager>>;

/// A vector of `n` elements in a managed segment, found by name, as a user
/// of Boost.Interprocess would hold an array in shared memory.
class boost_vector_in_segment {
public:
    explicit boost_vector_in_segment(std::size_t n)
        : seg_("vector", n * sizeof(std::uint64_t) + n * sizeof(std::uint64_t) / 8 + (4u << 20)) {
        vector_ = seg_->construct<offset_vector>("v")(n, 0, seg_->get_segment_manager());
        std::iota(vector_->begin(), vector_->end(), 0);
    }
    std::uint64_t& operator[](std::size_t i) { return (*vector_)[i]; }

private:
    scoped_managed_segment seg_;
    offset_vector* vector_;
};

}  // namespace shmds_compare
