// shmds/error.hpp: the library's error hierarchy.
//
// Every failure the library detects itself is a shmds::error (or subclass)
// carrying a category (shmds::errc) so callers can branch without parsing text.
// Failures reported by the operating system are std::system_error, keeping
// errno. at() throws std::out_of_range like the standard containers.
// Messages name the segment and the structure and say what was expected.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace shmds {

/// Category of a shmds::error. Stable: the conformance suite matches on these.
enum class errc {
    invalid_name = 1,       ///< segment or structure name fails validation
    invalid_size,           ///< zero, too small or overflowing size or capacity
    invalid_argument,       ///< any other argument out of its documented range
    not_found,              ///< segment or structure does not exist
    already_exists,         ///< create-only on a name that exists
    kind_mismatch,          ///< structure exists as another kind (array vs queue)
    type_mismatch,          ///< structure exists with another element type
    capacity_mismatch,      ///< structure exists with another capacity
    size_mismatch,          ///< segment exists but is smaller than requested
    table_full,             ///< the segment's table has no free entry
    segment_full,           ///< the segment has no room for the structure
    corrupted,              ///< a header, table or control field fails validation
    timeout,                ///< a bounded wait expired
    empty,                  ///< pop/top/front on an empty structure
    full,                   ///< push on a full structure
    role_taken,             ///< another live handle holds the SPSC producer or consumer role
    too_many_participants,  ///< a structure's set of live participants is full
    untrusted,              ///< an existing segment's owner or mode is wider than the caller accepts
    loan_open,              ///< a call on a side of a queue whose handle has a loan open
};

/// Short, stable spelling of a category ("not_found", ...).
constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::invalid_name:
            return "invalid_name";
        case errc::invalid_size:
            return "invalid_size";
        case errc::invalid_argument:
            return "invalid_argument";
        case errc::not_found:
            return "not_found";
        case errc::already_exists:
            return "already_exists";
        case errc::kind_mismatch:
            return "kind_mismatch";
        case errc::type_mismatch:
            return "type_mismatch";
        case errc::capacity_mismatch:
            return "capacity_mismatch";
        case errc::size_mismatch:
            return "size_mismatch";
        case errc::table_full:
            return "table_full";
        case errc::segment_full:
            return "segment_full";
        case errc::corrupted:
            return "corrupted";
        case errc::timeout:
            return "timeout";
        case errc::empty:
            return "empty";
        case errc::full:
            return "full";
        case errc::role_taken:
            return "role_taken";
        case errc::too_many_participants:
            return "too_many_participants";
        case errc::untrusted:
            return "untrusted";
        case errc::loan_open:
            return "loan_open";
    }
    return "unknown";
}

/// Base of every error the library detects itself.
class error : public std::runtime_error {
public:
    error(errc code, const std::string& message) : std::runtime_error("shmds: " + message), code_(code) {}
    [[nodiscard]] errc code() const noexcept { return code_; }

private:
    errc code_;
};

/// A name, size, capacity or option outside its documented range. Raised
/// before any system call is made.
class invalid_argument_error : public error {
public:
    using error::error;
};

/// The named segment or structure does not exist.
class not_found_error : public error {
public:
    explicit not_found_error(const std::string& message) : error(errc::not_found, message) {}
};

/// Create-only was asked for a name that already exists.
class already_exists_error : public error {
public:
    explicit already_exists_error(const std::string& message) : error(errc::already_exists, message) {}
};

/// An existing segment or structure differs from what the caller asked for
/// (kind, element type, capacity or size); the message names both sides.
class mismatch_error : public error {
public:
    using error::error;
};

/// The table or the segment has no room left; nothing stored was touched.
class out_of_space_error : public error {
public:
    using error::error;
};

/// Shared state failed validation: wrong magic, version or size, an offset
/// outside the mapping, an index out of range.
class corrupted_error : public error {
public:
    explicit corrupted_error(const std::string& message) : error(errc::corrupted, message) {}
};

/// A bounded wait expired (for a segment's initialisation, for a lock).
class timeout_error : public error {
public:
    explicit timeout_error(const std::string& message) : error(errc::timeout, message) {}
};

/// pop(), top() or front() on an empty structure.
class empty_error : public error {
public:
    explicit empty_error(const std::string& message) : error(errc::empty, message) {}
};

/// push() on a full structure.
class full_error : public error {
public:
    explicit full_error(const std::string& message) : error(errc::full, message) {}
};

/// An SPSC queue's producer (or consumer) role is held by another live
/// handle, or a structure has no room for another participant.
class role_error : public error {
public:
    using error::error;
};

/// An existing segment is owned by another user, or lets others write where
/// the caller asked for a private segment. Raised before the segment is
/// locked, mapped or read.
class untrusted_error : public error {
public:
    explicit untrusted_error(const std::string& message) : error(errc::untrusted, message) {}
};

/// A producer (or consumer) call on a queue handle that has a write (or
/// read) loan open: the call would reach the lent slots. Nothing was done.
class loan_error : public error {
public:
    explicit loan_error(const std::string& message) : error(errc::loan_open, message) {}
};

}  // namespace shmds
