// Faults, REF-005 and SEG-007: a segment whose attachers were all killed is
// recognised as stale and never reused, and a full /dev/shm (a small private
// tmpfs in a mount namespace of the child's own) fails creation cleanly,
// never with a SIGBUS later. How the tests stay in control is in
// fault_support.hpp.
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fault_support.hpp"
#include "support.hpp"

namespace shmconf_fault_tests {
namespace {

// ---- REF-005: a segment whose attachers all died -----------------------------------------

/// What REF-005's trials came to.
struct stale_counts {
    int fresh = 0, gone = 0, refused = 0;
};

/// A segment we attached to must be fresh: none of the dead processes'
/// structures. Finding their kept array, however intact, means the stale
/// segment was not recognised (REF-005).
void must_be_fresh(impl::segment& seg, const std::string& how, stale_counts& counts, reporter& out) {
    const auto c = shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, "keep"); });
    if (c == error_category::none)
        return out.fail(how +
                        " attached to the old segment (the dead processes' kept array is there): "
                        "a segment whose attachers all died was not recognised as stale");
    if (c != error_category::not_found)
        return out.fail(how + " gave a segment where finding the dead processes' kept array failed with " +
                        shmconf::to_string(c) + ", not not_found");
    for (int i = 0; i < 4; ++i) {
        const auto ci =
            shmconf::category_of<impl>([&] { (void)impl::find<array>(seg, "r" + std::to_string(i)); });
        if (ci != error_category::not_found)
            return out.fail(how + " gave a segment without the dead processes' kept array but with r" +
                            std::to_string(i) + " (" + shmconf::to_string(ci) + "): half of the old one");
    }
    ++counts.fresh;
    auto u = impl::make<array>(seg, "usable", 16);
    for (std::size_t i = 0; i < 16; ++i) u.at(i) = i * 3;
    for (std::size_t i = 0; i < 16; ++i)
        if (u.at(i) != i * 3) return out.fail(how + " gave a segment that does not keep what is written");
    impl::destroy(seg, "usable");
}

/// Trial `t`: a creator (churning the table) and an attacher on `name`,
/// both killed at a random moment, in random order. In the full profile,
/// every fourth creator is killed at a random moment from its start: some
/// die while creating the segment (an implementation may then wait for its
/// creation timeout). Returns false, with the failure reported, when one
/// could not start.
bool kill_every_attacher(const std::string& name, std::size_t bytes, int t, dice& random, reporter& out) {
    if (shmconf_tests::full_profile() && t % 4 == 3) {
        out.step("trial " + std::to_string(t) + ": a creator killed early");
        record_file creator_record;
        fault_actor creator(creator_record, name, {"create-and-churn", std::to_string(bytes)});
        std::this_thread::sleep_for(random.delay(30000us));
        creator.kill();
        creator.wait();
        return true;
    }
    out.step("trial " + std::to_string(t) + ": starting the attachers");
    record_file creator_record, attacher_record;
    fault_actor creator(creator_record, name, {"create-and-churn", std::to_string(bytes)});
    if (auto problem = wait_until_started(creator, creator_record); !problem.empty()) {
        out.fail("the creating process failed: " + problem);
        return false;
    }
    fault_actor attacher(attacher_record, name, {"attach"});
    if (auto problem = wait_until_started(attacher, attacher_record); !problem.empty()) {
        out.fail("the attaching process failed: " + problem);
        return false;
    }
    std::this_thread::sleep_for(random.delay(3000us));
    if (random() % 2) {
        creator.kill();
        attacher.kill();
    } else {
        attacher.kill();
        creator.kill();
    }
    creator.wait();
    attacher.wait();
    return true;
}

/// After trial `t`'s attachers all died: create-only, open-or-create or
/// open-only (by t % 3) must give a fresh segment or be refused cleanly.
void attach_after_deaths(const std::string& name, std::size_t bytes, int t, const std::string& how,
                         stale_counts& counts, reporter& out) {
    if (t % 3 == 0) {
        std::optional<impl::segment> seg;
        const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(name, bytes)); });
        if (c == error_category::none) {
            must_be_fresh(*seg, how, counts, out);
        } else if (c == error_category::already_exists) {
            ++counts.refused;
            auto again = impl::open_or_create(name, bytes);
            must_be_fresh(again, "open-or-create after create-only was refused", counts, out);
        } else {
            out.fail("create-only of a name whose attachers all died failed with " +
                     std::string(shmconf::to_string(c)));
        }
    } else if (t % 3 == 1) {
        auto seg = impl::open_or_create(name, bytes);
        must_be_fresh(seg, how, counts, out);
    } else {
        std::optional<impl::segment> seg;
        const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::open(name)); });
        if (c == error_category::none)
            must_be_fresh(*seg, how, counts, out);
        else if (c == error_category::not_found)
            ++counts.refused;
        else
            out.fail("open-only of a name whose attachers all died failed with " +
                     std::string(shmconf::to_string(c)));
    }
}

TEST(Crash, AStaleSegmentIsRecognisedAndNeverReused) {
    CHECKS_REQUIREMENTS("REF-005");
    UNSUPPORTED_UNLESS(impl::caps.cleans_up_after_crashed_attachers,
                       "cleanup after crashed attachers is not claimed");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment base;
    dice random;
    const int trials = by_profile(9, 60);
    const auto r = run_isolated(isolation_limit, [&](reporter& out) {
        out.note("seed " + std::to_string(random.seed()));
        constexpr std::size_t bytes = 1 << 20;
        stale_counts counts;
        for (int t = 0; t < trials; ++t) {
            const std::string name = base.name() + "-" + std::to_string(t);
            impl::remove(name);
            if (!kill_every_attacher(name, bytes, t, random, out)) return;
            const std::string how = t % 3 == 0 ? "create-only" : t % 3 == 1 ? "open-or-create" : "open-only";
            out.step("trial " + std::to_string(t) + ": " + how + " after every attacher died");
            if (!name_exists(name)) ++counts.gone;
            attach_after_deaths(name, bytes, t, how, counts, out);
            impl::remove(name);
        }
        out.note(std::to_string(trials) + " trials: name gone at once " + std::to_string(counts.gone) +
                 ", fresh " + std::to_string(counts.fresh) + ", refused cleanly " +
                 std::to_string(counts.refused));
    });
    judge(r, "segments whose attachers were all killed");
}

// ---- SEG-007: a full /dev/shm ---------------------------------------------------------------

bool write_file(const char* path, const std::string& text) {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

/// In this (child) process: a mount namespace of its own with a tmpfs of
/// `bytes` on /dev/shm. Returns why not, or "".
std::string private_small_dev_shm(std::size_t bytes) {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    auto failed = [](const std::string& what) { return what + ": " + std::strerror(errno); };
    if (uid == 0) {
        if (::unshare(CLONE_NEWNS) != 0) return failed("unshare(CLONE_NEWNS)");
    } else {
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return failed("unshare(CLONE_NEWUSER | CLONE_NEWNS)");
        write_file("/proc/self/setgroups", "deny");
        if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            return failed("mapping the user to root in a user namespace");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return failed("making mounts private");
    const std::string options = "size=" + std::to_string(bytes) + ",mode=1777";
    if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
        return failed("mounting a " + std::to_string(bytes) + "-byte tmpfs on /dev/shm");
    struct statvfs vfs {};
    if (::statvfs("/dev/shm", &vfs) != 0) return failed("statvfs(/dev/shm)");
    if (vfs.f_blocks * vfs.f_frsize > 2 * bytes) return "the tmpfs on /dev/shm is larger than asked";
    return "";
}

/// Makes the largest array `seg` takes (from about `bytes` down), writes
/// every element and reads it back. Returns its element count.
std::size_t write_through_largest_array(impl::segment& seg, std::size_t bytes, reporter& out,
                                        const std::string& what) {
    for (std::size_t count = bytes / sizeof(u64); count > 0; count = count * 15 / 16) {
        std::optional<array> a;
        const auto c = shmconf::category_of<impl>([&] { a.emplace(impl::make<array>(seg, "fill", count)); });
        if (c == error_category::out_of_space || c == error_category::invalid_size) continue;
        if (c != error_category::none) {
            out.fail("making an array in " + what + " failed with " + shmconf::to_string(c));
            return 0;
        }
        out.step("writing every element of a " + std::to_string(count) + "-element array in " + what);
        for (std::size_t i = 0; i < count; ++i) (*a)[i] = i ^ 0x5a5a5a5a5a5a5a5aull;
        for (std::size_t i = 0; i < count; ++i)
            if ((*a)[i] != (i ^ 0x5a5a5a5a5a5a5a5aull)) {
                out.fail("what was written in " + what + " did not read back");
                break;
            }
        return count;
    }
    out.fail("not even a one-element array fits in " + what);
    return 0;
}

TEST(Faults, AFullDevShmFailsCreationCleanlyAndNeverRaisesSigbus) {
    CHECKS_REQUIREMENTS("SEG-007");
    fresh_segment name;
    constexpr std::size_t space = 256 << 10;
    const auto r = run_isolated(120s, [&](reporter& out) {
        out.step("setting up a private 256 KiB /dev/shm");
        if (auto why = private_small_dev_shm(space); !why.empty()) return out.unresolved(why);
        // Larger than the whole space.
        out.step("creating a 1 MiB segment on a 256 KiB /dev/shm");
        {
            const std::string big = name.name() + "-big";
            std::optional<impl::segment> seg;
            const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(big, 1 << 20)); });
            if (c == error_category::none) {
                out.fail(
                    "creating a 1 MiB segment on a 256 KiB /dev/shm succeeded (its memory was not reserved)");
                if (impl::caps.array) write_through_largest_array(*seg, 1 << 20, out, "the 1 MiB segment");
            } else {
                out.note("a 1 MiB segment on 256 KiB: refused with " + std::string(shmconf::to_string(c)));
                if (name_exists(big)) out.fail("the refused 1 MiB creation left its name behind");
            }
        }
        // Segments that each fit, until the space runs out: each is refused
        // cleanly or usable to the last byte.
        std::vector<impl::segment> kept;
        int refused_at = -1;
        constexpr std::size_t each = 96 << 10;
        for (int k = 0; k < 5 && refused_at < 0; ++k) {
            const std::string n = name.name() + "-" + std::to_string(k);
            out.step("creating 96 KiB segment " + std::to_string(k) + " on a 256 KiB /dev/shm");
            std::optional<impl::segment> seg;
            const auto c = shmconf::category_of<impl>([&] { seg.emplace(impl::create(n, each)); });
            if (c != error_category::none) {
                refused_at = k;
                out.note("96 KiB segment " + std::to_string(k) + " refused with " + shmconf::to_string(c));
                if (name_exists(n))
                    out.fail("the refused creation of 96 KiB segment " + std::to_string(k) +
                             " left its name behind");
                break;
            }
            if (impl::caps.array)
                write_through_largest_array(*seg, each, out, "96 KiB segment " + std::to_string(k));
            kept.push_back(std::move(*seg));
        }
        if (refused_at < 0)
            out.fail(
                "five 96 KiB segments were all created on a 256 KiB /dev/shm (their memory was not "
                "reserved)");
        else if (refused_at == 0)
            out.fail("even the first 96 KiB segment was refused on an empty 256 KiB /dev/shm");
    });
    if (!r.unresolved.empty())
        SHMCONF_SKIP_AS("UNRESOLVED", "cannot make a small /dev/shm here: " + r.unresolved.front());
    judge(r, "a full /dev/shm");
}

}  // namespace
}  // namespace shmconf_fault_tests
