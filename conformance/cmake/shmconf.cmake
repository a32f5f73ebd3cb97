# shmconf.cmake: the conformance suite's CMake entry point, for this
# repository and for outside implementations alike:
#   include(<shmds>/conformance/cmake/shmconf.cmake)   (GoogleTest found first)
#   shmconf_add_implementation(NAME ... ADAPTER_HEADER ... ADAPTER_TYPE ...)
include_guard(GLOBAL)
get_filename_component(SHMCONF_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

add_library(shmconf_contract INTERFACE)
add_library(shmconf::contract ALIAS shmconf_contract)
target_include_directories(shmconf_contract INTERFACE ${SHMCONF_DIR}/include)
target_compile_features(shmconf_contract INTERFACE cxx_std_20)

# Where each implementation's manifest goes: conformance/run.py reads them to
# find the suite's programs, expectations and (for mutants) patches.
set(SHMCONF_MANIFEST_DIR ${CMAKE_BINARY_DIR}/shmconf CACHE INTERNAL "")

# shmconf_sources_citing_the_rejecting_requirement(SOURCES_VAR PATCH): keeps in
# SOURCES_VAR only the test files that cite the requirement named by PATCH's
# "Rejected-by:" line. conformance/run.py runs a mutant's program only for
# the tests citing that requirement, so the rest need not be compiled: about
# a third of the tests' compile time per mutant instead of all of it (36
# mutants; 2026-12-08). Every file is kept when none cites it, so that run.py
# can say so.
function(shmconf_sources_citing_the_rejecting_requirement sources_var patch)
    file(STRINGS ${patch} rejected_by REGEX "^Rejected-by: " LIMIT_COUNT 1)
    string(REGEX REPLACE "^Rejected-by: *([A-Z0-9-]+).*" "\\1" requirement "${rejected_by}")
    if(NOT requirement)
        message(FATAL_ERROR "${patch}: no 'Rejected-by: <requirement ID>' line in its header")
    endif()
    set(citing)
    foreach(source ${${sources_var}})
        file(READ ${source} text)
        # Not preceded by a letter, digit or hyphen, nor followed by a digit:
        # Q-005 is not MQ-005, nor Q-0050.
        if(text MATCHES "[^A-Za-z0-9-]${requirement}[^0-9]")
            list(APPEND citing ${source})
        endif()
    endforeach()
    if(citing)
        set(${sources_var} ${citing} PARENT_SCOPE)
    endif()
    # Configure again when a test file changes which requirements it cites.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${${sources_var}})
endfunction()

# shmconf_add_implementation(NAME name ADAPTER_HEADER header ADAPTER_TYPE type
#                            [INCLUDE_DIRS dirs...] [LIBS libs...] [DEFINITIONS defs...]
#                            [EXPECTATIONS file] [MUTANT patch] [WORKBENCH] [NO_CTEST])
# Builds shmconf_<name>, the suite's tests compiled against that adapter, and
# its actor programs, and writes a manifest for conformance/run.py. Unless
# NO_CTEST, registers the tests with ctest under the label conformance-<name>.
# EXPECTATIONS: requirement IDs known to fail, with reasons (XFAIL/XPASS).
# DEFINITIONS: preprocessor definitions for every program built (the same in
# all of them, so that the implementation's inline code is one thing).
# MUTANT: the patch that made this implementation (the suite must reject it).
# WORKBENCH: headers that conformance/mutate.py rewrites for each generated
# mutant; left out of `all` and of run.py's implementations.
function(shmconf_add_implementation)
    cmake_parse_arguments(arg "NO_CTEST;WORKBENCH" "NAME;ADAPTER_HEADER;ADAPTER_TYPE;EXPECTATIONS;MUTANT"
                          "INCLUDE_DIRS;LIBS;DEFINITIONS" ${ARGN})
    foreach(required NAME ADAPTER_HEADER ADAPTER_TYPE)
        if(NOT arg_${required})
            message(FATAL_ERROR "shmconf_add_implementation: ${required} is required")
        endif()
    endforeach()
    set(target shmconf_${arg_NAME})
    # The actors: separate programs the cross-process tests exec.
    add_executable(${target}_actor ${SHMCONF_DIR}/tests/actor.cpp)
    add_executable(${target}_fault_actor ${SHMCONF_DIR}/tests/fault_actor.cpp)
    add_executable(${target}_history_actor ${SHMCONF_DIR}/tests/history_actor.cpp)
    set(suite_sources)
    foreach(file sequential_containers sequential_segments sequential_table sequential_references
                 processes_transfer processes_lifecycle processes_blocking faults_killed_queues
                 faults_killed_holders faults_segments faults_truncated_and_flipped faults_damage_hook
                 linearizable messages)
        list(APPEND suite_sources ${SHMCONF_DIR}/tests/test_${file}.cpp)
    endforeach()
    if(arg_MUTANT)
        shmconf_sources_citing_the_rejecting_requirement(suite_sources ${arg_MUTANT})
    endif()
    add_executable(${target} ${suite_sources})
    foreach(t ${target} ${target}_actor ${target}_fault_actor ${target}_history_actor)
        target_include_directories(${t} BEFORE PRIVATE ${arg_INCLUDE_DIRS})
        target_link_libraries(${t} PRIVATE shmconf::contract ${arg_LIBS})
        target_compile_definitions(${t} PRIVATE
            SHMCONF_ADAPTER_HEADER="${arg_ADAPTER_HEADER}" SHMCONF_ADAPTER=${arg_ADAPTER_TYPE} ${arg_DEFINITIONS})
    endforeach()
    target_link_libraries(${target} PRIVATE GTest::gtest_main)
    # Q-010, STK-005: threads sharing one attachment, judged by ThreadSanitizer
    # when this build has it (run.py --tsan-build); a program of its own, so
    # that a TSan build need not build the fork-and-kill tests.
    add_executable(${target}_threads ${SHMCONF_DIR}/tests/test_threads.cpp)
    target_include_directories(${target}_threads BEFORE PRIVATE ${arg_INCLUDE_DIRS})
    target_link_libraries(${target}_threads PRIVATE shmconf::contract ${arg_LIBS} GTest::gtest_main)
    target_compile_definitions(${target}_threads PRIVATE
        SHMCONF_ADAPTER_HEADER="${arg_ADAPTER_HEADER}" SHMCONF_ADAPTER=${arg_ADAPTER_TYPE} ${arg_DEFINITIONS})
    target_compile_definitions(${target} PRIVATE
        SHMCONF_ACTOR_PATH="$<TARGET_FILE:${target}_actor>"
        SHMCONF_FAULT_ACTOR_PATH="$<TARGET_FILE:${target}_fault_actor>"
        SHMCONF_HISTORY_ACTOR_PATH="$<TARGET_FILE:${target}_history_actor>")
    add_dependencies(${target} ${target}_actor ${target}_fault_actor ${target}_history_actor)
    # ELEM-001: the same probe with int (built with everything: the probe is
    # sound) and with std::string (left out of `all`; run.py builds it and
    # expects a compile error). Mutants do not change element checks.
    set(probe "")
    if(NOT arg_MUTANT AND NOT arg_WORKBENCH)
        foreach(element int std::string)
            string(MAKE_C_IDENTIFIER ${element} suffix)
            add_library(${target}_element_probe_${suffix} OBJECT ${SHMCONF_DIR}/tests/element_probe.cpp)
            target_include_directories(${target}_element_probe_${suffix} BEFORE PRIVATE ${arg_INCLUDE_DIRS})
            target_link_libraries(${target}_element_probe_${suffix} PRIVATE shmconf::contract ${arg_LIBS})
            target_compile_definitions(${target}_element_probe_${suffix} PRIVATE
                SHMCONF_ADAPTER_HEADER="${arg_ADAPTER_HEADER}" SHMCONF_ADAPTER=${arg_ADAPTER_TYPE}
                SHMCONF_PROBE_ELEMENT=${element} ${arg_DEFINITIONS})
        endforeach()
        set_target_properties(${target}_element_probe_std__string PROPERTIES EXCLUDE_FROM_ALL TRUE)
        add_dependencies(${target} ${target}_element_probe_int)
        set(probe ${target}_element_probe_std__string)
    endif()
    set(expectations "")
    if(arg_EXPECTATIONS)
        get_filename_component(expectations "${arg_EXPECTATIONS}" ABSOLUTE)
    endif()
    set(mutant "")
    if(arg_MUTANT)
        get_filename_component(mutant "${arg_MUTANT}" ABSOLUTE)
        # Shipped mutants are rejected by the main program's tests: no need to build this one.
        set_target_properties(${target}_threads PROPERTIES EXCLUDE_FROM_ALL TRUE)
    endif()
    set(workbench false)
    if(arg_WORKBENCH)
        set(workbench true)
        set_target_properties(${target} ${target}_actor ${target}_fault_actor ${target}_history_actor
            ${target}_threads PROPERTIES EXCLUDE_FROM_ALL TRUE)
    endif()
    file(GENERATE OUTPUT ${SHMCONF_MANIFEST_DIR}/${arg_NAME}.json CONTENT
"{\"name\": \"${arg_NAME}\", \"program\": \"$<TARGET_FILE:${target}>\", \"threads_program\": \"$<TARGET_FILE:${target}_threads>\", \"expectations\": \"${expectations}\", \"mutant\": \"${mutant}\", \"element_probe\": \"${probe}\", \"workbench\": ${workbench}, \"build\": \"${CMAKE_BINARY_DIR}\"}
")
    if(NOT arg_NO_CTEST)
        gtest_discover_tests(${target} TEST_PREFIX "${arg_NAME}/"
            PROPERTIES LABELS "conformance;conformance-${arg_NAME}" TIMEOUT 300 DISCOVERY_TIMEOUT 60)
    endif()
endfunction()
