// Linearizability of recorded multi-process histories. (Being written.)
#include <gtest/gtest.h>

#include "support.hpp"
