// Faults, BAD-002, BAD-003 and BAD-005, through the adapter's hostile-writer
// hooks (damage_segment, damage_table_bookkeeping): another format version
// is refused, a damaged table entry or control block harms only its own
// structure, and damaged table bookkeeping never hands out storage in use.
// Each check runs isolated (fault_support.hpp).
#include <cstddef>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "fault_support.hpp"
#include "support.hpp"

namespace shmconf_fault_tests {
namespace {

// ---- BAD-002, BAD-003 through the adapter's hostile-writer hook -----------------------------

constexpr const char* no_hook = "the adapter cannot aim a hostile writer (no damage_segment)";

/// The adapter's hostile-writer hook, where it has one (a template, so that
/// an adapter without it still compiles).
template <class A = impl>
void damage(const std::string& segment, const std::string& structure, shmconf::damage what) {
    if constexpr (shmconf::damages_segments<A>)
        A::damage_segment(segment, structure, what);
    else
        throw std::logic_error(no_hook);
}

/// Damages through the hook and says whether any byte of the segment
/// changed: a hook that writes nothing (or aims outside the segment) would
/// let the requirement pass untested, so the test then reports UNRESOLVED.
template <class A = impl>
bool damage_changed_something(const std::string& segment, const std::string& structure,
                              shmconf::damage what) {
    hostile_writer watch(segment);
    damage<A>(segment, structure, what);
    return watch.changed();
}

constexpr const char* weak_hook = "the adapter's damage_segment changed no byte of the segment";

/// A claimed structure kind: its name in the populated segment.
struct kind_entry {
    const char* kind;
    const char* name;
    bool has_control_block;
};

std::vector<kind_entry> claimed_kinds() {
    std::vector<kind_entry> k;
    if (impl::caps.array) k.push_back({"array", "a", false});
    if (impl::caps.spsc_queue) k.push_back({"spsc_queue", "q", true});
    if (impl::caps.mpmc_queue) k.push_back({"mpmc_queue", "m", true});
    if (impl::caps.concurrent_stack) k.push_back({"concurrent_stack", "s", true});
    if (impl::caps.queue) k.push_back({"queue", "pq", true});
    if (impl::caps.stack) k.push_back({"stack", "ps", true});
    return k;
}

/// Calls f.template operator()<S>() with the handle type of `kind`.
template <class F>
void with_kind(const std::string& kind, F&& f) {
    if (kind == "array") return f.template operator()<array>();
    if (kind == "spsc_queue") return f.template operator()<impl::spsc_queue<u64>>();
    if (kind == "mpmc_queue") return f.template operator()<impl::mpmc_queue<u64>>();
    if (kind == "concurrent_stack") return f.template operator()<impl::concurrent_stack<u64>>();
    if (kind == "queue") return f.template operator()<impl::queue<u64>>();
    if (kind == "stack") return f.template operator()<impl::stack<u64>>();
}

/// Checks, in an isolated child, that every structure but `damaged` still
/// has what populate() put in it and works.
void check_others_usable(impl::segment& seg, const std::string& damaged, reporter& out,
                         const std::string& when) {
    for (const kind_entry& k : claimed_kinds()) {
        if (damaged == k.name) continue;
        out.step("using " + std::string(k.kind) + " " + k.name + " " + when);
        const auto c = shmconf::category_of<impl>([&] {
            with_kind(k.kind, [&]<class S>() {
                S s = impl::find<S>(seg, k.name);
                if constexpr (std::is_same_v<S, array>) {
                    for (std::size_t i = 0; i < 32; ++i)
                        if (s.at(i) != i * 3 + 1)
                            return out.fail(std::string("array a lost its contents ") + when);
                } else {
                    const bool lifo = std::string(k.kind).find("stack") != std::string::npos;
                    for (u64 i = 0; i < 5; ++i) {
                        const auto v = s.try_pop();
                        const u64 expected = lifo ? 104 - i : 100 + i;
                        if (!v || *v != expected)
                            return out.fail(std::string(k.kind) + " " + k.name + " lost its contents " +
                                            when);
                    }
                    if (!s.try_push(9) || s.try_pop() != std::optional<u64>(9))
                        return out.fail(std::string(k.kind) + " " + k.name + " no longer works " + when);
                }
            });
        });
        if (c != error_category::none)
            out.fail(std::string(k.kind) + " " + k.name + " failed with " + shmconf::to_string(c) + " " +
                     when);
    }
    out.step("making a new structure " + when);
    if (impl::caps.array) {
        const auto c = shmconf::category_of<impl>([&] {
            auto n = impl::make<array>(seg, "new", 8);
            n.at(7) = 1;
        });
        if (c != error_category::none)
            out.fail("making a new array failed with " + std::string(shmconf::to_string(c)) + " " + when);
    }
}

TEST(Hostile, AnotherFormatVersionIsRefused) {
    CHECKS_REQUIREMENTS("BAD-003");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        fresh_segment name;
        auto seg = impl::create(name.name(), 1 << 20);
        populate(seg);
        if (!damage_changed_something(name.name(),
                                      claimed_kinds().empty() ? "a" : claimed_kinds().front().name,
                                      shmconf::damage::format_version))
            SHMCONF_SKIP_AS("UNRESOLVED", std::string(weak_hook) + " (format_version)");
        const auto r = run_isolated(60s, [&](reporter& out) {
            auto refused = [](error_category c) {
                return c == error_category::corrupted || c == error_category::mismatch;
            };
            out.step("open-only of a segment of another format version");
            std::optional<impl::segment> opened;
            const auto c = shmconf::category_of<impl>([&] { opened.emplace(impl::open(name.name())); });
            if (!refused(c))
                out.fail("open-only of a segment of another format version gave " +
                         std::string(shmconf::to_string(c)) + ", not corrupted or mismatch");
            if (opened) {
                out.step("using a segment of another format version");
                opened.reset();
            }
            out.step("open-or-create of a segment of another format version");
            const auto c2 =
                shmconf::category_of<impl>([&] { (void)impl::open_or_create(name.name(), 1 << 20); });
            if (!refused(c2))
                out.fail("open-or-create of a segment of another format version gave " +
                         std::string(shmconf::to_string(c2)) + ", not corrupted or mismatch");
        });
        judge(r, "another format version");
    }
}

TEST(Hostile, ADamagedTableEntryIsRefusedForThatStructureOnly) {
    CHECKS_REQUIREMENTS("BAD-002 BAD-001");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        for (const kind_entry& k : claimed_kinds()) {
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            populate(seg);
            if (!damage_changed_something(name.name(), k.name, shmconf::damage::table_entry))
                SHMCONF_SKIP_AS("UNRESOLVED", std::string(weak_hook) + " (table_entry of " + k.kind + ")");
            const std::string what = std::string("a damaged table entry of ") + k.kind + " " + k.name;
            const auto r = run_isolated(60s, [&](reporter& out) {
                out.step("opening the segment");
                auto opened = impl::open(name.name());
                out.step("finding " + std::string(k.kind) + " " + k.name + " through its damaged entry");
                const auto c = shmconf::category_of<impl>(
                    [&] { with_kind(k.kind, [&]<class S>() { (void)impl::find<S>(opened, k.name); }); });
                if (c != error_category::corrupted)
                    out.fail("finding it gave " + std::string(shmconf::to_string(c)) + ", not corrupted");
                check_others_usable(opened, k.name, out, "beside " + what);
            });
            judge(r, what);
        }
    }
}

// ---- BAD-005: the table's bookkeeping damaged -------------------------------------------

/// Every element of the bookkeeping test's arrays says whose it is and where
/// (array id and index), so an overwrite names the array that took the storage.
u64 owned_value(u64 array_id, std::size_t i) {
    return (array_id << 32) | (i + 1);
}

template <class A = impl>
bool damage_bookkeeping(const std::string& segment, int variant) {
    if constexpr (shmconf::damages_table_bookkeeping<A>)
        return A::damage_table_bookkeeping(segment, variant);
    else
        throw std::logic_error("the adapter has no damage_table_bookkeeping");
}

/// An array the bookkeeping test stored and expects to find whole.
struct owned_array {
    std::string name;
    u64 id;
    std::size_t size;
};

std::string hex(u64 v) {
    char text[24];
    std::snprintf(text, sizeof text, "%llx", static_cast<unsigned long long>(v));
    return text;
}

/// "" when `k` is found in `seg` with its size and every element as stored;
/// otherwise what is wrong.
std::string check_owned(impl::segment& seg, const owned_array& k) {
    std::string problem;
    const auto c = shmconf::category_of<impl>([&] {
        auto a = impl::find<array>(seg, k.name);
        if (a.size() != k.size) {
            problem = "its size is now " + std::to_string(a.size()) + ", not " + std::to_string(k.size);
            return;
        }
        for (std::size_t i = 0; i < k.size; ++i)
            if (const u64 v = a.at(i); v != owned_value(k.id, i)) {
                problem = "element " + std::to_string(i) + " holds " +
                          (v >> 32 != 0 && v >> 32 != k.id ? "an element of array #" + std::to_string(v >> 32)
                                                           : "0x" + hex(v)) +
                          " (its storage was handed out again)";
                return;
            }
    });
    if (c != error_category::none) return "finding it gave " + std::string(shmconf::to_string(c));
    return problem;
}

/// In an isolated child, after bookkeeping damage (`what`): the `stored`
/// arrays stay whole through opening, through creating and destroying
/// others (which may succeed or be refused as corrupted, or out_of_space for
/// a creation), and through a second attachment.
void check_after_bookkeeping_damage(const std::string& segment, const std::vector<owned_array>& stored,
                                    const std::string& what, reporter& out) {
    std::vector<owned_array> live = stored;
    auto check_all = [&](impl::segment& through, const std::string& when) {
        for (const owned_array& k : live) {
            const std::string problem = check_owned(through, k);
            if (problem.empty()) continue;
            std::string message = "array ";
            message.append(k.name).append(" ").append(when).append(" (").append(what).append("): ");
            out.fail(message.append(problem));
        }
    };
    out.step("opening the segment after " + what);
    auto opened = impl::open(segment);
    check_all(opened, "right after the damage");
    u64 next_id = 10;
    auto create = [&](std::size_t size) {
        const owned_array k{"new" + std::to_string(next_id), next_id, size};
        ++next_id;
        out.step("creating " + k.name + " (" + std::to_string(size) + " elements) after " + what);
        const auto c = shmconf::category_of<impl>([&] {
            auto a = impl::make<array>(opened, k.name, size);
            for (std::size_t i = 0; i < size; ++i) a.at(i) = owned_value(k.id, i);
        });
        if (c == error_category::none)
            live.push_back(k);
        else if (c != error_category::corrupted && c != error_category::out_of_space)
            out.fail("creating " + k.name + " (" + std::to_string(size) + " elements) after " + what +
                     " gave " + shmconf::to_string(c) + ", not success, corrupted or out_of_space");
        check_all(opened, "after creating " + k.name);
    };
    auto destroy = [&](std::size_t at) {
        if (at >= live.size()) return;
        const owned_array k = live[at];
        out.step("destroying " + k.name + " after " + what);
        const auto c = shmconf::category_of<impl>([&] { impl::destroy(opened, k.name); });
        if (c == error_category::none)
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
        else if (c != error_category::corrupted)
            out.fail("destroying " + k.name + " after " + what + " gave " + shmconf::to_string(c) +
                     ", not success or corrupted");
        check_all(opened, "after destroying " + k.name);
    };
    for (std::size_t size : {16, 200, 64, 1000, 8, 300}) create(size);
    destroy(4);  // two of the new ones, leaving holes between live arrays
    destroy(5);
    for (std::size_t size : {100, 900, 40, 2000}) create(size);
    out.step("finding everything through a second attachment after " + what);
    auto again = impl::open(segment);
    check_all(again, "through a second attachment");
}

TEST(Hostile, DamagedTableBookkeepingNeverHandsOutStorageInUse) {
    CHECKS_REQUIREMENTS("BAD-005");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    if (!shmconf::damages_table_bookkeeping<impl>)
        SHMCONF_SKIP_AS("UNSUPPORTED",
                        "the adapter cannot damage the table's bookkeeping (no damage_table_bookkeeping)");
    int variants = 0;
    for (int variant = 0; variant < 64; ++variant) {
        fresh_segment name;
        std::vector<owned_array> stored{
            {"first", 1, 300}, {"gone", 2, 500}, {"third", 3, 700}, {"last", 4, 100}};
        {
            auto seg = impl::create(name.name(), 256 << 10);
            for (const owned_array& k : stored) {
                auto a = impl::make<array>(seg, k.name, k.size);
                for (std::size_t i = 0; i < k.size; ++i) a.at(i) = owned_value(k.id, i);
            }
            impl::destroy(seg, "gone");  // free space inside the used part
            stored.erase(stored.begin() + 1);
            bool damaged = false, changed = false;
            {
                hostile_writer watch(name.name());
                damaged = damage_bookkeeping(name.name(), variant);
                changed = watch.changed();
            }
            if (!damaged) break;
            if (!changed)
                SHMCONF_SKIP_AS("UNRESOLVED", "damage_table_bookkeeping variant " + std::to_string(variant) +
                                                  " changed no byte of the segment");
            ++variants;
            const std::string what = "bookkeeping damage " + std::to_string(variant);
            const auto r = run_isolated(
                60s, [&](reporter& out) { check_after_bookkeeping_damage(name.name(), stored, what, out); });
            judge(r, what);
        }
    }
    if (variants == 0)
        SHMCONF_SKIP_AS("UNRESOLVED", "damage_table_bookkeeping has no variant (variant 0 returned false)");
    std::printf("[   NOTE   ] %d variants of bookkeeping damage\n", variants);
}

TEST(Hostile, ADamagedControlBlockHarmsOnlyItsStructure) {
    CHECKS_REQUIREMENTS("BAD-002");
    if (!shmconf::damages_segments<impl>) SHMCONF_SKIP_AS("UNSUPPORTED", no_hook);
    {
        int aimed = 0;
        for (const kind_entry& k : claimed_kinds()) {
            if (!k.has_control_block) continue;
            fresh_segment name;
            auto seg = impl::create(name.name(), 1 << 20);
            populate(seg);
            try {
                if (!damage_changed_something(name.name(), k.name, shmconf::damage::control_block))
                    SHMCONF_SKIP_AS("UNRESOLVED",
                                    std::string(weak_hook) + " (control_block of " + k.kind + ")");
            } catch (const std::exception& e) {
                std::printf("[   NOTE   ] the adapter could not damage the control block of %s: %s\n", k.kind,
                            e.what());
                continue;
            }
            ++aimed;
            const std::string what = std::string("a damaged control block of ") + k.kind + " " + k.name;
            const auto r = run_isolated(60s, [&](reporter& out) {
                out.step("opening the segment");
                auto opened = impl::open(name.name());
                out.step("using " + std::string(k.kind) + " " + k.name + " with its damaged control block");
                std::string said;
                const auto c = shmconf::category_of<impl>([&] {
                    with_kind(k.kind, [&]<class S>() {
                        S s = impl::find<S>(opened, k.name);
                        said = "found";
                        if constexpr (!std::is_same_v<S, array>) {
                            std::size_t popped = 0, pushed = 0;
                            for (int i = 0; i < 40; ++i) popped += s.try_pop().has_value();
                            for (int i = 0; i < 40; ++i) pushed += s.try_push(5);
                            if (popped > 16 || pushed > 16)
                                out.fail("it gave " + std::to_string(popped) + " pops and took " +
                                         std::to_string(pushed) + " pushes with capacity 16");
                            said += ", " + std::to_string(popped) + " pops, " + std::to_string(pushed) +
                                    " pushes";
                        }
                    });
                });
                if (c != error_category::none && c != error_category::corrupted)
                    out.fail("it failed with " + std::string(shmconf::to_string(c)) + ", not corrupted");
                out.note(std::string(k.kind) + ": " + (said.empty() ? "" : said + "; ") +
                         shmconf::to_string(c));
                check_others_usable(opened, k.name, out, "beside " + what);
            });
            judge(r, what);
        }
        if (aimed == 0)
            SHMCONF_SKIP_AS("UNSUPPORTED", "the adapter damages no control block of a claimed kind");
    }
}

}  // namespace
}  // namespace shmconf_fault_tests
