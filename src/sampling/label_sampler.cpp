#include "brainspade/sampling/label_sampler.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "brainspade/core/error.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/data/slicing.h"
#include "brainspade/schedulers/ddim_scheduler.h"
#include "brainspade/schedulers/dpm_solver.h"
#include "../schedulers/schedule_keys.h"

namespace brainspade {

void LabelSamplerOptions::visit(ConfigVisitor& v) {
  v.choice("sampler", sampler, {"ddpm", "ddim", "dpmpp_2m", "dpmpp_2m_sde"},
           "reverse process: ddpm (paper, 1000 steps), ddim (authors' pipeline), dpmpp_2m (DPM-Solver++ 2M, the ODE) or "
           "dpmpp_2m_sde (its stochastic form: noise every step, as DDIM eta 1)");
  v("steps", steps, "reverse steps (DDPM with fewer than T steps uses a strided grid)", Bounds::range(1, 1000));
  v("eta", eta, "DDIM eta: 0 deterministic, 1 as the authors", Bounds::unit());
  v.choice("timestep_spacing", timestep_spacing, {"auto", "compvis", "leading", "linspace"},
           "timestep grid: auto = compvis for ddim, linspace for dpmpp_2m(_sde); ddim takes compvis or leading, "
           "dpmpp_2m(_sde) linspace or leading");
  v("use_karras_sigmas", use_karras_sigmas, "dpmpp_2m(_sde): noise levels spaced as Karras et al. 2022 (rho 7)");
  v("guidance_scale", guidance_scale, "classifier-free guidance scale; 1 = off (needs an LDM trained with cfg_dropout)",
    Bounds::non_negative());
  v("background_threshold", background_threshold, "tissue probability below which a pixel becomes background",
    Bounds::unit());
  v("lesion_probability", lesion_probability, "P(lesion flag = 1) per conditioned lesion; empty = 0.5 each", Bounds::unit());
  v("lesion_combinations", lesion_combinations, "each map's lesion flags drawn uniformly from these: lesion names "
    "joined by '+', or none (e.g. [tumour+edema, edema, none]); empty = lesion_probability");
  v("slice_range", slice_range, "slice position range [lo, hi] in [0, 1]", Bounds::unit());
  v("lesion_redraw", lesion_redraw, "redraws (fresh noise, same conditions) of a map whose lesions disagree with its "
    "flags (a flagged lesion absent or an unflagged one present); 0 = off", Bounds::range(0, 1000));
  v("lesion_min_pixels", lesion_min_pixels, "lesion_redraw's rule: a map holds a lesion with at least this many pixels "
    "of PV > 0.5, counted at 192x256 (scaled by area)", Bounds::at_least(1));
  v("implausible_redraw", implausible_redraw, "redraws (fresh noise, same conditions) of a map no brain slice looks "
    "like: brain on more than max_border_share of the frame's outer ring or on less than min_brain_share of the frame; "
    "0 = off", Bounds::range(0, 1000));
  v("max_border_share", max_border_share, "implausible_redraw's rule: most brain allowed on the frame's outer ring "
    "(H/48 pixels wide), as a share of the ring", Bounds::unit());
  v("min_brain_share", min_brain_share, "implausible_redraw's rule: least brain allowed, as a share of the frame",
    Bounds::unit());
  v("batch_size", batch_size, "samples per forward pass", Bounds::at_least(1));
  v.choice("dtype", dtype, {"float32", "bfloat16"},
           "U-Net compute dtype (bfloat16: a bf16 copy of the U-Net; scheduler and decode stay float32)");
}

namespace {
/// A copy of `unet` with its weights in `dtype`, in eval mode; the caller's network is left untouched
/// (casting it in place and back would round its float32 weights). Building the copy initialises fresh
/// weights, so the global generator's state is saved and restored to keep other consumers reproducible.
DiffusionUNet unet_copy_in_dtype(const DiffusionUNet& unet, torch::ScalarType dtype) {
  auto global = at::detail::getDefaultCPUGenerator();
  auto state = global.get_state();
  DiffusionUNet copy(unet->options);
  global.set_state(state);
  torch::NoGradGuard no_grad;
  auto src_params = unet->named_parameters(true);
  for (auto& p : copy->named_parameters(true)) p.value().copy_(src_params[p.key()]);
  auto src_buffers = unet->named_buffers(true);
  for (auto& b : copy->named_buffers(true)) b.value().copy_(src_buffers[b.key()]);
  copy->to(unet->parameters().front().device(), dtype);
  copy->eval();
  return copy;
}
}  // namespace

namespace {
// lesion_combinations → [M, L] 0/1 flags in the order of c.lesions; InputError naming the key and an unknown lesion.
torch::Tensor lesion_combination_flags(const ConditioningOptions& c, const std::vector<std::string>& combinations) {
  const int64_t L = static_cast<int64_t>(c.lesions.size());
  BRAINSPADE_CHECK_INPUT(L > 0, "config key 'sampler.lesion_combinations': the LDM is not conditioned on lesions");
  auto flags = torch::zeros({static_cast<int64_t>(combinations.size()), L});
  for (size_t m = 0; m < combinations.size(); ++m) {
    if (combinations[m] == "none") continue;
    std::string rest = combinations[m];
    while (true) {
      const size_t plus = rest.find('+');
      const std::string name = rest.substr(0, plus);
      auto it = std::find(c.lesions.begin(), c.lesions.end(), name);
      BRAINSPADE_CHECK_INPUT(it != c.lesions.end(), "config key 'sampler.lesion_combinations': '", combinations[m],
                             "' names '", name, "', not a lesion of the LDM's conditioning (", fmt::format("{}", fmt::join(c.lesions, ", ")),
                             "); join lesion names with '+', or write none");
      flags[static_cast<int64_t>(m)][it - c.lesions.begin()] = 1.0;
      if (plus == std::string::npos) break;
      rest = rest.substr(plus + 1);
    }
  }
  return flags;
}
}  // namespace

torch::Tensor draw_conditions(const ConditioningOptions& c, const LabelSamplerOptions& o, int64_t batch, at::Generator& gen) {
  check_lo_hi(o.slice_range, "slice_range");
  BRAINSPADE_CHECK_INPUT(o.lesion_probability.empty() || o.lesion_probability.size() == c.lesions.size(),
                         "config key 'lesion_probability' has ", o.lesion_probability.size(), " values but the LDM is conditioned on ",
                         c.lesions.size(), " lesions");
  std::vector<torch::Tensor> cols;
  if (!o.lesion_combinations.empty()) {
    auto table = lesion_combination_flags(c, o.lesion_combinations);  // [M, L]
    auto pick = torch::randint(table.size(0), {batch}, gen);
    auto flags = table.index_select(0, pick);  // [B, L]
    for (int64_t i = 0; i < flags.size(1); ++i) cols.push_back(flags.select(1, i).contiguous());
  } else {
    for (size_t i = 0; i < c.lesions.size(); ++i) {
      double p = o.lesion_probability.empty() ? 0.5 : o.lesion_probability[i];
      cols.push_back((torch::rand({batch}, gen) < p).to(torch::kFloat));
    }
  }
  if (c.slice_position)
    cols.push_back(o.slice_range[0] + (o.slice_range[1] - o.slice_range[0]) * torch::rand({batch}, gen));
  if (cols.empty()) return torch::zeros({batch, 0});
  return torch::stack(cols, 1);
}

torch::Tensor postprocess_labels(const torch::Tensor& decoded, double threshold) {
  auto x = decoded.clone();
  auto tissue_max = std::get<0>(x.slice(1, 1).max(1));  // [B, H, W]
  auto bg = x.select(1, 0);
  bg.masked_fill_(tissue_max < threshold, 1.0);
  x.clamp_(0.0, 1.0);
  return x / x.sum(1, true).clamp_min(1e-6);
}

namespace {
// The scheduler of the chosen sampler with its reverse-process grid set.
struct ReverseProcess {
  std::shared_ptr<DDPMScheduler> ddpm;
  std::shared_ptr<DDIMScheduler> ddim;                // set when sampler is ddim
  std::shared_ptr<DPMSolverMultistepScheduler> dpm;  // set when sampler is dpmpp_2m(_sde) (keeps the previous x0)
  std::vector<int64_t> timesteps;
};

ReverseProcess make_reverse_process(const LabelGenerator& g, const LabelSamplerOptions& o) {
  ReverseProcess rp;
  const auto& s = g.scheduler;
  auto spacing = [&](const char* automatic, std::initializer_list<const char*> allowed) {
    const std::string v = o.timestep_spacing == "auto" ? automatic : o.timestep_spacing;
    for (const char* a : allowed)
      if (v == a) return v;
    throw input_error("config key 'sampler.timestep_spacing': '", o.timestep_spacing, "' is not a grid of sampler ",
                      o.sampler, " (it takes auto, ", *allowed.begin(), " or ", *(allowed.begin() + 1), ")");
  };
  try {
    if (o.sampler == "ddim") {
      DDIMSchedulerOptions d;
      copy_schedule(s, d);
      d.clip_sample = s.clip_sample;
      d.clip_sample_range = s.clip_sample_range;
      d.eta = o.eta;
      d.timestep_spacing = spacing("compvis", {"compvis", "leading"});
      rp.ddim = std::make_shared<DDIMScheduler>(d);
      rp.ddim->set_timesteps(o.steps);
      rp.timesteps = rp.ddim->timesteps();
    } else if (o.sampler == "dpmpp_2m" || o.sampler == "dpmpp_2m_sde") {
      DPMSolverOptions d;
      copy_schedule(s, d);
      d.algorithm_type = o.sampler == "dpmpp_2m_sde" ? "sde-dpmsolver++" : "dpmsolver++";
      d.timestep_spacing = spacing("linspace", {"linspace", "leading"});
      d.use_karras_sigmas = o.use_karras_sigmas;
      rp.dpm = std::make_shared<DPMSolverMultistepScheduler>(d);
      rp.dpm->set_timesteps(o.steps);
      rp.timesteps = rp.dpm->timesteps();
    } else {
      rp.ddpm = std::make_shared<DDPMScheduler>(s);
      rp.ddpm->set_timesteps(o.steps);
      rp.timesteps = rp.ddpm->timesteps();
    }
  } catch (const c10::Error& e) {  // a steps value the grid cannot use is a config problem
    throw input_error("config key 'sampler.steps' (", o.steps, " with sampler ", o.sampler, "): ", e.msg());
  }
  return rp;
}
}  // namespace

namespace {
// The label channel of each conditioned lesion (for sampler.lesion_redraw); InputError for one that is not a channel.
std::vector<int64_t> lesion_channels(const LabelGenerator& g) {
  std::vector<int64_t> out;
  for (const auto& l : g.conditioning.lesions) {
    auto it = std::find(g.channel_names.begin(), g.channel_names.end(), l);
    BRAINSPADE_CHECK_INPUT(it != g.channel_names.end(), "config key 'sampler.lesion_redraw': the LDM's lesion flag '", l,
                           "' is not a label channel of its VAE, so whether a map holds it cannot be judged");
    out.push_back(it - g.channel_names.begin());
  }
  return out;
}
}  // namespace

torch::Tensor implausible_maps(const torch::Tensor& pv, double max_border_share, double min_brain_share) {
  TORCH_CHECK(pv.dim() == 4 && pv.size(1) >= 1, "implausible_maps: pv must be [B, C, H, W], got ", pv.sizes());
  auto brain = (pv.select(1, 0) < 0.5).to(torch::kFloat);  // [B, H, W]
  const int64_t H = brain.size(1), W = brain.size(2), r = std::max<int64_t>(1, H / 48);
  if (2 * r >= H || 2 * r >= W) return brain.flatten(1).mean(1) < min_brain_share;  // too small to have a ring
  auto ring = brain.sum({1, 2}) - brain.slice(1, r, H - r).slice(2, r, W - r).sum({1, 2});  // [B]
  const double ring_px = static_cast<double>(H * W - (H - 2 * r) * (W - 2 * r));
  return (ring / ring_px > max_border_share) | (brain.flatten(1).mean(1) < min_brain_share);
}

torch::Tensor redraw_while(LabelBatch& batch,
                           const std::function<torch::Tensor(const torch::Tensor& pv, const torch::Tensor& cond)>& bad_fn,
                           int64_t max_redraws,
                           const std::function<torch::Tensor(const torch::Tensor& cond, int64_t attempt)>& draw) {
  if (!batch.draws.defined()) batch.draws = torch::ones({batch.pv.size(0)}, torch::kLong);
  auto bad = bad_fn(batch.pv, batch.cond);
  for (int64_t attempt = 1; attempt <= max_redraws && bad.any().item<bool>(); ++attempt) {
    auto rows = bad.nonzero().flatten();  // [n]
    auto again = draw(batch.cond.index_select(0, rows), attempt);
    TORCH_CHECK(again.dim() == 4 && again.size(0) == rows.size(0), "redraw_while: draw gave ", again.sizes(), " for ",
                rows.size(0), " maps");
    batch.pv.index_copy_(0, rows, again.to(batch.pv.scalar_type()));
    batch.draws.index_add_(0, rows, torch::ones_like(rows));
    bad = bad_fn(batch.pv, batch.cond);
  }
  return bad;
}

torch::Tensor lesions_disagree(const torch::Tensor& pv, const torch::Tensor& cond, const std::vector<int64_t>& channels,
                               double min_px) {
  TORCH_CHECK(cond.dim() == 2 && cond.size(1) >= static_cast<int64_t>(channels.size()),
              "lesions_disagree: the conditions must start with one flag per lesion channel");
  auto bad = torch::zeros({pv.size(0)}, torch::kBool);
  for (size_t k = 0; k < channels.size(); ++k)
    bad = bad | (lesion_present(pv, channels[k], min_px) != (cond.select(1, static_cast<int64_t>(k)) > 0.5));
  return bad;
}

void log_implausible(const LabelSamplerOptions& o, int64_t redraws, int64_t implausible, int64_t drawn) {
  if (o.implausible_redraw > 0)
    spdlog::info("sampler.implausible_redraw: {} label redraws in all; {} of {} map(s) still implausible (brain on the "
                 "frame's edge or almost none) after {} (kept as drawn)", redraws, implausible, drawn,
                 o.implausible_redraw);
  else
    spdlog::warn("{} of {} map(s) look like no brain slice (brain on the frame's edge or almost none); "
                 "sampler.implausible_redraw: N redraws them", implausible, drawn);
}

void check_sampler_options(const LabelGenerator& g, const LabelSamplerOptions& o) {
  make_reverse_process(g, o);
  if (!o.lesion_combinations.empty()) lesion_combination_flags(g.conditioning, o.lesion_combinations);
  if (o.lesion_redraw > 0) {
    BRAINSPADE_CHECK_INPUT(!g.conditioning.lesions.empty(),
                           "config key 'sampler.lesion_redraw': the LDM is not conditioned on lesions");
    lesion_channels(g);
  }
}

namespace {
LabelBatch sample_label_batch_inference(LabelGenerator& g, DiffusionUNet& unet, const LabelSamplerOptions& o, int64_t batch,
                                        uint64_t seed, torch::Device device, torch::Tensor cond) {
  const bool bf16 = o.dtype == "bfloat16";
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t K = g.conditioning.dim();
  if (!cond.defined()) cond = draw_conditions(g.conditioning, o, batch, gen);
  BRAINSPADE_CHECK_INPUT(cond.dim() == 2 && cond.size(0) == batch && cond.size(1) == K, "conditions must be [", batch,
                         ", ", K, "]");
  const bool conditioned = g.unet->options.conditioning != "none";
  auto c = conditioned ? cond.to(device) : torch::Tensor();
  const bool guided = conditioned && o.guidance_scale != 1.0;
  // The unconditional branch lacks what the training dropped (conditioning.cfg_drop): all of it, or the flags.
  auto uncond = guided ? g.conditioning.unconditional(c, unet->options.null_cond_value) : torch::Tensor();

  // One step function for either scheduler; the loop below is the same for both.
  ReverseProcess rp = make_reverse_process(g, o);
  const std::vector<int64_t>& timesteps = rp.timesteps;
  auto step = [&](const torch::Tensor& out, int64_t t, const torch::Tensor& x) {
    if (rp.dpm) return rp.dpm->step(out, t, x, gen);  // the ODE draws no noise, the SDE one draw per step
    return rp.ddim ? rp.ddim->step(out, t, x, gen) : rp.ddpm->step(out, t, x, gen);
  };

  const auto compute_dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  // Every step's timestep tensor made once, on the device, before the loop (no host work per step).
  auto all_t = torch::tensor(timesteps, torch::kLong).to(device);  // [S]
  auto x = torch::randn({batch, g.latent_shape[0], g.latent_shape[1], g.latent_shape[2]}, gen).to(device);  // [B, Z, h, w]
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const int64_t t = timesteps[i];
    auto tt = all_t.select(0, static_cast<int64_t>(i)).expand({batch});  // [B]
    auto xin = bf16 ? x.to(compute_dtype) : x;
    torch::Tensor out = guided ? unet->forward_guided(xin, tt, c, o.guidance_scale, uncond) : unet->forward(xin, tt, c);
    x = step(bf16 ? out.to(torch::kFloat) : out, t, x).prev_sample;  // scheduler arithmetic in float32
  }
  auto decoded = g.vae->decode(x / g.latent_scale).to(torch::kCPU, torch::kFloat);
  return {postprocess_labels(decoded, o.background_threshold), cond.cpu()};
}
}  // namespace

LabelBatch sample_label_batch(LabelGenerator& g, const LabelSamplerOptions& o, int64_t batch, uint64_t seed,
                              torch::Device device, torch::Tensor cond) {
  // The bf16 copy is built before InferenceMode so that its parameters are ordinary tensors.
  DiffusionUNet unet = o.dtype == "bfloat16" ? unet_copy_in_dtype(g.unet, torch::kBFloat16) : g.unet;
  LabelBatch out;
  {
    // InferenceMode skips autograd's version counters and view tracking as well as the graph; the kernels are
    // the same as under NoGradGuard, so the samples are bit-identical (tests/test_label_pipeline.cpp checks).
    torch::InferenceMode inference;
    out = sample_label_batch_inference(g, unet, o, batch, seed, device, cond);
    out.draws = torch::ones({batch}, torch::kLong);
    const bool lesions = o.lesion_redraw > 0 && !g.conditioning.lesions.empty();
    const auto channels = lesions ? lesion_channels(g) : std::vector<int64_t>{};
    const double min_px = lesion_min_pixels_at(o.lesion_min_pixels, out.pv.size(2), out.pv.size(3));
    auto disagree = [&](const torch::Tensor& pv, const torch::Tensor& c) {
      return lesions ? lesions_disagree(pv, c, channels, min_px) : torch::zeros({pv.size(0)}, torch::kBool);
    };
    auto implausible = [&](const torch::Tensor& pv) {
      return implausible_maps(pv, o.max_border_share, o.min_brain_share);
    };
    const int64_t tries = std::max(lesions ? o.lesion_redraw : 0, o.implausible_redraw);
    if (tries > 0) {
      // One loop for both rules; fresh noise per attempt (a seed per attempt, so the batch stays reproducible), the
      // same conditions.
      redraw_while(out, [&](const torch::Tensor& pv, const torch::Tensor& c) {
        auto bad = disagree(pv, c);
        return o.implausible_redraw > 0 ? bad | implausible(pv) : bad;
      }, tries, [&](const torch::Tensor& c, int64_t attempt) {
        return sample_label_batch_inference(g, unet, o, c.size(0), derive_seed(seed, 0x7ed7a, static_cast<uint64_t>(attempt)),
                                            device, c).pv;
      });
    }
    out.disagrees = disagree(out.pv, out.cond);
    out.implausible = implausible(out.pv);
  }
  // Hand back ordinary tensors: callers may write into them in place, which inference tensors forbid.
  return {out.pv.clone(), out.cond.clone(), out.draws.clone(), out.disagrees.clone(), out.implausible.clone()};
}

}  // namespace brainspade

#include <filesystem>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"

namespace brainspade {

void LabelSampleJob::visit(ConfigVisitor& v) {
  v.section("run", run);
  v("ldm_checkpoint", ldm_checkpoint, "trained LDM checkpoint (stage ldm)");
  v("vae_checkpoint", vae_checkpoint, "its VAE; empty = the path stored in the LDM checkpoint");
  v("num", num, "number of label maps", Bounds::at_least(1));
  v("real_dataset", real_dataset,
    "slice dataset (.pt) of real label maps: montage_vs_real.png (8 samples above 8 real maps) and "
    "tissue_fractions.csv (% of pixels per argmax tissue, all samples vs all real maps); empty = none");
  v.section("sampler", sampler);
}

void write_slice_nifti(const std::string& path, const torch::Tensor& chw) {
  Volume v;
  v.data = chw.to(torch::kFloat).unsqueeze(1).contiguous();  // [C, 1, H, W]
  write_volume(path, v);
}

void write_label_slice_nifti(const std::string& path, const torch::Tensor& hw) {
  Volume v;
  v.data = hw.to(torch::kFloat).reshape({1, 1, hw.size(-2), hw.size(-1)});  // [1, 1, H, W]
  write_label_volume(path, v);
}

void run_label_sampling(const LabelSampleJob& job) {
  BRAINSPADE_CHECK_INPUT(!job.ldm_checkpoint.empty(), "--ldm: an LDM checkpoint is required");
  torch::Device device = parse_device(job.run.device);
  auto g = load_label_generator(job.ldm_checkpoint, job.vae_checkpoint, device);
  check_sampler_options(g, job.sampler);  // before any output exists
  // Real maps to compare with: 8 rows spread over the dataset, average-pooled to the generator's size.
  std::vector<torch::Tensor> real_tiles;
  torch::Tensor real_counts;  // [C] pixels per argmax class over every real map, at the generator's size
  if (!job.real_dataset.empty()) {
    const SliceDataset ds = SliceDataset::load(job.real_dataset);
    BRAINSPADE_CHECK_INPUT(ds.channel_names == g.channel_names, "config key 'real_dataset': ", job.real_dataset,
                           " has label channels [", fmt::format("{}", fmt::join(ds.channel_names, ", ")),
                           "] but the generator makes [", fmt::format("{}", fmt::join(g.channel_names, ", ")), "]");
    const int64_t h = g.latent_shape[1] * g.vae->downsampling_factor();
    const int64_t w = g.latent_shape[2] * g.vae->downsampling_factor();
    const int64_t f = ds.height() / h;
    BRAINSPADE_CHECK_INPUT(f >= 1 && ds.height() == f * h && ds.width() == f * w, "config key 'real_dataset': ",
                           job.real_dataset, " holds ", ds.height(), "x", ds.width(), " maps, not a multiple of the generated ",
                           h, "x", w);
    auto pooled = f > 1 ? torch::avg_pool2d(ds.labels, f, f, 0, true) : ds.labels;
    real_counts = torch::bincount(pooled.argmax(1).flatten(), {}, pooled.size(1)).to(torch::kDouble);
    for (int64_t k = 0; k < 8 && k < ds.size(); ++k) {
      auto pv = ds.labels[(2 * k + 1) * ds.size() / 16];
      if (f > 1) pv = torch::avg_pool2d(pv.unsqueeze(0), f, f, 0, true)[0];
      real_tiles.push_back(label_to_rgb(pv, g.channel_names));
    }
  }
  const std::string dir = job.run.out_dir + "/labels", records = job.run.out_dir + "/records";
  make_dirs(dir);
  const int64_t B = job.sampler.batch_size, n_batches = (job.num + B - 1) / B;
  auto name = [&](int64_t i, const char* kind) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "/label_%06lld_%s.nii.gz", static_cast<long long>(i), kind);
    return dir + buf;
  };
  Progress progress("sample labels", job.num);
  std::vector<torch::Tensor> montage;
  int64_t redraws = 0, disagreeing = 0, implausible = 0, drawn = 0;  // over the batches drawn by this run
  for (int64_t k = 0; k < n_batches; ++k) {
    const int64_t first = k * B, count = std::min(B, job.num - first);
    bool done = true;
    for (int64_t i = first; i < first + count; ++i) done = done && file_exists(name(i, "seg"));
    if (done && static_cast<int64_t>(montage.size()) >= 8) {
      progress.update(count);
      continue;
    }
    auto batch = sample_label_batch(g, job.sampler, B, derive_seed(job.run.seed, 0x1abe1, k), device);
    redraws += batch.draws.slice(0, 0, count).sum().item<int64_t>() - count;
    disagreeing += batch.disagrees.slice(0, 0, count).sum().item<int64_t>();
    implausible += batch.implausible.slice(0, 0, count).sum().item<int64_t>();
    drawn += count;
    // The batch's conditions, before its segmentations (which mark it finished): conditions.csv is built from these.
    std::string record;
    for (int64_t j = 0; j < count; ++j) {
      std::vector<std::string> row{std::to_string(first + j), "labels/" + std::filesystem::path(name(first + j, "pv")).filename().string()};
      for (int64_t c = 0; c < batch.cond.size(1); ++c) row.push_back(fmt::format("{:.6g}", batch.cond[j][c].item<double>()));
      record += csv_row(row);
    }
    make_dirs(records);
    write_text_atomic(fmt::format("{}/batch_{:06d}.csv", records, k), record);
    for (int64_t j = 0; j < count; ++j) {
      auto pv = batch.pv[j];  // [C, H, W]
      // The segmentation is written last: its presence marks a finished sample.
      write_slice_nifti(name(first + j, "pv"), pv);
      write_label_slice_nifti(name(first + j, "seg"), pv.argmax(0, true));
      if (montage.size() < 16) montage.push_back(label_to_rgb(pv, g.channel_names));
    }
    progress.update(count);
  }
  progress.finish();
  // conditions.csv: one row per map of this run (id, file, one column per condition: lesion flags, slice_position).
  std::vector<std::string> header{"id", "label_pv"};
  for (const auto& l : g.conditioning.lesions) header.push_back(l);
  if (g.conditioning.slice_position) header.push_back("slice_position");
  std::string conditions = csv_row(header);
  for (int64_t k = 0; k < n_batches; ++k) {
    const std::string f = fmt::format("{}/batch_{:06d}.csv", records, k);
    if (file_exists(f)) conditions += read_text(f);
  }
  write_text_atomic(job.run.out_dir + "/conditions.csv", conditions);
  write_montage_png(job.run.out_dir + "/montage.png", montage, 8);
  if (job.sampler.lesion_redraw > 0)
    spdlog::info("sampler.lesion_redraw: {} redraws; {} map(s) drawn now still disagree with their lesion "
                 "flags after {} (kept as drawn)", redraws, disagreeing, job.sampler.lesion_redraw);
  if (job.sampler.implausible_redraw > 0 || implausible > 0) log_implausible(job.sampler, redraws, implausible, drawn);
  spdlog::info("wrote {} label maps to {} (montage: {}/montage.png)", job.num, dir, job.run.out_dir);
  if (!real_tiles.empty()) {
    std::vector<torch::Tensor> both(montage.begin(), montage.begin() + std::min<size_t>(8, montage.size()));
    while (both.size() < 8) both.push_back(torch::zeros_like(real_tiles[0]));
    both.insert(both.end(), real_tiles.begin(), real_tiles.end());
    write_montage_png(job.run.out_dir + "/montage_vs_real.png", both, 8);
    spdlog::info("sampled (top) vs real (bottom, {}): {}/montage_vs_real.png", job.real_dataset, job.run.out_dir);
    // Tissue volumes, sampled vs real: the argmax segmentations of every sample of the run (read back, so resumed
    // runs count all of them) against every real map.
    auto counts = torch::zeros_like(real_counts);
    for (int64_t i = 0; i < job.num; ++i) {
      auto seg = read_volume(name(i, "seg")).data.round().to(torch::kLong).flatten().clamp(0, counts.size(0) - 1);
      counts += torch::bincount(seg, {}, counts.size(0)).to(torch::kDouble);
    }
    auto pct = counts / counts.sum() * 100, real_pct = real_counts / real_counts.sum() * 100;
    std::string csv = "class,sampled_percent,real_percent,ratio\n", line;
    for (int64_t c = 0; c < counts.size(0); ++c) {
      const std::string cname = c < static_cast<int64_t>(g.channel_names.size()) ? g.channel_names[c] : std::to_string(c);
      const double a = pct[c].item<double>(), b = real_pct[c].item<double>();
      csv += fmt::format("{},{:.4f},{:.4f},{}\n", csv_field(cname), a, b, b > 0 ? fmt::format("{:.4f}", a / b) : "");
      line += fmt::format(" {} {:.2f}/{:.2f}", cname, a, b);
    }
    write_text_atomic(job.run.out_dir + "/tissue_fractions.csv", csv);
    spdlog::info("% of pixels per tissue, sampled/real:{} ({}/tissue_fractions.csv)", line, job.run.out_dir);
  }
}

}  // namespace brainspade
