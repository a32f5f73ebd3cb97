// Uses the installed headers and target; exits 0 when a round trip works.
#include <string>

#include <unistd.h>

#include <shmds/shmds.hpp>

int main() {
    const std::string name = "/shmds-consumer-" + std::to_string(::getpid());
    shmds::posix_shm seg(name, 1 << 16);
    shmds::shm_queue<int> q(seg, "q", 4);
    q.push(42);
    return q.pop() == 42 ? 0 : 1;
}
