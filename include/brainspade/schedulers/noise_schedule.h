#pragma once
/// Noise schedules (β_t, ᾱ_t) and what every scheduler shares: the step result and x0/ε/v conversions.
///
/// Naming, because the two communities disagree:
///   "linear"        β = linspace(β_start, β_end, T)                      (Ho et al. 2020; MONAI linear_beta;
///                                                                          diffusers "linear")
///   "scaled_linear" β = linspace(√β_start, √β_end, T)²                  (what CompVis latent-diffusion and
///                                                                          brainSPADE's YAML call "linear")
///   "cosine"        ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008,
///                   β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999)                    (Nichol & Dhariwal 2021 eq. 17)
/// Betas are computed in float64 and kept in float64; values are cast to the sample dtype when used.
#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace brainspade {

/// β_0..β_{T-1} as a float64 tensor [T]. InputError-free: bad names are TORCH_CHECK failures because the
/// config's choice() already rejects them.
torch::Tensor make_betas(const std::string& schedule, int64_t num_train_timesteps, double beta_start, double beta_end);

/// ᾱ_t = Π_{s<=t}(1 − β_s), float64 [T].
torch::Tensor alphas_cumprod_from_betas(const torch::Tensor& betas);

/// The result of one reverse step (diffusers `SchedulerOutput`).
struct StepOutput {
  torch::Tensor prev_sample;           ///< x_{t_prev}, same shape as the sample
  torch::Tensor pred_original_sample;  ///< the model's estimate of x0
};

/// x0 and ε implied by a model output of `prediction_type` (epsilon | v_prediction | sample) at ᾱ_t.
/// epsilon: x0 = (x − √(1−ᾱ)ε)/√ᾱ;  v: x0 = √ᾱ x − √(1−ᾱ) v, ε = √ᾱ v + √(1−ᾱ) x;  sample: ε = (x − √ᾱ x0)/√(1−ᾱ).
struct X0Eps {
  torch::Tensor x0, eps;
};
X0Eps predict_x0_eps(const std::string& prediction_type, const torch::Tensor& model_output, const torch::Tensor& sample,
                     double alpha_bar);

/// Per-sample √ᾱ_t and √(1−ᾱ_t) as [B, 1, 1, ...] tensors broadcastable against `like`.
/// t: [B] int64 (any device) with values in [0, T).
std::pair<torch::Tensor, torch::Tensor> sqrt_alpha_terms(const torch::Tensor& alphas_cumprod, const torch::Tensor& t,
                                                         const torch::Tensor& like);

}  // namespace brainspade
