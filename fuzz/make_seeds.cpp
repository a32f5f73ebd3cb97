// fuzz/make_seeds.cpp: writes the seed corpus of the fuzz targets, or checks
// that a committed corpus still opens with this version of the library.
//
//   fuzz_make_seeds write DIR   writes DIR/fuzz_segment/* and DIR/fuzz_structures/*
//   fuzz_make_seeds check DIR   exit 1 unless every DIR/fuzz_segment/* opens and lists
//
// Why: libFuzzer finds deep paths far sooner from valid inputs. The
// fuzz_segment seeds are the bytes of real segments built through the
// library (every kind, three element types, empty, partly full, full and
// wrapped queues, destroyed entries leaving free blocks and tombstones, a
// full table, another alignment, handles alive at the snapshot). Fields that
// differ from run to run but are never validated (segment id, creation time
// and pid) are zeroed so that regenerating does not churn the repository.
// The fuzz_structures seeds are scripts in its command language (harness.hpp).
// The check keeps the corpus from going stale: after a format change every
// seed would be refused at the header, and the fuzzer would start from noise.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness.hpp"

namespace {

using namespace shmds_fuzz;
namespace fs = std::filesystem;
using u64 = std::uint64_t;
constexpr std::size_t kib = 1024;

void write_file(const fs::path& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

// ---- fuzz_segment: real segments ------------------------------------------------------------

/// Saves the bytes of `seg` as the seed `path`.
void save(const fs::path& path, const shmds::posix_shm& seg) {
    std::vector<std::byte> bytes(static_cast<const std::byte*>(seg.base()),
                                 static_cast<const std::byte*>(seg.base()) + seg.size());
    auto* identity = reinterpret_cast<shmds::detail::segment_identity*>(bytes.data());
    identity->segment_id = 0;
    identity->created_unix_ns = 0;
    identity->creator_pid = 0;
    write_file(path, bytes.data(), bytes.size());
}

/// Builds a segment with `build`, then saves its bytes as seed `file` (once
/// the handles `build` opened are closed).
void snapshot(const fs::path& dir, const std::string& file, std::size_t size, const shmds::segment_options& options,
              const std::function<void(shmds::posix_shm&)>& build) {
    const std::string name = process_segment_name("seed");
    shmds::posix_shm::remove(name);
    shmds::posix_shm seg(shmds::create_only, name, size, options);
    build(seg);
    save(dir / file, seg);
}

/// One structure of every kind named "<kind>-<suffix>", element type E, each
/// given `fill` elements (arrays: written), queues wrapped by `wrap` pops and
/// pushes first.
template <class E>
void every_kind(shmds::posix_shm& seg, const std::string& suffix, std::size_t capacity, std::size_t fill,
                std::size_t wrap = 0) {
    shmds::shm_array<E> array(seg, "array-" + suffix, capacity);
    for (std::size_t i = 0; i < fill; ++i) array[i] = value_of<E>(i + 1);
    shmds::shm_queue<E> queue(seg, "queue-" + suffix, capacity);
    shmds::shm_stack<E> stack(seg, "stack-" + suffix, capacity);
    shmds::shm_spsc_queue<E> spsc(seg, "spsc-" + suffix, capacity);
    shmds::shm_mpmc_queue<E> mpmc(seg, "mpmc-" + suffix, capacity);
    shmds::shm_concurrent_stack<E> cstack(seg, "cstack-" + suffix, capacity);
    // Bytes, whatever E is: messages of 0 to 8 bytes (records of 8 and 16),
    // so that wrapped rings end in wrap records.
    shmds::shm_message_queue messages(seg, "messages-" + suffix, capacity * message_ring_bytes_per_element,
                                      message_largest);
    const std::array<std::byte, message_largest> bytes{std::byte{1}, std::byte{2}, std::byte{3},
                                                       std::byte{4}, std::byte{5}, std::byte{6},
                                                       std::byte{7}, std::byte{8}};
    const auto message = [&](std::size_t i) { return std::span(bytes.data(), i % (bytes.size() + 1)); };
    for (std::size_t i = 0; i < wrap; ++i) {
        queue.push(value_of<E>(i));
        (void)queue.pop();
        spsc.push(value_of<E>(i));
        (void)spsc.pop();
        mpmc.push(value_of<E>(i));
        (void)mpmc.pop();
        messages.send(message(i + 5));
        (void)messages.try_receive();
    }
    for (std::size_t i = 0; i < fill; ++i) {
        queue.push(value_of<E>(i + 1));
        stack.push(value_of<E>(i + 1));
        spsc.push(value_of<E>(i + 1));
        mpmc.push(value_of<E>(i + 1));
        cstack.push(value_of<E>(i + 1));
        (void)messages.try_send(message(i + 1));  // (mixed lengths may not all fit)
    }
}

void write_segment_seeds(const fs::path& dir) {
    const auto small = quiet_options(16, 64);
    snapshot(dir, "empty-table", 8 * kib, small, [](shmds::posix_shm&) {});
    snapshot(dir, "every-kind-empty", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<u64>(seg, "e", 4, 0); });
    snapshot(dir, "every-kind-partly-full", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<u64>(seg, "p", 6, 3); });
    snapshot(dir, "every-kind-full", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<u64>(seg, "f", 5, 5); });
    snapshot(dir, "queues-wrapped", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<u64>(seg, "w", 5, 3, 4); });
    snapshot(dir, "queues-wrapped-full", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<u64>(seg, "wf", 4, 4, 7); });
    snapshot(dir, "element-u8", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<std::uint8_t>(seg, "b", 13, 7, 9); });
    snapshot(dir, "element-record", 16 * kib, small,
             [](shmds::posix_shm& seg) { every_kind<record>(seg, "r", 4, 2, 3); });
    snapshot(dir, "destroyed-entries-free-blocks", 16 * kib, small, [](shmds::posix_shm& seg) {
        every_kind<u64>(seg, "d", 5, 2, 1);
        // Free blocks between live ones, a free entry chain, index tombstones.
        seg.destroy("queue-d");
        seg.destroy("spsc-d");
        seg.destroy("cstack-d");
        shmds::shm_array<std::uint8_t> reused(seg, "reused-small", 16);
        reused[0] = 1;
    });
    snapshot(dir, "table-full", 8 * kib, quiet_options(4, 64), [](shmds::posix_shm& seg) {
        shmds::shm_queue<u64> q(seg, "q", 3);
        q.push(1);
        shmds::shm_stack<u64> s(seg, "s", 3);
        s.push(2);
        shmds::shm_array<u64> a(seg, "a", 3);
        a[1] = 3;
        shmds::shm_mpmc_queue<u64> m(seg, "m", 2);
        m.push(4);
    });
    snapshot(dir, "alignment-128", 16 * kib, quiet_options(4, 128), [](shmds::posix_shm& seg) {
        shmds::shm_spsc_queue<record> spsc(seg, "spsc", 3);
        spsc.push(value_of<record>(1));
        shmds::shm_concurrent_stack<std::uint8_t> cstack(seg, "cstack", 9);
        cstack.push(7);
        shmds::shm_array<record> array(seg, "array", 2);
        array[1] = value_of<record>(9);
    });
    snapshot(dir, "heap-nearly-full-reused", 8 * kib, quiet_options(2, 64), [](shmds::posix_shm& seg) {
        // Fill the heap, free the first block, take part of it again.
        { shmds::shm_array<std::uint8_t> big(seg, "big", 3000); }
        { shmds::shm_array<std::uint8_t> rest(seg, "rest", seg.table().bytes_free() - 64); }
        seg.destroy("big");
        shmds::shm_queue<u64> q(seg, "small", 20);
        q.push(5);
    });
    {
        // A process that dies with its handles open leaves roles, pids and
        // participant marks behind; the next holder must clean up.
        const std::string name = process_segment_name("seed");
        shmds::posix_shm::remove(name);
        shmds::posix_shm seg(shmds::create_only, name, 16 * kib, small);
        shmds::shm_spsc_queue<u64> spsc(seg, "spsc", 4);
        spsc.push(1);
        (void)spsc.try_pop();
        spsc.push(2);
        shmds::shm_mpmc_queue<u64> mpmc(seg, "mpmc", 4);
        mpmc.push(3);
        shmds::shm_concurrent_stack<u64> cstack(seg, "cstack", 4);
        cstack.push(4);
        // The role holders' pids are for messages only: fix them so that
        // regenerating gives the same bytes.
        const auto block = static_cast<std::byte*>(seg.base()) + seg.table().find("spsc")->offset;
        const std::int32_t dead_pid = 4242;
        std::memcpy(block + offsetof(shmds::detail::spsc_control, producer_pid), &dead_pid, sizeof dead_pid);
        std::memcpy(block + offsetof(shmds::detail::spsc_control, consumer_pid), &dead_pid, sizeof dead_pid);
        save(dir / "handles-alive-at-snapshot", seg);
    }
    snapshot(dir, "largest-64k", max_input_bytes, quiet_options(8, 64), [](shmds::posix_shm& seg) {
        every_kind<u64>(seg, "big", 200, 150, 120);
    });
}

// ---- fuzz_structures: scripts ---------------------------------------------------------------

class script {
public:
    script& op(int target, int operation, std::uint8_t arg = 0) {
        bytes_.push_back(structures_script::command(target, operation));
        bytes_.push_back(arg);
        return *this;
    }
    /// Writes `value` (little-endian, `width` bytes) at `offset` of `region`.
    script& poke(int region, std::uint16_t offset, u64 value, int width = 8) {
        bytes_.push_back(structures_script::command(structures_script::poke_target, 0));
        bytes_.push_back(static_cast<std::uint8_t>(region));
        bytes_.push_back(static_cast<std::uint8_t>(offset & 0xff));
        bytes_.push_back(static_cast<std::uint8_t>(offset >> 8));
        bytes_.push_back(static_cast<std::uint8_t>(width - 1));
        for (int i = 0; i < width; ++i) bytes_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
        return *this;
    }
    void save(const fs::path& path) const { write_file(path, bytes_.data(), bytes_.size()); }

private:
    std::vector<std::uint8_t> bytes_;
};

void write_structure_seeds(const fs::path& dir) {
    using namespace structures_script;
    const int table = table_target;

    script round_trips;  // model-checked pushes past capacity, pops past empty, wrapping
    for (int s = 0; s < structure_count; ++s) {
        for (int i = 0; i < 11; ++i) round_trips.op(s, model_push);
        for (int i = 0; i < 6; ++i) round_trips.op(s, model_pop).op(s, model_size);
        for (int i = 0; i < 5; ++i) round_trips.op(s, model_push).op(s, model_pop).op(s, model_push);
        for (int i = 0; i < 10; ++i) round_trips.op(s, model_pop);
        round_trips.op(s, model_size);
    }
    round_trips.save(dir / "model-round-trips");

    script every_op;  // every operation of every kind, on untouched then used structures
    for (int s = 0; s < structure_count; ++s)
        for (int o = 0; o < 11; ++o) every_op.op(s, model_ops + o, static_cast<std::uint8_t>(o * 29 + 3));
    every_op.save(dir / "every-operation");

    script table_ops;  // the table's operations between structure operations
    for (int s = 0; s < structure_count; ++s) table_ops.op(s, model_push).op(s, model_push);
    table_ops.op(table, table_list).op(table, table_counts);
    for (int s = 0; s < structure_count; ++s)
        table_ops.op(table, table_reopen, static_cast<std::uint8_t>(s)).op(s, model_pop).op(s, model_size);
    for (int s = 0; s < structure_count; ++s)
        table_ops.op(table, table_destroy_and_recreate, static_cast<std::uint8_t>(s)).op(s, model_push);
    table_ops.op(table, table_create_and_destroy_extra, 3).op(table, table_create_and_destroy_extra, 0x84);
    table_ops.op(table, table_missing_names).op(table, table_counts);
    table_ops.save(dir / "table-operations");

    // Control blocks written over with values that look plausible.
    const std::uint16_t cstack_count_at = offsetof(shmds::detail::concurrent_stack_control, count);
    script pokes;
    for (int s = 1; s < structure_count; ++s) pokes.op(s, model_push).op(s, model_push);
    pokes.poke(1, 0, 7).poke(1, 8, 2).poke(1, 16, 3).op(1, model_ops + 2).op(1, model_ops + 8);  // queue indices
    pokes.poke(2, 0, 9).op(2, model_ops + 3).poke(2, 0, 1).op(2, model_ops + 4);                // stack count
    pokes.poke(3, 128, 40).op(3, model_ops + 0).op(3, model_ops + 3);                            // spsc head
    pokes.poke(3, 0, u64{1} << 40).op(table, table_reopen, 3).op(3, model_ops + 6);              // spsc tail
    const std::uint16_t mpmc_slots = shmds::detail::mpmc_layout<u64>::slots_offset;
    pokes.poke(4, mpmc_slots, shmds::detail::mpmc_word::make(0, shmds::detail::mpmc_word::writing, 77))
        .op(4, model_ops + 3)
        .op(4, model_ops + 5)
        .poke(4, 128, u64{1} << 47)
        .op(4, model_ops + 0)
        .op(4, model_ops + 9);  // mpmc claimed slot, hint far ahead
    pokes.poke(5, cstack_count_at, 100).op(5, model_ops + 2).op(5, model_ops + 0);  // cstack count
    pokes.poke(5, 0, 0x8000'0000u | 51, 4).op(5, model_ops + 2);  // cstack lock: held by nobody alive
    pokes.poke(5, 0, 0x0000'0100u, 4).op(5, model_ops + 2).poke(5, 0, 0, 4);  // cstack lock: damaged
    pokes.save(dir / "control-block-pokes");

    script table_pokes;  // the table's bookkeeping: dirty flag, counters, lock word
    const std::uint16_t state_at = sizeof(pthread_mutex_t);
    table_pokes.op(0, model_push).op(1, model_push);
    table_pokes.poke(table_region, state_at, 1, 4).op(table, table_list);                 // dirty: repair
    table_pokes.poke(table_region, state_at + 32, 0xffffffff).op(table, table_counts);   // heap_top
    table_pokes.op(table, table_destroy_and_recreate, 1).op(table, table_create_and_destroy_extra, 2);
    table_pokes.poke(table_region, 16, 0x7fffffff, 4).op(table, table_list);              // lock kind
    table_pokes.save(dir / "table-pokes");
}

// ---- check ----------------------------------------------------------------------------------

int check_segment_seeds(const fs::path& dir) {
    int failures = 0, checked = 0;
    for (const auto& entry : fs::directory_iterator(dir / "fuzz_segment")) {
        std::ifstream in(entry.path(), std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        planted_segment planted(process_segment_name("check"), reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                bytes.size());
        ++checked;
        try {
            if (!planted.ok()) throw std::runtime_error("cannot plant it");
            shmds::posix_shm seg(shmds::open_only, planted.name(), quiet_options());
            for (const auto& info : seg.table().list()) (void)info;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s no longer opens: %s\n", entry.path().c_str(), e.what());
            ++failures;
        }
    }
    std::printf("%d of %d segment seeds open and list cleanly%s\n", checked - failures, checked,
                failures ? ": regenerate the corpus (see fuzz/README.md)" : "");
    return failures == 0 && checked > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
        std::fprintf(stderr, "usage: %s write|check DIR\n", argv[0]);
        return 2;
    }
    const fs::path dir(argv[2]);
    try {
        if (std::string(argv[1]) == "check") return check_segment_seeds(dir);
        fs::create_directories(dir / "fuzz_segment");
        fs::create_directories(dir / "fuzz_structures");
        write_segment_seeds(dir / "fuzz_segment");
        write_structure_seeds(dir / "fuzz_structures");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
