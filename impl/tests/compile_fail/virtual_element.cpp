// Must not compile: a vtable pointer is an address in one process.
#include <shmds/shmds.hpp>

struct Shape {
    virtual ~Shape() = default;
    int sides = 0;
};

void f(shmds::posix_shm& seg) {
    shmds::shm_stack<Shape> s(seg, "s", 4);
}
