#pragma once
/// Atomic outputs: write to "<path>.tmp-<pid>", flush, then rename over the final name.
/// An interrupted run therefore never leaves a half-written file under its final name.
#include <functional>
#include <string>

namespace brainspade {

/// Writes `text` to `path` atomically (parent folders are created).
void write_text_atomic(const std::string& path, const std::string& text);
/// Calls `writer(tmp_path)` to produce the file, then renames it to `path`; removes the temporary on failure.
void write_atomic(const std::string& path, const std::function<void(const std::string& tmp_path)>& writer);
/// Reads a whole text file; InputError naming the path when it cannot be read.
std::string read_text(const std::string& path);
/// Creates a folder and its parents; InputError when impossible.
void make_dirs(const std::string& path);

}  // namespace brainspade
