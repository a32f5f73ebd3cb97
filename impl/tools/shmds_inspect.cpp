// shmds-inspect: looks at shmds segments from outside.
//
//   shmds-inspect SEGMENT [--line BYTES]   the structures of one segment, where
//                                          they lie, and any two whose bytes
//                                          share a cache line (or a pair)
//   shmds-inspect --list                   every shmds segment in /dev/shm: its
//                                          status (live, stale, unfinished),
//                                          live attachers, owner, mode, size
//                                          and structures
//   shmds-inspect --remove-stale [SEGMENT...]
//                                          removes the stale segments (every
//                                          one, or those named): nobody is
//                                          attached and the kernel confirms it
//                                          under the reclaiming lock
//
// BYTES is the sharing granularity to check (default 64; 128 for adjacent-
// line prefetch). Exit status: 0; 1 when structures share a line (SEGMENT
// form) or a named segment was not stale (--remove-stale); 2 on error.
// Inspecting one segment attaches for a moment and counts as one more
// attacher meanwhile. Listing holds no lock on any segment: live ones are
// read through a look that is not counted and never removes anything, stale
// ones without attaching, so listing neither keeps them alive nor reclaims
// them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <shmds/segment_directory.hpp>
#include <shmds/shmds.hpp>

namespace {

int inspect_one(const char* name, std::uint64_t line) {
    shmds::posix_shm seg(name);
    auto structures = seg.table().list();
    std::sort(structures.begin(), structures.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    std::printf("segment %s: %zu bytes, alignment %u, %zu of %zu structures, %zu bytes free, %zu attached\n",
                seg.name().c_str(), seg.size(), seg.alignment(), structures.size(), seg.table().capacity(),
                seg.table().bytes_free(), seg.attach_count());
    std::printf("%-10s %-10s %-22s %-24s %10s %10s  %s\n", "offset", "bytes", "kind", "element", "capacity",
                "lines", "name");
    int shared = 0;
    for (std::size_t i = 0; i < structures.size(); ++i) {
        const auto& s = structures[i];
        const std::uint64_t first = s.offset / line;
        const std::uint64_t last = (s.offset + s.bytes - 1) / line;
        std::printf("%-10llu %-10llu %-22s %-24s %10llu %4llu-%-5llu  %s\n",
                    static_cast<unsigned long long>(s.offset), static_cast<unsigned long long>(s.bytes),
                    std::string(shmds::to_string(s.kind)).c_str(), s.type_name.c_str(),
                    static_cast<unsigned long long>(s.capacity), static_cast<unsigned long long>(first),
                    static_cast<unsigned long long>(last), s.name.c_str());
        if (i > 0) {
            const auto& previous = structures[i - 1];
            if ((previous.offset + previous.bytes - 1) / line == first) {
                std::printf("  SHARED LINE: '%s' and '%s' share %llu-byte line %llu\n", previous.name.c_str(),
                            s.name.c_str(), static_cast<unsigned long long>(line),
                            static_cast<unsigned long long>(first));
                ++shared;
            }
        }
    }
    if (shared == 0) std::printf("no two structures share a %llu-byte line\n", static_cast<unsigned long long>(line));
    return shared == 0 ? 0 : 1;
}

int list_all() {
    const auto segments = shmds::list_segments();
    std::printf("%-32s %-10s %9s %6s %5s %12s %8s  %s\n", "segment", "status", "attached", "owner", "mode",
                "bytes", "creator", "structures");
    for (const auto& s : segments) {
        std::string structures;
        for (const auto& info : s.structures)
            structures += (structures.empty() ? "" : ", ") + info.name + " (" +
                          std::string(shmds::to_string(info.kind)) + "<" + info.type_name + ">)";
        if (s.damaged_entries != 0)
            structures += (structures.empty() ? "" : ", ") + std::to_string(s.damaged_entries) + " damaged entries";
        if (!s.problem.empty()) structures += (structures.empty() ? "?: " : "; ?: ") + s.problem;
        std::printf("%-32s %-10s %9zu %6u %5o %12llu %8d  %s\n", s.name.c_str(),
                    std::string(shmds::to_string(s.status)).c_str(), s.attachers, static_cast<unsigned>(s.owner),
                    static_cast<unsigned>(s.mode), static_cast<unsigned long long>(s.file_bytes), s.creator_pid,
                    structures.empty() ? "-" : structures.c_str());
    }
    const auto stale = std::count_if(segments.begin(), segments.end(),
                                     [](const auto& s) { return s.status == shmds::segment_status::stale; });
    std::printf("%zu segments, %ld stale%s\n", segments.size(), static_cast<long>(stale),
                stale != 0 ? " (remove them with: shmds-inspect --remove-stale)" : "");
    return 0;
}

int remove_stale(const std::vector<std::string>& named) {
    std::vector<std::string> candidates = named;
    if (candidates.empty())
        for (const auto& s : shmds::list_segments())
            if (s.status == shmds::segment_status::stale || s.status == shmds::segment_status::unfinished)
                candidates.push_back(s.name);
    int kept = 0;
    for (const auto& name : candidates) {
        if (shmds::remove_if_stale(name)) {
            std::printf("removed %s\n", name.c_str());
        } else {
            std::printf("kept %s: it is live, unfinished for less than a minute, absent or not a shmds segment\n",
                        name.c_str());
            ++kept;
        }
    }
    return named.empty() || kept == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const char* usage =
        "usage: shmds-inspect SEGMENT [--line BYTES]\n"
        "       shmds-inspect --list\n"
        "       shmds-inspect --remove-stale [SEGMENT...]\n";
    if (args.empty()) {
        std::fputs(usage, stderr);
        return 2;
    }
    if (args[0] == "--help" || args[0] == "-h") {
        std::printf(
            "%s\n"
            "  SEGMENT [--line BYTES]   the structures of one segment, where they lie, and any two\n"
            "                           whose bytes share a line of BYTES (64; 128 for adjacent-line\n"
            "                           prefetch); exit status 1 when some do\n"
            "  --list                   every shmds segment in /dev/shm: status (live, stale,\n"
            "                           unfinished), live attachers, owner, mode, size, structures\n"
            "  --remove-stale [SEGMENT...]\n"
            "                           removes the stale segments (every one, or those named);\n"
            "                           exit status 1 when a named one was not stale\n"
            "  -h, --help               this text\n"
            "Exit status 2 on error.\n",
            usage);
        return 0;
    }
    try {
        if (args[0] == "--list") return list_all();
        if (args[0] == "--remove-stale") return remove_stale({args.begin() + 1, args.end()});
        if (args[0].starts_with("--")) {
            std::fputs(usage, stderr);
            return 2;
        }
        std::uint64_t line = 64;
        for (std::size_t i = 1; i + 1 < args.size(); ++i)
            if (args[i] == "--line") line = std::strtoull(args[i + 1].c_str(), nullptr, 10);
        if (line == 0 || (line & (line - 1)) != 0) {
            std::fprintf(stderr, "shmds-inspect: --line must be a power of two\n");
            return 2;
        }
        return inspect_one(args[0].c_str(), line);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmds-inspect: %s\n", e.what());
        return 2;
    }
}
