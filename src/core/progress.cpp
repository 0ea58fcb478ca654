#include "brainspade/core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"

namespace brainspade {

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total, int64_t start, double log_every_s)
    : label_(std::move(label)), total_(total), start_(start), done_(start), log_every_s_(log_every_s),
      tty_(::isatty(STDERR_FILENO) == 1), t0_(std::chrono::steady_clock::now()), last_(t0_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::update(int64_t n, const std::string& extra) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if ((tty_ && since >= 0.2) || (!tty_ && since >= log_every_s_) || done_ == total_) {
    last_ = now;
    render(extra, false);
  }
}

void Progress::finish(const std::string& extra) { render(extra, true); }

void Progress::render(const std::string& extra, bool final) {
  if (!distributed().is_main()) return;  // one progress line per distributed run (rank 0's)
  double el = elapsed_s();
  double rate = el > 0 ? (done_ - start_) / el : 0.0;
  double eta = rate > 0 ? (total_ - done_) / rate : NAN;
  char line[512];
  if (final)
    std::snprintf(line, sizeof line, "%s: %lld/%lld done in %s (%.3g/s)%s%s", label_.c_str(), (long long)done_,
                  (long long)total_, format_duration(el).c_str(), rate, extra.empty() ? "" : "  ", extra.c_str());
  else
    std::snprintf(line, sizeof line, "%s: %lld/%lld (%.0f%%) %.3g/s ETA %s%s%s", label_.c_str(), (long long)done_,
                  (long long)total_, total_ > 0 ? 100.0 * done_ / total_ : 100.0, rate, format_duration(eta).c_str(),
                  extra.empty() ? "" : "  ", extra.c_str());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    std::fflush(stderr);
  } else {
    spdlog::info("{}", line);
  }
}

}  // namespace brainspade
