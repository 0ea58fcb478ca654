#pragma once
/// Undoing a run's start when its command stops on bad input (kept out of runtime.h, which most files include).
namespace brainspade {

/// Undoes the last start_run() when nothing else has been written to the run folder since: removes the log file and
/// config.yaml it created (or restores the earlier ones: a previous log is cut back to its old length) and the folders
/// it made. The program calls this when a command fails with InputError, so that bad input leaves no output behind
/// and never changes another run's folder. A run that already wrote anything else (checkpoints, records) is left as
/// it is. Returns true when it undid something.
bool abandon_run();

}  // namespace brainspade
