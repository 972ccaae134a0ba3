// Where the tests find the source tree, the built binaries and a scratch directory, and reading
// the files there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ios>
#include <string>

namespace gridd::testing {

std::filesystem::path SourceDir();
std::filesystem::path BinaryDir();  // holds gridd and gridctl
// A fresh, empty directory under the system temp dir, unique per call.
std::filesystem::path MakeTempDir(const std::string& prefix);
// Like MakeTempDir, but the directory is removed when the test program exits.
std::filesystem::path ScratchDir(const std::string& prefix);
// config/test-node.xml (libvirt's test driver node) with its memory set to `ram_mib`.
std::string TestNodeXml(int64_t ram_mib);
// The bytes of the file at `path` from `offset` on; empty when it cannot be read (a log or
// PID file not written yet).
std::string ReadFile(const std::filesystem::path& path, std::streamoff offset = 0);

}  // namespace gridd::testing
