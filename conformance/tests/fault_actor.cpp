// The conformance suite's fault actor: operations in a loop, to be killed at
// random moments by the fault tests. (Being written.)
#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

int main() { return 0; }
