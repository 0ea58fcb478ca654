#include "brainspade/training/common.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"

namespace brainspade {

void TrainLoopOptions::visit(ConfigVisitor& v) {
  v("steps", steps, "optimiser steps in total", Bounds::at_least(1));
  v("batch_size", batch_size, "samples per step (the global batch: split over the ranks of a distributed run, "
    "which must divide it)", Bounds::at_least(1));
  v("log_every", log_every, "write a metrics row every N steps", Bounds::at_least(1));
  v("checkpoint_every", checkpoint_every, "write checkpoints/step_N.ckpt and last.ckpt every N steps", Bounds::at_least(1));
  v("keep_checkpoints", keep_checkpoints, "step checkpoints kept (last.ckpt always kept)", Bounds::at_least(1));
  v("validate_every", validate_every, "validation every N steps; 0 = only at the end", Bounds::non_negative());
  v("val_fraction", val_fraction, "share of subjects (or slices of a single subject) held out", Bounds::range(0.0, 0.9));
  v("grad_clip", grad_clip, "max global gradient norm; 0 = off", Bounds::non_negative());
}

std::vector<int64_t> batch_rows(uint64_t seed, int64_t step, int64_t n_rows, int64_t batch_size) {
  TORCH_CHECK(n_rows > 0, "batch_rows needs at least one row");
  std::vector<int64_t> out;
  out.reserve(batch_size);
  int64_t first = step * batch_size;
  std::vector<int64_t> perm;
  int64_t perm_epoch = -1;
  for (int64_t k = first; k < first + batch_size; ++k) {
    int64_t epoch = k / n_rows;
    if (epoch != perm_epoch) {
      perm.resize(n_rows);
      std::iota(perm.begin(), perm.end(), 0);
      std::mt19937_64 rng(derive_seed(seed, 0xBA7C4ULL, static_cast<uint64_t>(epoch)));
      std::shuffle(perm.begin(), perm.end(), rng);
      perm_epoch = epoch;
    }
    out.push_back(perm[k % n_rows]);
  }
  return out;
}

Split split_rows(const torch::Tensor& subject, const torch::Tensor& slice_index, double val_fraction, uint64_t seed) {
  Split s;
  auto sub = subject.to(torch::kLong).contiguous();
  auto sl = slice_index.to(torch::kLong).contiguous();
  const int64_t n = sub.numel();
  std::set<int64_t> subjects(sub.data_ptr<int64_t>(), sub.data_ptr<int64_t>() + n);
  if (val_fraction <= 0) {
    for (int64_t i = 0; i < n; ++i) s.train.push_back(i);
    return s;
  }
  if (subjects.size() >= 2) {
    std::vector<int64_t> ids(subjects.begin(), subjects.end());
    std::mt19937_64 rng(derive_seed(seed, 0x5B117ULL));
    std::shuffle(ids.begin(), ids.end(), rng);
    int64_t n_val = std::max<int64_t>(1, static_cast<int64_t>(std::llround(val_fraction * ids.size())));
    n_val = std::min<int64_t>(n_val, ids.size() - 1);
    std::set<int64_t> val(ids.begin(), ids.begin() + n_val);
    for (int64_t i = 0; i < n; ++i) (val.count(sub.data_ptr<int64_t>()[i]) ? s.val : s.train).push_back(i);
    return s;
  }
  // One subject: hold out every k-th block of 4 neighbouring slices, so validation slices are not the
  // immediate neighbours of training slices on both sides.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sl.data_ptr<int64_t>()[a] < sl.data_ptr<int64_t>()[b]; });
  int64_t period = std::max<int64_t>(2, static_cast<int64_t>(std::llround(1.0 / val_fraction)));
  for (int64_t r = 0; r < n; ++r) ((r / 4) % period == period / 2 ? s.val : s.train).push_back(order[r]);
  if (s.train.empty() || s.val.empty()) {
    s.train.clear();
    s.val.clear();
    for (int64_t r = 0; r < n; ++r) (r % period == 0 ? s.val : s.train).push_back(order[r]);
  }
  return s;
}

MetricsCsv::MetricsCsv(const std::string& path, int64_t resume_step) : path_(path) {
  if (path.empty()) return;  // a rank other than 0 of a distributed run: writes nothing
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) make_dirs(parent.string());
  if (resume_step <= 0 || !file_exists(path)) {
    std::remove(path.c_str());
    return;
  }
  // Keep the header and the rows up to the resumed step.
  auto records = parse_csv(read_text(path), path);
  if (records.empty()) return;
  columns_ = records[0];
  std::string text = csv_row(columns_);
  for (size_t r = 1; r < records.size(); ++r)
    if (!records[r].empty() && std::atoll(records[r][0].c_str()) <= resume_step) text += csv_row(records[r]);
  write_text_atomic(path, text);
}

void MetricsCsv::write(int64_t step, const std::map<std::string, double>& values) {
  if (path_.empty()) return;
  bool new_file = columns_.empty();
  if (new_file) columns_.push_back("step");
  std::vector<std::string> added;
  for (const auto& kv : values)
    if (std::find(columns_.begin(), columns_.end(), kv.first) == columns_.end()) added.push_back(kv.first);
  if (!new_file && !added.empty() && file_exists(path_)) {
    // A column appears later (e.g. validation metrics): widen the header and pad the earlier rows.
    auto records = parse_csv(read_text(path_), path_);
    std::string text;
    for (size_t r = 0; r < records.size(); ++r) {
      auto row = records[r];
      if (r == 0) row.insert(row.end(), added.begin(), added.end());
      else row.resize(row.size() + added.size());
      text += csv_row(row);
    }
    write_text_atomic(path_, text);
    columns_.insert(columns_.end(), added.begin(), added.end());
    added.clear();
  }
  columns_.insert(columns_.end(), added.begin(), added.end());
  std::vector<std::string> row{std::to_string(step)};
  for (size_t i = 1; i < columns_.size(); ++i) {
    auto it = values.find(columns_[i]);
    std::ostringstream v;  // default stream precision, as the rows have always been written
    if (it != values.end()) v << it->second;
    row.push_back(v.str());
  }
  std::ofstream out(path_, std::ios::app);
  if (new_file) out << csv_row(columns_);
  out << csv_row(row);
}

CheckpointFiles::CheckpointFiles(std::string out_dir, int64_t keep) : dir_(std::move(out_dir) + "/checkpoints"), keep_(keep) {}
std::string CheckpointFiles::last() const { return dir_ + "/last.ckpt"; }

void CheckpointFiles::save(const Checkpoint& ck, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/step_%08lld.ckpt", static_cast<long long>(step));
  ck.save(dir_ + name);
  ck.save(last());
  // A killed run leaves its half-written temporary (write_atomic's name) behind: remove it.
  remove_dead_temporaries(dir_);
  std::vector<std::string> steps;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    auto f = e.path().filename().string();
    if (f.rfind("step_", 0) == 0 && e.path().extension() == ".ckpt") steps.push_back(e.path().string());
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep_ < steps.size(); ++i) std::filesystem::remove(steps[i]);
}

std::optional<Checkpoint> resume_checkpoint(const CheckpointFiles& files, bool resume, const std::string& stage,
                                            const ModelConfig& model) {
  if (!resume) {
    // A fresh run would overwrite another run's checkpoints one by one: refuse before anything is written.
    BRAINSPADE_CHECK_INPUT(!file_exists(files.last()), files.last(), ": the output folder holds another run's ",
                           "checkpoint; continue it with --resume or choose another --out");
    return std::nullopt;
  }
  if (!file_exists(files.last())) {
    spdlog::warn("--resume: no checkpoint at {}, starting from step 0", files.last());
    return std::nullopt;
  }
  auto ck = Checkpoint::load(files.last());
  check_checkpoint_stage(ck, stage);
  const std::string stored = model.normalise ? model.normalise(ck.get_string("model_config"), files.last())
                                             : ck.get_string("model_config");
  if (stored != model.yaml) {
    const std::string keys = describe_config_differences(stored, model.yaml);
    throw input_error(files.last(), ": was trained with different network settings (checkpoint -> config: ",
                      keys.empty() ? std::string("the sections differ") : keys,
                      "); resume needs the same network sections");
  }
  spdlog::info("resuming from {} at step {}", files.last(), ck.get_int("step"));
  return ck;
}

EMA::EMA(const torch::nn::Module& model, double decay) : decay_(decay) {
  for (const auto& p : model.named_parameters(true)) {
    names_.push_back(p.key());
    shadow_.push_back(p.value().detach().clone());
  }
}
void EMA::update(const torch::nn::Module& model) {
  torch::NoGradGuard g;
  auto params = model.named_parameters(true);
  for (size_t i = 0; i < names_.size(); ++i) shadow_[i].mul_(decay_).add_(params[names_[i]].detach(), 1.0 - decay_);
}
void EMA::copy_to(torch::nn::Module& model) const {
  torch::NoGradGuard g;
  auto params = model.named_parameters(true);
  for (size_t i = 0; i < names_.size(); ++i) params[names_[i]].copy_(shadow_[i]);
}
void EMA::save(Checkpoint& ck, const std::string& prefix) const {
  for (size_t i = 0; i < names_.size(); ++i) ck.set(prefix + "." + names_[i], shadow_[i]);
}
void EMA::load(const Checkpoint& ck, const std::string& prefix) {
  torch::NoGradGuard g;
  for (size_t i = 0; i < names_.size(); ++i) shadow_[i].copy_(ck.tensor(prefix + "." + names_[i]));
}

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  double norm = 0.0;
  {
    torch::NoGradGuard g;
    std::vector<torch::Tensor> norms;
    for (const auto& g2 : grads) norms.push_back(g2.norm(2).to(torch::kDouble));
    norm = torch::stack(norms).norm(2).item<double>();
    if (max_norm > 0 && norm > max_norm) {
      double scale = max_norm / (norm + 1e-6);
      for (auto& g2 : grads) g2.mul_(scale);
    }
  }
  return norm;
}

void set_requires_grad(torch::nn::Module& m, bool on) {
  for (auto& p : m.parameters(true)) p.set_requires_grad(on);
}

void keep_every_class_in_training(Split& split, const torch::Tensor& cls, const std::vector<std::string>& names,
                                  const std::string& what) {
  auto c = cls.to(torch::kLong).contiguous();
  const int64_t* cp = c.data_ptr<int64_t>();
  std::set<int64_t> in_train;
  for (int64_t r : split.train) in_train.insert(cp[r]);
  std::vector<int64_t> kept;
  std::map<int64_t, int64_t> moved;
  for (int64_t r : split.val) {
    if (in_train.count(cp[r])) {
      kept.push_back(r);
    } else {
      split.train.push_back(r);
      ++moved[cp[r]];
    }
  }
  split.val = kept;
  for (const auto& [k, n] : moved)
    spdlog::warn("{} {}: all {} of its slices fell into validation; they are trained on instead (it would never be "
                 "learned otherwise)", what, k < static_cast<int64_t>(names.size()) ? names[k] : std::to_string(k), n);
}

void check_networks_fit(const std::string& sections, const std::string& input, const std::function<void()>& dry_run) {
  try {
    torch::NoGradGuard no_grad;
    dry_run();
  } catch (const c10::Error& e) {
    throw input_error("config ", sections, " does not describe a network that works on ", input, ": ",
                      e.msg());
  }
}

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& x : names) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::string slice_shape_string(const torch::Tensor& images) {
  return fmt::format("{}x{}x{} slices", images.size(1), images.size(2), images.size(3));
}

}  // namespace brainspade
