#pragma once
/// Atomic outputs: write to "<folder>/.tmp-<host>.<pid>-<name>", flush, then rename over the final name.
/// An interrupted run therefore never leaves a half-written file under its final name; the temporary it may leave
/// is removed by the next run (remove_dead_temporaries).
#include <functional>
#include <string>

namespace brainspade {

/// Writes `text` to `path` atomically (parent folders are created).
void write_text_atomic(const std::string& path, const std::string& text);
/// Calls `writer(tmp_path)` to produce the file, then renames it to `path`; removes the temporary on failure.
void write_atomic(const std::string& path, const std::function<void(const std::string& tmp_path)>& writer);
/// ".tmp-<host>.<pid>-": the prefix of this process's temporaries (host name reduced to [A-Za-z0-9_-]).
std::string temporary_prefix();
/// Removes the temporaries in `dir` left by processes of this host that are no longer running; returns how many.
/// Temporaries of running processes (e.g. other shards writing into the same folder) and of other hosts (a shared
/// file system: their owner may be running there) are left alone. A missing folder is not an error.
int remove_dead_temporaries(const std::string& dir);
/// Reads a whole text file; InputError naming the path when it cannot be read.
std::string read_text(const std::string& path);
/// Creates a folder and its parents; InputError when impossible.
void make_dirs(const std::string& path);

}  // namespace brainspade
