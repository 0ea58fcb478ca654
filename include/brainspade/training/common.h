#pragma once
/// What every training stage shares: the loop settings, deterministic batches, checkpoint files,
/// metrics CSV, Ctrl-C handling and resume. One train function per stage builds on these.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/config.h"
#include "brainspade/core/stop_signal.h"

namespace brainspade {

/// Loop settings shared by every stage (`train:` section of a training config).
struct TrainLoopOptions {
  int64_t steps = 1000;           ///< optimiser steps in total
  int64_t batch_size = 8;         ///< GLOBAL batch: split evenly over the ranks of a distributed run
  int64_t log_every = 10;         ///< metrics row + progress every N steps
  int64_t checkpoint_every = 200; ///< write checkpoints/step_N.ckpt and last.ckpt every N steps
  int64_t keep_checkpoints = 3;   ///< how many step_N.ckpt to keep (last.ckpt always kept)
  int64_t validate_every = 200;   ///< run validation every N steps (0 = only at the end)
  double val_fraction = 0.1;      ///< share of subjects (or slices when only one subject) held out for validation
  double grad_clip = 1.0;         ///< max global grad norm (0 = off)
  void visit(ConfigVisitor& v);
};


/// Row indices of the batch used at `step`: epoch-wise permutations derived from (seed, epoch), so any step's
/// batch is known without replaying earlier ones (exact resume) and every row is seen once per epoch.
std::vector<int64_t> batch_rows(uint64_t seed, int64_t step, int64_t n_rows, int64_t batch_size);

/// Splits rows into train/validation by subject (every slice of a subject on one side).
/// With a single subject, contiguous slabs of slices are held out instead (documented in docs/training.md).
struct Split {
  std::vector<int64_t> train, val;
};
Split split_rows(const torch::Tensor& subject, const torch::Tensor& slice_index, double val_fraction, uint64_t seed);
/// Moves to training every validation row of a class (`cls` [N] int64 index into `names`, e.g. the modality) that
/// has no training row, with a warning naming it and `what`: a contrast with a single slice must be trained on.
void keep_every_class_in_training(Split& split, const torch::Tensor& cls, const std::vector<std::string>& names,
                                  const std::string& what);

/// Appends rows to <dir>/metrics.csv; on resume drops rows past the resumed step so the file stays consistent.
/// An empty path writes nothing (the ranks other than 0 of a distributed run).
class MetricsCsv {
 public:
  MetricsCsv(const std::string& path, int64_t resume_step);
  void write(int64_t step, const std::map<std::string, double>& values);

 private:
  std::string path_;
  std::vector<std::string> columns_;
};

/// Checkpoint files of a run: <out>/checkpoints/step_<N>.ckpt and <out>/checkpoints/last.ckpt.
class CheckpointFiles {
 public:
  CheckpointFiles(std::string out_dir, int64_t keep);
  std::string last() const;
  /// Writes step_N.ckpt and last.ckpt atomically, then prunes old step files.
  void save(const Checkpoint& ck, int64_t step);

 private:
  std::string dir_;
  int64_t keep_;
};

/// A stage's network sections as stored in its checkpoints (`yaml`), and how to read an older checkpoint's copy
/// through today's keys (`normalise`: keys added since take their defaults, renamed keys their new names; the
/// result is dumped again, comparable with `yaml`). Built with model_section(); sections add up with +.
struct ModelConfig {
  std::string yaml;
  std::function<std::string(const std::string& stored, const std::string& what)> normalise;
};
template <class T>
ModelConfig model_section(const char* key, const T& value) {
  return {dump_section(key, value), [key](const std::string& stored, const std::string& what) {
            return dump_section(key, load_section<T>(key, stored, what));
          }};
}
inline ModelConfig operator+(ModelConfig a, ModelConfig b) {
  auto na = std::move(a.normalise), nb = std::move(b.normalise);
  return {a.yaml + b.yaml, [na, nb](const std::string& stored, const std::string& what) {
            return na(stored, what) + nb(stored, what);
          }};
}

/// The checkpoint to continue from: with `resume`, the run's last.ckpt when it exists, checked to be of `stage` and
/// to hold the same network sections as `model` (read through today's keys, so a checkpoint from before a key was
/// added or renamed still resumes; InputError naming each differing key otherwise); nullopt for a fresh start (a
/// warning when --resume found nothing). The caller restores its networks and optimizers and continues at
/// get_int("step").
std::optional<Checkpoint> resume_checkpoint(const CheckpointFiles& files, bool resume, const std::string& stage,
                                            const ModelConfig& model);

/// Exponential moving average of a module's parameters (diffusion models), stored beside the weights.
class EMA {
 public:
  EMA(const torch::nn::Module& model, double decay);
  void update(const torch::nn::Module& model);
  /// Copies the averaged weights into `model` (e.g. before saving a sampling copy).
  void copy_to(torch::nn::Module& model) const;
  void save(Checkpoint& ck, const std::string& prefix) const;
  void load(const Checkpoint& ck, const std::string& prefix);

 private:
  double decay_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> shadow_;
};

/// Global gradient-norm clipping that returns the norm before clipping (for the metrics).
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

/// Sets every parameter's requires_grad (freezing a network).
/// Runs `dry_run` — building the networks of config section(s) `sections` and passing one zero batch of `input` (e.g.
/// "1x96x128 slices") through them in eval mode without gradients — and turns a LibTorch error into an InputError
/// naming both, so that widths or depths that cannot work on this data (more poolings than the slices allow, widths
/// that GroupNorm cannot split) exit with code 2 before the first step instead of crashing inside it. Eval-mode
/// passes of zeros change no weight, buffer or random state.
void check_networks_fit(const std::string& sections, const std::string& input, const std::function<void()>& dry_run);
void set_requires_grad(torch::nn::Module& m, bool on);

/// "a,b,c" (class names in messages).
std::string join_names(const std::vector<std::string>& names);
/// "1x96x128 slices" for images [N, C, H, W] (check_networks_fit's input description).
std::string slice_shape_string(const torch::Tensor& images);

}  // namespace brainspade
