// Must not compile: a pointer means nothing in another process's mapping.
#include <shmds/shmds.hpp>

void f(shmds::posix_shm& seg) {
    shmds::shm_queue<int*> q(seg, "q", 4);
}
