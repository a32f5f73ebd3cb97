// ELEM-001, built by run.py rather than run: an array of a type that is not
// trivially copyable must not compile. shmconf_add_implementation builds the
// same file with SHMCONF_PROBE_ELEMENT=int as part of the build (the control:
// it proves the probe itself is sound), and leaves the std::string build out of
// `all`; run.py builds that target and expects a compile error.
#include <string>

#include "shmconf/contract.hpp"
#include SHMCONF_ADAPTER_HEADER

using impl = SHMCONF_ADAPTER;

void make_an_array_of(impl::segment& segment) {
    (void)impl::make<impl::array<SHMCONF_PROBE_ELEMENT>>(segment, "probe", 4);
}
