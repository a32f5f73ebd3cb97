// Must not compile: std::string owns heap memory of one process.
#include <string>

#include <shmds/shmds.hpp>

void f(shmds::posix_shm& seg) {
    shmds::shm_array<std::string> names(seg, "names", 4);
}
