// conformance/adapters/shmds_adapter.hpp: the project's own library under
// the conformance contract (shmconf/contract.hpp). Every structure variant.
#pragma once

#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

#include <shmds/shmds.hpp>

#include "shmconf/contract.hpp"

namespace shmconf_adapters {

struct shmds_library {
    static std::string name() { return "shmds"; }
    static constexpr shmconf::capabilities caps{.array = true,
                                                .queue = true,
                                                .spsc_queue = true,
                                                .mpmc_queue = true,
                                                .stack = true,
                                                .concurrent_stack = true,
                                                .cleans_up_after_crashed_attachers = true,
                                                .locks_survive_owner_death = true,
                                                .checks_element_types = true,
                                                .reserves_memory_at_creation = true,
                                                .checks_spsc_roles = true};

    static shmconf::error_category categorize(std::exception_ptr e) {
        using shmconf::error_category;
        try {
            std::rethrow_exception(e);
        } catch (const shmds::error& x) {
            switch (x.code()) {
                case shmds::errc::invalid_name:
                    return error_category::invalid_name;
                case shmds::errc::invalid_size:
                    return error_category::invalid_size;
                case shmds::errc::not_found:
                    return error_category::not_found;
                case shmds::errc::already_exists:
                    return error_category::already_exists;
                case shmds::errc::kind_mismatch:
                case shmds::errc::type_mismatch:
                case shmds::errc::capacity_mismatch:
                case shmds::errc::size_mismatch:
                    return error_category::mismatch;
                case shmds::errc::table_full:
                case shmds::errc::segment_full:
                    return error_category::out_of_space;
                case shmds::errc::corrupted:
                    return error_category::corrupted;
                case shmds::errc::timeout:
                    return error_category::timeout;
                case shmds::errc::role_taken:
                    return error_category::role_taken;
                default:
                    return error_category::other;
            }
        } catch (const std::out_of_range&) {
            return error_category::out_of_range;
        } catch (const std::system_error& x) {
            if (x.code().value() == ENOSPC) return error_category::out_of_space;
            if (x.code().value() == EACCES || x.code().value() == EPERM)
                return error_category::permission_denied;
            return error_category::other;
        } catch (...) {
            return error_category::other;
        }
    }

    using segment = shmds::posix_shm;
    static segment create(const std::string& n, std::size_t bytes) {
        return segment(shmds::create_only, n, bytes);
    }
    static segment open(const std::string& n) { return segment(shmds::open_only, n); }
    static segment open_or_create(const std::string& n, std::size_t bytes) { return segment(n, bytes); }
    static bool remove(const std::string& n) { return shmds::posix_shm::remove(n); }
    static bool exists(const std::string& n) { return shmds::posix_shm::exists(n); }
    static std::size_t attach_count(segment& s) { return s.attach_count(); }

    template <class T>
    using array = shmds::shm_array<T>;
    template <class T>
    using queue = shmds::shm_queue<T>;
    template <class T>
    using spsc_queue = shmds::shm_spsc_queue<T>;
    template <class T>
    using mpmc_queue = shmds::shm_mpmc_queue<T>;
    template <class T>
    using stack = shmds::shm_stack<T>;
    template <class T>
    using concurrent_stack = shmds::shm_concurrent_stack<T>;

    /// Find or create `name` as S with `capacity` elements.
    template <class S>
    static S make(segment& s, const std::string& n, std::size_t capacity) {
        return S(s, n, capacity);
    }
    /// Open the existing `name` as S.
    template <class S>
    static S find(segment& s, const std::string& n) {
        return S(s, n);
    }
    static void destroy(segment& s, const std::string& n) { s.destroy(n); }
};

}  // namespace shmconf_adapters
