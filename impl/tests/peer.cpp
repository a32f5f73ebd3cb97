// A separate program that attaches to a segment by name, for tests that need
// a process with its own address space layout (exec, not fork).
//
//   shmds_test_peer sum-array  SEGMENT NAME      prints "<sum> <size>" of shm_array<int64_t>
//   shmds_test_peer push-queue SEGMENT NAME N    pushes 0..N-1 into shm_queue<int64_t>
//   shmds_test_peer pop-all    SEGMENT NAME      pops shm_queue<int64_t> dry, prints "<count> <sum>"
//   shmds_test_peer hold       SEGMENT           attaches, prints "attached", waits for EOF on stdin
//   shmds_test_peer count      SEGMENT           attaches, prints attach_count()
//   shmds_test_peer send-messages    SEGMENT NAME N SEED  sends N messages (message_pattern.hpp)
//   shmds_test_peer receive-messages SEGMENT NAME N SEED  receives and checks them (exit 6: one was wrong)
//   shmds_test_peer echo-mpmc  SEGMENT IN OUT N  N times: pops an element of shm_mpmc_queue<uint64_t> IN
//                                                (sleeping) and pushes it + 1 into OUT
//
// Exit status: 0 success, 2 usage, 3 shmds::error, 4 other failure, 5 a
// wake-up that only the safety net delivered (echo-mpmc), 6 a message not as
// sent (receive-messages).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <unistd.h>

#include <shmds/shmds.hpp>

#include "message_pattern.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s COMMAND SEGMENT [ARGS]\n", argv[0]);
        return 2;
    }
    const std::string command = argv[1];
    try {
        shmds::posix_shm segment(argv[2]);
        if (command == "sum-array" && argc == 4) {
            shmds::shm_array<std::int64_t> array(segment, argv[3]);
            std::int64_t sum = 0;
            for (std::int64_t v : array) sum += v;
            std::printf("%lld %zu\n", static_cast<long long>(sum), array.size());
        } else if (command == "push-queue" && argc == 5) {
            shmds::shm_queue<std::int64_t> queue(segment, argv[3]);
            const long long n = std::strtoll(argv[4], nullptr, 10);
            for (long long i = 0; i < n; ++i) queue.push(i);
        } else if (command == "pop-all" && argc == 4) {
            shmds::shm_queue<std::int64_t> queue(segment, argv[3]);
            long long count = 0;
            long long sum = 0;
            while (auto v = queue.try_pop()) {
                ++count;
                sum += *v;
            }
            std::printf("%lld %lld\n", count, sum);
        } else if (command == "echo-mpmc" && argc == 6) {
            const shmds::wait_options asleep{.strategy = shmds::wait_strategy::sleep,
                                             .recheck_after = std::chrono::seconds(600)};
            shmds::shm_mpmc_queue<std::uint64_t> in(shmds::open_only, segment, argv[3], asleep);
            shmds::shm_mpmc_queue<std::uint64_t> out(shmds::open_only, segment, argv[4], asleep);
            const unsigned long long n = std::strtoull(argv[5], nullptr, 10);
            for (unsigned long long i = 0; i < n; ++i) out.push(in.pop() + 1);
            if (shmds::detail::recovered_lost_wakeups.load() != 0) return 5;
        } else if ((command == "send-messages" || command == "receive-messages") && argc == 6) {
            // N messages of shmds_test::message_of(SEED, i, its largest), sent
            // or received and checked one by one (exit 6 at the first wrong one).
            shmds::shm_message_queue queue(shmds::open_only, segment, argv[3]);
            const unsigned long long n = std::strtoull(argv[4], nullptr, 10);
            const unsigned long long seed = std::strtoull(argv[5], nullptr, 10);
            std::vector<std::byte> buffer(queue.max_message_size());
            for (unsigned long long i = 0; i < n; ++i) {
                const std::vector<std::byte> m = shmds_test::message_of(seed, i, queue.max_message_size());
                if (command == "send-messages") {
                    if (i % 2 == 0) {
                        queue.send(m);
                    } else {  // every other one written in place
                        auto loan = queue.reserve(m.size());
                        std::copy(m.begin(), m.end(), loan.data());
                        loan.commit();
                    }
                } else if (i % 2 == 0) {
                    const std::size_t length = queue.receive(buffer);
                    if (length != m.size() || !std::equal(m.begin(), m.end(), buffer.begin())) return 6;
                } else {  // every other one read in place
                    auto loan = queue.peek();
                    if (loan.size() != m.size() || !std::equal(m.begin(), m.end(), loan.data())) return 6;
                    loan.release();
                }
            }
        } else if (command == "count" && argc == 3) {
            std::printf("%zu\n", segment.attach_count());
        } else if (command == "hold" && argc == 3) {
            std::printf("attached\n");
            std::fflush(stdout);
            char buffer[64];
            while (::read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
            }
        } else {
            std::fprintf(stderr, "unknown command or wrong arguments: %s\n", command.c_str());
            return 2;
        }
    } catch (const shmds::error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 3;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 4;
    }
    return 0;
}
