#include "brainspade/core/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "brainspade/core/error.h"

namespace brainspade {

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw input_error(path, ": cannot create folder: ", ec.message());
}

void write_atomic(const std::string& path, const std::function<void(const std::string&)>& writer) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  // The temporary keeps the final extension so that writers that dispatch on it (ITK, PNG) still work.
  std::string tmp = (p.parent_path() / (".tmp-" + std::to_string(::getpid()) + "-" + p.filename().string())).string();
  try {
    writer(tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw input_error(path, ": cannot move finished file into place: ", ec.message());
  }
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_atomic(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw input_error(tmp, ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) throw input_error(tmp, ": write failed (disk full?)");
  });
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, ": cannot open file");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace brainspade
