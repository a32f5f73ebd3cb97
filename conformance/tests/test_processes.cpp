// Across processes, for any implementation of the contract: actors are
// separate programs started with exec (conformance/tests/actor.cpp), so they
// map each segment at addresses of their own, and an implementation that
// stores absolute pointers in shared memory is caught. Every test cites the
// requirement IDs it checks.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

namespace {

using impl = SHMCONF_ADAPTER;

#define REQUIRES(ids) ::testing::Test::RecordProperty("requirements", ids)
#define UNSUPPORTED_UNLESS(claimed, what)                                                      \
    do {                                                                                       \
        if (!(claimed)) {                                                                      \
            ::testing::Test::RecordProperty("outcome", std::string("UNSUPPORTED: ") + (what)); \
            GTEST_SKIP() << "UNSUPPORTED: " << (what);                                         \
        }                                                                                      \
    } while (0)

class fresh_segment {
public:
    fresh_segment() : name_("/shmconf-p-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++)) {
        impl::remove(name_);
    }
    ~fresh_segment() { impl::remove(name_); }
    const std::string& name() const { return name_; }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }
    std::string name_;
};

/// An actor program running in its own process; its stdout is read back.
class actor {
public:
    explicit actor(std::vector<std::string> args) {
        int out[2];
        if (::pipe(out) != 0) throw std::runtime_error("pipe");
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            ::close(out[0]);
            ::close(out[1]);
            std::vector<char*> argv{const_cast<char*>(SHMCONF_ACTOR_PATH)};
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(SHMCONF_ACTOR_PATH, argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        out_ = ::fdopen(out[0], "r");
    }
    ~actor() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            (void)wait();
        }
        if (out_) std::fclose(out_);
    }
    actor(const actor&) = delete;
    actor& operator=(const actor&) = delete;

    /// The next line of its output, or "" at the end.
    std::string line() {
        char buffer[256];
        if (!std::fgets(buffer, sizeof buffer, out_)) return "";
        std::string s(buffer);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        return s;
    }
    std::vector<std::string> lines() {
        std::vector<std::string> all;
        for (std::string s = line(); !s.empty(); s = line()) all.push_back(s);
        return all;
    }
    /// Its exit status (-signal when a signal ended it).
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    void kill() { ::kill(pid_, SIGKILL); }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    std::FILE* out_ = nullptr;
};

TEST(AddressIndependence, AnExecedProgramReadsAndWritesByName) {
    REQUIRES("ADDR-001 ARR-001 TBL-001");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto seg = impl::create(name.name(), 1 << 20);
    using A = impl::array<std::uint64_t>;
    A a = impl::make<A>(seg, "a", 64);
    for (std::size_t i = 0; i < 64; ++i) a[i] = i + 1000;
    actor reader({name.name(), "read-array", "a", "64"});
    const auto seen = reader.lines();
    ASSERT_EQ(reader.wait(), 0);
    ASSERT_EQ(seen.size(), 64u);
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(seen[i], std::to_string(i + 1000)) << i;
    actor writer({name.name(), "write-array", "a", "64", "7"});
    ASSERT_EQ(writer.wait(), 0);
    for (std::size_t i = 0; i < 64; ++i) EXPECT_EQ(a[i], i * 7) << i;
}

TEST(AddressIndependence, TwoMappingsInOneProcessAgree) {
    REQUIRES("ADDR-002");
    UNSUPPORTED_UNLESS(impl::caps.array, "arrays are not claimed");
    fresh_segment name;
    auto first = impl::create(name.name(), 1 << 20);
    auto second = impl::open(name.name());
    using A = impl::array<std::uint64_t>;
    A through_first = impl::make<A>(first, "a", 16);
    A through_second = impl::find<A>(second, "a");
    through_first[3] = 33;
    EXPECT_EQ(through_second[3], 33u);
    through_second[4] = 44;
    EXPECT_EQ(through_first[4], 44u);
}

/// Producers and consumers, each an execed program: every element once, in
/// each producer's order (for FIFO structures).
void run_producers_and_consumers(const char* kind, bool fifo, int producers, int consumers) {
    fresh_segment name;
    auto seg = impl::create(name.name(), 4 << 20);
    constexpr std::uint64_t per_producer = 20'000;
    const std::uint64_t total = per_producer * static_cast<std::uint64_t>(producers);
    if (std::string(kind) == "spsc_queue")
        (void)impl::make<impl::spsc_queue<std::uint64_t>>(seg, "q", 256);
    else if (std::string(kind) == "mpmc_queue")
        (void)impl::make<impl::mpmc_queue<std::uint64_t>>(seg, "q", 256);
    else
        (void)impl::make<impl::concurrent_stack<std::uint64_t>>(seg, "q", 256);
    std::vector<std::unique_ptr<actor>> consumer_actors, producer_actors;
    const std::uint64_t share = total / static_cast<std::uint64_t>(consumers);
    for (int c = 0; c < consumers; ++c)
        consumer_actors.push_back(std::make_unique<actor>(std::vector<std::string>{
            name.name(), "consume", kind, "q",
            std::to_string(c + 1 == consumers ? total - share * (consumers - 1) : share)}));
    for (int p = 0; p < producers; ++p)
        producer_actors.push_back(std::make_unique<actor>(std::vector<std::string>{
            name.name(), "produce", kind, "q", std::to_string(p), std::to_string(per_producer)}));
    std::map<std::uint64_t, std::uint64_t> seen;  // element -> times
    std::uint64_t out_of_order = 0;
    for (auto& c : consumer_actors) {
        std::map<std::uint64_t, std::int64_t> last;  // producer -> last sequence, per consumer
        for (const std::string& l : c->lines()) {
            const std::uint64_t v = std::stoull(l);
            ++seen[v];
            const std::uint64_t producer = v >> 32, sequence = v & 0xffffffffu;
            if (fifo && last.count(producer) && static_cast<std::int64_t>(sequence) <= last[producer])
                ++out_of_order;
            last[producer] = static_cast<std::int64_t>(sequence);
        }
        EXPECT_EQ(c->wait(), 0);
    }
    for (auto& p : producer_actors) EXPECT_EQ(p->wait(), 0);
    std::uint64_t duplicates = 0, missing = 0;
    for (int p = 0; p < producers; ++p)
        for (std::uint64_t i = 0; i < per_producer; ++i) {
            const auto it = seen.find((std::uint64_t(p) << 32) | i);
            if (it == seen.end())
                ++missing;
            else if (it->second > 1)
                duplicates += it->second - 1;
        }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicates, 0u);
    EXPECT_EQ(out_of_order, 0u);
}

TEST(Processes, SpscQueueAcrossProgramsLosesNothing) {
    REQUIRES("Q-005 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.spsc_queue, "SPSC queues are not claimed");
    run_producers_and_consumers("spsc_queue", true, 1, 1);
}

TEST(Processes, MpmcQueueTwoByTwoAcrossProgramsLosesNothingAndKeepsOrder) {
    REQUIRES("Q-005 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.mpmc_queue, "MPMC queues are not claimed");
    run_producers_and_consumers("mpmc_queue", true, 2, 2);
}

TEST(Processes, ConcurrentStackTwoByTwoAcrossProgramsLosesNothing) {
    REQUIRES("STK-003 ADDR-001");
    UNSUPPORTED_UNLESS(impl::caps.concurrent_stack, "concurrent stacks are not claimed");
    run_producers_and_consumers("concurrent_stack", false, 2, 2);
}

TEST(Cleanup, AKilledAttacherDoesNotKeepTheSegmentAlive) {
    REQUIRES("REF-004");
    UNSUPPORTED_UNLESS(impl::caps.cleans_up_after_crashed_attachers,
                       "cleanup after crashed attachers is not claimed");
    fresh_segment name;
    {
        auto seg = impl::create(name.name(), 1 << 20);
        actor attached({name.name(), "attach-and-wait"});
        ASSERT_EQ(attached.line(), "attached");
        EXPECT_EQ(impl::attach_count(seg), 2u);
        attached.kill();
        EXPECT_EQ(attached.wait(), -SIGKILL);
        EXPECT_EQ(impl::attach_count(seg), 1u) << "the dead process still counts";
    }
    EXPECT_FALSE(impl::exists(name.name())) << "the last live detach did not remove the name";
}

}  // namespace
