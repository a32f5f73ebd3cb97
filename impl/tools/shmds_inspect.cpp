// shmds-inspect: lists the structures of a live segment, where they lie, and
// any two whose bytes share a cache line (or a pair of lines).
//
//   shmds-inspect SEGMENT [--line BYTES]
//
// BYTES is the sharing granularity to check (default 64; 128 for adjacent-
// line prefetch). Exit status: 0, or 1 when structures share a line, 2 on
// error. Attaching to inspect counts as one more attacher while it runs.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <shmds/shmds.hpp>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s SEGMENT [--line BYTES]\n", argv[0]);
        return 2;
    }
    std::uint64_t line = 64;
    for (int i = 2; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--line") line = std::strtoull(argv[i + 1], nullptr, 10);
    if (line == 0 || (line & (line - 1)) != 0) {
        std::fprintf(stderr, "shmds-inspect: --line must be a power of two\n");
        return 2;
    }
    try {
        shmds::posix_shm seg(argv[1]);
        auto structures = seg.table().list();
        std::sort(structures.begin(), structures.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
        std::printf(
            "segment %s: %zu bytes, alignment %u, %zu of %zu structures, %zu bytes free, %zu attached\n",
            seg.name().c_str(), seg.size(), seg.alignment(), structures.size(), seg.table().capacity(),
            seg.table().bytes_free(), seg.attach_count());
        std::printf("%-10s %-10s %-22s %-24s %10s %10s  %s\n", "offset", "bytes", "kind", "element",
                    "capacity", "lines", "name");
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
                    std::printf("  SHARED LINE: '%s' and '%s' share %llu-byte line %llu\n",
                                previous.name.c_str(), s.name.c_str(), static_cast<unsigned long long>(line),
                                static_cast<unsigned long long>(first));
                    ++shared;
                }
            }
        }
        if (shared == 0)
            std::printf("no two structures share a %llu-byte line\n", static_cast<unsigned long long>(line));
        return shared == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "shmds-inspect: %s\n", e.what());
        return 2;
    }
}
