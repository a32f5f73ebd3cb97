// Segments, in one process, for any implementation of the contract
// (sequential_support.hpp): create-only and open-only (SEG-001 to SEG-003),
// segment names refused and accepted at the edges of the rule (NAME-001), the
// default mode whatever the umask (SEG-006), asking for more than a segment
// holds (SEG-009) and bad sizes (SEG-008).
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sequential_support.hpp"
#include "support.hpp"

namespace {

// ---- segments, names, discovery ------------------------------------------------------------------

TEST(Segment, CreateOnlyOfAnExistingNameFailsAndKeepsIt) {
    CHECKS_REQUIREMENTS("SEG-001 SEG-002");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    A a = impl::make<A>(seg, "kept", 4);
    a[0] = 7;
    EXPECT_EQ(category<impl>([&] { (void)impl::create(name.name(), 1 << 20); }),
              error_category::already_exists);
    auto again = impl::open(name.name());
    EXPECT_EQ(impl::find<A>(again, "kept")[0], 7);
}

TEST(Segment, OpenOnlyOfAnAbsentNameFailsAndCreatesNothing) {
    CHECKS_REQUIREMENTS("SEG-003");
    fresh_segment name;
    EXPECT_EQ(category<impl>([&] { (void)impl::open(name.name()); }), error_category::not_found);
    EXPECT_FALSE(name_exists(name.name()));
}

/// Whether shm_open finds `name` (names it refuses count as absent).
bool shm_name_exists(const std::string& name) {
    const int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

TEST(Segment, BadNamesAreRefusedBeforeAnythingIsCreated) {
    CHECKS_REQUIREMENTS("NAME-001");
    const std::vector<std::string> bad_names{"",   "/",   "noslash", "/a/b",
                                             "/.", "/..", "/sp ace", "/" + std::string(254, 'x')};
    for (const std::string& bad : bad_names) {
        SCOPED_TRACE("'" + bad + "'");
        const bool existed_before = shm_name_exists(bad);
        bool created = false;
        EXPECT_EQ(category<impl>([&] {
                      (void)impl::create(bad, 1 << 20);
                      created = true;
                  }),
                  error_category::invalid_name);
        // An implementation that let the name through may have created it
        // even if it failed later, and its remove may refuse the name: unlink
        // it as shm_open saw it, so that no run leaves it in /dev/shm.
        if (created) (void)category<impl>([&] { impl::remove(bad); });
        if (!existed_before) ::shm_unlink(bad.c_str());
    }
}

/// NAME-001 from the other side: names at the edges of the rule must be
/// accepted. A one-character name may be held by another run (then
/// already_exists, which also shows the name was accepted); the others carry
/// this process's id.
TEST(Segment, NamesAtTheEdgesOfTheRuleAreAccepted) {
    CHECKS_REQUIREMENTS("NAME-001");
    const std::string id = std::to_string(::getpid());
    const std::string every = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    std::string longest = "/" + id + "-" + every;
    while (longest.size() < 254) longest += every[longest.size() % every.size()];
    longest.resize(254);  // '/' and 253 characters
    const std::vector<std::string> ours{longest,   "/" + id + every, "/..." + id,     "/." + id, "/-" + id,
                                        "/_" + id, "/" + id + ".",   "/" + id + "..", "/" + id};
    for (const std::string& good : ours) {
        SCOPED_TRACE("'" + good + "' (" + std::to_string(good.size() - 1) + " characters after '/')");
        impl::remove(good);
        const auto c = category<impl>([&] {
            auto seg = impl::create(good, 1 << 16);
            EXPECT_TRUE(name_exists(good));
            auto again = impl::open(good);
        });
        EXPECT_EQ(c, error_category::none) << "a valid segment name was refused";
        impl::remove(good);
    }
    for (const char* one : {"/a", "/Z", "/9", "/_", "/-"}) {
        SCOPED_TRACE(std::string("'") + one + "'");
        bool created = false;
        const auto c = category<impl>([&] {
            auto seg = impl::create(one, 1 << 16);
            created = true;
        });
        EXPECT_TRUE(c == error_category::none || c == error_category::already_exists)
            << "a one-character segment name was refused with " << shmconf::to_string(c);
        if (created) impl::remove(one);
    }
}

/// The permission bits of a segment created (with the default mode) while
/// the process's umask is `mask`; -1 when the object cannot be inspected.
int default_mode_under_umask(mode_t mask) {
    fresh_segment name;
    const mode_t previous = ::umask(mask);
    auto seg = impl::create(name.name(), 1 << 20);
    ::umask(previous);
    const int fd = ::shm_open(name.name().c_str(), O_RDONLY, 0);
    if (fd < 0) return -1;
    struct stat st {};
    const bool stated = ::fstat(fd, &st) == 0;
    ::close(fd);
    return stated ? static_cast<int>(st.st_mode & 0777) : -1;
}

TEST(Segment, DefaultModeIsOwnerOnlyWhateverTheUmask) {
    CHECKS_REQUIREMENTS("SEG-006");
    // The most permissive umask: the mode must come from the implementation.
    const int mode = default_mode_under_umask(0);
    ASSERT_GE(mode, 0);
    EXPECT_EQ(mode & 077, 0) << "created with mode 0" << std::oct << mode
                             << ": others than the owner may read or write it";
}

/// The other side of SEG-006: a umask that takes the owner's own write bit
/// (0277) must not leave the owner a segment it can only read (root, which
/// runs CI, ignores the bits on open, so they are checked directly).
TEST(Segment, DefaultModeLetsTheOwnerReadAndWriteWhateverTheUmask) {
    CHECKS_REQUIREMENTS("SEG-006");
    const int mode = default_mode_under_umask(0277);
    ASSERT_GE(mode, 0);
    EXPECT_EQ(mode, 0600) << "created under a umask of 0277 with mode 0" << std::oct << mode
                          << ", not 0600: the umask decided the mode";
}

TEST(Segment, AskingForMoreThanAnExistingSegmentHoldsIsAMismatch) {
    CHECKS_REQUIREMENTS("SEG-009");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<int>;
    impl::make<A>(seg, "kept", 4)[0] = 7;
    EXPECT_EQ(category<impl>([&] { (void)impl::open_or_create(name.name(), 4 << 20); }),
              error_category::mismatch);
    auto exact = impl::open_or_create(name.name(), 1 << 20);  // exactly what it holds: accepted
    auto smaller = impl::open_or_create(name.name(), 1 << 16);
    auto unsized = impl::open(name.name());
    EXPECT_EQ(impl::find<A>(exact, "kept")[0], 7);
    EXPECT_EQ(impl::find<A>(smaller, "kept")[0], 7);
    EXPECT_EQ(impl::find<A>(unsized, "kept")[0], 7);
}

TEST(Segment, BadSizesAreRefused) {
    CHECKS_REQUIREMENTS("SEG-008");
    fresh_segment name;
    EXPECT_EQ(category<impl>([&] { (void)impl::create(name.name(), 0); }), error_category::invalid_size);
    EXPECT_FALSE(name_exists(name.name()));
}

}  // namespace
