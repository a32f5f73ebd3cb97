// Unfinished and orphaned segments across real processes: a creator that
// died before initialising, attachers that all died, a segment still being
// initialised by a live process; the directory lists live and stale segments
// and removes only the stale (as does shmds-inspect), never an object
// without the magic or one others could write.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/segment_directory.hpp>
#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using namespace shmds_test;

TEST(Stale, SegmentWhoseCreatorDiedBeforeInitialisingIsReclaimed) {
    unique_segment_name name;
    // A creator that died after shm_open and ftruncate, before its header.
    ASSERT_EQ(wait_child(spawn([&] {
                  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
                  CHILD_CHECK(fd >= 0);
                  CHILD_CHECK(::flock(fd, LOCK_SH) == 0);
                  CHILD_CHECK(::ftruncate(fd, 1 << 16) == 0);
                  ::raise(SIGKILL);
              })),
              128 + SIGKILL);
    notices().clear();
    shmds::segment_options options{.timeout = std::chrono::milliseconds(300), .notice = record_notice};
    shmds::posix_shm seg(name, 1 << 16, options);
    EXPECT_TRUE(seg.created());
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("creator died"), std::string::npos) << notices()[0];
}

TEST(Stale, SegmentStillBeingInitialisedByALiveProcessTimesOut) {
    unique_segment_name name;
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_SH), 0);  // a live, slow creator
    ASSERT_EQ(::ftruncate(fd, 1 << 16), 0);
    try {
        shmds::posix_shm seg(name, 1 << 16, {.timeout = std::chrono::milliseconds(200)});
        ADD_FAILURE() << "attached to a segment that was never initialised";
    } catch (const shmds::timeout_error& e) {
        EXPECT_NE(std::string(e.what()).find("initialised"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(shm_name_exists(name.str())) << "a live creator's segment must not be removed";
    ::close(fd);
}

TEST(Stale, SegmentWhoseAttachersAllDiedIsReclaimed) {
    unique_segment_name name;
    std::uint64_t old_id = 0;
    shared_block<std::uint64_t> id;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm seg(name.str(), 1 << 16);
                  shmds::shm_array<int> a(seg, "a", 4);
                  *id = seg.segment_id();
                  ::raise(SIGKILL);  // no detach
              })),
              128 + SIGKILL);
    old_id = *id;
    ASSERT_TRUE(shm_name_exists(name.str()));
    notices().clear();
    shmds::posix_shm seg(name, 1 << 16, {.notice = record_notice});
    EXPECT_TRUE(seg.created());
    EXPECT_NE(seg.segment_id(), old_id);
    EXPECT_FALSE(seg.contains("a"));
    ASSERT_EQ(notices().size(), 1u);
    EXPECT_NE(notices()[0].find("stale"), std::string::npos) << notices()[0];
}

TEST(Stale, AStaleSegmentOthersCouldWriteIsRefusedNotReclaimed) {
    // A private opener must not act on a file others could have planted or
    // rewritten, not even to remove it as stale.
    unique_segment_name name;
    ASSERT_EQ(wait_child(spawn([&] {
                  shmds::posix_shm seg(name.str(), 1 << 16, {.mode = 0666});
                  ::raise(SIGKILL);  // no detach
              })),
              128 + SIGKILL);
    notices().clear();
    EXPECT_THROW(shmds::posix_shm(name, 1 << 16, {.notice = record_notice}), shmds::untrusted_error);
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_TRUE(notices().empty());
    shmds::posix_shm accepted(name, 1 << 16, {.mode = 0666, .notice = record_notice});
    EXPECT_TRUE(accepted.created()) << "accepted, the stale segment is reclaimed as usual";
    EXPECT_EQ(notices().size(), 1u);
}

/// Leaves a stale segment called `name` holding arrays `structures`: its only
/// attacher is SIGKILLed. Returns the dead creator's pid.
pid_t make_stale_segment(const unique_segment_name& name, std::vector<std::string> structures) {
    const pid_t pid = spawn([&] {
        shmds::posix_shm seg(name.str(), 1 << 16);
        for (const auto& s : structures) shmds::shm_array<int> a(seg, s, 4);
        ::raise(SIGKILL);  // no detach
    });
    EXPECT_EQ(wait_child(pid), 128 + SIGKILL);
    return pid;
}

const shmds::segment_listing* listed(const std::vector<shmds::segment_listing>& all,
                                     const std::string& name) {
    for (const auto& s : all)
        if (s.name == name) return &s;
    return nullptr;
}

std::vector<std::string> names_of(const std::vector<shmds::structure_info>& structures) {
    std::vector<std::string> names;
    names.reserve(structures.size());
    for (const auto& s : structures) names.push_back(s.name);
    std::sort(names.begin(), names.end());
    return names;
}

TEST(Stale, TheDirectoryListsLiveAndStaleSegmentsAndRemovesOnlyTheStale) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    shmds::shm_array<int> a(live, "a", 4);
    unique_segment_name stale_name;
    const pid_t dead_creator = make_stale_segment(stale_name, {"x", "y"});
    unique_segment_name foreign_name;  // a file that is not a shmds segment
    {
        const int fd = ::shm_open(foreign_name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        ASSERT_GE(fd, 0);
        std::vector<char> junk(4096, 'j');
        ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
        ::close(fd);
    }

    const auto all = shmds::list_segments();
    const auto* l = listed(all, live_name.str());
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(l->status, shmds::segment_status::live);
    EXPECT_EQ(l->attachers, 1u);
    EXPECT_EQ(l->segment_id, live.segment_id());
    EXPECT_EQ(names_of(l->structures), std::vector<std::string>{"a"});
    const auto* s = listed(all, stale_name.str());
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->status, shmds::segment_status::stale);
    EXPECT_EQ(s->attachers, 0u);
    EXPECT_EQ(s->creator_pid, dead_creator);
    EXPECT_EQ(names_of(s->structures), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(listed(all, foreign_name.str()), nullptr) << "only shmds segments are listed";
    EXPECT_TRUE(shm_name_exists(stale_name.str())) << "listing must not reclaim";
    EXPECT_EQ(live.attach_count(), 1u) << "listing a live segment must not stay attached";

    EXPECT_FALSE(shmds::remove_if_stale(live_name.str()));
    EXPECT_FALSE(shmds::remove_if_stale(foreign_name.str()));
    EXPECT_TRUE(shmds::remove_if_stale(stale_name.str()));
    EXPECT_FALSE(shm_name_exists(stale_name.str()));
    EXPECT_TRUE(shm_name_exists(live_name.str()));
    EXPECT_TRUE(shm_name_exists(foreign_name.str()));
    EXPECT_EQ(a[0], 0);
    shmds::posix_shm::remove(foreign_name.str());
}

TEST(Stale, AnUnfinishedSegmentIsRemovedOnlyOnceItIsOldEnough) {
    unique_segment_name name;
    {
        const int fd = ::shm_open(name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        ASSERT_GE(fd, 0);
        shmds::detail::segment_header header{};
        header.identity.magic = shmds::detail::segment_magic;
        header.identity.state = shmds::detail::state_initialising;
        ASSERT_EQ(::write(fd, &header, sizeof header), static_cast<ssize_t>(sizeof header));
        ::close(fd);
    }
    const auto all = shmds::list_segments();
    const auto* u = listed(all, name.str());
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->status, shmds::segment_status::unfinished);
    EXPECT_FALSE(shmds::remove_if_stale(name.str())) << "its creator may still be starting";
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_TRUE(shmds::remove_if_stale(name.str(), std::chrono::seconds(0)));
    EXPECT_FALSE(shm_name_exists(name.str()));
}

// A zeroed object of a header's size looks like a creator that died before
// writing anything, but nothing in it says shmds: removing stale segments by
// name leaves it, however old it is (an opener that waited may still reclaim it).
TEST(Stale, AnObjectWithoutTheMagicIsNeverRemovedAsStale) {
    unique_segment_name name;
    const int fd = ::shm_open(name.str().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, sizeof(shmds::detail::segment_header)), 0);
    ::close(fd);
    EXPECT_FALSE(shmds::remove_if_stale(name.str(), std::chrono::seconds(0)));
    EXPECT_TRUE(shm_name_exists(name.str())) << "an object nothing identifies as a segment was removed";
}

// With its standard input closed, a process's next file is descriptor 0:
// a segment opened, made or listed there is a segment like any other.
TEST(Stale, AProcessWhoseStandardInputIsClosedListsOpensAndMakesSegments) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    shmds::shm_array<int> a(live, "a", 4);
    a[3] = 7;
    unique_segment_name made_name;
    EXPECT_EQ(wait_child(spawn([&] {
                  ::close(STDIN_FILENO);
                  const auto all = shmds::list_segments();  // opens each file as descriptor 0
                  const auto* l = listed(all, live_name.str());
                  CHILD_CHECK(l != nullptr);
                  CHILD_CHECK(l->status == shmds::segment_status::live);
                  CHILD_CHECK(names_of(l->structures) == std::vector<std::string>{"a"});
                  CHILD_CHECK(::fcntl(STDIN_FILENO, F_GETFD) == -1 && errno == EBADF);  // nothing left open
                  {
                      shmds::posix_shm again(live_name.str());  // its descriptor is 0
                      shmds::shm_array<int> b(again, "a");
                      CHILD_CHECK(b[3] == 7);
                      b[3] = 8;
                  }
                  {
                      shmds::posix_shm made(made_name.str(), 1 << 16);
                      CHILD_CHECK(made.created());
                      CHILD_CHECK(made.attach_count() == 1);
                      shmds::shm_array<int> c(made, "c", 2);
                  }
                  CHILD_CHECK(!shm_name_exists(made_name.str()));  // its last detach removed it
              })),
              child_ok);
    EXPECT_EQ(a[3], 8);
    EXPECT_EQ(live.attach_count(), 1u);
}

TEST(Stale, InspectListsAndRemovesStaleSegmentsByName) {
    unique_segment_name live_name;
    shmds::posix_shm live(live_name, 1 << 16);
    unique_segment_name stale_name;
    make_stale_segment(stale_name, {"orders"});

    auto report = run_program(SHMDS_INSPECT, {"--list"});
    EXPECT_EQ(report.status, 0) << report.output;
    const auto line_of = [&](const std::string& name) {
        const auto at = report.output.find(name + " ");
        return at == std::string::npos ? std::string()
                                       : report.output.substr(at, report.output.find('\n', at) - at);
    };
    EXPECT_NE(line_of(stale_name.str()).find("stale"), std::string::npos) << report.output;
    EXPECT_NE(line_of(stale_name.str()).find("orders (shm_array<int>)"), std::string::npos) << report.output;
    EXPECT_NE(line_of(live_name.str()).find("live"), std::string::npos) << report.output;

    // Named, so that other tests' stale segments are left alone.
    report = run_program(SHMDS_INSPECT, {"--remove-stale", stale_name.str(), live_name.str()});
    EXPECT_EQ(report.status, 1) << "the live one was named but kept\n" << report.output;
    EXPECT_NE(report.output.find("removed " + stale_name.str()), std::string::npos) << report.output;
    EXPECT_NE(report.output.find("kept " + live_name.str()), std::string::npos) << report.output;
    EXPECT_FALSE(shm_name_exists(stale_name.str()));
    EXPECT_TRUE(shm_name_exists(live_name.str()));
}

}  // namespace
