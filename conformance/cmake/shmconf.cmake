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

# shmconf_add_implementation(NAME name ADAPTER_HEADER header ADAPTER_TYPE type
#                            [INCLUDE_DIRS dirs...] [LIBS libs...])
# Builds shmconf_<name>, the suite's tests compiled against that adapter, and
# registers them with ctest under the label conformance-<name>.
function(shmconf_add_implementation)
    cmake_parse_arguments(arg "" "NAME;ADAPTER_HEADER;ADAPTER_TYPE" "INCLUDE_DIRS;LIBS" ${ARGN})
    foreach(required NAME ADAPTER_HEADER ADAPTER_TYPE)
        if(NOT arg_${required})
            message(FATAL_ERROR "shmconf_add_implementation: ${required} is required")
        endif()
    endforeach()
    set(target shmconf_${arg_NAME})
    # The actor: a separate program the cross-process tests exec.
    add_executable(${target}_actor ${SHMCONF_DIR}/tests/actor.cpp)
    add_executable(${target} ${SHMCONF_DIR}/tests/test_sequential.cpp ${SHMCONF_DIR}/tests/test_processes.cpp)
    foreach(t ${target} ${target}_actor)
        target_include_directories(${t} PRIVATE ${arg_INCLUDE_DIRS})
        target_link_libraries(${t} PRIVATE shmconf::contract ${arg_LIBS})
        target_compile_definitions(${t} PRIVATE
            SHMCONF_ADAPTER_HEADER="${arg_ADAPTER_HEADER}" SHMCONF_ADAPTER=${arg_ADAPTER_TYPE})
    endforeach()
    target_link_libraries(${target} PRIVATE GTest::gtest_main)
    target_compile_definitions(${target} PRIVATE SHMCONF_ACTOR_PATH="$<TARGET_FILE:${target}_actor>")
    add_dependencies(${target} ${target}_actor)
    gtest_discover_tests(${target} TEST_PREFIX "${arg_NAME}/"
        PROPERTIES LABELS "conformance;conformance-${arg_NAME}" TIMEOUT 300 DISCOVERY_TIMEOUT 60)
endfunction()
