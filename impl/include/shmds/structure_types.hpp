// shmds/structure_types.hpp: from a kind, as a table entry records it, to the
// structure template that makes it. The one place that maps structure_kind to
// a C++ type: code that acts on whatever kind an entry says (fuzzers, the
// conformance adapter's damage, inspectors) visits through here instead of
// writing a switch of its own, so a new kind is one line here and one in
// structure_kind.hpp, and the static_assert below says when they disagree.
#pragma once

#include "shmds/error.hpp"
#include "shmds/shm_array.hpp"
#include "shmds/shm_concurrent_stack.hpp"
#include "shmds/shm_message_queue.hpp"
#include "shmds/shm_mpmc_queue.hpp"
#include "shmds/shm_queue.hpp"
#include "shmds/shm_spsc_queue.hpp"
#include "shmds/shm_stack.hpp"
#include "shmds/structure_kind.hpp"

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace shmds {

/// The structure templates for elements T, in the order of structure_kinds
/// (the message queue, whose elements are bytes, whatever T is).
template <class T>
using structure_types = std::tuple<shm_array<T>, shm_queue<T>, shm_stack<T>, shm_spsc_queue<T>,
                                   shm_mpmc_queue<T>, shm_concurrent_stack<T>, shm_message_queue>;

namespace detail {

template <class T, std::size_t... I>
constexpr bool types_follow_kinds(std::index_sequence<I...>) {
    return sizeof...(I) == structure_kinds.size() &&
           ((std::tuple_element_t<I, structure_types<T>>::kind == structure_kinds[I].kind) && ...);
}

template <std::size_t I, class T, class F>
decltype(auto) visit_structure_type_from(structure_kind kind, F& f) {
    using structure = std::tuple_element_t<I, structure_types<T>>;
    if constexpr (I + 1 < std::tuple_size_v<structure_types<T>>) {
        if (structure::kind != kind) return visit_structure_type_from<I + 1, T>(kind, f);
    } else {
        if (structure::kind != kind)
            throw invalid_argument_error(errc::invalid_argument,
                                         "structure kind " + std::to_string(static_cast<std::uint32_t>(kind)) +
                                             " is not a kind of this library");
    }
    return f(std::type_identity<structure>{});
}

}  // namespace detail

static_assert(detail::types_follow_kinds<int>(std::make_index_sequence<std::tuple_size_v<structure_types<int>>>{}),
              "structure_types lists one template per entry of structure_kinds, in the same order: a kind added "
              "to structure_kind.hpp needs its template here");

/// Calls f(std::type_identity<S>{}), S being the structure template of `kind`
/// for elements T, and returns what f returns (f must return one type for
/// every S). Any thread. Throws invalid_argument_error for a number no kind
/// has (check is_known_kind first where a damaged entry is expected).
template <class T, class F>
decltype(auto) visit_structure_type(structure_kind kind, F&& f) {
    return detail::visit_structure_type_from<0, T>(kind, f);
}

}  // namespace shmds
