#pragma once
/// Ctrl-C and SIGTERM as a flag: training loops and the samplers check it between steps or batches, save what they
/// have and return, so that the same command continues where they stopped.

namespace brainspade {

/// Set by SIGINT/SIGTERM; loops check it between steps, save a checkpoint and return.
class StopSignal {
 public:
  /// Installs the handlers (idempotent). A second Ctrl-C kills the process at once.
  static void install();
  static bool requested();
  static void reset();  ///< for tests
  static void request();
};

}  // namespace brainspade
