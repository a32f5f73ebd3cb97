// Faults, for any implementation of the contract: processes killed in the
// middle of operations, a full /dev/shm, damaged and truncated segments.
// (Being written.)
#include <gtest/gtest.h>

#include "support.hpp"
