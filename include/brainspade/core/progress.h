#pragma once
/// Progress of a long loop: a live line (count, rate, ETA) on a terminal; periodic log lines otherwise.
#include <chrono>
#include <cstdint>
#include <string>

namespace brainspade {

class Progress {
 public:
  /// `total` items, `start` already done (for resumed runs). `log_every_s` applies when stderr is not a TTY.
  Progress(std::string label, int64_t total, int64_t start = 0, double log_every_s = 10.0);
  /// Advances by `n` and shows `extra` (e.g. "loss 0.123") after the rate.
  void update(int64_t n = 1, const std::string& extra = "");
  /// Prints the final line with total time.
  void finish(const std::string& extra = "");
  double elapsed_s() const;
  int64_t done() const { return done_; }

 private:
  void render(const std::string& extra, bool final);
  std::string label_;
  int64_t total_, start_, done_;
  double log_every_s_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_;
};

/// "1h02m", "3m05s", "12.3s".
std::string format_duration(double seconds);

}  // namespace brainspade
