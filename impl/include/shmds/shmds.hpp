// shmds/shmds.hpp: the whole library.
#pragma once

#include "shmds/config.hpp"
#include "shmds/element.hpp"
#include "shmds/error.hpp"
#include "shmds/names.hpp"
#include "shmds/posix_shm.hpp"
#include "shmds/segment_directory.hpp"
#include "shmds/shm_array.hpp"
#include "shmds/shm_concurrent_stack.hpp"
#include "shmds/shm_mpmc_queue.hpp"
#include "shmds/shm_queue.hpp"
#include "shmds/shm_span.hpp"
#include "shmds/shm_spsc_queue.hpp"
#include "shmds/shm_stack.hpp"
#include "shmds/shm_table.hpp"
#include "shmds/structure_kind.hpp"
#include "shmds/wait.hpp"
