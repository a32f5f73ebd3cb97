// fuzz/fuzz_structures.cpp: libFuzzer target whose input is a script of
// operations over a fresh segment holding one structure of each kind, with
// pokes that write input bytes over their control blocks, slots and the
// table's bookkeeping while handles are open (the command language is at the
// end of harness.hpp).
//
// Why: fuzz_segment hands the library hostile bytes before it opens
// anything; this target hands them over between operations, to handles that
// have already validated and cached what they read, which is what a
// misbehaving peer process does. Untouched structures are also checked
// against a model (a deque or vector): with no hostile bytes, behaviour must
// be exactly right, not merely safe. A model mismatch traps.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "harness.hpp"

namespace {

using namespace shmds_fuzz;
using namespace shmds_fuzz::structures_script;
using T = std::uint64_t;

constexpr std::size_t segment_bytes = std::size_t{16} * 1024;

[[noreturn]] void model_mismatch(const char* structure, const char* what) {
    std::fprintf(stderr, "fuzz_structures: %s: %s disagrees with the model\n", structure, what);
    __builtin_trap();
}

/// A std::optional handle of each structure template in `Types`.
template <class Types>
struct optional_handles;
template <class... S>
struct optional_handles<std::tuple<S...>> {
    using type = std::tuple<std::optional<S>...>;
};

/// Element s holds the handle of script target s, the structure of kind
/// number s + 1.
using handles = optional_handles<shmds::structure_types<T>>::type;
static_assert(std::tuple_size_v<handles> == structure_count, "a script target per kind");

/// Structures whose pop takes the element pushed last.
template <class S>
constexpr bool pops_newest =
    std::is_same_v<S, shmds::shm_stack<T>> || std::is_same_v<S, shmds::shm_concurrent_stack<T>>;

/// The segment, a handle per structure, and what each should hold.
class workbench {
    /// Calls f(handle) with structure s's handle, the std::optional<S>& for
    /// its structure template S, and returns what f returns. Defined before
    /// its callers: a deduced return type is not known until then.
    template <class F>
    decltype(auto) with_handle(int s, F&& f) {
        const auto kind = static_cast<shmds::structure_kind>(s + 1);
        return shmds::visit_structure_type<T>(kind, [&]<class S>(std::type_identity<S>) -> decltype(auto) {
            return f(std::get<std::optional<S>>(handles_));
        });
    }

public:
    explicit workbench(const std::string& name)
        : seg_(shmds::create_only, name, segment_bytes, quiet_options()) {
        for (int s = 0; s < structure_count; ++s) create(s);
    }
    // The handles go first, last kind first, as when each was a member of its
    // own: the order a std::tuple destroys its elements in is the library's.
    ~workbench() {
        for (int s = structure_count - 1; s >= 0; --s) close(s);
    }
    workbench(const workbench&) = delete;
    workbench& operator=(const workbench&) = delete;

    void structure_command(int s, int op, std::uint8_t arg) {
        if (!with_handle(s, [](auto& handle) { return handle.has_value(); })) return;
        if (op < model_ops && pristine_[s]) {
            with_handle(s, [&](auto& handle) { checked_op(*handle, s, op); });
            return;
        }
        pristine_[s] = false;
        const int run = op < model_ops ? op : op - model_ops;
        attempt([&] { with_handle(s, [&](auto& handle) { run_op(*handle, run, arg); }); });
    }

    void table_command(int op, std::uint8_t arg) {
        shmds::shm_table& table = seg_.table();
        const int s = arg % structure_count;
        switch (op % table_ops) {
            case table_list:
                attempt([&] {
                    for (const auto& info : table.list()) digest_sink = table.find(info.name).has_value();
                });
                break;
            case table_counts:
                attempt([&] { digest_sink = table.size() + table.capacity() + table.bytes_free(); });
                break;
            case table_destroy_and_recreate:
                close(s);
                attempt([&] { seg_.destroy(structure_names[s]); });
                create(s);
                break;
            case table_reopen:
                close(s);
                attempt([&] { open_existing(s); });
                break;
            case table_create_and_destroy_extra:
                attempt([&] {
                    const auto capacity = static_cast<std::size_t>(arg % 5 + 1);
                    if (arg & 0x80)
                        shmds::shm_mpmc_queue<T>(shmds::create_only, seg_, "extra", capacity);
                    else
                        shmds::shm_queue<shmds_fuzz::record>(shmds::create_only, seg_, "extra", capacity);
                });
                attempt([&] { seg_.destroy("extra"); });
                break;
            default:
                attempt([&] { seg_.destroy("no such structure"); });
                attempt([&] { digest_sink = table.find("no such structure").has_value(); });
                break;
        }
    }

    /// Writes `bytes` over region `region` at `offset` (both wrapped into
    /// the region). A poke ends the model of what it touches.
    void poke(int region, std::uint16_t offset, const std::uint8_t* bytes, std::size_t length) {
        std::uint64_t start = 0, size = 0;
        if (region == table_region) {
            // The table lock and bookkeeping, entries and index: what
            // another process can change after this one has opened the
            // segment (the identity in front is a validated private copy).
            start = offsetof(shmds::detail::segment_header, table_mutex);
            size = seg_.identity().heap_offset - start;
            table_trusted_ = false;
            pristine_.fill(false);
        } else {
            if (!block_[region]) return;
            start = block_[region]->offset;
            size = block_[region]->bytes;
            pristine_[region] = false;
        }
        const std::uint64_t at = start + offset % size;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, start + size - at));
        std::memcpy(static_cast<std::byte*>(seg_.base()) + at, bytes, n);
    }

private:
    void close(int s) {
        with_handle(s, [](auto& handle) { handle.reset(); });
    }

    void open_existing(int s) {
        with_handle(s, [&]<class S>(std::optional<S>& handle) {
            with_handle_arguments<S>([&](auto&&... args) { handle.emplace(args...); }, shmds::open_only, seg_,
                                     structure_names[s]);
        });
    }

    /// Creates structure `s` anew (empty) and opens it; its model starts
    /// empty too, unless the table has been poked (a damaged table may place
    /// the new block over one that another handle still uses).
    void create(int s) {
        const char* name = structure_names[s];
        const auto capacity = static_cast<std::size_t>(capacities[s]);
        block_[s].reset();
        pristine_[s] = false;
        with_handle(s, [&]<class S>(std::optional<S>& handle) {
            const bool created = attempt([&] {
                with_creation_arguments<S>([&](auto&&... args) { handle.emplace(args...); }, seg_, name,
                                           capacity);
                block_[s] = seg_.table().find(name);
            });
            if (!created || !block_[s]) return;
            model_[s].clear();
            if constexpr (std::is_same_v<S, shmds::shm_array<T>>) model_[s].assign(capacity, 0);
            pristine_[s] = table_trusted_;
        });
    }

    // ---- the model ----------------------------------------------------------------------

    /// One model-checked operation on the untouched array: write then read
    /// back one element, and check another.
    void checked_op(shmds::shm_array<T>& array, int s, int op) {
        const std::size_t i = next_value_ % capacities[s];
        if (op == model_push) {
            array[i] = next_value_;
            model_[s][i] = next_value_;
        }
        if (array[i] != model_[s][i] || array.size() != capacities[s])
            model_mismatch(structure_names[s], "an element");
        ++next_value_;
    }

    /// One model-checked operation on the untouched queue or stack `s`.
    template <class S>
    void checked_op(S& structure, int s, int op) {
        const char* name = structure_names[s];
        std::deque<T>& model = model_[s];
        const auto capacity = static_cast<std::size_t>(capacities[s]);
        switch (op) {
            case model_push: {
                const T value = next_value_++;
                bool pushed = false;
                if (!attempt([&] { pushed = structure.try_push(value); }))
                    model_mismatch(name, "try_push (threw)");
                if (pushed != (model.size() < capacity)) model_mismatch(name, "try_push");
                if (pushed) model.push_back(value);
                break;
            }
            case model_pop: {
                std::optional<T> popped;
                if (!attempt([&] { popped = structure.try_pop(); })) model_mismatch(name, "try_pop (threw)");
                if (popped.has_value() != !model.empty()) model_mismatch(name, "try_pop");
                if (!popped) break;
                const T expected = pops_newest<S> ? model.back() : model.front();
                if (*popped != expected) model_mismatch(name, "the popped value");
                if (pops_newest<S>)
                    model.pop_back();
                else
                    model.pop_front();
                break;
            }
            default: {
                std::size_t size = 0;
                if (!attempt([&] { size = shmds::element_count(structure); }))
                    model_mismatch(name, "size (threw)");
                if (size != model.size()) model_mismatch(name, "size");
                break;
            }
        }
    }

    /// One model-checked operation on the untouched message queue: 8-byte
    /// messages carrying the model's values, 16-byte records that never
    /// wrap (the ring is a multiple of them), so it is a queue of
    /// capacities[s] values.
    void checked_op(shmds::shm_message_queue& queue, int s, int op) {
        const char* name = structure_names[s];
        std::deque<T>& model = model_[s];
        switch (op) {
            case model_push: {
                const T value = next_value_++;
                bool sent = false;
                if (!attempt([&] { sent = queue.try_send(std::as_bytes(std::span(&value, 1))); }))
                    model_mismatch(name, "try_send (threw)");
                if (sent != (model.size() < capacities[s])) model_mismatch(name, "try_send");
                if (sent) model.push_back(value);
                break;
            }
            case model_pop: {
                T value = 0;
                std::optional<std::size_t> length;
                if (!attempt(
                        [&] { length = queue.try_receive(std::as_writable_bytes(std::span(&value, 1))); }))
                    model_mismatch(name, "try_receive (threw)");
                if (length.has_value() != !model.empty()) model_mismatch(name, "try_receive");
                if (!length) break;
                if (*length != sizeof value || value != model.front())
                    model_mismatch(name, "the message received");
                model.pop_front();
                break;
            }
            default: {
                std::size_t bytes = 0;
                if (!attempt([&] { bytes = queue.size_bytes(); })) model_mismatch(name, "size_bytes (threw)");
                if (bytes != model.size() * message_ring_bytes_per_element)
                    model_mismatch(name, "size_bytes");
                break;
            }
        }
    }

    shmds::posix_shm seg_;
    // Handles are declared after the segment: they are destroyed before it.
    handles handles_;
    std::array<std::optional<shmds::structure_info>, structure_count> block_{};
    std::array<std::deque<T>, structure_count> model_{};
    std::array<bool, structure_count> pristine_{};
    bool table_trusted_ = true;
    T next_value_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > max_input_bytes) return -1;
    static const std::string name = process_segment_name("structures");
    shmds::posix_shm::remove(name);  // a leftover of a run that crashed
    std::optional<workbench> bench;
    if (!attempt([&] { bench.emplace(name); })) return 0;

    byte_reader in(data, size);
    while (!in.done()) {
        const std::uint8_t command = in.byte();
        const int target = command % target_count;
        const int op = command / target_count;
        if (target < structure_count) {
            bench->structure_command(target, op, in.byte());
        } else if (target == table_target) {
            bench->table_command(op, in.byte());
        } else {
            const int region = in.byte() % (structure_count + 1);
            const std::uint16_t offset = in.u16();
            std::array<std::uint8_t, 32> bytes{};
            const std::size_t length = in.byte() % bytes.size() + 1;
            for (std::size_t i = 0; i < length; ++i) bytes[i] = in.byte();
            bench->poke(region, offset, bytes.data(), length);
        }
    }
    bench.reset();
    shmds::posix_shm::remove(name);
    return 0;
}
