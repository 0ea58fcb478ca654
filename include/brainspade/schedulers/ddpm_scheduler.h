#pragma once
/// DDPM (Ho et al. 2020, eq. 6–7 and Algorithm 2) in the diffusers `DDPMScheduler` form, defaults set to
/// brainSPADE's latent diffusion model (T 1000, scaled-linear 0.0015 → 0.0195, ε-prediction, fixed small
/// variance, no clipping).
///
/// Noise: every function that draws noise takes an optional torch::Generator; without one it uses the global
/// generator of the sample's device. With a (CPU) generator the noise is drawn on CPU and moved, so results
/// do not depend on the device (nn::randn_like).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/schedulers/noise_schedule.h"

namespace brainspade {

struct DDPMSchedulerOptions {
  int64_t num_train_timesteps = 1000;
  std::string beta_schedule = "scaled_linear";  ///< linear | scaled_linear | cosine (see noise_schedule.h)
  double beta_start = 0.0015;
  double beta_end = 0.0195;
  std::string prediction_type = "epsilon";  ///< epsilon | v_prediction | sample
  std::string variance_type = "fixed_small";  ///< fixed_small (β̃_t, posterior) | fixed_large (β_t)
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  void visit(ConfigVisitor& v);
};

class DDPMScheduler {
 public:
  explicit DDPMScheduler(const DDPMSchedulerOptions& options = {});

  /// S reverse steps on the grid t = (S−1−i)·(T/S) (diffusers "leading"); S = T is plain DDPM.
  void set_timesteps(int64_t num_inference_steps);
  /// Timesteps of the reverse loop, descending.
  const std::vector<int64_t>& timesteps() const { return timesteps_; }

  /// q(x_t | x0): √ᾱ_t x0 + √(1−ᾱ_t) noise. x0, noise: [B, ...], t: [B] int64.
  torch::Tensor add_noise(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;
  /// v = √ᾱ_t ε − √(1−ᾱ_t) x0 (Salimans & Ho 2022 §4).
  torch::Tensor get_velocity(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;
  /// What the network learns to output for prediction_type: ε, v or x0.
  torch::Tensor training_target(const torch::Tensor& x0, const torch::Tensor& noise, const torch::Tensor& t) const;

  /// One reverse step from timestep t (one of timesteps()) to the previous grid point: posterior mean
  /// μ̃(x0̂, x_t) plus √variance·z for t > 0 (Ho et al. 2020 eq. 7). sample, model_output: [B, ...].
  StepOutput step(const torch::Tensor& model_output, int64_t t, const torch::Tensor& sample,
                  std::optional<torch::Generator> generator = std::nullopt) const;

  const DDPMSchedulerOptions& options() const { return options_; }
  const torch::Tensor& betas() const { return betas_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }  ///< float64 [T]
  /// Draws timesteps uniformly from [0, T) for training: [batch] int64 on `device`.
  torch::Tensor sample_timesteps(int64_t batch, torch::Device device = torch::kCPU,
                                 std::optional<torch::Generator> generator = std::nullopt) const;

 private:
  DDPMSchedulerOptions options_;
  torch::Tensor betas_, alphas_cumprod_;
  std::vector<double> ab_;  // ᾱ as doubles for scalar use
  std::vector<int64_t> timesteps_;
  int64_t step_ratio_ = 1;
};

}  // namespace brainspade
