// The hostile writer's harness: for each (field, value) case, a populated
// segment, the damage, a victim attached before it and one attaching after
// it (each a child with a deadline), the field restored and the rest
// checked; and which way a child ended, in words.
// No tests of its own (hostile_harness.hpp says why the name is test_*).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "hostile_harness.hpp"

// Sanitizer reports end the child with their own exit codes, so that the
// parent can say which it was.
// NOLINTNEXTLINE(bugprone-reserved-identifier): the sanitizer's hook
extern "C" const char* __asan_default_options() {
    return "exitcode=86";
}
// NOLINTNEXTLINE(bugprone-reserved-identifier): the sanitizer's hook
extern "C" const char* __ubsan_default_options() {
    return "exitcode=87:print_stacktrace=1";
}

namespace shmds_hostile {

/// Forks `body` and waits for it within the deadline; returns "" when it
/// exited 0, or what went wrong.
std::string run_child(const std::function<void()>& body) {
    const pid_t pid = shmds_test::spawn(body);
    if (pid < 0) return "fork failed";  // spawn has reported errno
    const shmds_test::child_exit end =
        shmds_test::wait_for_exit(pid, child_deadline, std::chrono::microseconds(200));
    switch (end.how) {
        case shmds_test::child_exit::signalled:
            return std::string("killed by signal ") + ::strsignal(end.value);
        case shmds_test::child_exit::wait_failed:
            return std::string("waitpid: ") + std::strerror(end.value);
        case shmds_test::child_exit::timed_out:
            return "hang: still running after " + std::to_string(child_deadline.count()) + " s, killed";
        case shmds_test::child_exit::exited:
            break;
    }
    switch (end.value) {
        case 0:
            return "";
        case 86:
            return "AddressSanitizer report";
        case 87:
            return "UndefinedBehaviorSanitizer report";
        case shmds_test::child_threw:  // escaped the victim's body
        case victim_bad_exception:
            return "an exception other than shmds::error / std::system_error";
        case victim_unnamed_error:
            return "an error message naming neither segment nor structure";
        case check_failed:
            return "stored data lost or changed";
        default:
            return "exit code " + std::to_string(end.value);
    }
}

populated::populated() {
    seg.emplace(shmds::create_only, name.str(), segment_bytes, options());
    // Creation order: array0, gap, then the rest; the gap is destroyed so
    // that entry 1 is on the free chain and its block on the free list.
    bool gap_done = false;
    for (const structure_name& s : all_structures()) {
        open_structure(*seg, h, s, true);
        fill(h, s);
        if (!gap_done) {
            shmds::shm_array<element> gap(shmds::create_only, *seg, "gap", 64);
            gap_done = true;
        }
    }
    seg->destroy("gap");
    auto* header = static_cast<d::segment_header*>(seg->base());
    facts.infos = seg->table().list();
    facts.entries_offset = header->identity.entries_offset;
    facts.index_offset = header->identity.index_offset;
    facts.index_slots = header->identity.index_slots;
    facts.heap_free_head = header->table.heap_free_head;
    facts.free_entry = header->table.free_entry_head - 1;
    const auto* entries = reinterpret_cast<const d::table_entry*>(base() + facts.entries_offset);
    for (std::uint32_t i = 0; i < table_capacity; ++i)
        if (entries[i].state == d::entry_used) facts.entry_index.emplace_back(entries[i].name, i);
    free_bytes = seg->table().bytes_free();
}

/// Runs check_contents on `p` in a child; returns "" or what failed.
std::string check_in_child(const populated& p, std::optional<structure_name> skip) {
    return run_child([&] {
        try {
            check_contents(p.name.str(), p.facts.infos, p.free_bytes, skip);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "[checker %d] %s\n", ::getpid(), e.what());
            ::_exit(check_failed);
        }
    });
}

namespace {

/// Resolves the index-slot targets, which need the index itself.
void resolve_index_targets(std::vector<target>& targets, const populated& p) {
    const auto* index = reinterpret_cast<const std::uint32_t*>(p.base() + p.facts.index_offset);
    for (target& t : targets) {
        if (t.name == "index slot of queue0") {
            const auto entry = static_cast<std::uint32_t>(t.offset);
            for (std::uint32_t i = 0; i < p.facts.index_slots; ++i)
                if (index[i] == entry + 1) t.offset = p.facts.index_offset + std::uint64_t{4} * i;
        } else if (t.name == "empty index slot") {
            for (std::uint32_t i = 0; i < p.facts.index_slots; ++i)
                if (index[i] == 0) t.offset = p.facts.index_offset + std::uint64_t{4} * i;
        }
    }
}

}  // namespace

std::vector<target> targets_of(const populated& p) {
    auto targets = all_targets(p.facts, segment_bytes);
    resolve_index_targets(targets, p);
    return targets;
}

namespace {

/// One case: damage, two victims, restore, check. Returns "" or what failed.
std::string run_case(const target& t, const hostile_value& v) {
    populated p;
    std::byte* at = p.base() + t.offset;
    std::vector<std::byte> original(at, at + t.size);
    std::memcpy(at, v.bytes.data(), t.size);  // the hostile writer
    const std::string seg_name = p.name.str();
    std::string failure;
    if (auto r = run_child([&] { victim(*p.seg, p.h); }); !r.empty())
        failure = "victim attached before the damage: " + r;
    else if (auto r2 = run_child([&] { fresh_victim(seg_name); }); !r2.empty())
        failure = "victim attaching after the damage: " + r2;
    std::memcpy(at, original.data(), t.size);  // restore
    if (failure.empty()) {
        if (auto r3 = check_in_child(p, t.inside); !r3.empty()) failure = "after restoring the field: " + r3;
    }
    return failure;
}

std::string describe(const target& t, const hostile_value& v) {
    return t.name + " (offset " + std::to_string(t.offset) + ", " + std::to_string(t.size) +
           " bytes) = " + v.label;
}

}  // namespace

/// The cases of one group of targets (by name prefix), run in this process.
void run_group(const std::function<bool(const target&)>& select, std::size_t* count) {
    std::vector<target> targets;
    std::vector<std::vector<hostile_value>> values;
    {
        populated model;
        targets = targets_of(model);
        for (const target& t : targets) values.push_back(values_for(t, model.base(), segment_bytes));
    }
    std::size_t cases = 0;
    for (std::size_t i = 0; i < targets.size(); ++i) {
        if (!select(targets[i])) continue;
        for (const hostile_value& v : values[i]) {
            ++cases;
            const auto started = std::chrono::steady_clock::now();
            const std::string failure = run_case(targets[i], v);
            const auto took = std::chrono::steady_clock::now() - started;
            if (took > std::chrono::milliseconds(500))
                std::printf("[hostile] slow case (%lld ms): %s\n",
                            static_cast<long long>(
                                std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
                            describe(targets[i], v).c_str());
            EXPECT_EQ(failure, "") << describe(targets[i], v);
        }
    }
    if (count) *count = cases;
    EXPECT_GT(cases, 0u) << "no field selected";
    std::printf("[hostile] %zu (field, value) cases\n", cases);
}

}  // namespace shmds_hostile
