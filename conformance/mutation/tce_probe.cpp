// The probe `mutate.py tce` compiles against the unchanged headers and against
// a mutant, with each compiler and optimisation level it tries: one use of
// every public operation of every structure, so that every header line that
// can reach machine code does. Never run; only its object files are compared.
#include <chrono>
#include <cstdint>
#include <optional>

#include <shmds/shmds.hpp>

namespace probe {

struct element {
    std::uint64_t a;
    double b;
};

using namespace std::chrono_literals;

void segments_and_table(const char* name) {
    shmds::posix_shm created(name, 1 << 20);
    shmds::posix_shm opened{std::string(name)};
    (void)opened.attach_count();
    (void)shmds::posix_shm::exists(name);
    (void)created.table().list();
    (void)created.table().bytes_free();
    (void)created.table().find("a");
    shmds::shm_array<element> array(created, "array", 4);
    array[1] = {1, 2};
    (void)array.span();
    shmds::shm_queue<element> queue(created, "queue", 4);
    (void)queue.try_push({1, 2});
    (void)queue.try_pop();
    shmds::shm_stack<element> stack(created, "stack", 4);
    (void)stack.try_push({1, 2});
    (void)stack.try_pop();
    created.destroy("array");
    shmds::posix_shm::remove(name);
}

template <class Queue>
void blocking(Queue& q) {
    element e{1, 2};
    (void)q.try_push(e);
    (void)q.try_pop();
    q.push(e);
    (void)q.pop();
    (void)q.try_push_for(e, 1ms);
    (void)q.try_pop_for(1ms);
    (void)q.try_pop_for(e, 1ms);
    (void)q.empty();
    (void)q.full();
}

template <class Queue>
void batches(Queue& q) {
    element items[4]{};
    (void)q.try_push_n(items, 4);
    (void)q.try_pop_n(items, 4);
}

void process_safe(shmds::posix_shm& segment) {
    shmds::shm_spsc_queue<element> spsc(segment, "spsc", 8);
    blocking(spsc);
    batches(spsc);
    (void)spsc.size();
    shmds::shm_mpmc_queue<element> mpmc(segment, "mpmc", 8);
    blocking(mpmc);
    batches(mpmc);
    (void)mpmc.size_estimate();
    shmds::shm_concurrent_stack<element> stack(segment, "cstack", 8);
    blocking(stack);
    (void)stack.size();
    (void)stack.lock_recoveries();
}

}  // namespace probe

int main() {
    probe::segments_and_table("/shmds-tce-probe");
    shmds::posix_shm segment("/shmds-tce-probe-2", 1 << 20);
    probe::process_safe(segment);
}
