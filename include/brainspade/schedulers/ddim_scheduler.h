#pragma once
/// DDIM (Song et al. 2021, eq. 12 and 16) with η; η = 0 is deterministic, η = 1 is what brainSPADE samples with.
///
/// Timestep grids for S steps out of T (c = T / S, integer division):
///   "compvis" (default; the authors' CompVis `make_ddim_timesteps(uniform)`): t ∈ {0, c, 2c, ...} + 1, all
///             values < T (so S = 80 gives 84 steps), and the step from the smallest t goes to ᾱ_prev = ᾱ_0;
///   "leading" (diffusers): t ∈ {0, c, ..., (S−1)c}, and the last step goes to ᾱ_prev = 1 (set_alpha_to_one).
/// Noise comes from the optional generator as in DDPMScheduler (global generator when absent).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/schedulers/noise_schedule.h"

namespace brainspade {

struct DDIMSchedulerOptions {
  int64_t num_train_timesteps = 1000;
  std::string beta_schedule = "scaled_linear";
  double beta_start = 0.0015;
  double beta_end = 0.0195;
  std::string prediction_type = "epsilon";  ///< epsilon | v_prediction | sample
  std::string timestep_spacing = "compvis";   ///< compvis | leading
  double eta = 1.0;                            ///< 0 deterministic DDIM, 1 DDPM-like variance
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  void visit(ConfigVisitor& v);
};

class DDIMScheduler {
 public:
  explicit DDIMScheduler(const DDIMSchedulerOptions& options = {});

  /// Builds the grid for S steps (see the header comment); timesteps() is then descending.
  void set_timesteps(int64_t num_inference_steps);
  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  /// ᾱ of the grid point after t (the target of step(t)).
  double alpha_bar_prev(int64_t t) const;

  torch::Tensor add_noise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;
  torch::Tensor get_velocity(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;

  /// x_prev = √ᾱ_prev x0̂ + √(1 − ᾱ_prev − σ²) ε̂ + σ z, σ = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev).
  /// t must be a grid point (set_timesteps first). No noise is drawn when σ = 0.
  StepOutput step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                  std::optional<torch::Generator> generator = std::nullopt) const;

  const DDIMSchedulerOptions& options() const { return options_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

 private:
  DDIMSchedulerOptions options_;
  torch::Tensor betas_, alphas_cumprod_;
  std::vector<double> ab_;
  std::vector<int64_t> timesteps_;
  int64_t step_ratio_ = 0;
};

}  // namespace brainspade
