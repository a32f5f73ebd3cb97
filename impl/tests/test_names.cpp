// Name grammar: every rule, and that an invalid name fails before any system
// call (no file appears in /dev/shm).
#include <cstddef>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds::errc;

TEST(SegmentNames, AcceptsPortableNames) {
    for (const char* name : {"/a", "/A.b-c_9", "/x..y", "/..."})
        EXPECT_TRUE(shmds::is_valid_segment_name(name)) << name;
    EXPECT_TRUE(shmds::is_valid_segment_name("/" + std::string(253, 'n')));
}

TEST(SegmentNames, RejectsEachBrokenRule) {
    const std::string too_long = "/" + std::string(254, 'n');
    for (const std::string& name :
         {std::string(""), std::string("/"), std::string("noslash"), std::string("/a/b"), std::string("//a"),
          std::string("/."), std::string("/.."), std::string("/sp ace"), std::string("/t\tab"),
          std::string("/caf\xc3\xa9"), std::string("/a\0b", 4), too_long}) {
        auto problem = shmds::segment_name_problem(name);
        EXPECT_TRUE(problem.has_value()) << "accepted " << name;
    }
}

TEST(SegmentNames, InvalidNameIsInvalidNameErrorAndTouchesNothing) {
    for (std::string name : {"/a/b", "", "/", "nolead", "/bad name"}) {
        try {
            shmds::posix_shm seg(name, 1 << 20);
            FAIL() << "opened " << name;
        } catch (const shmds::invalid_argument_error& e) {
            EXPECT_EQ(e.code(), errc::invalid_name);
            EXPECT_NE(std::string(e.what()).find("segment name"), std::string::npos) << e.what();
        }
    }
    EXPECT_FALSE(shmds_test::shm_name_exists("/bad name"));
    EXPECT_THROW(shmds::posix_shm("/a/b"), shmds::invalid_argument_error);
}

TEST(SegmentNames, AreCheckedBeforeAnyDescriptorIsOpened) {
    // With no descriptor left to open, a library that called shm_open (or
    // anything else that opens) before checking the name would fail with
    // EMFILE instead of invalid_name. The exception is examined once the
    // limit is back (UBSan's type checks need descriptors of their own).
    const int status = shmds_test::wait_child(shmds_test::spawn([] {
        rlimit normal{};
        CHILD_CHECK(::getrlimit(RLIMIT_NOFILE, &normal) == 0);
        const auto failure_without_descriptors = [&](const std::string& name) {
            const rlimit none{0, normal.rlim_max};
            std::exception_ptr failure;
            CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &none) == 0);
            try {
                shmds::posix_shm seg(name, 1 << 20);
            } catch (...) {
                failure = std::current_exception();
            }
            CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &normal) == 0);
            return failure;
        };
        for (const std::string& name :
             std::vector<std::string>{"/a/b", "", "/", "nolead", "/bad name", "/" + std::string(300, 'x')}) {
            try {
                if (auto failure = failure_without_descriptors(name)) std::rethrow_exception(failure);
                CHILD_CHECK(!"opened an invalid name");
            } catch (const shmds::invalid_argument_error& e) {
                CHILD_CHECK(e.code() == errc::invalid_name);
            }
        }
        // ... while a valid name does reach the system, and hears EMFILE.
        try {
            if (auto failure = failure_without_descriptors("/shmds-test-emfile-probe"))
                std::rethrow_exception(failure);
            CHILD_CHECK(!"opened a segment with no descriptor to spare");
        } catch (const std::system_error& e) {
            CHILD_CHECK(e.code().value() == EMFILE);
        }
    }));
    EXPECT_EQ(status, shmds_test::child_ok);
}

TEST(SegmentNames, LongestNameWorksForReal) {
    std::string name = "/" + std::string(253 - 20, 'L') + std::to_string(::getpid());
    name.resize(254, 'L');
    ASSERT_TRUE(shmds::is_valid_segment_name(name));
    {
        shmds::posix_shm seg(name, 1 << 16);
        EXPECT_TRUE(shmds_test::shm_name_exists(name));
    }
    EXPECT_FALSE(shmds_test::shm_name_exists(name));
}

TEST(StructureNames, Grammar) {
    EXPECT_TRUE(shmds::is_valid_structure_name("a"));
    EXPECT_TRUE(shmds::is_valid_structure_name("with spaces / and: punctuation!"));
    EXPECT_TRUE(shmds::is_valid_structure_name(std::string(63, 'x')));
    EXPECT_FALSE(shmds::is_valid_structure_name(""));
    EXPECT_FALSE(shmds::is_valid_structure_name(std::string(64, 'x')));
    EXPECT_FALSE(shmds::is_valid_structure_name("tab\there"));
    EXPECT_FALSE(shmds::is_valid_structure_name(std::string("nul\0", 4)));
    EXPECT_FALSE(shmds::is_valid_structure_name("\x7f"));
}

// The quick check (every lookup's) and the one that explains (every error
// message's) are two spellings of one rule: they agree on every byte, at
// every position, and at every length edge.
TEST(StructureNames, TheQuickCheckAndTheExplanationAgree) {
    for (int byte = 0; byte < 256; ++byte) {
        for (const std::string& name :
             {std::string(1, static_cast<char>(byte)), "a" + std::string(1, static_cast<char>(byte)) + "z",
              std::string(62, 'x') + static_cast<char>(byte)}) {
            EXPECT_EQ(shmds::is_valid_structure_name(name), !shmds::structure_name_problem(name))
                << "byte " << byte << " in a name of " << name.size();
        }
    }
    for (std::size_t length : {0, 1, 2, 62, 63, 64, 65, 300}) {
        const std::string name(length, '~');
        EXPECT_EQ(shmds::is_valid_structure_name(name), !shmds::structure_name_problem(name)) << length;
        EXPECT_EQ(shmds::is_valid_structure_name(name), length >= 1 && length <= 63) << length;
    }
    static_assert(shmds::is_valid_structure_name("usable at compile time"));
}

TEST(StructureNames, RejectedByEveryStructureWithTheSegmentNamed) {
    shmds_test::unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    const std::string long_name(64, 'x');
    auto expect_invalid = [&](auto&& open) {
        try {
            open();
            ADD_FAILURE() << "accepted an invalid structure name";
        } catch (const shmds::invalid_argument_error& e) {
            EXPECT_EQ(e.code(), errc::invalid_name);
            EXPECT_NE(std::string(e.what()).find(name.str()), std::string::npos) << e.what();
        }
    };
    expect_invalid([&] { shmds::shm_array<int> a(seg, "", 4); });
    expect_invalid([&] { shmds::shm_array<int> a(seg, long_name, 4); });
    expect_invalid([&] { shmds::shm_queue<int> q(seg, "bad\nname", 4); });
    expect_invalid([&] { shmds::shm_stack<int> s(seg, long_name, 4); });
    expect_invalid([&] { seg.destroy(""); });
    shmds::shm_array<int> ok(seg, std::string(63, 'x'), 4);
    EXPECT_EQ(seg.table().size(), 1u);
}

// Error messages quote hostile names: the first 80 characters, then "...",
// with quotes, backslashes and anything outside printable ASCII as \xNN, so
// a message never carries a control character or an unbounded name.
TEST(ErrorMessages, QuoteNameShowsEightyCharactersThenCutsAndEscapes) {
    using shmds::detail::quote_name;
    EXPECT_EQ(quote_name(std::string(80, 'a')), "'" + std::string(80, 'a') + "'");
    EXPECT_EQ(quote_name(std::string(81, 'a')), "'" + std::string(80, 'a') + "...'");
    EXPECT_EQ(quote_name("a\\b"), "'a\\x5cb'");
    EXPECT_EQ(quote_name("it's"), "'it\\x27s'");
    EXPECT_EQ(quote_name(std::string("\x1f\x7f\xff ~", 5)), "'\\x1f\\x7f\\xff ~'");
}

}  // namespace
