// posix_shm in one process: modes, options, sizes, header validation and
// cleanup on the last detach.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <shmds/shmds.hpp>

#include "support.hpp"

namespace {

using shmds::errc;
using shmds_test::shm_name_exists;
using shmds_test::unique_segment_name;

template <class Error>
errc code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    ADD_FAILURE() << "no exception";
    return errc{};
}

TEST(Segment, CreateThenOpenSeesSameSegment) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20);
    EXPECT_TRUE(seg.created());
    EXPECT_EQ(seg.name(), name.str());
    EXPECT_EQ(seg.size(), 1u << 20);
    shmds::posix_shm same(name);
    EXPECT_FALSE(same.created());
    EXPECT_EQ(same.segment_id(), seg.segment_id());
    EXPECT_EQ(same.size(), seg.size());
    EXPECT_EQ(seg.attach_count(), 2u);
    shmds::posix_shm again(name, 1 << 20);  // open-or-create of an existing one opens it
    EXPECT_FALSE(again.created());
    EXPECT_EQ(seg.attach_count(), 3u);
}

TEST(Segment, LastDetachRemovesTheName) {
    unique_segment_name name;
    std::optional<shmds::posix_shm> first(std::in_place, name.str(), 1 << 16);
    std::optional<shmds::posix_shm> second(std::in_place, name.str());
    first.reset();
    EXPECT_TRUE(shm_name_exists(name.str()));
    EXPECT_EQ(second->attach_count(), 1u);
    second.reset();
    EXPECT_FALSE(shm_name_exists(name.str()));
    EXPECT_THROW(shmds::posix_shm{name}, shmds::not_found_error);
}

TEST(Segment, MoveKeepsOneAttachment) {
    unique_segment_name name;
    shmds::posix_shm a(name, 1 << 16);
    shmds::posix_shm b(std::move(a));
    EXPECT_EQ(b.attach_count(), 1u);
    shmds::posix_shm c(name);
    c = std::move(b);  // c's own attachment detaches; b's moves in
    EXPECT_EQ(c.attach_count(), 1u);
    EXPECT_TRUE(shm_name_exists(name.str()));
}

TEST(Segment, MemoryIsReservedAtCreation) {
    // Reserved pages, not just a file size: a later write cannot meet a full
    // /dev/shm (SIGBUS). Checked by the blocks the file system allocated.
    unique_segment_name name;
    shmds::posix_shm seg(name, 8 << 20);
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm" + name.str()).c_str(), &st), 0);
    EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, 8u << 20);
}

TEST(Segment, OpenModes) {
    unique_segment_name name;
    EXPECT_EQ(code_of<shmds::not_found_error>([&] { shmds::posix_shm s(shmds::open_only, name); }),
              errc::not_found);
    shmds::posix_shm created(shmds::create_only, name, 1 << 16);
    EXPECT_TRUE(created.created());
    EXPECT_EQ(
        code_of<shmds::already_exists_error>([&] { shmds::posix_shm s(shmds::create_only, name, 1 << 16); }),
        errc::already_exists);
    shmds::posix_shm opened(shmds::open_or_create, name, 1 << 16);
    EXPECT_FALSE(opened.created());
}

TEST(Segment, OpenOrCreateRefusesASmallerExistingSegment) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16);
    try {
        shmds::posix_shm bigger(name, 1 << 20);
        FAIL() << "opened a 64 KiB segment as 1 MiB";
    } catch (const shmds::mismatch_error& e) {
        EXPECT_EQ(e.code(), errc::size_mismatch);
        std::string what = e.what();
        EXPECT_NE(what.find("65536"), std::string::npos) << what;
        EXPECT_NE(what.find("1048576"), std::string::npos) << what;
    }
    shmds::posix_shm smaller(name, 1 << 12 << 2);  // asking for less is fine
    EXPECT_EQ(smaller.size(), 1u << 16);
}

// Every block's size and offset goes through these: an already aligned value
// stays as it is (no byte is wasted), anything else goes up to the next
// multiple, and an overflow is reported rather than wrapped.
TEST(LayoutArithmetic, AlignUpKeepsAlignedValuesAndRoundsTheRestUp) {
    using shmds::detail::align_up;
    using shmds::detail::checked_align_up;
    for (std::size_t align : {std::size_t{1}, std::size_t{8}, std::size_t{64}, std::size_t{4096}}) {
        EXPECT_EQ(align_up(0, align), 0u);
        EXPECT_EQ(align_up(align, align), align);
        EXPECT_EQ(align_up(3 * align, align), 3 * align);
        EXPECT_EQ(align_up(align + 1, align), align == 1 ? 2u : 2 * align);
        EXPECT_EQ(checked_align_up(0, align), std::optional<std::size_t>{0});
        EXPECT_EQ(checked_align_up(align, align), std::optional<std::size_t>{align});
        EXPECT_EQ(checked_align_up(align + 1, align), std::optional<std::size_t>{align == 1 ? 2u : 2 * align});
    }
    EXPECT_EQ(checked_align_up(SIZE_MAX - 63, 64), std::optional<std::size_t>{SIZE_MAX - 63});
    EXPECT_EQ(checked_align_up(SIZE_MAX - 62, 64), std::nullopt);
    EXPECT_FALSE(shmds::detail::is_power_of_two(0));
    EXPECT_TRUE(shmds::detail::is_power_of_two(1));
    EXPECT_TRUE(shmds::detail::is_power_of_two(std::size_t{1} << 63));
    EXPECT_FALSE(shmds::detail::is_power_of_two(96));
    EXPECT_FALSE(shmds::detail::is_power_of_two(SIZE_MAX));
}

TEST(Segment, SizesOutOfRange) {
    unique_segment_name name;
    EXPECT_EQ(code_of<shmds::invalid_argument_error>([&] { shmds::posix_shm s(name, 0); }),
              errc::invalid_size);
    EXPECT_EQ(code_of<shmds::invalid_argument_error>([&] { shmds::posix_shm s(name, 100); }),
              errc::invalid_size);
    EXPECT_EQ(code_of<shmds::invalid_argument_error>([&] { shmds::posix_shm s(name, SIZE_MAX); }),
              errc::invalid_size);
    EXPECT_FALSE(shm_name_exists(name.str()));
    // A huge but representable size fails in the kernel, as a system error,
    // and leaves no name behind.
    EXPECT_THROW(shmds::posix_shm(name, std::size_t{1} << 60), std::system_error);
    EXPECT_FALSE(shm_name_exists(name.str()));
}

TEST(Segment, OptionsOutOfRange) {
    unique_segment_name name;
    auto invalid = [&](shmds::segment_options o) {
        return code_of<shmds::invalid_argument_error>([&] { shmds::posix_shm s(name, 1 << 20, o); });
    };
    EXPECT_EQ(invalid({.alignment = 0}), errc::invalid_argument);
    EXPECT_EQ(invalid({.alignment = 32}), errc::invalid_argument);
    EXPECT_EQ(invalid({.alignment = 96}), errc::invalid_argument);
    EXPECT_EQ(invalid({.alignment = 8192}), errc::invalid_argument);
    EXPECT_EQ(invalid({.table_capacity = 0}), errc::invalid_argument);
    EXPECT_EQ(invalid({.table_capacity = shmds::max_table_capacity + 1}), errc::invalid_argument);
    EXPECT_EQ(invalid({.mode = 01777}), errc::invalid_argument);
    // Every handle opens the segment for reading and writing, the creator's
    // too (it maps it through a second description): the owner needs both.
    EXPECT_EQ(invalid({.mode = 0400}), errc::invalid_argument);
    EXPECT_EQ(invalid({.mode = 0200}), errc::invalid_argument);
    EXPECT_EQ(invalid({.mode = 0066}), errc::invalid_argument);
    EXPECT_EQ(invalid({.timeout = std::chrono::milliseconds(-1)}), errc::invalid_argument);
    EXPECT_FALSE(shm_name_exists(name.str()));
}

TEST(Segment, DefaultModeIs0600AndModeIsApplied) {
    mode_t old_umask = ::umask(077);
    unique_segment_name a;
    unique_segment_name b;
    {
        shmds::posix_shm private_seg(a, 1 << 16);
        EXPECT_EQ(shmds_test::shm_mode(a.str()), 0600u);
        shmds::posix_shm shared_seg(b, 1 << 16, {.mode = 0640});
        EXPECT_EQ(shmds_test::shm_mode(b.str()), 0640u) << "the umask must not reduce the requested mode";
    }
    ::umask(old_umask);
}

/// The untrusted_error message of opening `name` with `options`, or "" if it opened.
std::string untrusted_message(const unique_segment_name& name, const shmds::segment_options& options) {
    try {
        shmds::posix_shm opened(shmds::open_only, name, options);
        return "";
    } catch (const shmds::untrusted_error& e) {
        EXPECT_EQ(e.code(), errc::untrusted);
        return e.what();
    }
}

TEST(Segment, ASegmentOthersCanWriteIsRefusedUnlessTheModeAcceptsIt) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16, {.mode = 0666});
    shmds::shm_array<int> stored(seg, "stored", 4);
    stored[0] = 42;

    const std::string refused = untrusted_message(name, {});
    EXPECT_NE(refused.find(name.str()), std::string::npos) << refused;
    EXPECT_NE(refused.find("mode 0666"), std::string::npos) << refused;
    EXPECT_NE(refused.find("its group and others"), std::string::npos) << refused;
    EXPECT_NE(refused.find("0600 was asked for"), std::string::npos) << refused;
    EXPECT_NE(untrusted_message(name, {.mode = 0660}).find("lets others write"), std::string::npos);
    EXPECT_EQ(untrusted_message(name, {.mode = 0666}), "");
    EXPECT_EQ(untrusted_message(name, {.mode = 0622}), "") << "read bits are not what is checked";

    ASSERT_EQ(::chmod(("/dev/shm" + name.str()).c_str(), 0620), 0);
    EXPECT_NE(untrusted_message(name, {}).find("lets its group write"), std::string::npos);
    EXPECT_EQ(untrusted_message(name, {.mode = 0660}), "");
    ASSERT_EQ(::chmod(("/dev/shm" + name.str()).c_str(), 0644), 0);
    EXPECT_EQ(untrusted_message(name, {}), "") << "others may read: only writers are distrusted";

    // A refusal touches nothing.
    EXPECT_EQ(seg.attach_count(), 1u);
    EXPECT_EQ(stored[0], 42);
}

TEST(Segment, RemoveAndExistsNeverThrow) {
    unique_segment_name name;
    EXPECT_FALSE(shmds::posix_shm::exists(name));
    EXPECT_FALSE(shmds::posix_shm::remove(name));
    EXPECT_FALSE(shmds::posix_shm::remove("not valid"));
    shmds::posix_shm seg(name, 1 << 16);
    EXPECT_TRUE(shmds::posix_shm::exists(name));
    EXPECT_TRUE(shmds::posix_shm::remove(name));
    EXPECT_FALSE(shm_name_exists(name.str()));
    // A new segment may take the name; the old handle's detach must not
    // remove the newcomer.
    shmds::posix_shm newcomer(name, 1 << 16);
    EXPECT_NE(newcomer.segment_id(), seg.segment_id());
    { shmds::posix_shm moved = std::move(seg); }
    EXPECT_TRUE(shm_name_exists(name.str()));
}

TEST(Segment, AlignmentOption128PlacesStructuresOn128ByteBoundaries) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 20, {.alignment = 128});
    EXPECT_EQ(seg.alignment(), 128u);
    shmds::shm_array<char> a(seg, "a", 1);
    shmds::shm_array<char> b(seg, "b", 1);
    shmds::shm_queue<char> q(seg, "q", 1);
    for (const auto& info : seg.table().list()) {
        EXPECT_EQ(info.offset % 128, 0u) << info.name;
        EXPECT_EQ(info.bytes % 128, 0u) << info.name;
    }
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) - reinterpret_cast<std::uintptr_t>(a.data()), 128u);
}

TEST(Segment, TwoMappingsInOneProcessAgree) {
    // The same segment at two addresses: every reference inside it must be an
    // offset for the second mapping to see the first one's structures.
    unique_segment_name name;
    shmds::posix_shm first(name, 1 << 20);
    shmds::posix_shm second(name);
    ASSERT_NE(first.base(), second.base());
    shmds::shm_queue<long> q1(first, "q", 8);
    shmds::shm_queue<long> q2(second, "q");
    q1.push(41);
    q1.push(42);
    EXPECT_EQ(q2.pop(), 41);
    shmds::shm_array<long> a1(first, "a", 3);
    a1[2] = 7;
    shmds::shm_array<long> a2(second, "a");
    EXPECT_EQ(a2[2], 7);
    EXPECT_NE(static_cast<void*>(a1.data()), static_cast<void*>(a2.data()));
}

// ---- header validation --------------------------------------------------------------

class CorruptHeader : public ::testing::Test {
protected:
    void SetUp() override {
        owner_.emplace(name_, 1 << 20);
        header_ = static_cast<shmds::detail::segment_header*>(owner_->base());
        saved_ = *reinterpret_cast<Saved*>(header_);
    }
    void TearDown() override { *reinterpret_cast<Saved*>(header_) = saved_; }

    std::string open_error() {
        try {
            shmds::posix_shm other(name_, {.timeout = std::chrono::milliseconds(200)});
        } catch (const shmds::corrupted_error& e) {
            return e.what();
        }
        ADD_FAILURE() << "a damaged header was accepted";
        return {};
    }

    struct Saved {
        unsigned char bytes[128];
    };
    unique_segment_name name_;
    std::optional<shmds::posix_shm> owner_;
    shmds::detail::segment_header* header_ = nullptr;
    Saved saved_{};
};

TEST_F(CorruptHeader, WrongMagic) {
    header_->identity.magic ^= 1;
    EXPECT_NE(open_error().find("magic"), std::string::npos);
}

TEST_F(CorruptHeader, WrongVersion) {
    header_->identity.version = shmds::format_version + 1;
    EXPECT_NE(open_error().find("version"), std::string::npos);
}

TEST_F(CorruptHeader, WrongTotalSize) {
    header_->identity.total_size = 1 << 30;
    EXPECT_NE(open_error().find("bytes"), std::string::npos);
}

TEST_F(CorruptHeader, WrongOffsets) {
    header_->identity.heap_offset = 4;
    EXPECT_NE(open_error().find("offsets"), std::string::npos);
}

TEST_F(CorruptHeader, WrongGeometry) {
    header_->identity.table_capacity = 0;
    EXPECT_NE(open_error().find("geometry"), std::string::npos);
}

TEST_F(CorruptHeader, InvalidStateWord) {
    shmds::detail::state_word(*header_).store(0x5a5a5a5a);
    EXPECT_NE(open_error().find("state"), std::string::npos);
}

TEST_F(CorruptHeader, TruncatedFile) {
    int fd = ::shm_open(name_.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    // Shrink the file below its header's size (only the tail page; the
    // owner's mapping of the header stays valid).
    ASSERT_EQ(::ftruncate(fd, (1 << 20) - 4096), 0);
    ::close(fd);
    EXPECT_NE(open_error().find("bytes"), std::string::npos);
}

TEST(Segment, NotASegmentAtAll) {
    unique_segment_name name;
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    std::string junk(8192, 'j');
    ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    // Someone holds it, so it is not stale: the opener must say "corrupted".
    ASSERT_EQ(::flock(fd, LOCK_SH), 0);
    EXPECT_THROW(shmds::posix_shm(name, {.timeout = std::chrono::milliseconds(100)}), shmds::corrupted_error);
    ::close(fd);
}

// A segment's file grown past the address space (by another process's
// ftruncate) cannot be mapped: opening it is an error that names the
// segment, not a read through a failed mapping, and what it held is kept.
TEST(Segment, AFileLargerThanTheAddressSpaceIsRefusedClearly) {
    unique_segment_name name;
    shmds::posix_shm owner(name, 1 << 20);
    shmds::shm_array<int> a(owner, "a", 4);
    a[3] = 42;
    const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    // 1 PiB: user space is 128 TiB (without an address hint, also with 5-level paging).
    ASSERT_EQ(::ftruncate(fd, off_t{1} << 50), 0) << std::strerror(errno);
    EXPECT_EQ(shmds_test::wait_child(shmds_test::spawn([&] {
                  bool refused_naming_it = false;
                  try {
                      shmds::posix_shm other(name, {.timeout = std::chrono::milliseconds(200)});
                  } catch (const std::exception& e) {
                      refused_naming_it = std::string(e.what()).find(name.str()) != std::string::npos;
                  }
                  CHILD_CHECK(refused_naming_it);
              })),
              shmds_test::child_ok);
    ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
    ::close(fd);
    shmds::posix_shm again(name);
    EXPECT_EQ(shmds::shm_array<int>(again, "a")[3], 42);
}

/// Writes a file of `bytes` bytes named like a segment, with `state` in the
/// state word and `magic` in the magic field, and holds no lock on it.
void write_foreign_file(const std::string& name, std::uint64_t magic, std::uint32_t state) {
    int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    std::string bytes(8192, 'f');
    std::memcpy(bytes.data(), &magic, sizeof magic);
    std::memcpy(bytes.data() + 8, &state, sizeof state);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

TEST(Segment, AnUnlockedForeignFileIsNeverTakenForStale) {
    // Nobody holds these files, but they are not shmds segments: opening
    // them must be an error, and they must survive it.
    const shmds::segment_options quick{.timeout = std::chrono::milliseconds(100)};
    unique_segment_name looks_ready;
    write_foreign_file(looks_ready.str(), 0x1234, shmds::detail::state_ready);
    EXPECT_THROW(shmds::posix_shm(looks_ready, quick), shmds::corrupted_error);
    EXPECT_TRUE(shm_name_exists(looks_ready.str()));

    unique_segment_name looks_unfinished;
    write_foreign_file(looks_unfinished.str(), 0x1234, shmds::detail::state_uninitialised);
    EXPECT_THROW(shmds::posix_shm(looks_unfinished, quick), shmds::corrupted_error);
    EXPECT_TRUE(shm_name_exists(looks_unfinished.str()));
}

TEST(Segment, AnUnboundedTimeoutIsAccepted) {
    unique_segment_name name;
    shmds::posix_shm seg(name, 1 << 16, {.timeout = std::chrono::milliseconds::max()});
    shmds::shm_array<int> a(seg, "a", 1);  // the table lock honours it too
    EXPECT_TRUE(a.created());
}

TEST(Segment, AttachCountFollowsHandles) {
    unique_segment_name name;
    shmds::posix_shm a(name, 1 << 16);
    EXPECT_EQ(a.attach_count(), 1u);
    {
        shmds::posix_shm b(name);
        shmds::posix_shm c(name);
        EXPECT_EQ(a.attach_count(), 3u);
    }
    EXPECT_EQ(a.attach_count(), 1u);
}

}  // namespace
