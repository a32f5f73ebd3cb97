// The hostile writer's cases: every place it writes (the header, a table
// entry per field, the free-entry chain, the heap's free block, index slots,
// every kind's control block and the lock-free queues' slots, each field
// from hostile_fields.hpp), and the hostile values tried on each, chosen for
// the field's type and meaning.
// No tests of its own (hostile_harness.hpp says why the name is test_*).
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include <shmds/shmds.hpp>

#include "hostile_harness.hpp"

namespace shmds_hostile {

namespace {

std::vector<std::byte> bytes_of(std::uint64_t v, std::size_t size) {
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), &v, std::min(size, sizeof v));  // little-endian: the low bytes
    return out;
}

std::uint64_t read_value(const std::byte* at, std::size_t size) {
    std::uint64_t v = 0;
    std::memcpy(&v, at, std::min<std::size_t>(size, sizeof v));
    return v;
}

/// The hostile values of one target, in the order they are chosen: each
/// differs from what the field holds (else it would be no damage).
class value_list {
public:
    value_list(const target& t, const std::byte* base)
        : t_(t), field_(base + t.offset), neighbour_(t.neighbour ? base + *t.neighbour : nullptr) {}

    /// What the field holds, as a number.
    [[nodiscard]] std::uint64_t original() const { return read_value(field_, t_.size); }

    /// `v` in the field's width, unless the field or an earlier number holds it.
    void add(std::string label, std::uint64_t v) {
        std::vector<std::byte> b = bytes_of(v, t_.size);
        if (std::memcmp(b.data(), field_, t_.size) == 0) return;  // not damage
        for (const hostile_value& h : out_)
            if (h.bytes == b) return;
        out_.push_back({std::move(label), std::move(b)});
    }

    /// `b` as it is, unless the field holds it.
    void add_bytes(std::string label, std::vector<std::byte> b) {
        if (std::memcmp(b.data(), field_, t_.size) == 0) return;
        out_.push_back({std::move(label), std::move(b)});
    }

    /// The field's bytes with `edit` applied.
    template <class Edit>
    void add_edited(std::string label, Edit&& edit) {
        std::vector<std::byte> b(field_, field_ + t_.size);
        edit(b);
        add_bytes(std::move(label), std::move(b));
    }

    /// The same field of the neighbouring entry or structure, if any.
    void add_neighbour() {
        if (!neighbour_) return;
        std::vector<std::byte> b(neighbour_, neighbour_ + t_.size);
        if (std::memcmp(b.data(), field_, t_.size) != 0) out_.push_back({"neighbour's value", b});
    }

    std::vector<hostile_value> take() { return std::move(out_); }

private:
    const target& t_;
    const std::byte* field_;
    const std::byte* neighbour_;
    std::vector<hostile_value> out_;
};

/// An offset, count, hash or packed word of 64 bits.
void add_u64_values(value_list& values, const target& t, std::uint64_t seg_size) {
    const std::uint64_t original = values.original();
    values.add("0", 0);
    values.add("1", 1);
    values.add("all ones", ~std::uint64_t{0});
    values.add("2^63", std::uint64_t{1} << 63);
    values.add("INT_MAX", INT_MAX);
    values.add("UINT32_MAX", UINT32_MAX);
    values.add("segment size - 1", seg_size - 1);
    values.add("segment size", seg_size);
    values.add("segment size + 1", seg_size + 1);
    values.add("into the header", 8);
    values.add("original + 1 (misaligned)", original + 1);
    values.add("original - 1", original - 1);
    values.add("original + 2^40", original + (std::uint64_t{1} << 40));
    if (t.block_end != 0) values.add("just past its block", t.block_end);
    if (t.kind == meaning::u64_offset) {
        // Plausible lies: aligned, inside the heap, on someone else's data.
        values.add("original + 64", original + 64);
        values.add("original - 64", original - 64);
        values.add("original + 4096", original + 4096);
        for (const auto& [label, value] : t.plausible) values.add(label, value);
    }
    if (t.kind == meaning::u64_count) {
        values.add("capacity", structure_capacity);
        values.add("capacity + 1", structure_capacity + 1);
        values.add("2 x capacity", 2 * structure_capacity);
        values.add("original + capacity", original + structure_capacity);
    }
    if (t.kind == meaning::u64_word) {
        values.add("state bits flipped", original ^ (std::uint64_t{3} << 14));
        values.add("owner 0x3fff", original | 0x3fff);
        values.add("position + 2^47", original + (std::uint64_t{1} << 63));
    }
    values.add_neighbour();
}

/// An index, a plain 32-bit value, a lock word or a pid.
void add_u32_values(value_list& values, const target& t, std::uint64_t seg_size) {
    const std::uint64_t original = values.original();
    values.add("0", 0);
    values.add("1", 1);
    values.add("2", 2);
    values.add("all ones", UINT32_MAX);
    values.add("INT_MAX", INT_MAX);
    values.add("INT_MIN", 0x8000'0000u);
    values.add("original + 1", (original + 1) & UINT32_MAX);
    values.add("original - 1", (original - 1) & UINT32_MAX);
    values.add("segment size", seg_size & UINT32_MAX);
    if (t.kind == meaning::u32_index) {
        values.add("table capacity", table_capacity);
        values.add("table capacity + 1", table_capacity + 1);
        values.add("index slots", std::uint64_t{2} * table_capacity);
    }
    if (t.kind == meaning::u32_lock) {
        values.add("owner died, no owner", 0x4000'0000u);
        values.add("owner died, owner 1", 0x4000'0001u);
        values.add("waiters, nonexistent owner", 0x8000'0000u | 0x3fff'fff0u);
        values.add("held by init", 1);
        values.add("held by a nonexistent thread", 0x3fff'fff0u);
        // The concurrent stack's lock: a participant id nobody holds
        // (contended), and a holder byte past the last id.
        values.add("contended, participant 50", 0x8000'0000u | 51);
        values.add("participant 127", 128);
    }
    if (t.kind == meaning::i32_pid) values.add("my pid", static_cast<std::uint64_t>(::getpid()));
    values.add_neighbour();
}

/// A 16-bit value or a byte flag: every bit pattern that matters.
void add_small_values(value_list& values, const target& t) {
    values.add("0", 0);
    values.add("1", 1);
    if (t.kind == meaning::u16_plain) {
        values.add("0x7fff", 0x7fff);
        values.add("0x8000", 0x8000);
        values.add("all ones", 0xffff);
    } else {
        values.add("2", 2);
        values.add("0x80", 0x80);
        values.add("all ones", 0xff);
    }
}

/// A name, reserved bytes, a bit set or a pointer, as bytes.
void add_byte_values(value_list& values, const target& t) {
    values.add_bytes("all 0xff", std::vector<std::byte>(t.size, std::byte{0xff}));
    values.add_bytes("all zero", std::vector<std::byte>(t.size, std::byte{0}));
    values.add_bytes("all 0x80", std::vector<std::byte>(t.size, std::byte{0x80}));
    values.add_edited("first byte flipped", [](std::vector<std::byte>& b) { b[0] ^= std::byte{0x01}; });
    values.add_edited("last byte set", [](std::vector<std::byte>& b) { b.back() = std::byte{'x'}; });
    if (t.kind == meaning::bytes_raw && t.size >= 8) {
        values.add_edited("first word 8", [](std::vector<std::byte>& b) {
            const std::uint64_t into = 8;
            std::memcpy(b.data(), &into, 8);
        });
    }
    values.add_neighbour();
}

}  // namespace

std::vector<hostile_value> values_for(const target& t, const std::byte* base, std::uint64_t seg_size) {
    value_list values(t, base);
    switch (t.kind) {
        case meaning::u64_offset:
        case meaning::u64_count:
        case meaning::u64_hash:
        case meaning::u64_word:
            add_u64_values(values, t, seg_size);
            break;
        case meaning::u32_index:
        case meaning::u32_plain:
        case meaning::u32_lock:
        case meaning::i32_pid:
            add_u32_values(values, t, seg_size);
            break;
        case meaning::u16_plain:
        case meaning::u8_flag:
            add_small_values(values, t);
            break;
        case meaning::bytes_string:
        case meaning::bytes_raw:
            add_byte_values(values, t);
            break;
    }
    return values.take();
}

const shmds::structure_info& info_of(const layout_facts& f, const structure_name& s) {
    for (const auto& i : f.infos)
        if (i.name == s.str()) return i;
    throw std::logic_error("no structure " + s.str());
}

std::uint32_t entry_index_of(const layout_facts& f, const structure_name& s) {
    for (const auto& [name, index] : f.entry_index)
        if (name == s.str()) return index;
    throw std::logic_error("no entry for " + s.str());
}

namespace {

template <std::size_t N>
void add_fields(std::vector<target>& out, const std::string& prefix, std::size_t base_offset,
                const std::array<field_def, N>& fields, std::optional<structure_name> inside,
                std::uint64_t block_end, std::optional<std::size_t> neighbour_base = std::nullopt) {
    for (const field_def& f : fields) {
        target t{prefix + f.name, base_offset + f.offset, f.size, f.kind, inside, block_end, std::nullopt};
        if (neighbour_base) t.neighbour = *neighbour_base + f.offset;
        out.push_back(t);
    }
}

void add_wait_channel(std::vector<target>& out, const std::string& prefix, std::size_t offset,
                      std::optional<structure_name> inside, std::uint64_t block_end) {
    add_fields(out, prefix, offset, wait_channel_fields, inside, block_end);
}

void add_mutex(std::vector<target>& out, const std::string& prefix, std::size_t offset,
               std::optional<structure_name> inside, std::uint64_t block_end) {
    add_fields(out, prefix, offset, mutex_fields, inside, block_end);
}

/// Copy 0's control block of kind `k`, field by field, each with copy 1's
/// same field as the neighbour's value; wait channels are listed by their own
/// fields. `special(field, offset)` may list a field its own way
/// (and then returns true).
template <std::size_t N>
void add_control_block(std::vector<target>& out, const layout_facts& f, kind_id k,
                       const std::array<field_def, N>& fields,
                       const std::function<bool(const field_def&, std::size_t)>& special = {}) {
    const structure_name s{k, 0};
    const auto& i = info_of(f, s);
    const std::uint64_t end = i.offset + i.bytes;
    const std::string prefix = s.str() + ".";
    for (const field_def& fd : fields) {
        const std::size_t at = i.offset + fd.offset;
        const std::string_view name = fd.name;
        if (name == "not_empty" || name == "not_full")
            add_wait_channel(out, prefix + fd.name + ".", at, s, end);
        else if (!special || !special(fd, at))
            out.push_back(
                {prefix + fd.name, at, fd.size, fd.kind, s, end, info_of(f, {k, 1}).offset + fd.offset});
    }
}

/// The header, the table's entries (every field, each on an entry of a
/// different kind in turn), the free-entry chain, the heap's free block and
/// index slots.
void add_header_and_table(std::vector<target>& out, const layout_facts& f, std::uint64_t seg_size) {
    // The header.
    add_fields(out, "identity.", offsetof(d::segment_header, identity), identity_fields, std::nullopt, 0);
    add_mutex(out, "table_mutex.", offsetof(d::segment_header, table_mutex), std::nullopt, 0);
    add_fields(out, "table.", offsetof(d::segment_header, table), table_state_fields, std::nullopt, seg_size);
    // Every entry field, each on an entry of a different kind in turn, with
    // the same field of the other copy as the neighbour's value.
    std::size_t turn = 0;
    for (const field_def& fd : entry_fields) {
        const structure_name s{all_kinds[turn++ % all_kinds.size()], 0};
        const structure_name other{s.kind, 1};
        const std::size_t entry =
            f.entries_offset + std::size_t{entry_index_of(f, s)} * sizeof(d::table_entry);
        const std::size_t neighbour =
            f.entries_offset + std::size_t{entry_index_of(f, other)} * sizeof(d::table_entry);
        const auto& info = info_of(f, s);
        // The damage is "in" that structure: its state is the commit word of
        // create and destroy (0 there is the structure destroyed, as far as
        // anyone can tell), and an entry that fails validation, or claims a
        // neighbour's block, is quarantined by the next repair. Every other
        // structure must come through intact.
        out.push_back({"entry(" + s.str() + ")." + fd.name, entry + fd.offset, fd.size, fd.kind, s,
                       info.offset + info.bytes, neighbour + fd.offset});
    }
    // The destroyed structure's entry: its free-chain link and its state.
    const std::size_t free_entry = f.entries_offset + std::size_t{f.free_entry} * sizeof(d::table_entry);
    out.push_back({"free entry.next_free", free_entry + offsetof(d::table_entry, next_free), 4,
                   meaning::u32_index, std::nullopt, 0, std::nullopt});
    out.push_back({"free entry.state", free_entry + offsetof(d::table_entry, state), 4, meaning::u32_plain,
                   std::nullopt, 0, std::nullopt});
    // The heap's free block.
    add_fields(out, "free block.", f.heap_free_head, free_block_fields, std::nullopt, seg_size);
    // Index slots: one holding queue0's entry, and one empty.
    const std::uint32_t queue_entry = entry_index_of(f, {kind_id::queue, 0});
    out.push_back({"index slot of queue0", 0, 4, meaning::u32_index, std::nullopt, 0, std::nullopt});
    out.back().offset = queue_entry;  // resolved by the caller, which sees the index
    out.push_back({"empty index slot", 0, 4, meaning::u32_index, std::nullopt, 0, std::nullopt});
}

/// Control blocks of copy 0 of each kind, and slots of the lock-free queues.
void add_structures(std::vector<target>& out, const layout_facts& f) {
    add_control_block(out, f, kind_id::queue, ring_fields);
    add_control_block(out, f, kind_id::stack, stack_fields);
    {
        const structure_name s{kind_id::spsc, 0};
        const auto& i = info_of(f, s);
        add_control_block(out, f, kind_id::spsc, spsc_fields);
        using sl = d::spsc_layout<element>;
        for (std::uint64_t slot : {std::uint64_t{0}, std::uint64_t{5}})
            add_fields(out, "spsc0.slot[" + std::to_string(slot) + "].",
                       i.offset + sl::elements_offset + slot * sizeof(d::spsc_slot<element>),
                       spsc_slot_fields, s, i.offset + i.bytes);
    }
    {
        const structure_name s{kind_id::mpmc, 0};
        const auto& i = info_of(f, s);
        const std::uint64_t end = i.offset + i.bytes;
        add_control_block(out, f, kind_id::mpmc, mpmc_fields, [&](const field_def& fd, std::size_t at) {
            if (fd.offset != offsetof(d::mpmc_control, in_use)) return false;
            out.push_back({"mpmc0.in_use[0]", at, 1, meaning::u8_flag, s, end, std::nullopt});
            out.push_back({"mpmc0.in_use[1]", at + 1, 1, meaning::u8_flag, s, end, std::nullopt});
            out.push_back({"mpmc0.in_use", at, fd.size, fd.kind, s, end, std::nullopt});
            return true;
        });
        for (std::uint64_t slot : {std::uint64_t{0}, std::uint64_t{5}}) {
            const std::size_t at = i.offset + mpmc_layout::slots_offset + slot * mpmc_layout::slot_stride;
            out.push_back({"mpmc0.slot[" + std::to_string(slot) + "].word", at, 8, meaning::u64_word, s, end,
                           at + mpmc_layout::slot_stride});
            out.push_back({"mpmc0.slot[" + std::to_string(slot) + "].value", at + mpmc_layout::value_offset,
                           8, meaning::u64_count, s, end, std::nullopt});
        }
    }
    {
        // The control block, and the headers of the front and last of the
        // three records fill() sent (16 bytes each, from offset 0).
        const structure_name s{kind_id::messages, 0};
        const auto& i = info_of(f, s);
        add_control_block(out, f, kind_id::messages, message_fields);
        for (std::uint64_t record : {std::uint64_t{0}, std::uint64_t{2}})
            add_fields(out, "messages0.record[" + std::to_string(record) + "].",
                       i.offset + d::message_layout::elements_offset + record * message_type::record,
                       message_record_fields, s, i.offset + i.bytes);
    }
    add_control_block(out, f, kind_id::cstack, concurrent_stack_fields);
}

/// Gives every offset target the offsets that pass every range check.
void add_plausible_offsets(std::vector<target>& out, const layout_facts& f) {
    const auto& victim_block = info_of(f, {kind_id::queue, 1});
    const std::uint64_t heap_start = info_of(f, {kind_id::array, 0}).offset;
    for (target& t : out) {
        if (t.kind != meaning::u64_offset) continue;
        t.plausible = {{"start of the heap", heap_start},
                       {"queue1's block", victim_block.offset},
                       {"inside queue1's block", victim_block.offset + 64},
                       {"end of queue1's block", victim_block.offset + victim_block.bytes}};
    }
}

}  // namespace

std::vector<target> all_targets(const layout_facts& f, std::uint64_t seg_size) {
    std::vector<target> out;
    add_header_and_table(out, f, seg_size);
    add_structures(out, f);
    add_plausible_offsets(out, f);
    return out;
}

}  // namespace shmds_hostile
