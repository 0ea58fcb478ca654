#include "brainspade/core/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
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

namespace {
// ".tmp-<host>.": what every temporary written on this host starts with.
const std::string& host_prefix() {
  static const std::string prefix = [] {
    char buf[256] = {0};
    std::string h;
    if (::gethostname(buf, sizeof buf - 1) == 0)
      for (const char* c = buf; *c; ++c)
        h += (std::isalnum(static_cast<unsigned char>(*c)) || *c == '_' || *c == '-') ? *c : '_';
    return ".tmp-" + (h.empty() ? std::string("host") : h) + ".";
  }();
  return prefix;
}
}  // namespace

std::string temporary_prefix() { return host_prefix() + std::to_string(::getpid()) + "-"; }

int remove_dead_temporaries(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return 0;
  const std::string& host_part = host_prefix();
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(host_part, 0) != 0) continue;  // not a temporary, or another host's
    size_t i = host_part.size(), j = i;
    while (j < f.size() && std::isdigit(static_cast<unsigned char>(f[j]))) ++j;
    if (j == i || j >= f.size() || f[j] != '-') continue;
    const long pid = std::strtol(f.substr(i, j - i).c_str(), nullptr, 10);
    if (pid <= 0) continue;
    const bool alive = ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    if (alive) continue;
    std::error_code rm;
    if (std::filesystem::remove(e.path(), rm)) ++removed;
  }
  return removed;
}

void write_atomic(const std::string& path, const std::function<void(const std::string&)>& writer) {
  std::filesystem::path p(path);
  if (p.has_parent_path()) make_dirs(p.parent_path().string());
  // The temporary keeps the final extension so that writers that dispatch on it (ITK, PNG) still work.
  std::string tmp = (p.parent_path() / (temporary_prefix() + p.filename().string())).string();
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
