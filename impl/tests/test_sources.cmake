# The library's test programs and their sources (relative to impl/tests), in
# one place: impl/tests/CMakeLists.txt builds them against the library, and
# the mutation workbench (conformance/mutants/CMakeLists.txt) builds the same
# programs against a mutated copy of it, so a test file added here is one that
# `mutate.py run --library` runs too.
set(shmds_unit_test_sources
    test_names.cpp test_segment.cpp test_table.cpp test_table_damage.cpp test_structures.cpp)
set(shmds_process_test_sources
    test_processes.cpp test_processes_cleanup.cpp test_processes_stale.cpp
    test_concurrent.cpp test_concurrent_delivery.cpp test_concurrent_roles.cpp test_loans.cpp
    test_message_queue.cpp)
set(shmds_fault_test_sources
    test_faults.cpp test_structure_faults_killed.cpp test_structure_faults_wakeups.cpp
    test_structure_faults_locks.cpp)
set(shmds_hostile_test_sources
    test_hostile.cpp test_too_many_open_files.cpp test_hostile_harness.cpp test_hostile_targets.cpp
    test_hostile_victims.cpp)
# x86-64 only, and always optimised (-O2): a process killed at every
# instruction under ptrace, where an optimising compiler may move stores.
set(shmds_crash_step_test_sources test_crash_every_instruction.cpp)
# Built with SHMDS_ATOMICS_MODEL naming this header (shmds/detail/atomics.hpp).
set(shmds_weak_memory_test_sources test_weak_memory.cpp)
set(shmds_weak_memory_model_header model/weak_memory.hpp)
