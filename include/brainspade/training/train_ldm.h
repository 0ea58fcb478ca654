#pragma once
/// Stage 2 of the label generator: the latent diffusion model on latents of the frozen VAE
/// (paper §2.2: time-conditioned U-Net, T = 1000, fixed variance, ε-prediction, L1 loss).
#include <string>
#include <vector>

#include "brainspade/core/config.h"
#include "brainspade/models/autoencoder_kl.h"
#include "brainspade/models/diffusion_unet.h"
#include "brainspade/schedulers/ddpm_scheduler.h"
#include "brainspade/training/common.h"
#include "brainspade/training/train_vae.h"
#include "brainspade/inference/label_generator.h"

namespace brainspade {

struct LatentOptions {
  double scale_factor = 1.0;    ///< latents are multiplied by this before diffusion (paper: 1.0)
  bool estimate_scale = false;  ///< use 1/std of the training latents instead (Rombach et al. 2022)
  /// training latents encoded from this many versions of each training slice: the slice itself and copies − 1
  /// spatially augmented ones (section "augment"), encoded once before the first step. 1 = no augmentation.
  int64_t augment_copies = 1;
  void visit(ConfigVisitor& v);
};

struct LDMOptimOptions {
  double lr = 2.5e-5;      ///< authors' Adam learning rate
  /// constant (authors) | cosine: lr follows half a cosine from lr at step 0 to lr_final at the last step
  std::string lr_schedule = "constant";
  double lr_final = 0.0;   ///< cosine's learning rate at the last step
  double ema_decay = 0.0;  ///< EMA of weights for sampling; 0 = off (authors: off)
  std::string loss = "l1"; ///< l1 (paper) | l2
  /// Extra weight of the diffusion loss on latent pixels under a conditioned lesion: 1 + lesion_weight where any
  /// lesion channel of conditioning.lesions has PV > 0.5 (max-pooled to the latent grid), 1 elsewhere. 0 = off (the
  /// authors). A lesion covers 1-3 % of a slice, so without it the flags' share of the loss is tiny.
  double lesion_weight = 0.0;
  /// Training timesteps are drawn as floor(T * u^timestep_power), u ~ U(0, 1): 1 = uniform (the authors); above 1 more
  /// of them fall at low noise, where the fine structure (sulci) is learned: 2 puts half of them below T/4.
  double timestep_power = 1.0;
  void visit(ConfigVisitor& v);
};

/// `batch` training timesteps in [0, T) as optim.timestep_power sets them (uniform: the scheduler's own draw), from
/// the global generator, on `device`.
torch::Tensor sample_training_timesteps(const LDMOptimOptions& o, const DDPMScheduler& sched, int64_t batch,
                                        torch::Device device);

/// Root of `brainspade train ldm --config`.
struct LDMTrainConfig {
  RunOptions run;
  DataSource data;
  std::string vae_checkpoint = "runs/vae/checkpoints/last.ckpt";
  DiffusionUNetOptions unet;
  DDPMSchedulerOptions scheduler;
  ConditioningOptions conditioning;
  LatentOptions latent;
  LabelAugmentOptions augment;  ///< used when latent.augment_copies > 1
  LDMOptimOptions optim;
  TrainLoopOptions train;
  void visit(ConfigVisitor& v);
};

/// Returns the final held-out loss.
double train_ldm(const LDMTrainConfig& cfg, bool resume);

/// The Adam learning rate of optimiser step `step` (0-based) of `steps` under o.lr_schedule.
double ldm_learning_rate(const LDMOptimOptions& o, int64_t step, int64_t steps);

}  // namespace brainspade
