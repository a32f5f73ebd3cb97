// Faults, BAD-001 and BAD-004: a hostile writer (hostile_writer, in
// fault_support.hpp) truncates a segment, which must be refused, never a
// SIGBUS, and flips single bytes of a populated segment, which must never
// crash or hang a process that opens it and uses every structure.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fault_support.hpp"
#include "support.hpp"

namespace shmconf_fault_tests {
namespace {

// ---- BAD-001: a truncated segment ------------------------------------------------------

TEST(Hostile, ATruncatedSegmentIsRefusedNotASigbus) {
    CHECKS_REQUIREMENTS("BAD-001");
    fresh_segment name;
    constexpr std::size_t bytes = 256 << 10;
    auto seg = impl::create(name.name(), bytes);
    if (impl::caps.array) {
        auto a = impl::make<array>(seg, "a", 64);
        for (std::size_t i = 0; i < 64; ++i) a.at(i) = i;
    }
    hostile_writer file(name.name());
    for (std::size_t truncated : {file.size() / 2, file.size() - 4096, std::size_t{4096}, std::size_t{200},
                                  std::size_t{64}, std::size_t{8}}) {
        ASSERT_EQ(::ftruncate(file.fd(), static_cast<off_t>(truncated)), 0);
        const std::string what = "a " + std::to_string(file.size()) + "-byte segment truncated to " +
                                 std::to_string(truncated) + " bytes";
        const auto r = run_isolated(60s, [&](reporter& out) {
            auto refused = [](error_category c) {
                return c == error_category::corrupted || c == error_category::mismatch;
            };
            out.step("open-only of " + what);
            std::optional<impl::segment> opened;
            const auto c = shmconf::category_of<impl>([&] { opened.emplace(impl::open(name.name())); });
            if (c == error_category::none) {
                out.fail("open-only of " + what + " succeeded");
                if (impl::caps.array) {
                    out.step("reading an array through the truncated segment");
                    auto a = impl::find<array>(*opened, "a");
                    u64 sum = 0;
                    for (std::size_t i = 0; i < a.size(); ++i) sum += a.at(i);
                    out.note("read " + std::to_string(sum));
                }
                return;
            }
            if (!refused(c))
                out.fail("open-only of " + what + " failed with " + shmconf::to_string(c) +
                         ", not corrupted or mismatch");
            out.step("open-or-create of " + what);
            const auto c2 =
                shmconf::category_of<impl>([&] { (void)impl::open_or_create(name.name(), bytes); });
            if (!refused(c2))
                out.fail("open-or-create of " + what + " gave " + shmconf::to_string(c2) +
                         ", not corrupted or mismatch");
        });
        judge(r, what);
        file.restore();
    }
}

// ---- BAD-004: a byte-flip sweep ------------------------------------------------------

/// Opens the (damaged) segment and uses every structure: what happened, in a
/// few words. Writes the step it is at into `step` for the crash report.
/// Stops at the first timeout: a lock that now looks held would cost every
/// later structure the same wait.
std::string use_everything(const std::string& segment, char* step) {
    auto at = [&](const char* s) {
        std::snprintf(step, 128, "%s", s);
        std::snprintf(g_step, sizeof g_step, "%s", s);
    };
    std::string said;
    at("open");
    std::optional<impl::segment> seg;
    if (auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::open(segment)); });
        c != error_category::none)
        return std::string("open: ") + shmconf::to_string(c);
    if (impl::caps.array) {
        at("array a");
        const auto c = shmconf::category_of<impl>([&] {
            auto a = impl::find<array>(*seg, "a");
            bool same = a.size() == 32;
            for (std::size_t i = 0; i < a.size() && i < 64; ++i) same = same && a.at(i) == i * 3 + 1;
            if (!same) said += " a: differs;";
        });
        if (c != error_category::none) said += std::string(" a: ") + shmconf::to_string(c) + ";";
        if (c == error_category::timeout) return "opened;" + said;
    }
    bool timed_out = false;
    auto use = [&](auto tag, const char* n) {
        using S = typename decltype(tag)::type;
        if (timed_out) return;
        at(n);
        const auto c = shmconf::category_of<impl>([&] {
            S s = impl::find<S>(*seg, n);
            std::size_t popped = 0, pushed = 0;
            for (int i = 0; i < 24; ++i) popped += s.try_pop().has_value();
            for (int i = 0; i < 24; ++i) pushed += s.try_push(7);
            if (popped > 16 || pushed > 16) said += std::string(" ") + n + ": more than its capacity;";
        });
        if (c != error_category::none) said += std::string(" ") + n + ": " + shmconf::to_string(c) + ";";
        timed_out = c == error_category::timeout;
    };
    if (impl::caps.spsc_queue) use(std::type_identity<impl::spsc_queue<u64>>{}, "q");
    if (impl::caps.mpmc_queue) use(std::type_identity<impl::mpmc_queue<u64>>{}, "m");
    if (impl::caps.concurrent_stack) use(std::type_identity<impl::concurrent_stack<u64>>{}, "s");
    if (impl::caps.queue) use(std::type_identity<impl::queue<u64>>{}, "pq");
    if (impl::caps.stack) use(std::type_identity<impl::stack<u64>>{}, "ps");
    at("detach");
    return said.empty() ? "no visible effect" : "opened;" + said;
}

/// The sweep's segment size.
constexpr std::size_t flip_bytes = 64 << 10;

/// One of the sweep's segments (separate segments, so that slow trials
/// overlap), with the trial running on it, if any.
struct flip_lane {
    std::unique_ptr<fresh_segment> name;
    std::optional<impl::segment> seg;
    std::unique_ptr<hostile_writer> file;
    char* page = nullptr;  // the trial's step [0, 128) and outcome [128, 4096)
    pid_t pid = 0;
    steady::time_point since;
    std::size_t offset = 0;
    unsigned before = 0, after = 0;
};

/// A new populated segment for `l`, with a hostile writer's mapping of it.
void set_up(flip_lane& l) {
    l.file.reset();
    l.seg.reset();
    l.name = std::make_unique<fresh_segment>();
    l.seg.emplace(impl::create(l.name->name(), flip_bytes));
    populate(*l.seg);
    l.file = std::make_unique<hostile_writer>(l.name->name());
}

/// A trial on `l`: the pristine bytes back, and the byte at `offset` flipped
/// by a random non-zero mask.
void flip_one_byte(flip_lane& l, std::size_t offset, dice& random) {
    l.file->restore();
    l.offset = offset;
    unsigned mask = 0;
    while (mask == 0) mask = static_cast<unsigned>(random() & 0xff);
    l.before = (*l.file)[l.offset];
    l.after = l.before ^ mask;
    (*l.file)[l.offset] = static_cast<unsigned char>(l.after);
    std::memset(l.page, 0, 4096);
}

/// In a trial's forked child: opens the damaged segment and uses it all,
/// writing what happened into `page` (from byte 128), and exits.
[[noreturn]] void open_and_use_in_child(const std::string& segment, char* page) {
    install_crash_handlers();
    std::string said;
    try {
        said = use_everything(segment, page);
    } catch (...) {
        said = "threw " + describe(std::current_exception());
    }
    std::snprintf(page + 128, 4096 - 128, "%s", said.c_str());
    ::_exit(0);
}

/// What the sweep's trials came to.
struct flip_tally {
    explicit flip_tally(std::chrono::milliseconds hang_after) : slow(hang_after) {}

    std::chrono::milliseconds slow;  // a trial still running after this is a hang
    std::map<std::string, int> outcomes;
    int crashes = 0, hangs = 0, removed = 0;
    steady::duration slowest = steady::duration::zero();

    /// What one trial came to; `status` is its wait status unless it was cut short.
    void conclude(flip_lane& l, int status, bool cut) {
        l.pid = 0;
        slowest = std::max(slowest, steady::now() - l.since);
        char where[64];
        std::snprintf(where, sizeof where, "byte %zu flipped (0x%02x to 0x%02x)", l.offset, l.before,
                      l.after);
        const std::string step(l.page, ::strnlen(l.page, 128));
        if (cut) {
            ++hangs;
            ADD_FAILURE() << where << ": opening and using the segment was still not done after "
                          << slow.count() / 1000 << " s, at '" << step << "' (a hang)";
        } else if (WIFSIGNALED(status)) {
            ++crashes;
            ADD_FAILURE() << where << ": the process opening and using the segment died of "
                          << signal_name(WTERMSIG(status)) << " at '" << step << "'";
        } else if (WEXITSTATUS(status) != 0) {
            ++crashes;
            ADD_FAILURE() << where << ": the process opening and using the segment exited with status "
                          << WEXITSTATUS(status) << " at '" << step << "' (a sanitizer report on stderr?)";
        } else {
            ++outcomes[std::string(l.page + 128, ::strnlen(l.page + 128, 4096 - 128))];
        }
        if (!name_exists(l.name->name())) {
            ++removed;  // an opener may remove a damaged segment: this lane starts again
            set_up(l);
        }
    }

    /// Whether `l` has a trial still running; one that has ended, or has
    /// run past `slow` (then killed), is concluded.
    bool still_running(flip_lane& l) {
        if (l.pid == 0) return false;
        int status = 0;
        if (::waitpid(l.pid, &status, WNOHANG) == l.pid) {
            conclude(l, status, false);
        } else if (steady::now() - l.since > slow) {
            ::kill(l.pid, SIGKILL);
            while (::waitpid(l.pid, &status, 0) < 0 && errno == EINTR) {
            }
            conclude(l, status, true);
        } else {
            return true;
        }
        return false;
    }

    /// The sweep in a line: counts, and the most frequent outcomes.
    [[nodiscard]] std::string summary(std::size_t flips, std::uint64_t seed) const {
        std::vector<std::pair<int, std::string>> ranked;
        ranked.reserve(outcomes.size());
        for (const auto& [o, n] : outcomes) ranked.emplace_back(n, o);
        std::sort(ranked.rbegin(), ranked.rend());
        std::string text =
            std::to_string(flips) + " flips (seed " + std::to_string(seed) + "): " + std::to_string(crashes) +
            " crashed, " + std::to_string(hangs) + " hung, " + std::to_string(removed) +
            " segments removed by an opener; slowest trial " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()) +
            " ms; outcomes:";
        for (std::size_t i = 0; i < ranked.size() && i < 12; ++i)
            text += " [" + std::to_string(ranked[i].first) + "x " + ranked[i].second + "]";
        return text;
    }
};

TEST(Hostile, FlippedBytesNeverCrashOrHangAnOpener) {
    CHECKS_REQUIREMENTS("BAD-004");
    // The quick profile flips the same bytes in every run (a fixed seed,
    // unless SHMCONF_SEED says otherwise), so that CI is reproducible; the
    // full profile flips every byte of the first 16 KiB and a random sample
    // of the rest.
    const char* seed_set = std::getenv("SHMCONF_SEED");
    dice random = shmconf_tests::full_profile() || seed_set ? dice() : dice(1);
    const auto every = by_profile<std::size_t>(2 << 10, 16 << 10);
    const auto sampled = by_profile<std::size_t>(512, 4096);
    const auto sample_end = by_profile<std::size_t>(16 << 10, 64 << 10);
    // A trial still running after this is a hang. A flip that makes a lock
    // look held costs a waiter its timeout (5 s in shmds), well below it.
    flip_tally tally{by_profile<std::chrono::milliseconds>(10s, 60s)};
    constexpr int lanes = 6;  // separate segments, so that slow trials overlap
    std::vector<flip_lane> all(lanes);
    for (flip_lane& l : all) {
        set_up(l);
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(p, MAP_FAILED);
        l.page = static_cast<char*>(p);
    }
    std::vector<std::size_t> offsets;
    for (std::size_t i = 0; i < every && i < flip_bytes; ++i) offsets.push_back(i);
    for (std::size_t i = 0; i < sampled; ++i) offsets.push_back(every + random() % (sample_end - every));
    // Once every lane has hung once the verdict is in (FAIL); each further
    // hang would cost another `slow` for nothing (Boost's opener hangs on
    // about one flip in a hundred: 40 s of the quick run went to them).
    std::size_t next = 0;
    const auto sweep_over = [&] { return next == offsets.size() || tally.hangs >= lanes; };
    for (;;) {
        bool busy = false;
        for (flip_lane& l : all) {
            if (tally.still_running(l)) {
                busy = true;
                continue;
            }
            if (sweep_over()) continue;
            // A trial: one byte flipped, a child opens and uses it all.
            flip_one_byte(l, offsets[next++], random);
            const std::string segment = l.name->name();
            char* page = l.page;
            std::fflush(nullptr);
            l.pid = ::fork();
            ASSERT_GE(l.pid, 0);
            if (l.pid == 0) open_and_use_in_child(segment, page);
            l.since = steady::now();
            busy = true;
        }
        if (!busy && sweep_over()) break;
        std::this_thread::sleep_for(200us);
    }
    for (flip_lane& l : all) {
        l.file->restore();
        ::munmap(l.page, 4096);
    }
    std::string summary = tally.summary(next, random.seed());
    if (next < offsets.size())
        summary += "; stopped after " + std::to_string(tally.hangs) + " hangs, " +
                   std::to_string(offsets.size() - next) + " flips not tried";
    std::printf("[   NOTE   ] %s\n", summary.c_str());
    ::testing::Test::RecordProperty("measurements", summary);
}

}  // namespace
}  // namespace shmconf_fault_tests
