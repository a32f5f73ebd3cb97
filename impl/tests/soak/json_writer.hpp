// impl/tests/soak/json_writer.hpp: a small JSON writer, enough for the soak's
// results file: objects and arrays, string, integer, real and boolean values.
//
// Owns: the JSON syntax (commas, quotes, escapes) and the layout: a
// container is written either one member a line, indented two spaces a
// level, or on one line with ", " between members.
// Must never: know what the soak writes (report.cpp does), nor reformat
// numbers: a real is written as std::to_string writes it ("%f"), which is
// what readers of earlier results files have seen.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace soak {

class json_writer {
public:
    enum class layout { one_per_line, on_one_line };

    void begin_object(layout how);
    void end_object();
    void begin_array(layout how);
    void end_array();
    /// The key of the next member of the object being written.
    void key(std::string_view name);
    void value(std::string_view text);
    void value(const char* text) { value(std::string_view(text)); }
    void value(std::uint64_t number);
    void value(double number);
    void value(bool truth);
    /// A member of the object being written: key(name), then value(v).
    template <class Value>
    void member(std::string_view name, const Value& v) {
        key(name);
        value(v);
    }

    /// The document, which ends with a newline; every container must be closed.
    std::string text() const { return out_ + "\n"; }

private:
    struct container {
        layout how;
        bool empty = true;
    };
    /// Before a member (or an array's element): the comma and the line break it needs.
    void separate();
    void open(char bracket, layout how);
    void close(char bracket);
    void quoted(std::string_view text);

    std::string out_;
    std::vector<container> open_;
    bool after_key_ = false;
};

}  // namespace soak
