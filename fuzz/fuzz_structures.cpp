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
#include <string>
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

/// The segment, a handle per structure, and what each should hold.
class workbench {
public:
    explicit workbench(const std::string& name) : seg_(shmds::create_only, name, segment_bytes, quiet_options()) {
        for (int s = 0; s < structure_count; ++s) create(s);
    }

    void structure_command(int s, int op, std::uint8_t arg) {
        if (!open(s)) return;
        if (op < model_ops && pristine_[s]) {
            checked_op(s, op);
            return;
        }
        pristine_[s] = false;
        const int run = op < model_ops ? op : op - model_ops;
        attempt([&] {
            switch (s) {
                case 0:
                    run_op(*array_, run, arg);
                    break;
                case 1:
                    run_op(*queue_, run, arg);
                    break;
                case 2:
                    run_op(*stack_, run, arg);
                    break;
                case 3:
                    run_op(*spsc_, run, arg);
                    break;
                case 4:
                    run_op(*mpmc_, run, arg);
                    break;
                default:
                    run_op(*cstack_, run, arg);
                    break;
            }
        });
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
    bool open(int s) const {
        switch (s) {
            case 0:
                return array_.has_value();
            case 1:
                return queue_.has_value();
            case 2:
                return stack_.has_value();
            case 3:
                return spsc_.has_value();
            case 4:
                return mpmc_.has_value();
            default:
                return cstack_.has_value();
        }
    }

    void close(int s) {
        switch (s) {
            case 0:
                array_.reset();
                break;
            case 1:
                queue_.reset();
                break;
            case 2:
                stack_.reset();
                break;
            case 3:
                spsc_.reset();
                break;
            case 4:
                mpmc_.reset();
                break;
            default:
                cstack_.reset();
                break;
        }
    }

    void open_existing(int s) {
        const char* name = structure_names[s];
        switch (s) {
            case 0:
                array_.emplace(shmds::open_only, seg_, name);
                break;
            case 1:
                queue_.emplace(shmds::open_only, seg_, name);
                break;
            case 2:
                stack_.emplace(shmds::open_only, seg_, name);
                break;
            case 3:
                spsc_.emplace(shmds::open_only, seg_, name, wait_for_strategy(0));
                break;
            case 4:
                mpmc_.emplace(shmds::open_only, seg_, name, wait_for_strategy(0));
                break;
            default:
                cstack_.emplace(shmds::open_only, seg_, name, wait_for_strategy(0));
                break;
        }
    }

    /// Creates structure `s` anew (empty) and opens it; its model starts
    /// empty too, unless the table has been poked (a damaged table may place
    /// the new block over one that another handle still uses).
    void create(int s) {
        const char* name = structure_names[s];
        const auto capacity = static_cast<std::size_t>(capacities[s]);
        block_[s].reset();
        pristine_[s] = false;
        const bool created = attempt([&] {
            switch (s) {
                case 0:
                    array_.emplace(shmds::create_only, seg_, name, capacity);
                    break;
                case 1:
                    queue_.emplace(shmds::create_only, seg_, name, capacity);
                    break;
                case 2:
                    stack_.emplace(shmds::create_only, seg_, name, capacity);
                    break;
                case 3:
                    spsc_.emplace(shmds::create_only, seg_, name, capacity, wait_for_strategy(0));
                    break;
                case 4:
                    mpmc_.emplace(shmds::create_only, seg_, name, capacity, wait_for_strategy(0));
                    break;
                default:
                    cstack_.emplace(shmds::create_only, seg_, name, capacity, wait_for_strategy(0));
                    break;
            }
            block_[s] = seg_.table().find(name);
        });
        if (!created || !block_[s]) return;
        model_[s].clear();
        if (s == 0) model_[s].assign(capacity, 0);
        pristine_[s] = table_trusted_;
    }

    // ---- the model ----------------------------------------------------------------------

    /// One model-checked operation on the untouched structure `s`.
    void checked_op(int s, int op) {
        const char* name = structure_names[s];
        std::deque<T>& model = model_[s];
        const auto capacity = static_cast<std::size_t>(capacities[s]);
        if (s == 0) {
            // The array: write then read back one element, and check another.
            const std::size_t i = next_value_ % capacity;
            if (op == model_push) {
                (*array_)[i] = next_value_;
                model[i] = next_value_;
            }
            if ((*array_)[i] != model[i] || array_->size() != capacity) model_mismatch(name, "an element");
            ++next_value_;
            return;
        }
        switch (op) {
            case model_push: {
                const T value = next_value_++;
                bool pushed = false;
                if (!attempt([&] { pushed = try_push(s, value); })) model_mismatch(name, "try_push (threw)");
                if (pushed != (model.size() < capacity)) model_mismatch(name, "try_push");
                if (pushed) model.push_back(value);
                break;
            }
            case model_pop: {
                std::optional<T> popped;
                if (!attempt([&] { popped = try_pop(s); })) model_mismatch(name, "try_pop (threw)");
                if (popped.has_value() != !model.empty()) model_mismatch(name, "try_pop");
                if (!popped) break;
                const bool lifo = s == 2 || s == 5;
                const T expected = lifo ? model.back() : model.front();
                if (*popped != expected) model_mismatch(name, "the popped value");
                if (lifo)
                    model.pop_back();
                else
                    model.pop_front();
                break;
            }
            default: {
                std::size_t size = 0;
                if (!attempt([&] { size = size_of(s); })) model_mismatch(name, "size (threw)");
                if (size != model.size()) model_mismatch(name, "size");
                break;
            }
        }
    }

    bool try_push(int s, T value) {
        switch (s) {
            case 1:
                return queue_->try_push(value);
            case 2:
                return stack_->try_push(value);
            case 3:
                return spsc_->try_push(value);
            case 4:
                return mpmc_->try_push(value);
            default:
                return cstack_->try_push(value);
        }
    }

    std::optional<T> try_pop(int s) {
        switch (s) {
            case 1:
                return queue_->try_pop();
            case 2:
                return stack_->try_pop();
            case 3:
                return spsc_->try_pop();
            case 4:
                return mpmc_->try_pop();
            default:
                return cstack_->try_pop();
        }
    }

    std::size_t size_of(int s) const {
        switch (s) {
            case 1:
                return queue_->size();
            case 2:
                return stack_->size();
            case 3:
                return spsc_->size();
            case 4:
                return mpmc_->size();
            default:
                return cstack_->size();
        }
    }

    shmds::posix_shm seg_;
    // Handles are declared after the segment: they are destroyed before it.
    std::optional<shmds::shm_array<T>> array_;
    std::optional<shmds::shm_queue<T>> queue_;
    std::optional<shmds::shm_stack<T>> stack_;
    std::optional<shmds::shm_spsc_queue<T>> spsc_;
    std::optional<shmds::shm_mpmc_queue<T>> mpmc_;
    std::optional<shmds::shm_concurrent_stack<T>> cstack_;
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
        const int target = command % 8;
        const int op = command / 8;
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
