// impl/tests/soak/ledger.cpp: mapping the ledger, its clock, and its problem
// log (see ledger.hpp for what the ledger owns and must never do).
#include "ledger.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <thread>

namespace soak {

std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
}

namespace {

/// Maps `bytes` of zeroed memory that every process forked later shares.
/// MAP_NORESERVE: the bitmaps are mostly address space that is never touched.
void* map_shared(std::size_t bytes) {
    void* p =
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "shmds-soak: cannot map %zu bytes of shared memory: %s\n", bytes,
                     std::strerror(errno));
        std::exit(2);
    }
    return p;
}

}  // namespace

shared_ledger shared_ledger::map() {
    shared_ledger mapped;
    mapped.book = new (map_shared(sizeof(ledger))) ledger();
    mapped.bitmaps = static_cast<std::atomic<std::uint64_t>*>(
        map_shared(structure_count * max_slots * bitmap_words_per_slot * sizeof(std::uint64_t)));
    return mapped;
}

void shared_ledger::problem(const char* format, ...) const {
    const std::uint32_t line = book->problems_logged.fetch_add(1);
    if (line >= problem_lines) return;
    va_list args;
    va_start(args, format);
    std::vsnprintf(book->problems[line], problem_length, format, args);
    va_end(args);
    // Release: the supervisor reads the line once it sees it ready.
    book->problem_ready[line].store(1, std::memory_order_release);
}

const char* shared_ledger::problem_line(std::uint32_t line) const {
    if (line >= problem_lines || book->problem_ready[line].load(std::memory_order_acquire) == 0)
        return nullptr;
    return book->problems[line];
}

}  // namespace soak
