// shmds/names.hpp: the name grammar for segments and structures.
//
// Segment names are portable POSIX shared-memory names: a leading '/', then 1
// to 253 characters from the portable filename set [A-Za-z0-9._-], not "." or
// "..". Structure names are 1 to 63 printable ASCII characters (0x20-0x7e).
// Both are checked before any system call; a violation is an
// invalid_argument_error with errc::invalid_name that says which rule failed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "shmds/config.hpp"
#include "shmds/error.hpp"

namespace shmds {

namespace detail {

constexpr bool is_portable_filename_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/// Quotes a possibly hostile name for an error message: printable ASCII as is,
/// everything else as \xNN, and long names cut short.
inline std::string quote_name(std::string_view name) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    std::size_t shown = 0;
    for (char c : name) {
        if (++shown > 80) {
            out += "...";
            break;
        }
        auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\'' && c != '\\') {
            out += c;
        } else {
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 0xf];
        }
    }
    out += "'";
    return out;
}

}  // namespace detail

/// Why `name` is not a valid segment name, or nullopt when it is.
inline std::optional<std::string> segment_name_problem(std::string_view name) {
    if (name.empty()) return "is empty (expected '/' followed by 1 to 253 characters)";
    if (name.front() != '/') return "does not start with '/'";
    if (name.size() == 1) return "has nothing after the leading '/'";
    if (name.size() > max_segment_name_length)
        return "is " + std::to_string(name.size()) + " bytes long (at most " +
               std::to_string(max_segment_name_length) + " including the leading '/')";
    std::string_view rest = name.substr(1);
    if (rest == "." || rest == "..") return "names a directory ('.' or '..')";
    for (char c : rest) {
        if (c == '/') return "contains a '/' after the leading one";
        if (!detail::is_portable_filename_char(c))
            return "contains a character outside the portable set [A-Za-z0-9._-]";
    }
    return std::nullopt;
}

/// Why `name` is not a valid structure name, or nullopt when it is.
inline std::optional<std::string> structure_name_problem(std::string_view name) {
    if (name.empty()) return "is empty (expected 1 to 63 printable ASCII characters)";
    if (name.size() > max_structure_name_length)
        return "is " + std::to_string(name.size()) + " bytes long (at most " +
               std::to_string(max_structure_name_length) + ")";
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f) return "contains a character that is not printable ASCII";
    }
    return std::nullopt;
}

[[nodiscard]] inline bool is_valid_segment_name(std::string_view name) {
    return !segment_name_problem(name);
}
/// The same rule as structure_name_problem, without building a message:
/// every lookup and open checks its name, so this is on their paths.
[[nodiscard]] constexpr bool is_valid_structure_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > max_structure_name_length) return false;
    bool printable = true;  // (no early exit: names are short, branches are not free)
    for (char c : name) printable &= static_cast<unsigned char>(c) - 0x20u < 0x5fu;
    return printable;
}

namespace detail {

inline void check_segment_name(std::string_view name) {
    if (auto problem = segment_name_problem(name))
        throw invalid_argument_error(errc::invalid_name, "segment name " + quote_name(name) + " " + *problem);
}

[[noreturn, gnu::cold, gnu::noinline]] inline void throw_invalid_structure_name(std::string_view segment,
                                                                                std::string_view name) {
    throw invalid_argument_error(errc::invalid_name, "structure name " + quote_name(name) + " in segment '" +
                                                         std::string(segment) + "' " +
                                                         structure_name_problem(name).value_or("is invalid"));
}

inline void check_structure_name(std::string_view segment, std::string_view name) {
    if (!is_valid_structure_name(name)) [[unlikely]]
        throw_invalid_structure_name(segment, name);
}

}  // namespace detail
}  // namespace shmds
