#pragma once
/// The one training loop skeleton of every stage: checkpoint files and resume, the broadcast of rank 0's weights,
/// metrics.csv, the stop signal, the progress bar and the log/validate/checkpoint cadence. A trainer registers the
/// networks and optimisers its checkpoints hold, calls begin(), and writes only its step body and its validation:
///
///   StageRun run("vae", "train vae", cfg.run, cfg.train, dump_config(cfg), model_section("vae", cfg.vae));
///   run.track("vae", *vae);  run.track("optim_g", opt_g);  run.on_save([&](Checkpoint& ck) { ... });
///   for (int64_t step = run.begin(resume); step < cfg.train.steps;) {
///     if (run.interrupted(step)) return ...;
///     ... one optimiser step ...;  ++step;
///     run.check_finite(loss, step, "VAE loss");
///     if (run.log_due(step)) { auto row = run.reduce({...}); if (run.validate_due(step)) ...; run.log(step, row, note); }
///     run.checkpoint_if_due(step);
///   }
///   run.finish(note);
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/training/common.h"

namespace brainspade {

class StageRun {
 public:
  /// `stage` is written into every checkpoint and checked on resume; `progress_label` names the progress bar;
  /// `config_yaml` is the resolved config stored with the weights; `model` the networks' sections, which a resumed
  /// run must match and later stages rebuild the networks from (stored as `model_config`).
  StageRun(std::string stage, std::string progress_label, const RunOptions& run, const TrainLoopOptions& loop,
           std::string config_yaml, ModelConfig model);

  /// State every checkpoint holds, registered before begin(): restored on resume in the order registered (modules,
  /// then optimisers), saved under the same keys.
  void track(const std::string& key, torch::nn::Module& module);
  void track(const std::string& key, torch::optim::Optimizer& optimizer);
  /// Stage-specific checkpoint fields (channel names, EMA weights, ...): `write` adds them at every save, `read`
  /// restores them from the checkpoint a run resumes from.
  void on_save(std::function<void(Checkpoint&)> write);
  void on_resume(std::function<void(const Checkpoint&)> read);

  /// Resumes from the run's last.ckpt when `resume` is set and one exists (InputError for another stage or another
  /// network), checks that every rank starts at the same step, broadcasts the tracked networks from rank 0, opens
  /// metrics.csv (dropping rows past the resumed step), installs the Ctrl-C handler and starts the progress bar.
  /// Returns the step to continue from (0 for a fresh run).
  int64_t begin(bool resume);

  /// Before a step: true when Ctrl-C or SIGTERM reached any rank; a checkpoint of `step` has then been written.
  bool interrupted(int64_t step);
  /// Throws std::runtime_error when `value` is not finite, naming `what`, the step and the last good checkpoint.
  void check_finite(double value, int64_t step, const std::string& what, const std::string& hint = "") const;
  /// After step `step` (1-based count of steps done): a metrics row is due every log_every steps and at the end.
  bool log_due(int64_t step) const;
  /// Validation is rank 0's, at log steps that are multiples of validate_every (0: never) and at the last step.
  bool validate_due(int64_t step) const;
  /// The mean of `row` over the ranks (the losses of the global batch); `row` itself on one process.
  std::map<std::string, double> reduce(std::map<std::string, double> row);
  /// Writes `row` to metrics.csv (rank 0) and advances the progress bar by log_every steps with `note`.
  void log(int64_t step, const std::map<std::string, double>& row, const std::string& note);
  /// Writes a checkpoint every checkpoint_every steps and at the last step.
  void checkpoint_if_due(int64_t step);
  /// Writes checkpoints/step_<step>.ckpt and last.ckpt (rank 0 only; the others return at once).
  void save(int64_t step);
  /// Ends the progress bar with `note` (rank 0).
  void finish(const std::string& note = "");

  bool is_main() const;
  /// <out_dir>/<name>.
  std::string path(const std::string& name) const;
  std::string metrics_path() const { return path("metrics.csv"); }
  std::string last_checkpoint() const { return files_.last(); }

 private:
  std::string stage_, label_, config_yaml_;
  ModelConfig model_;
  std::string out_dir_;
  const TrainLoopOptions& loop_;
  CheckpointFiles files_;
  std::vector<std::pair<std::string, torch::nn::Module*>> modules_;
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers_;
  std::vector<std::function<void(Checkpoint&)>> writers_;
  std::vector<std::function<void(const Checkpoint&)>> readers_;
  std::unique_ptr<MetricsCsv> metrics_;
  std::unique_ptr<Progress> progress_;
};

}  // namespace brainspade
