// my_adapter.hpp: an outside implementation's adapter to the conformance
// contract (shmconf/contract.hpp). This one adapts the shmds library, as a
// stand-in: an implementer writes the same few lines over their own types,
// claiming in `caps` only what their implementation offers, and leaving out
// the optional functions it lacks (the tests of unclaimed capabilities report
// UNSUPPORTED, not FAIL).
#pragma once

#include <shmds/shmds.hpp>

#include "shmconf/contract.hpp"

namespace my {

struct adapter {
    static std::string name() { return "mine"; }
    // This stand-in claims only the core structures and no crash recovery.
    static constexpr shmconf::capabilities caps{.array = true, .queue = true, .spsc_queue = true, .stack = true};

    static shmconf::error_category categorize(std::exception_ptr e) {
        using shmconf::error_category;
        try {
            std::rethrow_exception(e);
        } catch (const shmds::error& x) {
            switch (x.code()) {
                case shmds::errc::invalid_name: return error_category::invalid_name;
                case shmds::errc::invalid_size: return error_category::invalid_size;
                case shmds::errc::not_found: return error_category::not_found;
                case shmds::errc::already_exists: return error_category::already_exists;
                case shmds::errc::kind_mismatch:
                case shmds::errc::type_mismatch:
                case shmds::errc::capacity_mismatch:
                case shmds::errc::size_mismatch: return error_category::mismatch;
                case shmds::errc::corrupted: return error_category::corrupted;
                case shmds::errc::table_full:
                case shmds::errc::segment_full: return error_category::out_of_space;
                case shmds::errc::timeout: return error_category::timeout;
                case shmds::errc::role_taken: return error_category::role_taken;
                case shmds::errc::untrusted: return error_category::permission_denied;
                default: return error_category::other;
            }
        } catch (const std::out_of_range&) {
            return error_category::out_of_range;
        } catch (const std::system_error& x) {
            if (x.code().value() == ENOSPC) return error_category::out_of_space;
            return x.code().value() == EACCES ? error_category::permission_denied : error_category::other;
        } catch (...) {
            return error_category::other;
        }
    }

    using segment = shmds::posix_shm;
    static segment create(const std::string& n, std::size_t bytes) { return segment(shmds::create_only, n, bytes); }
    static segment open(const std::string& n) { return segment(shmds::open_only, n); }
    static segment open_or_create(const std::string& n, std::size_t bytes) { return segment(n, bytes); }
    static bool remove(const std::string& n) { return shmds::posix_shm::remove(n); }
    // exists and attach_count are optional (shmconf::reports_existence,
    // shmconf::counts_attachments), and this stand-in plays a library that has
    // neither: the suite asks whether a name exists by opening it, and reports
    // the counting requirement (REF-001) UNSUPPORTED.
    static void destroy(segment& s, const std::string& n) { s.destroy(n); }

    template <class T>
    using array = shmds::shm_array<T>;
    template <class T>
    using queue = shmds::shm_queue<T>;
    template <class T>
    using spsc_queue = shmds::shm_spsc_queue<T>;
    template <class T>
    using mpmc_queue = shmds::shm_mpmc_queue<T>;  // present, but not claimed
    template <class T>
    using stack = shmds::shm_stack<T>;
    template <class T>
    using concurrent_stack = shmds::shm_concurrent_stack<T>;  // present, but not claimed

    template <class S>
    static S make(segment& s, const std::string& n, std::size_t capacity) {
        return S(s, n, capacity);
    }
    template <class S>
    static S find(segment& s, const std::string& n) {
        return S(s, n);
    }
};

}  // namespace my
