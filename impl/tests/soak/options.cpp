// impl/tests/soak/options.cpp: parsing shmds-soak's command line (see
// options.hpp for what it owns and must never do). Every option compared
// here must be named in the help text: help.shmds-soak checks that.
#include "options.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include <shmds/shmds.hpp>

namespace soak {
namespace {

/// The help (why == nullptr: asked for, on stdout, exit 0) or a usage error (on stderr, exit 2).
[[noreturn]] void usage(const char* why) {
    if (why != nullptr) std::fprintf(stderr, "shmds-soak: %s\n\n", why);
    std::fputs(
        "usage: shmds-soak [OPTION...]\n"
        "Runs P producers and C consumers on each structure (SPSC: always 1 x 1) for S seconds,\n"
        "SIGKILLs a random worker every M ms on average (exponential intervals) and restarts it,\n"
        "then checks every element's fate. Exit status 0: PASS, 1: FAIL, 2: could not run.\n"
        "\n"
        "  --seconds S             how long to run (60)\n"
        "  --producers P           producers per structure, 1 to 16 (2)\n"
        "  --consumers C           consumers per structure, 1 to 16 (2)\n"
        "  --structures LIST       which of spsc,mpmc,stack to run (all three)\n"
        "  --kill-every-ms M       mean interval between kills; 0: no kills (250)\n"
        "  --timeout-ms T          timeout of every try_push_for / try_pop_for (200)\n"
        "  --slack-ms L            how much later than its timeout a call may return (3000)\n"
        "  --capacity N            capacity of each structure, 1 to 2^24 (256)\n"
        "  --seed X                fixes the victims, intervals and styles, not the timing\n"
        "                          (from the clock; printed)\n"
        "  --segment /NAME         the segment's name; refused if it exists (/shmds-soak-<pid>)\n"
        "  --progress-every-s S    a progress line every S seconds (10)\n"
        "  --json FILE             also write the results as JSON to FILE (none)\n"
        "  -h, --help              this text\n"
        "Self-tests, which make workers misbehave on purpose so that the verdict must be FAIL\n"
        "(soak.detects_injected_faults; off):\n"
        "  --self-test-duplicate   mark an element twice\n"
        "  --self-test-loss        drop elements\n"
        "  --self-test-lose-one    drop one element (within the loss allowance)\n"
        "  --self-test-reorder     mark two elements out of order\n"
        "  --self-test-block       stop answering\n"
        "  --self-test-leak        leave a process holding the segment\n"
        "  --self-test-orphan      the supervisor kills every worker at once\n",
        why != nullptr ? stderr : stdout);
    std::exit(why != nullptr ? 2 : 0);
}

/// The command line, read one argument at a time.
class arguments {
public:
    arguments(int argc, char** argv) : argc_(argc), argv_(argv) {}

    bool more() const { return next_ < argc_; }
    std::string take() { return argv_[next_++]; }

    /// The value of `option`, which must follow it.
    std::string value_of(const std::string& option) {
        if (!more()) usage((option + " needs a value").c_str());
        return take();
    }
    /// A value of `option` that is a number, not negative.
    double number_of(const std::string& option) {
        const std::string text = value_of(option);
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0' || v < 0) usage(("not a number: " + text).c_str());
        return v;
    }
    /// The seed, exactly as printed by an earlier run (a double would round it).
    std::uint64_t seed_of(const std::string& option) {
        const std::string text = value_of(option);
        char* end = nullptr;
        const std::uint64_t v = std::strtoull(text.c_str(), &end, 10);
        if (end == text.c_str() || *end != '\0') usage(("not a seed: " + text).c_str());
        return v;
    }

private:
    int argc_;
    char** argv_;
    int next_ = 1;
};

/// --structures: a comma-separated list of structure names, each known.
void parse_structure_list(const std::string& list, options& o) {
    std::fill(std::begin(o.run), std::end(o.run), false);
    std::size_t start = 0;
    while (start <= list.size()) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        const std::string name = list.substr(start, comma - start);
        bool known = false;
        for (unsigned s = 0; s < structure_count; ++s)
            if (name == structure_names[s]) o.run[s] = known = true;
        if (!known) usage(("unknown structure: " + name).c_str());
        start = comma + 1;
    }
}

/// A --self-test-* flag's fault, or none when `a` is not one.
injected_fault self_test_named(const std::string& a) {
    if (a == "--self-test-orphan") return injected_fault::orphan;
    if (a == "--self-test-duplicate") return injected_fault::duplicate;
    if (a == "--self-test-loss") return injected_fault::loss;
    if (a == "--self-test-lose-one") return injected_fault::lose_one;
    if (a == "--self-test-reorder") return injected_fault::reorder;
    if (a == "--self-test-block") return injected_fault::block;
    if (a == "--self-test-leak") return injected_fault::leak;
    return injected_fault::none;
}

/// Reads one option (and its value) into `o`; usage() on anything unknown.
void parse_one(const std::string& a, arguments& args, options& o) {
    if (a == "--seconds")
        o.seconds = args.number_of(a);
    else if (a == "--producers")
        o.producers = static_cast<std::uint32_t>(args.number_of(a));
    else if (a == "--consumers")
        o.consumers = static_cast<std::uint32_t>(args.number_of(a));
    else if (a == "--kill-every-ms")
        o.kill_every_ms = args.number_of(a);
    else if (a == "--timeout-ms")
        o.timeout_ms = static_cast<std::uint32_t>(args.number_of(a));
    else if (a == "--slack-ms")
        o.slack_ms = static_cast<std::uint32_t>(args.number_of(a));
    else if (a == "--capacity")
        o.capacity = static_cast<std::size_t>(args.number_of(a));
    else if (a == "--seed")
        o.seed = args.seed_of(a);
    else if (a == "--progress-every-s")
        o.progress_every_s = args.number_of(a);
    else if (a == "--segment")
        o.segment = args.value_of(a);
    else if (a == "--json")
        o.json_path = args.value_of(a);
    else if (a == "--structures")
        parse_structure_list(args.value_of(a), o);
    else if (a == "--help" || a == "-h")
        usage(nullptr);
    else if (const injected_fault fault = self_test_named(a); fault != injected_fault::none)
        o.inject = fault;
    else
        usage(("unknown option: " + a).c_str());
}

/// Refuses values out of range, and fills in the seed and the segment's name.
void check_and_complete(options& o) {
    if (o.producers < 1 || o.producers > max_slots || o.consumers < 1 || o.consumers > max_slots)
        usage("--producers and --consumers must be 1 to 16");
    if (o.timeout_ms < 1) usage("--timeout-ms must be at least 1");
    if (o.capacity < 1 || o.capacity > (1u << 24)) usage("--capacity must be 1 to 2^24");
    if (o.seed == 0) o.seed = static_cast<std::uint64_t>(now_ns()) ^ static_cast<std::uint64_t>(::getpid());
    if (o.segment.empty()) o.segment = "/shmds-soak-" + std::to_string(::getpid());
    if (auto problem = shmds::segment_name_problem(o.segment))
        usage(("--segment " + o.segment + ": " + *problem).c_str());
}

}  // namespace

options parse_options(int argc, char** argv) {
    options o;
    arguments args(argc, argv);
    while (args.more()) parse_one(args.take(), args, o);
    check_and_complete(o);
    return o;
}

}  // namespace soak
