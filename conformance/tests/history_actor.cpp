// The conformance suite's history actor: records call and return times of
// its operations. (Being written.)
#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

int main() { return 0; }
