// impl/tests/soak/json_writer.cpp: the JSON writer (see json_writer.hpp).
#include "json_writer.hpp"

#include <cstdio>

namespace soak {

void json_writer::begin_object(layout how) {
    open('{', how);
}

void json_writer::end_object() {
    close('}');
}

void json_writer::begin_array(layout how) {
    open('[', how);
}

void json_writer::end_array() {
    close(']');
}

void json_writer::key(std::string_view name) {
    separate();
    quoted(name);
    out_ += ": ";
    after_key_ = true;
}

void json_writer::value(std::string_view text) {
    separate();
    quoted(text);
}

void json_writer::value(std::uint64_t number) {
    separate();
    out_ += std::to_string(number);
}

void json_writer::value(double number) {
    separate();
    out_ += std::to_string(number);
}

void json_writer::value(bool truth) {
    separate();
    out_ += truth ? "true" : "false";
}

void json_writer::separate() {
    if (after_key_) {  // the member's value: its key has placed it
        after_key_ = false;
        return;
    }
    if (open_.empty()) return;  // the document's one value
    container& c = open_.back();
    const bool first = c.empty;
    c.empty = false;
    if (c.how == layout::one_per_line)
        out_ += (first ? "\n" : ",\n") + std::string(2 * open_.size(), ' ');
    else if (!first)
        out_ += ", ";
}

void json_writer::open(char bracket, layout how) {
    separate();
    out_ += bracket;
    open_.push_back({how});
}

void json_writer::close(char bracket) {
    const layout how = open_.back().how;
    open_.pop_back();
    if (how == layout::one_per_line) out_ += "\n" + std::string(2 * open_.size(), ' ');
    out_ += bracket;
}

void json_writer::quoted(std::string_view text) {
    out_ += '"';
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out_ += '\\';
            out_ += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
            out_ += escaped;
        } else {
            out_ += c;
        }
    }
    out_ += '"';
}

}  // namespace soak
