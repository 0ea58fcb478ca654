#include "brainspade/core/stop_signal.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

namespace brainspade {

namespace {
std::atomic<int> g_stop{0};
void on_signal(int) {
  if (g_stop.fetch_add(1) >= 1) std::_Exit(130);  // second Ctrl-C: leave at once
}
}  // namespace

void StopSignal::install() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
bool StopSignal::requested() { return g_stop.load() > 0; }
void StopSignal::reset() { g_stop.store(0); }
void StopSignal::request() { g_stop.store(1); }

}  // namespace brainspade
