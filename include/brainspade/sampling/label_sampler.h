#pragma once
/// Sampling label maps: conditions → reverse diffusion in latent space → VAE decode → the authors' post-processing.
/// The reverse loop is written once here and only asks the scheduler for step(); it never asks what model it holds.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"
#include "brainspade/inference/label_generator.h"

namespace brainspade {

struct LabelSamplerOptions {
  std::string sampler = "ddim";          ///< ddpm (paper) | ddim (authors' pipeline) | dpmpp_2m (DPM-Solver++ 2M) | dpmpp_2m_sde
  int64_t steps = 50;                    ///< reverse steps (ddpm: 1000 = the full chain)
  double eta = 1.0;                      ///< DDIM η (authors: 1.0)
  /// auto (compvis for ddim, linspace for dpmpp_2m and dpmpp_2m_sde) | compvis | leading | linspace
  std::string timestep_spacing = "auto";
  bool use_karras_sigmas = false;        ///< dpmpp_2m(_sde): Karras et al. 2022 noise levels
  double guidance_scale = 1.0;           ///< classifier-free guidance; 1 = plain conditional sampling
  double background_threshold = 0.075;   ///< pixels whose tissues are all below this become background (authors)
  std::vector<double> lesion_probability;  ///< P(flag = 1) per lesion of the LDM's conditioning; empty = 0.5 each
  /// Each map's lesion flags as one entry drawn uniformly from this list: lesion names joined by '+', or "none" (e.g.
  /// [tumour+edema, edema, none]: a balanced mix of the combinations the cohort holds). Empty = lesion_probability.
  std::vector<std::string> lesion_combinations;
  std::vector<double> slice_range{0.2, 0.5};  ///< slice position drawn uniformly from [lo, hi] (authors: 0.2–0.5)
  /// Redraws (fresh noise, same conditions) of a map whose lesions disagree with its flags — a flagged lesion absent
  /// or an unflagged one present, by the slicing rule (lesion_min_pixels at 192×256, scaled by area); 0 = off. The
  /// label-side analogue of the authors' modality rejection loop for images; not in their label pipeline.
  int64_t lesion_redraw = 0;
  int64_t lesion_min_pixels = 20;  ///< the lesion rule of the redraw: pixels with PV > 0.5, counted at 192×256
  /// Redraws (fresh noise, same conditions) of a map no brain slice looks like (implausible_maps: brain on the
  /// frame's edge, or almost no brain); 0 = off. Not in the authors' pipeline: an LDM trained on ~100 slices draws a
  /// few such maps on some seeds. Shares one loop with lesion_redraw: max(lesion_redraw, implausible_redraw) tries.
  int64_t implausible_redraw = 0;
  double max_border_share = 0.05;  ///< implausible: brain on more than this share of the frame's outer ring
  double min_brain_share = 0.05;   ///< implausible: brain on less than this share of the frame
  int64_t batch_size = 8;
  /// U-Net compute dtype: float32 | bfloat16. bfloat16 runs a bf16 copy of the U-Net (oneDNN's AVX-512-BF16
  /// kernels on CPU); the latent, the scheduler arithmetic and the VAE decode stay float32.
  std::string dtype = "float32";
  void visit(ConfigVisitor& v);
};

/// One batch of sampled labels.
struct LabelBatch {
  torch::Tensor pv;    ///< [B, C, H, W] partial-volume maps, in [0, 1], summing to 1 per pixel (CPU, float32)
  torch::Tensor cond;  ///< [B, K] the conditions used (CPU)
  torch::Tensor draws;  ///< [B] int64: draws each map took (1 = the first; more with sampler.lesion_redraw)
  torch::Tensor disagrees;  ///< [B] bool: lesions still disagree with the flags after every redraw (kept as drawn)
  torch::Tensor implausible;  ///< [B] bool: implausible_maps after every redraw (kept as drawn; judged even when off)
};

/// [B] bool: maps pv [B, C, H, W] (channel 0 = background) no brain slice looks like — brain (background < 0.5) on
/// more than max_border_share of the frame's outer ring (H/48 pixels wide, at least 1: 4 at 192×256, 2 at 96×128), or
/// on less than min_brain_share of the frame. Real slices of the example brain: ring 0 everywhere, brain 0.10–0.40
/// of the frame (0.21–0.40 at positions 0.3–0.7).
torch::Tensor implausible_maps(const torch::Tensor& pv, double max_border_share, double min_brain_share);

/// The redraw loop of sample_label_batch: while bad(pv, cond) [B] bool marks maps of `batch`, replaces those maps by
/// draw(their conditions, attempt) [n, C, H, W], at most max_redraws times; counts each map's draws in batch.draws
/// and returns bad() of what remains.
torch::Tensor redraw_while(LabelBatch& batch,
                           const std::function<torch::Tensor(const torch::Tensor& pv, const torch::Tensor& cond)>& bad,
                           int64_t max_redraws,
                           const std::function<torch::Tensor(const torch::Tensor& cond, int64_t attempt)>& draw);

/// [B] bool: maps of pv [B, C, H, W] whose lesions disagree with their flags cond [B, K] (flag k on <=> the map holds
/// channel channels[k], lesion_present with min_px): sampler.lesion_redraw's rule for redraw_while.
torch::Tensor lesions_disagree(const torch::Tensor& pv, const torch::Tensor& cond, const std::vector<int64_t>& channels,
                               double min_px);

/// Logs what implausible_redraw did (or, when off, how many of the `drawn` maps it would have redrawn).
void log_implausible(const LabelSamplerOptions& o, int64_t redraws, int64_t implausible, int64_t drawn);

/// Draws B conditions from `gen`: lesion flags ~ Bernoulli(p) (or one of lesion_combinations, uniformly), slice
/// position ~ U(slice_range).
torch::Tensor draw_conditions(const ConditioningOptions& c, const LabelSamplerOptions& o, int64_t batch, at::Generator& gen);

/// InputError naming 'sampler.steps' when the sampler cannot build its reverse-process grid with these options (e.g.
/// DDIM with CompVis spacing and 3 steps reaches t = T), or 'sampler.lesion_combinations' naming a lesion the LDM is
/// not conditioned on; call before writing any output.
void check_sampler_options(const LabelGenerator& g, const LabelSamplerOptions& o);

/// Samples a batch. All randomness (conditions when `cond` is undefined, initial noise, step noise) comes from
/// `seed`, so the same (seed, batch size, options) gives the same tensors on CPU whatever ran before.
LabelBatch sample_label_batch(LabelGenerator& g, const LabelSamplerOptions& o, int64_t batch, uint64_t seed,
                              torch::Device device, torch::Tensor cond = {});

/// The authors' post-processing of decoded maps x [B, C, H, W] (channel 0 = background):
/// x[0] = 1 where max(x[1:]) < threshold, clamp to [0, 1], renormalise so channels sum to 1.
torch::Tensor postprocess_labels(const torch::Tensor& decoded, double background_threshold);

}  // namespace brainspade

namespace brainspade {

/// Root of `brainspade sample labels`.
struct LabelSampleJob {
  RunOptions run;
  std::string ldm_checkpoint;  ///< trained LDM (stage ldm)
  std::string vae_checkpoint;  ///< its VAE; empty = the path stored in the LDM checkpoint
  int64_t num = 16;            ///< label maps to write
  /// slice dataset (.pt) of real label maps: montage_vs_real.png then shows 8 samples above 8 of its maps
  std::string real_dataset;
  LabelSamplerOptions sampler;
  void visit(ConfigVisitor& v);
};

/// Writes <out>/labels/label_<i>_pv.nii.gz (C channels), label_<i>_seg.nii.gz (argmax), conditions.csv,
/// montage.png and, with real_dataset, montage_vs_real.png (samples above real maps at the same size). Batch k holds samples [k·B, (k+1)·B) and is seeded by (seed, k); finished batches are skipped
/// on a rerun, so an interrupted run continues with the same results.
void run_label_sampling(const LabelSampleJob& job);

/// Writes a 2D map [C, H, W] as a NIfTI volume of one axial slice (1 mm spacing) atomically.
void write_slice_nifti(const std::string& path, const torch::Tensor& chw);
/// Writes a hard label map [1, H, W] or [H, W] (class indices) as a one-slice uint8 NIfTI (write_label_volume).
void write_label_slice_nifti(const std::string& path, const torch::Tensor& hw);

}  // namespace brainspade
