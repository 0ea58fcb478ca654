#include "brainspade/training/train_ldm.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/losses/losses.h"
#include "brainspade/training/run.h"

namespace brainspade {

void LatentOptions::visit(ConfigVisitor& v) {
  v("scale_factor", scale_factor, "latents are multiplied by this before diffusion (paper: 1.0)", Bounds::positive());
  v("estimate_scale", estimate_scale, "replace scale_factor by 1/std of the training latents");
  v("augment_copies", augment_copies, "training latents from the slice and copies-1 augmented versions (section augment)",
    Bounds::range(1, 64));
}
void LDMOptimOptions::visit(ConfigVisitor& v) {
  v("lr", lr, "Adam learning rate (authors: 2.5e-5)", Bounds::positive());
  v.choice("lr_schedule", lr_schedule, {"constant", "cosine"},
           "constant (authors) or cosine: half a cosine from lr at step 0 to lr_final at the last step");
  v("lr_final", lr_final, "lr_schedule cosine: the learning rate at the last step", Bounds::at_least(0.0));
  v("ema_decay", ema_decay, "EMA decay of the weights used for sampling; 0 = off", Bounds::range(0.0, 0.99999));
  v.choice("loss", loss, {"l1", "l2"}, "diffusion loss (paper: l1)");
  v("lesion_weight", lesion_weight, "extra loss weight on latent pixels under a conditioned lesion (1 + w there); "
    "0 = off (authors)", Bounds::at_least(0.0));
  v("timestep_power", timestep_power, "training timesteps floor(T u^p), u ~ U(0,1): 1 = uniform (authors); above 1 "
    "more at low noise (fine structure): 2 puts half of them below T/4", Bounds::range(1.0, 10.0));
}
torch::Tensor sample_training_timesteps(const LDMOptimOptions& o, const DDPMScheduler& sched, int64_t batch,
                                        torch::Device device) {
  if (o.timestep_power == 1.0) return sched.sample_timesteps(batch, device);
  const int64_t T = sched.options().num_train_timesteps;
  auto u = torch::rand({batch}, torch::kDouble);
  return (u.pow(o.timestep_power) * static_cast<double>(T)).floor().clamp(0, T - 1).to(torch::kLong).to(device);
}
double ldm_learning_rate(const LDMOptimOptions& o, int64_t step, int64_t steps) {
  if (o.lr_schedule == "constant") return o.lr;
  const double done = steps > 1 ? static_cast<double>(step) / static_cast<double>(steps - 1) : 1.0;
  return o.lr_final + 0.5 * (o.lr - o.lr_final) * (1.0 + std::cos(M_PI * std::min(done, 1.0)));
}

void LDMTrainConfig::visit(ConfigVisitor& v) {
  v.section("run", run);
  v.section("data", data);
  v("vae_checkpoint", vae_checkpoint, "trained VAE (stage vae) whose latents the LDM learns");
  v.section("unet", unet);
  v.section("scheduler", scheduler);
  v.section("conditioning", conditioning);
  v.section("latent", latent);
  v.section("augment", augment);
  v.section("optim", optim);
  v.section("train", train);
}


namespace {
/// Encodes every row with the frozen VAE: posterior mean and log-variance [N, Z, h, w].
std::pair<torch::Tensor, torch::Tensor> encode_all(AutoencoderKL& vae, const torch::Tensor& labels, torch::Device device) {
  torch::NoGradGuard g;
  std::vector<torch::Tensor> means, logvars;
  Progress progress("encode latents", labels.size(0));
  for (int64_t i = 0; i < labels.size(0); i += 16) {
    auto x = labels.slice(0, i, std::min<int64_t>(i + 16, labels.size(0))).to(device);
    auto post = vae->encode(x);
    means.push_back(post.mean.cpu());
    logvars.push_back(post.logvar.cpu());
    progress.update(x.size(0));
  }
  progress.finish();
  return {torch::cat(means), torch::cat(logvars)};
}
// Config, data and VAE that cannot train together: exit 2 before anything is written.
void check_ldm_config(const LDMTrainConfig& cfg, const SliceDataset& data, AutoencoderKL& vae) {
  if (cfg.optim.lr_schedule == "cosine")
    BRAINSPADE_CHECK_INPUT(cfg.optim.lr_final <= cfg.optim.lr, "config key 'optim.lr_final' is ", cfg.optim.lr_final,
                           ", above optim.lr (", cfg.optim.lr, "): the cosine schedule decays");
  else
    BRAINSPADE_CHECK_INPUT(cfg.optim.lr_final == 0.0, "config key 'optim.lr_final' is ", cfg.optim.lr_final,
                           " but optim.lr_schedule is constant: set optim.lr_schedule=cosine to use it");
  BRAINSPADE_CHECK_INPUT(data.channels() == vae->options.in_channels, cfg.data.dataset, ": label maps have ",
                         data.channels(), " channels but the VAE ", cfg.vae_checkpoint, " was trained on ",
                         vae->options.in_channels);
  const int64_t Z = vae->options.latent_channels;
  BRAINSPADE_CHECK_INPUT(cfg.unet.in_channels == Z && cfg.unet.out_channels == Z, "config keys 'unet.in_channels'/",
                         "'unet.out_channels' (", cfg.unet.in_channels, "/", cfg.unet.out_channels,
                         ") must equal the VAE's latent_channels (", Z, ")");
  const int64_t K = cfg.conditioning.dim();
  if (cfg.unet.conditioning == "none")
    BRAINSPADE_CHECK_INPUT(K == 0, "config key 'unet.conditioning' is none but the conditioning section gives ", K,
                           " values; set conditioning.lesions: [] and conditioning.slice_position: false, or pick a mode");
  else
    BRAINSPADE_CHECK_INPUT(cfg.unet.cond_dim == K, "config key 'unet.cond_dim' is ", cfg.unet.cond_dim,
                           " but the conditioning section gives ", K, " values (", cfg.conditioning.lesions.size(),
                           " lesion flags", cfg.conditioning.slice_position ? " + slice position" : "", ")");
  if (cfg.optim.lesion_weight > 0)
    BRAINSPADE_CHECK_INPUT(!cfg.conditioning.lesions.empty(), "config key 'optim.lesion_weight' is ",
                           cfg.optim.lesion_weight, " but conditioning.lesions is empty: there is no lesion to weight");
  if (cfg.conditioning.cfg_dropout > 0 && cfg.conditioning.cfg_drop == "lesions")
    BRAINSPADE_CHECK_INPUT(!cfg.conditioning.lesions.empty(), "config key 'conditioning.cfg_drop' is lesions but "
                           "conditioning.lesions is empty: the dropout would drop nothing");
  BRAINSPADE_CHECK_INPUT(!cfg.unet.cond_embedding || cfg.unet.conditioning != "none",
                         "config key 'unet.cond_embedding' is true but unet.conditioning is none: there is no condition "
                         "to embed");
}

// [N, 1, h, w] 1 where any of the conditioned lesion channels has PV > 0.5 inside the latent pixel, else 0.
torch::Tensor lesion_masks(const torch::Tensor& labels, const SliceDataset& data, const std::vector<std::string>& lesions,
                           int64_t h, int64_t w) {
  std::vector<int64_t> idx;
  for (const auto& name : lesions) {
    auto it = std::find(data.channel_names.begin(), data.channel_names.end(), name);
    BRAINSPADE_CHECK_INPUT(it != data.channel_names.end(), "config key 'optim.lesion_weight': lesion '", name,
                           "' is not a label channel of the dataset");
    idx.push_back(it - data.channel_names.begin());
  }
  auto any = (labels.index_select(1, torch::tensor(idx)) > 0.5).any(1, true).to(torch::kFloat);  // [N, 1, H, W]
  return std::get<0>(torch::adaptive_max_pool2d(any, {h, w}));
}

// Held-out loss on fixed noise and fixed, stratified timesteps, so that its curve is comparable across steps and
// says where the model is learning: held-out latent i is noised at a timestep drawn from band (i mod 4) of [0, T).
// The mean over all bands alone hid the layout: at tiny scale it stayed flat while samples went from blobs to brains
// (docs/label-generator.md). Returns the mean and the per-band means (NaN for a band without latents).
std::map<std::string, double> ldm_validation(DiffusionUNet& unet, const DDPMScheduler& sched, const torch::Tensor& z_va,
                                           const torch::Tensor& cond_va, const LDMTrainConfig& cfg, uint64_t seed,
                                           torch::Device device) {
  constexpr int64_t kBands = 4;
  const int64_t T = cfg.scheduler.num_train_timesteps;
  const int64_t K = cfg.conditioning.dim();
  auto band_lo = [&](int64_t b) { return b * T / kBands; };
  torch::NoGradGuard g;
  unet->eval();
  auto gen = at::detail::createCPUGenerator(derive_seed(seed, 0xFA11));
  std::vector<double> band_sum(kBands, 0.0);
  std::vector<int64_t> band_n(kBands, 0);
  for (int64_t i = 0; i < z_va.size(0); i += cfg.train.batch_size) {
    int64_t e = std::min(i + cfg.train.batch_size, z_va.size(0));
    auto z0 = z_va.slice(0, i, e);
    auto noise = torch::randn(z0.sizes(), gen);
    auto band = torch::arange(i, e, torch::kLong).remainder(kBands);
    auto lo = band * T / kBands, hi = (band + 1) * T / kBands;  // band b covers [bT/4, (b+1)T/4)
    auto t = lo + (torch::rand({e - i}, gen, torch::kDouble) * (hi - lo).to(torch::kDouble)).to(torch::kLong);
    auto zt = sched.add_noise(z0, noise, t).to(device);
    auto c = K > 0 ? cond_va.slice(0, i, e).to(device) : torch::Tensor();
    auto pred = unet->forward(zt, t.to(device), c).cpu();
    auto target = sched.training_target(z0, noise, t);
    for (int64_t k = 0; k < e - i; ++k) {
      const int64_t b = band[k].item<int64_t>();
      band_sum[b] += loss_diffusion(pred[k], target[k], cfg.optim.loss).item<double>();
      ++band_n[b];
    }
  }
  unet->train();
  std::map<std::string, double> out;
  double total = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < kBands; ++b) {
    out[fmt::format("val_loss_t{}_{}", band_lo(b), band_lo(b + 1) - 1)] = band_n[b] ? band_sum[b] / band_n[b] : NAN;
    total += band_sum[b];
    n += band_n[b];
  }
  out["val_loss"] = total / std::max<int64_t>(n, 1);
  return out;
}

}  // namespace

double train_ldm(const LDMTrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_training_data(cfg.data);
  std::vector<std::string> vae_channels;
  AutoencoderKL vae = load_vae(cfg.vae_checkpoint, device, &vae_channels);
  set_requires_grad(*vae, false);
  check_ldm_config(cfg, data, vae);
  const int64_t Z = vae->options.latent_channels;
  const int64_t K = cfg.conditioning.dim();

  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  auto [mean_all, logvar_all] = encode_all(vae, data.labels, device);
  auto cond_all = conditions_of(data, cfg.conditioning);
  auto tr = torch::tensor(split.train), va = torch::tensor(split.val.empty() ? split.train : split.val);
  auto mean_tr = mean_all.index_select(0, tr), logvar_tr = logvar_all.index_select(0, tr), cond_tr = cond_all.index_select(0, tr);
  auto mean_va = mean_all.index_select(0, va), cond_va = cond_all.index_select(0, va);
  const bool weighted = cfg.optim.lesion_weight > 0;
  torch::Tensor mask_tr;  // [N_tr, 1, h, w] when weighted
  if (weighted)
    mask_tr = lesion_masks(data.labels.index_select(0, tr), data, cfg.conditioning.lesions, mean_all.size(2), mean_all.size(3));
  const int64_t levels = static_cast<int64_t>(cfg.unet.channel_mult.size());
  BRAINSPADE_CHECK_INPUT(mean_all.size(2) % (int64_t(1) << (levels - 1)) == 0 && mean_all.size(3) % (int64_t(1) << (levels - 1)) == 0,
                         "latents of ", mean_all.size(2), "x", mean_all.size(3), " are not divisible by 2^",
                         levels - 1, " (unet.channel_mult has ", levels, " levels)");

  double scale = cfg.latent.scale_factor;
  if (cfg.latent.estimate_scale) scale = 1.0 / mean_tr.std().item<double>();  // of the slices themselves
  if (cfg.latent.augment_copies > 1) {
    BRAINSPADE_CHECK_INPUT(cfg.augment.enabled(), "latent.augment_copies is ", cfg.latent.augment_copies,
                           " but section 'augment' draws nothing (set flip_prob, affine_prob or elastic_prob)");
    auto labels_tr = data.labels.index_select(0, tr);
    std::vector<torch::Tensor> means{mean_tr}, logvars{logvar_tr}, conds{cond_tr}, masks{mask_tr};
    for (int64_t k = 1; k < cfg.latent.augment_copies; ++k) {
      auto gen = brainspade::make_generator(derive_seed(seed, 7, static_cast<uint64_t>(k)));
      auto augmented = brainspade::augment_label_maps(labels_tr, cfg.augment, gen);
      auto [m, lv] = encode_all(vae, augmented, device);
      means.push_back(m);
      logvars.push_back(lv);
      conds.push_back(cond_tr);
      if (weighted) masks.push_back(lesion_masks(augmented, data, cfg.conditioning.lesions, m.size(2), m.size(3)));
    }
    mean_tr = torch::cat(means);
    logvar_tr = torch::cat(logvars);
    cond_tr = torch::cat(conds);
    if (weighted) mask_tr = torch::cat(masks);
  }
  spdlog::info("LDM: {} training / {} validation latents of {}x{}x{}, latent scale {:.4f}, condition dim {}",
               mean_tr.size(0), mean_va.size(0), Z, mean_all.size(2), mean_all.size(3), scale, K);

  torch::manual_seed(seed);
  DiffusionUNet unet = nullptr;
  check_networks_fit("section 'unet'", fmt::format("{}x{}x{} latents", Z, mean_all.size(2), mean_all.size(3)), [&] {
    unet = DiffusionUNet(cfg.unet);
    unet->eval();
    unet->forward(torch::zeros_like(mean_tr.slice(0, 0, 1)), torch::zeros({1}, torch::kLong),
                  K > 0 ? torch::zeros_like(cond_tr.slice(0, 0, 1)) : torch::Tensor());
    unet->train();
  });
  unet->to(device);
  DDPMScheduler sched(cfg.scheduler);
  torch::optim::Adam opt(unet->parameters(), torch::optim::AdamOptions(cfg.optim.lr));
  std::unique_ptr<EMA> ema;
  if (cfg.optim.ema_decay > 0) ema = std::make_unique<EMA>(*unet, cfg.optim.ema_decay);

  const std::string vae_model_config = Checkpoint::load(cfg.vae_checkpoint).get_string("model_config");
  StageRun run("ldm", "train ldm", cfg.run, cfg.train, dump_config(cfg), model_section("unet", cfg.unet));
  run.track("unet", *unet);
  run.track("optim", opt);
  run.on_resume([&](const Checkpoint& ck) {
    if (ema) ema->load(ck, "ema");
  });
  run.on_save([&](Checkpoint& ck) {
    ck.set_string("scheduler_config", dump_section("scheduler", cfg.scheduler));
    ck.set_string("conditioning_config", dump_section("conditioning", cfg.conditioning));
    ck.set_string("vae_checkpoint", cfg.vae_checkpoint);
    ck.set_string("vae_model_config", vae_model_config);
    ck.set_double("latent_scale", scale);
    ck.set("latent_shape", torch::tensor({Z, mean_all.size(2), mean_all.size(3)}));
    if (ema) ema->save(ck, "ema");
  });
  const int64_t start = run.begin(resume);
  if (ema && start == 0) ema = std::make_unique<EMA>(*unet, cfg.optim.ema_decay);  // of rank 0's initial weights

  auto validate = [&] { return ldm_validation(unet, sched, mean_va * scale, cond_va, cfg, seed, device); };

  unet->train();
  double val_loss = NAN;
  for (int64_t step = start; step < cfg.train.steps;) {
    if (run.interrupted(step)) return val_loss;
    torch::manual_seed(derive_seed(seed, 2, static_cast<uint64_t>(step)));
    auto rows = torch::tensor(batch_rows(seed, step, mean_tr.size(0), cfg.train.batch_size));
    // Every random number of the step is drawn for the whole global batch [B, ...] (latent-sized, cheap); each rank
    // then keeps its contiguous rows, so W ranks reproduce one process exactly (docs/distributed.md).
    // The authors train on posterior samples, not means.
    auto mu = mean_tr.index_select(0, rows), lv = logvar_tr.index_select(0, rows);
    auto z0 = ((mu + torch::exp(0.5 * lv) * torch::randn_like(mu)) * scale).to(device);  // [B, Z, h, w]
    auto noise = torch::randn_like(z0);
    auto t = sample_training_timesteps(cfg.optim, sched, z0.size(0), device);
    torch::Tensor c;
    if (K > 0) {
      c = cond_tr.index_select(0, rows).to(device);
      if (cfg.conditioning.cfg_dropout > 0) {
        auto drop = (torch::rand({c.size(0), 1}, c.options()) < cfg.conditioning.cfg_dropout);
        c = torch::where(drop, cfg.conditioning.unconditional(c, unet->options.null_cond_value), c);
      }
      c = dist.local_rows(c);
    }
    z0 = dist.local_rows(z0);        // [B/world, Z, h, w]
    noise = dist.local_rows(noise);
    t = dist.local_rows(t);
    dist.seed_network_draws(derive_seed(seed, 2, static_cast<uint64_t>(step)));  // U-Net dropout, if any
    torch::Tensor weight;  // [B/world, 1, h, w]: 1 + lesion_weight under a lesion
    if (weighted) weight = dist.local_rows(1.0 + cfg.optim.lesion_weight * mask_tr.index_select(0, rows)).to(device);
    auto pred = unet->forward(sched.add_noise(z0, noise, t), t, c);
    auto loss = loss_diffusion(pred, sched.training_target(z0, noise, t), cfg.optim.loss, weight);
    const double lr = ldm_learning_rate(cfg.optim, step, cfg.train.steps);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    opt.zero_grad();
    loss.backward();
    dist.all_reduce_gradients(unet->parameters());
    double gnorm = clip_gradients(unet->parameters(), cfg.train.grad_clip);
    opt.step();
    if (ema) ema->update(*unet);
    ++step;
    const double loss_value = loss.item<double>();
    run.check_finite(loss_value, step, "LDM loss");
    if (run.log_due(step)) {
      auto row = run.reduce({{"loss", loss_value}, {"grad_norm", gnorm}});  // the loss over the global batch
      row["lr"] = lr;
      if (run.validate_due(step)) {
        for (const auto& kv : validate()) row[kv.first] = kv.second;
        val_loss = row["val_loss"];
      }
      run.log(step, row, fmt::format("loss {:.4f}", row["loss"]));
    }
    run.checkpoint_if_due(step);
  }
  run.finish(fmt::format("held-out loss {:.4f}", val_loss));
  return val_loss;
}

}  // namespace brainspade
