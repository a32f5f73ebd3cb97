// fuzz/fuzz_segment.cpp: libFuzzer target whose input is the whole file of a
// segment (header, table entries, index, free lists, structure blocks).
//
// Why: a segment's bytes belong to every process that maps it, so opening one
// must survive any contents. Each run plants the input under a name unique to
// this process, held the way a live attacher holds it, opens it with
// posix_shm (open only, 2 ms timeout, notices ignored), lists the table,
// opens every listed structure with its kind and the seeds' element type,
// runs every operation on it, creates one structure of each kind, destroys
// every structure, and lists again. Acceptable outcomes: correct behaviour,
// shmds::error, std::system_error. Anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace {

using namespace shmds_fuzz;

/// Every operation of the kind, twice, with varied arguments.
void run_every_operation(shmds::posix_shm& seg, const shmds::structure_info& info) {
    const int ops = ops_of(info.kind);
    open_and_run_any(seg, info, 2 * ops, [ops](int i) {
        return operation{i % ops, static_cast<std::uint8_t>(i * 37 + ops)};
    });
}

/// Creates a small structure of each kind in whatever room the table and heap
/// have (the caller destroys them), and works it.
void create_one_of_each(shmds::posix_shm& seg) {
    const auto u64 = shmds::fingerprint_of<std::uint64_t>();
    for (const shmds::structure_kind_info& known : shmds::structure_kinds) {
        const auto kind = static_cast<std::uint32_t>(known.kind);
        const std::string name = "fuzz-new-" + std::to_string(kind);
        const shmds::structure_info info{name, known.kind,    3, u64.size, u64.align,
                                         "",   u64.name_hash, 0, 0,        0};
        // Default wait options: this handle only creates; the run opens its own.
        const bool created = attempt([&] {
            shmds::visit_structure_type<std::uint64_t>(known.kind, [&]<class S>(std::type_identity<S>) {
                with_creation_arguments<S>([](auto&&... args) { S created_handle(args...); }, seg, name, 3);
            });
        });
        if (created) run_every_operation(seg, info);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > max_input_bytes) return -1;  // not worth keeping: segments in the seeds are smaller
    static const std::string name = process_segment_name("segment");
    planted_segment planted(name, data, size);
    if (!planted.ok()) return 0;

    std::optional<shmds::posix_shm> seg;
    if (!attempt([&] { seg.emplace(shmds::open_only, name, quiet_options()); })) return 0;
    shmds::shm_table& table = seg->table();
    attempt([&] { digest_sink = table.size() + table.capacity() + table.bytes_free(); });

    std::vector<shmds::structure_info> listed;
    attempt([&] { listed = table.list(); });
    for (const shmds::structure_info& info : listed) {
        attempt([&] { digest_sink = table.find(info.name).has_value() + seg->contains(info.name); });
        run_every_operation(*seg, info);
    }

    create_one_of_each(*seg);
    for (const shmds::structure_info& info : listed) attempt([&] { seg->destroy(info.name); });
    for (const shmds::structure_kind_info& known : shmds::structure_kinds)
        attempt([&] { seg->destroy("fuzz-new-" + std::to_string(static_cast<std::uint32_t>(known.kind))); });
    attempt([&] { digest_sink = table.list().size() + table.bytes_free(); });
    return 0;
}
