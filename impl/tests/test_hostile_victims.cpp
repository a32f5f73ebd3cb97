// What the hostile writer's victims do, and the check afterwards: processes
// attached before and after the damage run every operation of the table and
// of every structure, in sequences that leave an undamaged structure as it
// was, and may see only errors that name the segment or the structure; a
// last process checks that every structure the damage was not in holds
// exactly what it held.
// No tests of its own (hostile_harness.hpp says why the name is test_*).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include <shmds/shmds.hpp>

#include "hostile_harness.hpp"

namespace shmds_hostile {

namespace {

// =====================================================================================
// What the victims do: every operation, in sequences that leave an
// undamaged structure as it was.
// =====================================================================================

/// The failure is allowed when it is a library error or an OS error whose
/// message names the segment or the structure; otherwise the child ends.
void judge(const std::exception& e, const std::string& segment, const std::string& structure) {
    const std::string what = e.what();
    const bool named = what.find(segment) != std::string::npos ||
                       (!structure.empty() && what.find("'" + structure + "'") != std::string::npos);
    if (!named) {
        std::fprintf(stderr, "[victim %d] error does not name segment %s or structure '%s': %s\n", ::getpid(),
                     segment.c_str(), structure.c_str(), what.c_str());
        std::fflush(stderr);
        ::_exit(victim_unnamed_error);
    }
}

/// Runs `op`; lets only a named shmds::error, a named std::system_error or
/// (from at()) std::out_of_range through. Returns whether `op` completed.
template <class Op>
bool attempt(const std::string& segment, const std::string& structure, Op&& op) {
    try {
        op();
        return true;
    } catch (const shmds::error& e) {
        judge(e, segment, structure);
    } catch (const std::system_error& e) {
        judge(e, segment, structure);
    } catch (const std::out_of_range& e) {
        judge(e, segment, structure);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "[victim %d] %s: unexpected exception: %s\n", ::getpid(), structure.c_str(),
                     e.what());
        std::fflush(stderr);
        ::_exit(victim_bad_exception);
    }
    return false;
}

/// The FIFO sequence: take all, find it empty, put back, fill up, find it
/// full, rotate the originals past the fillers, drop the fillers. `push`
/// returns false when full, `pop` nullopt when empty. Ends as it began when
/// nothing fails.
template <class Push, class Pop, class Extra>
void fifo_round(Push push, Pop pop, Extra extra) {
    std::vector<element> taken;
    while (auto v = pop()) {
        taken.push_back(*v);
        if (taken.size() > structure_capacity) return;  // damage: it keeps giving
    }
    extra();
    for (element v : taken)
        if (!push(v)) return;
    std::size_t fillers = 0;
    while (push(0xf111e7 + fillers))
        if (++fillers > structure_capacity) return;
    extra();
    for (std::size_t i = 0; i < taken.size(); ++i)
        if (!pop()) return;
    for (element v : taken)
        if (!push(v)) return;
    for (std::size_t i = 0; i < fillers; ++i)
        if (!pop()) return;
}

/// The LIFO sequence: take all, put back in order, fill up, drop fillers.
template <class Push, class Pop, class Extra>
void lifo_round(Push push, Pop pop, Extra extra) {
    std::vector<element> taken;
    while (auto v = pop()) {
        taken.push_back(*v);
        if (taken.size() > structure_capacity) return;
    }
    extra();
    for (std::size_t i = taken.size(); i-- > 0;)  // (no std::views: clang 14 cannot use libstdc++ 12's)
        if (!push(taken[i])) return;
    std::size_t fillers = 0;
    while (push(0xf111e7 + fillers))
        if (++fillers > structure_capacity) return;
    extra();
    for (std::size_t i = 0; i < fillers; ++i)
        if (!pop()) return;
}

/// At an edge (empty or full), the call that meets it: pop() or push(),
/// which throw there, on the queue and the stack; the timed waits on the
/// structures that have them.
template <class S>
void push_or_pop_at_the_edge(S& x) {
    constexpr bool timed = requires {
        x.try_pop_for(short_wait);
    };
    if (x.empty()) {
        if constexpr (timed)
            (void)x.try_pop_for(short_wait);
        else
            (void)x.pop();
    } else if (x.full()) {
        if constexpr (timed)
            (void)x.try_push_for(1, short_wait);
        else
            x.push(1);
    }
}

void exercise(const std::string& seg_name, handles& h, const structure_name& s) {
    const std::string n = s.str();
    auto run = [&](auto&& op) { return attempt(seg_name, n, op); };
    visit_handle(h, s, [&](auto& slot) {
        using slot_t = decltype(slot);
        if (!slot) return;
        auto& x = *slot;
        if constexpr (is<array_type, slot_t>) {
            run([&] {
                for (std::size_t i = 0; i < x.size(); ++i) x.at(i) = x.at(i);
                for (element& v : x) v = v + 0;
                (void)x.front();
                (void)x.back();
            });
            run([&] { (void)x.at(x.size()); });
        } else {
            run([&] {
                (void)shmds::element_count(x);
                if constexpr (is_lifo<slot_t>) {
                    (void)x.full();
                    if constexpr (is<stack_type, slot_t>) {
                        if (!x.empty()) (void)x.top();
                    } else {
                        (void)x.lock_recoveries();
                    }
                } else {
                    (void)x.empty();
                    (void)x.full();
                }
            });
            if constexpr (is<queue_type, slot_t>) {
                run([&] {
                    if (!x.empty()) (void)x.front();
                });
            }
            // Batches: take everything at once and put it back at once.
            if constexpr (is<spsc_type, slot_t> || is<mpmc_type, slot_t>) {
                run([&] {
                    element buffer[structure_capacity];
                    const std::size_t n_taken = x.try_pop_n(buffer, structure_capacity);
                    const std::size_t n_put = x.try_push_n(buffer, n_taken);
                    if (is<spsc_type, slot_t> && n_put == n_taken) {
                        // Rotate once round so the order is the original again.
                        element more[structure_capacity];
                        const std::size_t again = x.try_pop_n(more, n_put);
                        (void)x.try_push_n(more, again);
                    }
                });
            }
            run([&] {
                auto push = [&](element v) { return x.try_push(v); };
                auto pop = [&] { return x.try_pop(); };
                auto at_the_edge = [&] { run([&] { push_or_pop_at_the_edge(x); }); };
                if constexpr (is_lifo<slot_t>)
                    lifo_round(push, pop, at_the_edge);
                else
                    fifo_round(push, pop, at_the_edge);
            });
            if constexpr (is<spsc_type, slot_t> || is<message_type, slot_t>) run([&] { x.release_roles(); });
            if constexpr (is<mpmc_type, slot_t>) run([&] { x.leave(); });
        }
    });
}

/// Every table operation, each ending where it began.
void exercise_table(shmds::posix_shm& seg) {
    const std::string& sn = seg.name();
    auto run = [&](const std::string& structure, auto&& op) { return attempt(sn, structure, op); };
    run("", [&] { (void)seg.table().list(); });
    run("", [&] { (void)seg.table().size(); });
    run("", [&] { (void)seg.table().bytes_free(); });
    for (const structure_name& s : all_structures()) run(s.str(), [&] { (void)seg.table().find(s.str()); });
    run("absent", [&] { (void)seg.contains("absent"); });
    run("absent", [&] { seg.destroy("absent"); });
    // Create and destroy one of each kind: allocation from the free list,
    // from the top, and freeing back.
    for (kind_id k : all_kinds) {
        const structure_name tmp{k, 0, true};
        run(tmp.str(), [&] {
            handles h;
            open_structure(seg, h, tmp, true);
            fill(h, tmp);
            exercise(sn, h, tmp);
        });
        run(tmp.str(), [&] { seg.destroy(tmp.str()); });
    }
    // A mismatched open of an existing name.
    run("queue0", [&] { shmds::shm_stack<element> wrong(shmds::open_only, seg, "queue0"); });
    run("array1", [&] { shmds::shm_array<std::uint32_t> wrong(shmds::open_only, seg, "array1"); });
    // (No open_or_create or create_only of an existing name: if the damage
    // hid it, a new one is rightly made, and the restored field then makes
    // two of one name.)
}

}  // namespace

/// A victim's whole run: table, then every structure.
void victim(shmds::posix_shm& seg, handles& h) {
    exercise_table(seg);
    for (const structure_name& s : all_structures()) exercise(seg.name(), h, s);
}

/// A victim that attaches after the damage.
void fresh_victim(const std::string& seg_name) {
    std::optional<shmds::posix_shm> seg;
    if (!attempt(seg_name, "", [&] { seg.emplace(shmds::open_only, seg_name, options()); })) return;
    handles h;
    for (const structure_name& s : all_structures())
        attempt(seg_name, s.str(), [&] { open_structure(*seg, h, s, false); });
    victim(*seg, h);
}

// =====================================================================================
// The check afterwards.
// =====================================================================================

#define HOSTILE_CHECK(cond, what)                                                   \
    do {                                                                            \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "[checker %d] %s: check failed: %s\n", ::getpid(), \
                         std::string(what).c_str(), #cond);                         \
            std::fflush(stderr);                                                    \
            ::_exit(check_failed);                                                  \
        }                                                                           \
    } while (0)

/// Reads every structure (except `skip`, the one the damage was in) through
/// a fresh attachment and compares it with what was stored; destructive.
void check_contents(const std::string& seg_name, const std::vector<shmds::structure_info>& before,
                    std::size_t free_before, std::optional<structure_name> skip) {
    shmds::posix_shm seg(shmds::open_only, seg_name, options());
    const auto now = seg.table().list();
    const auto skipped = [&](const std::string& n) { return skip && skip->str() == n; };
    std::string listed;
    for (const auto& i : now) listed += " " + i.name;
    HOSTILE_CHECK(now.size() == before.size() || (skip && now.size() + 1 == before.size()),
                  "table lists" + listed);
    for (const auto& b : before) {
        if (skipped(b.name)) continue;
        const auto it = std::find_if(now.begin(), now.end(), [&](const auto& i) { return i.name == b.name; });
        HOSTILE_CHECK(it != now.end(), b.name + " missing; table lists" + listed);
        HOSTILE_CHECK(it->offset == b.offset && it->bytes == b.bytes && it->capacity == b.capacity &&
                          it->serial == b.serial && it->kind == b.kind,
                      b.name);
    }
    // Restoring the field behind the table's back can leave its derived
    // state (free lists, index) describing the damaged table: rebuild it
    // from the entries, as the next locker after a crash would, and then
    // the heap must be exactly as before (nothing leaked, nothing shared).
    static_cast<d::segment_header*>(seg.base())->table.dirty = 1;
    if (!skip) HOSTILE_CHECK(seg.table().bytes_free() == free_before, "free bytes");
    for (const structure_name& s : all_structures()) {
        if (skip && skip->kind == s.kind && skip->copy == s.copy) continue;
        handles h;
        open_structure(seg, h, s, false);
        const std::string what = s.str();
        visit_handle(h, s, [&](auto& slot) {
            for (std::uint64_t i = 0; i < stored; ++i) {
                if constexpr (is<array_type, decltype(slot)>)
                    HOSTILE_CHECK((*slot)[i] == s.value(i), what);
                else
                    HOSTILE_CHECK(slot->try_pop() == s.value(is_lifo<decltype(slot)> ? stored - 1 - i : i),
                                  what);
            }
            if constexpr (is<array_type, decltype(slot)>) {
                for (std::uint64_t i = stored; i < structure_capacity; ++i)
                    HOSTILE_CHECK((*slot)[i] == 0, what);
            } else {
                HOSTILE_CHECK(!slot->try_pop(), what);
            }
        });
    }
}

}  // namespace shmds_hostile
