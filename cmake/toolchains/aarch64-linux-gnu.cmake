# Cross-compiles for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu and
# runs what ctest starts (tests, gtest discovery) under qemu-user:
#
#   cmake -S . -B build/aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# GoogleTest and Google Benchmark come from Debian's arm64 packages installed
# beside the host's (multiarch: libgtest-dev:arm64, libbenchmark-dev:arm64,
# into /usr/lib/aarch64-linux-gnu; scripts/install-deps). Boost is used for
# its headers only, which a Multi-Arch: same package must ship byte for byte
# identical on every architecture, so the host's /usr/include/boost serves
# (FindBoost's header search; there is no arm64 BoostConfig.cmake).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# qemu-user runs the programs with one arm64 C runtime, whose dynamic loader
# and libc.so must come from the same glibc build. Debian's multiarch
# libc6:arm64 (which libbenchmark1debian:arm64 pulls in) puts its loader at
# /lib/ld-linux-aarch64.so.1 and its libraries in the host's ld.so.cache;
# with it installed, `-L /usr/aarch64-linux-gnu` would pair the cross
# toolchain's loader (another build of glibc 2.36) with the multiarch
# libc.so.6, and the first fork() spun for ever in glibc's stack list. So:
# the multiarch runtime where it is installed, else the cross toolchain's.
find_program(SHMDS_QEMU_AARCH64 qemu-aarch64 REQUIRED)
if(EXISTS /lib/ld-linux-aarch64.so.1)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${SHMDS_QEMU_AARCH64})
else()
    set(CMAKE_CROSSCOMPILING_EMULATOR ${SHMDS_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()

# Headers and packages from the multiarch directories under /usr (found
# through CMAKE_LIBRARY_ARCHITECTURE), programs (python, qemu) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
