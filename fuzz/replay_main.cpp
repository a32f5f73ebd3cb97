// fuzz/replay_main.cpp: runs a fuzz target's LLVMFuzzerTestOneInput over
// files, for compilers without libFuzzer (the GCC sanitizer build).
//
//   fuzz_replay_<target> PATH...
//
// Each PATH is a file or a directory (its regular files, not recursively,
// in name order; names starting with '.' and README files are skipped).
// Why: the committed corpus and every regression input then run as an
// ordinary ctest under ASan and UBSan, so a fixed crash stays fixed. A
// finding aborts the process (sanitizer report, trap or escaped exception);
// otherwise the exit status is 0, or 2 when a path cannot be read.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.hpp"

namespace {

bool skipped(const std::filesystem::path& file) {
    const std::string name = file.filename().string();
    return name.empty() || name[0] == '.' || name.rfind("README", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path path(argv[i]);
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec)) {
            std::vector<std::filesystem::path> listed;
            for (const auto& entry : std::filesystem::directory_iterator(path, ec))
                if (entry.is_regular_file() && !skipped(entry.path())) listed.push_back(entry.path());
            std::sort(listed.begin(), listed.end());
            files.insert(files.end(), listed.begin(), listed.end());
        } else if (std::filesystem::is_regular_file(path, ec)) {
            files.push_back(path);
        } else {
            std::fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 2;
        }
    }
    for (const auto& file : files) {
        std::ifstream in(file, std::ios::binary);
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
    std::printf("replay: %zu inputs ran without a finding\n", files.size());
    return 0;
}
