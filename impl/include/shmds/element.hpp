// shmds/element.hpp: what may be stored in shared memory, and how its type is
// recognised by another process.
//
// Elements are copied byte for byte between processes that map the segment at
// different addresses, so T must be trivially copyable and must not be a
// pointer. The type fingerprint (size, alignment and a hash of the type's
// name) is recorded beside each structure so that opening it with another T is
// refused instead of reinterpreting bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <cxxabi.h>

#include "shmds/config.hpp"

namespace shmds {

/// True for types that can live in a shared segment.
template <class T>
concept shm_element = std::is_trivially_copyable_v<T> && std::is_object_v<T> && !std::is_pointer_v<T> &&
                      !std::is_member_pointer_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T> &&
                      alignof(T) <= max_structure_alignment && std::in_range<std::uint32_t>(sizeof(T));

namespace detail {

/// Expands to readable static_asserts naming the broken requirement; used at
/// the top of every structure template.
template <class T>
constexpr bool check_element() {
    static_assert(std::is_trivially_copyable_v<T>,
                  "shmds: T must be trivially copyable: its bytes are copied between processes, "
                  "so no std::string, std::vector, virtual functions or owning pointers");
    static_assert(!std::is_pointer_v<T> && !std::is_member_pointer_v<T>,
                  "shmds: T must not be a pointer: another process maps the segment at another "
                  "address; store offsets or indices instead");
    static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                  "shmds: T must not be const- or volatile-qualified");
    static_assert(alignof(T) <= max_structure_alignment,
                  "shmds: alignof(T) above 4096 cannot be honoured in a page-aligned mapping");
    static_assert(std::in_range<std::uint32_t>(sizeof(T)), "shmds: sizeof(T) must fit in 32 bits");
    return true;
}

constexpr std::uint64_t fnv1a64(std::string_view text) noexcept {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ull;
    }
    return hash;
}

template <class T>
std::string_view pretty_function_name() {
    return __PRETTY_FUNCTION__;
}

}  // namespace detail

/// The name by which a type is recognised across processes. The default is
/// the Itanium-ABI mangled name from typeid, which GCC and Clang on Linux
/// spell identically. Without RTTI it falls back to the compiler's own
/// spelling (__PRETTY_FUNCTION__), which differs between compilers and from
/// the RTTI spelling: processes built with and without RTTI then see
/// different types. Specialise type_name<T> to give a type one stable name
/// (also useful across a rename); do so in every translation unit that uses T.
template <class T>
struct type_name {
    static std::string_view get() {
#if defined(__GXX_RTTI) || defined(__cpp_rtti)
        return typeid(T).name();
#else
        return detail::pretty_function_name<T>();
#endif
    }
};

/// What the table records about an element type.
struct type_fingerprint {
    std::uint32_t size;
    std::uint32_t align;
    std::uint64_t name_hash;
    std::string_view name;  ///< the type_name<T> spelling (mangled by default)
};

template <class T>
type_fingerprint fingerprint_of() {
    std::string_view name = type_name<T>::get();
    return {static_cast<std::uint32_t>(sizeof(T)), static_cast<std::uint32_t>(alignof(T)),
            detail::fnv1a64(name), name};
}

/// Human-readable spelling of a recorded type name (demangled when it is a
/// mangled name).
inline std::string readable_type_name(std::string_view recorded) {
    // Demangling allocates and costs more than the lookup that asks for it;
    // a program looks up the same few types again and again.
    thread_local std::string last_recorded, last_readable;
    if (recorded == last_recorded && !last_recorded.empty()) return last_readable;
    std::string mangled(recorded);
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(
        abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
    last_readable = status == 0 && demangled ? std::string(demangled.get()) : mangled;
    last_recorded = std::move(mangled);
    return last_readable;
}

}  // namespace shmds
