// Attachments and the segment name's lifetime, for any implementation of the
// contract (sequential_support.hpp): every attachment counted once and
// structure handles not counted (REF-001), the last detach removing the name
// (REF-002) and no other (REF-003), and a handle inherited through fork
// (REF-006).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sequential_support.hpp"
#include "support.hpp"

namespace {

TEST(Reference, EveryAttachmentCountsOnce) {
    CHECKS_REQUIREMENTS("REF-001");
    UNSUPPORTED_UNLESS(shmconf::counts_attachments<impl>, "the adapter has no attach_count");
    {
        fresh_segment name;
        auto first = impl::create(name.name(), 1 << 20);
        EXPECT_EQ(attach_count(first), 1u);
        {
            auto second = impl::open(name.name());
            EXPECT_EQ(attach_count(first), 2u);
            EXPECT_EQ(attach_count(second), 2u);
            // Structures in use are not attachments: handles to one of each
            // claimed kind, through both segment handles, change no count.
            std::vector<std::shared_ptr<void>> in_use;
            auto hold = [&]<class S>(const char* n) {
                in_use.push_back(std::make_shared<S>(impl::template make<S>(first, n, 4)));
                in_use.push_back(std::make_shared<S>(impl::template find<S>(second, n)));
            };
            if (impl::caps.array) hold.template operator()<impl::array<std::uint64_t>>("a");
            for_each_other_claimed_kind<void>([&]<class K>() {
                hold.template operator()<typename K::template type<std::uint64_t>>(K::name());
            });
            EXPECT_EQ(attach_count(first), 2u) << "with " << in_use.size() << " structure handles open";
            EXPECT_EQ(attach_count(second), 2u) << "with " << in_use.size() << " structure handles open";
            in_use.clear();
            EXPECT_EQ(attach_count(first), 2u) << "after the structure handles closed";
        }
        EXPECT_EQ(attach_count(first), 1u);
    }
}

TEST(Reference, ADetachThatIsNotTheLastKeepsTheName) {
    CHECKS_REQUIREMENTS("REF-003");
    fresh_segment name;
    auto first = impl::create(name.name(), 1 << 20);
    { auto second = impl::open(name.name()); }
    EXPECT_TRUE(name_exists(name.name())) << "a detach that was not the last removed the name";
    auto third = impl::open(name.name());  // and it is still the same segment
}

// REF-006 in two halves: the child's handle counts (counts_attachments), and
// parent and child detach independently (checked with or without a count).
TEST(Reference, AHandleInheritedThroughForkCountsInTheChild) {
    CHECKS_REQUIREMENTS("REF-006");
    UNSUPPORTED_UNLESS(shmconf::counts_attachments<impl>, "the adapter has no attach_count");
    {
        fresh_segment name;
        std::optional<impl::segment> seg;
        seg.emplace(impl::create(name.name(), 1 << 20));
        int report[2];
        ASSERT_EQ(::pipe(report), 0);
        const pid_t child = ::fork();
        if (child == 0) {
            ::close(report[0]);
            // The inherited handle: counted while it lives, detached on its own.
            const auto count = category<impl>([&] {
                const std::size_t n = attach_count(*seg);
                (void)!::write(report[1], &n, sizeof n);
            });
            seg.reset();
            ::_exit(count == error_category::none ? 0 : 1);
        }
        ::close(report[1]);
        std::size_t in_child = 0;
        const ssize_t got = ::read(report[0], &in_child, sizeof in_child);
        ::close(report[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        ASSERT_EQ(got, static_cast<ssize_t>(sizeof in_child))
            << "the child could not count (exit " << status << ")";
        EXPECT_EQ(in_child, 2u) << "the child's inherited handle is not its own attachment";
        EXPECT_EQ(attach_count(*seg), 1u) << "the child's detach did not end its attachment";
    }
}

TEST(Reference, ParentAndForkedChildDetachIndependently) {
    CHECKS_REQUIREMENTS("REF-006");
    fresh_segment name;
    std::optional<impl::segment> seg;
    seg.emplace(impl::create(name.name(), 1 << 20));
    const pid_t child = ::fork();
    if (child == 0) {
        seg.reset();  // the inherited handle detaches on its own
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "the child's detach failed (status " << status << ")";
    EXPECT_TRUE(name_exists(name.name())) << "the child's detach removed the name";
    auto again = impl::open(name.name());  // still the same segment, still usable
    seg.reset();
    EXPECT_TRUE(name_exists(name.name())) << "the parent's detach removed the name under another handle";
    { auto dropped = std::move(again); }
    EXPECT_FALSE(name_exists(name.name())) << "the parent's last detach did not remove the name";
}

TEST(Reference, TheLastDetachRemovesTheName) {
    CHECKS_REQUIREMENTS("REF-002");
    fresh_segment name;
    {
        auto first = impl::create(name.name(), 1 << 20);
        auto second = impl::open(name.name());
    }
    EXPECT_FALSE(name_exists(name.name()));
}

}  // namespace
