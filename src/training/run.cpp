#include "brainspade/training/run.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"

namespace brainspade {

StageRun::StageRun(std::string stage, std::string progress_label, const RunOptions& run, const TrainLoopOptions& loop,
                   std::string config_yaml, ModelConfig model)
    : stage_(std::move(stage)),
      label_(std::move(progress_label)),
      config_yaml_(std::move(config_yaml)),
      model_(std::move(model)),
      out_dir_(run.out_dir),
      loop_(loop),
      files_(run.out_dir, loop.keep_checkpoints) {}

void StageRun::track(const std::string& key, torch::nn::Module& module) { modules_.emplace_back(key, &module); }
void StageRun::track(const std::string& key, torch::optim::Optimizer& optimizer) {
  optimizers_.emplace_back(key, &optimizer);
}
void StageRun::on_save(std::function<void(Checkpoint&)> write) { writers_.push_back(std::move(write)); }
void StageRun::on_resume(std::function<void(const Checkpoint&)> read) { readers_.push_back(std::move(read)); }

int64_t StageRun::begin(bool resume) {
  Distributed& dist = distributed();
  int64_t start = 0;
  if (auto ck = resume_checkpoint(files_, resume, stage_, model_)) {
    for (auto& [key, m] : modules_) ck->load_module(key, *m, files_.last());
    for (auto& [key, o] : optimizers_) ck->load_optimizer(key, *o);
    for (auto& read : readers_) read(*ck);
    start = ck->get_int("step");
  }
  dist.check_same(start, "the step to resume from");
  for (auto& [key, m] : modules_) dist.broadcast_parameters(*m);
  metrics_ = std::make_unique<MetricsCsv>(dist.is_main() ? metrics_path() : "", start);
  StopSignal::install();
  progress_ = std::make_unique<Progress>(label_, loop_.steps, start);
  return start;
}

bool StageRun::interrupted(int64_t step) {
  if (!distributed().any(StopSignal::requested())) return false;
  spdlog::warn("interrupted: saving a checkpoint at step {} (continue with --resume)", step);
  save(step);
  return true;
}

void StageRun::check_finite(double value, int64_t step, const std::string& what, const std::string& hint) const {
  if (!std::isfinite(value))
    throw std::runtime_error(what + " is not finite at step " + std::to_string(step) + hint +
                             "; last good checkpoint: " + files_.last());
}

bool StageRun::log_due(int64_t step) const { return step % loop_.log_every == 0 || step == loop_.steps; }

bool StageRun::validate_due(int64_t step) const {
  return is_main() && ((loop_.validate_every > 0 && step % loop_.validate_every == 0) || step == loop_.steps);
}

std::map<std::string, double> StageRun::reduce(std::map<std::string, double> row) {
  distributed().all_reduce_mean(row);
  return row;
}

void StageRun::log(int64_t step, const std::map<std::string, double>& row, const std::string& note) {
  metrics_->write(step, row);
  progress_->update(loop_.log_every, note);
}

void StageRun::checkpoint_if_due(int64_t step) {
  if (step % loop_.checkpoint_every == 0 || step == loop_.steps) save(step);
}

void StageRun::save(int64_t step) {
  if (!is_main()) return;  // one checkpoint writer
  Checkpoint ck;
  ck.set_string("stage", stage_);
  ck.set_int("step", step);
  ck.set_string("config", config_yaml_);
  ck.set_string("model_config", model_.yaml);
  for (auto& [key, m] : modules_) ck.add_module(key, *m);
  for (auto& [key, o] : optimizers_) ck.add_optimizer(key, *o);
  for (auto& write : writers_) write(ck);
  files_.save(ck, step);
}

void StageRun::finish(const std::string& note) {
  if (is_main() && progress_) progress_->finish(note);
}

bool StageRun::is_main() const { return distributed().is_main(); }

std::string StageRun::path(const std::string& name) const { return out_dir_ + "/" + name; }

}  // namespace brainspade
