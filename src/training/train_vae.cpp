#include "brainspade/training/train_vae.h"

#include <cmath>
#include <numeric>

#include <spdlog/spdlog.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/distributed.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/eval/dice.h"
#include "brainspade/eval/quality.h"
#include "brainspade/losses/losses.h"
#include "brainspade/losses/perceptual.h"
#include "brainspade/training/montage.h"
#include "brainspade/training/run.h"

namespace brainspade {

void VAELossOptions::visit(ConfigVisitor& v) {
  v.choice("reconstruction", reconstruction, {"l1", "gdice"},
           "reconstruction term: l1 on the PV maps (authors' default) or gdice = generalised Dice + Dice on the softmax "
           "+ 0.1 L1 on the raw output (authors' --loss_fct gdice; needs vae.output: softmax)");
  v.choice("gdice_absent", gdice_absent, {"max", "zero"},
           "gdice: weight of a tissue absent from a sample in the generalised Dice: max (MONAI, the authors') or zero "
           "(left out; lesion channels absent from lesion-free slices then do not drown a large lesion's weight)");
  v("ce_weight", ce_weight, "gdice: weight of a cross-entropy on the logits against the PV maps added to the "
    "reconstruction term (0 = off, the authors'); keeps a tissue the Dice terms drove to ~0 learnable",
    Bounds::non_negative());
  v("l1_weight", l1_weight, "weight of the reconstruction term (l1 or gdice)", Bounds::non_negative());
  v("channel_weights", channel_weights,
    "per-label-channel weights of the L1 term, rescaled to mean 1; empty = uniform (authors). One per vae.in_channels",
    Bounds::non_negative());
  v("kl_weight", kl_weight, "weight of the KL term (authors: 1e-6)", Bounds::non_negative());
  v("adv_weight", adv_weight, "weight of the patch-adversarial term for VAE and discriminator (authors: 0.005); 0 = off",
    Bounds::non_negative());
  v.choice("adversarial", adversarial, {"least_squares", "hinge", "bce"}, "adversarial criterion (authors: least_squares)");
  v("adv_start_step", adv_start_step, "first step with adversarial terms (authors: 0)", Bounds::non_negative());
  v("perceptual_weight", perceptual_weight, "weight of the perceptual term (authors: 0.002 with LPIPS-squeeze)",
    Bounds::non_negative());
  v.choice("perceptual_network", perceptual_network, {"none", "squeeze", "vgg16"},
           "perceptual feature network; squeeze/vgg16 need perceptual_weights");
  v("perceptual_weights", perceptual_weights, "weights file from scripts/export_perceptual_weights.py");
}

void VAEOptimOptions::visit(ConfigVisitor& v) {
  v("lr", lr, "Adam learning rate of the VAE (authors: 5e-5)", Bounds::positive());
  v("lr_d", lr_d, "Adam learning rate of the discriminator (authors: 1e-4)", Bounds::positive());
  v("lr_decay", lr_decay, "exponential learning-rate decay per step (authors: 0.999995)", Bounds::range(0.5, 1.0));
  v("ema_decay", ema_decay, "EMA of the VAE weights, used for validation and by later stages; 0 = off",
    Bounds::range(0.0, 0.99999));
}

void VAETrainConfig::visit(ConfigVisitor& v) {
  v.section("run", run);
  v.section("data", data);
  v.section("vae", vae);
  v.section("discriminator", discriminator);
  v.section("loss", loss);
  v.section("optim", optim);
  v.section("augment", augment);
  v.section("train", train);
}

std::vector<double> argmax_dice(const torch::Tensor& pred, const torch::Tensor& ref) {
  return dice_per_class(pred.argmax(1), ref.argmax(1), ref.size(1), EmptyDice::NaN);
}

std::vector<double> argmax_volume_ratio(const torch::Tensor& pred, const torch::Tensor& ref) {
  const int64_t C = ref.size(1);
  auto p = pred.argmax(1), r = ref.argmax(1);
  std::vector<double> out;
  for (int64_t c = 0; c < C; ++c) {
    const double n_ref = (r == c).sum().item<double>();
    out.push_back(n_ref > 0 ? (p == c).sum().item<double>() / n_ref : NAN);
  }
  return out;
}

namespace {

VAEValidation validate(AutoencoderKL& vae, const torch::Tensor& labels, torch::Device device, int64_t batch) {
  torch::NoGradGuard g;
  vae->eval();
  std::vector<torch::Tensor> recs;
  for (int64_t i = 0; i < labels.size(0); i += batch) {
    auto x = labels.slice(0, i, std::min(i + batch, labels.size(0))).to(device);
    recs.push_back(vae->decode(vae->encode(x).mean).cpu());  // the posterior mean: deterministic validation
  }
  vae->train();
  auto rec = torch::cat(recs);
  VAEValidation v;
  v.dice = argmax_dice(rec, labels);
  v.volume_ratio = argmax_volume_ratio(rec, labels);
  const double b_ref = boundary_density(labels.argmax(1));
  v.boundary_ratio = b_ref > 0 ? boundary_density(rec.argmax(1)) / b_ref : NAN;
  v.l1 = (rec - labels).abs().mean().item<double>();
  return v;
}


// Config and data that cannot train together: exit 2 before anything is written.
void check_vae_config(const VAETrainConfig& cfg, const SliceDataset& data) {
  BRAINSPADE_CHECK_INPUT(data.channels() == cfg.vae.in_channels, cfg.data.dataset, ": label maps have ",
                         data.channels(), " channels but vae.in_channels is ", cfg.vae.in_channels);
  const auto& cw = cfg.loss.channel_weights;
  BRAINSPADE_CHECK_INPUT(cw.empty() || static_cast<int64_t>(cw.size()) == cfg.vae.in_channels,
                         "config key 'loss.channel_weights': ", cw.size(), " weights for ", cfg.vae.in_channels,
                         " label channels (vae.in_channels)");
  BRAINSPADE_CHECK_INPUT(cw.empty() || std::accumulate(cw.begin(), cw.end(), 0.0) > 0,
                         "config key 'loss.channel_weights': every weight is 0");
  BRAINSPADE_CHECK_INPUT(cfg.loss.reconstruction != "gdice" || cfg.vae.output == "softmax",
                         "config key 'loss.reconstruction': gdice trains the decoder's raw output as per-tissue logits, ",
                         "so decoding must apply the softmax: set vae.output: softmax");
  BRAINSPADE_CHECK_INPUT(cfg.loss.ce_weight == 0 || cfg.loss.reconstruction == "gdice",
                         "config key 'loss.ce_weight': the cross-entropy term needs logits, which only "
                         "loss.reconstruction: gdice trains (set it, or ce_weight: 0)");
  BRAINSPADE_CHECK_INPUT(cfg.discriminator.in_channels == cfg.vae.in_channels, "config key 'discriminator.in_channels' (",
                         cfg.discriminator.in_channels, ") must equal vae.in_channels (", cfg.vae.in_channels, ")");
  const int64_t factor = int64_t(1) << (cfg.vae.channels.size() - 1);
  BRAINSPADE_CHECK_INPUT(data.height() % factor == 0 && data.width() % factor == 0, cfg.data.dataset, ": slices of ",
                         data.height(), "x", data.width(), " are not divisible by ", factor, " (", cfg.vae.channels.size() - 1,
                         " downsamplings)");
}

// The perceptual network (authors: LPIPS-squeeze per label channel, weight 0.002), or none; its weights file is loaded
// now, so a configured file that is missing stops the run before anything is written.
PerceptualLoss make_vae_perceptual(const VAETrainConfig& cfg, torch::Device device) {
  PerceptualLoss perceptual(nullptr);
  if (cfg.loss.perceptual_network != "none" && cfg.loss.perceptual_weight > 0) {
    BRAINSPADE_CHECK_INPUT(!cfg.loss.perceptual_weights.empty(), "config key 'loss.perceptual_weights': the ",
                           cfg.loss.perceptual_network, " perceptual network needs a weights file (write one with ",
                           "scripts/export_perceptual_weights.py) or set loss.perceptual_network: none");
    PerceptualLossOptions po;
    po.network = cfg.loss.perceptual_network;
    po.weights = cfg.loss.perceptual_weights;
    po.per_channel = true;
    perceptual = PerceptualLoss(po);
    perceptual->to(device);
    perceptual->eval();
    set_requires_grad(*perceptual, false);
  }
  return perceptual;
}

// The final validation line and the reconstruction montage (rank 0).
void report_vae(const VAEValidation& val, const std::vector<std::string>& channel_names, AutoencoderKL& vae,
                const torch::Tensor& labels_val, torch::Device device, const std::string& montage_path) {
  std::string dice_line, ratio_line;
  for (size_t c = 0; c < val.dice.size(); ++c) {
    const std::string name = c < channel_names.size() ? channel_names[c] : std::to_string(c);
    dice_line += fmt::format(" {}={:.3f}", name, val.dice[c]);
    ratio_line += fmt::format(" {}={:.2f}", name, val.volume_ratio[c]);
  }
  spdlog::info("VAE validation (posterior mean): L1 {:.4f}, argmax Dice{}; volume reconstructed/real{}; boundary "
               "density reconstructed/real {:.3f}", val.l1, dice_line, ratio_line, val.boundary_ratio);
  {
    torch::NoGradGuard g;
    vae->eval();
    auto x = labels_val.slice(0, 0, std::min<int64_t>(4, labels_val.size(0))).to(device);
    auto rec = vae->decode(vae->encode(x).mean).cpu();
    write_label_pairs_montage(montage_path, x.cpu(), rec, "input", "reconstruction");
  }
}

}  // namespace

VAEValidation train_vae(const VAETrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_training_data(cfg.data);
  check_vae_config(cfg, data);
  const auto& cw = cfg.loss.channel_weights;
  PerceptualLoss perceptual = make_vae_perceptual(cfg, device);

  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  BRAINSPADE_CHECK_INPUT(!split.train.empty(), cfg.data.dataset, ": no training slices left after the validation split");
  auto labels_train = data.labels.index_select(0, torch::tensor(split.train));
  auto labels_val = split.val.empty() ? labels_train.slice(0, 0, std::min<int64_t>(8, labels_train.size(0)))
                                      : data.labels.index_select(0, torch::tensor(split.val));
  spdlog::info("VAE: {} training / {} validation slices of {}x{}x{}", labels_train.size(0), labels_val.size(0),
               data.channels(), data.height(), data.width());

  torch::manual_seed(seed);
  AutoencoderKL vae = nullptr;
  PatchDiscriminator disc = nullptr;
  check_networks_fit("sections 'vae'/'discriminator'",
                     fmt::format("{}x{}x{} label maps", data.channels(), data.height(), data.width()), [&] {
                       vae = AutoencoderKL(cfg.vae);
                       disc = PatchDiscriminator(cfg.discriminator);
                       vae->eval();
                       disc->eval();
                       disc->forward(vae->decode(vae->encode(labels_train.slice(0, 0, 1)).mean));
                       vae->train();
                       disc->train();
                     });
  vae->to(device);
  disc->to(device);
  torch::optim::Adam opt_g(vae->parameters(), torch::optim::AdamOptions(cfg.optim.lr));
  torch::optim::Adam opt_d(disc->parameters(), torch::optim::AdamOptions(cfg.optim.lr_d));

  StageRun run("vae", "train vae", cfg.run, cfg.train, dump_config(cfg), model_section("vae", cfg.vae));
  run.track("vae", *vae);
  run.track("discriminator", *disc);
  run.track("optim_g", opt_g);
  run.track("optim_d", opt_d);
  // EMA weights (optim.ema_decay > 0) are what validation and every later stage see; the raw weights keep training.
  std::unique_ptr<EMA> ema;
  AutoencoderKL vae_ema = nullptr;
  if (cfg.optim.ema_decay > 0) {
    ema = std::make_unique<EMA>(*vae, cfg.optim.ema_decay);
    vae_ema = AutoencoderKL(cfg.vae);  // the global generator is reseeded at every step, so this draw shifts nothing
    vae_ema->to(device);
    vae_ema->eval();
  }
  run.on_save([&](Checkpoint& ck) {
    ck.set_strings("channel_names", data.channel_names);
    if (ema) ema->save(ck, "ema");
  });
  run.on_resume([&](const Checkpoint& ck) {
    if (ema) ema->load(ck, "ema");
  });
  const int64_t start = run.begin(resume);
  if (ema && start == 0) ema = std::make_unique<EMA>(*vae, cfg.optim.ema_decay);
  auto evaluated = [&]() -> AutoencoderKL& {  // the weights later stages will use
    if (!ema) return vae;
    ema->copy_to(*vae_ema);
    return vae_ema;
  };

  vae->train();
  disc->train();
  const auto& L = cfg.loss;
  torch::Tensor l1_channel_weights;  // [1, C, 1, 1], mean 1
  if (!cw.empty()) {
    l1_channel_weights = torch::tensor(cw, torch::kFloat).view({1, -1, 1, 1}).to(device);
    l1_channel_weights = l1_channel_weights / l1_channel_weights.mean();
  }
  VAEValidation last_val;
  for (int64_t step = start; step < cfg.train.steps;) {
    if (run.interrupted(step)) return last_val;
    torch::manual_seed(derive_seed(seed, 1, static_cast<uint64_t>(step)));
    // This rank's contiguous share of the global batch (all of it in a single process).
    auto global_rows = batch_rows(seed, step, labels_train.size(0), cfg.train.batch_size);
    torch::Tensor x;
    if (cfg.augment.enabled()) {  // drawn for the global batch, so that W ranks see what one process sees
      auto gen = brainspade::make_generator(derive_seed(seed, 6, static_cast<uint64_t>(step)));
      x = dist.local_rows(brainspade::augment_label_maps(labels_train.index_select(0, torch::tensor(global_rows)),
                                                   cfg.augment, gen)).to(device);
    } else {
      x = labels_train.index_select(0, torch::tensor(dist.local_rows(global_rows))).to(device);  // [B/world, C, H, W]
    }
    const double lr_scale = std::pow(cfg.optim.lr_decay, static_cast<double>(step));
    for (auto& g : opt_g.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(cfg.optim.lr * lr_scale);
    for (auto& g : opt_d.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(cfg.optim.lr_d * lr_scale);
    const bool adv = L.adv_weight > 0 && step >= L.adv_start_step;

    // VAE step.
    // vae->forward(x) with the posterior noise drawn for the whole global batch and this rank's rows kept, so that
    // W ranks x B/W rows draw exactly what one process x B rows draws (docs/distributed.md).
    AutoencoderOutput out;
    out.posterior = vae->encode(x);
    auto eps_shape = out.posterior.mean.sizes().vec();
    eps_shape[0] = cfg.train.batch_size;
    auto eps = dist.local_rows(torch::randn(eps_shape, out.posterior.mean.options()));  // [B/world, Z, h, w]
    auto raw = vae->decode_raw(out.posterior.mean + out.posterior.std() * eps);
    out.reconstruction = cfg.vae.output == "softmax" ? torch::softmax(raw, 1) : raw;  // what decode() returns
    auto weighted_l1 = [&](const torch::Tensor& y) {
      return l1_channel_weights.defined() ? ((y - x).abs() * l1_channel_weights).mean() : (y - x).abs().mean();
    };
    auto l1 = weighted_l1(out.reconstruction);
    auto recon = L.reconstruction == "gdice"  // authors: GeneralizedDice + Dice (softmax) + 0.1·L1 (raw)
                     ? loss_generalized_dice(out.reconstruction, x, 1e-4, L.gdice_absent == "max") +
                           loss_soft_dice(out.reconstruction, x) +
                           0.1 * weighted_l1(raw) +
                           (L.ce_weight > 0 ? L.ce_weight * loss_soft_cross_entropy(raw, x) : torch::zeros({}, x.options()))
                     : l1;
    auto kl = loss_kl(out.posterior);
    auto loss_g = L.l1_weight * recon + L.kl_weight * kl;
    torch::Tensor perc = torch::zeros({}, x.options());
    if (!perceptual.is_empty()) {
      perc = perceptual->forward(out.reconstruction, x);
      loss_g = loss_g + L.perceptual_weight * perc;
    }
    torch::Tensor g_adv = torch::zeros({}, x.options());
    if (adv) {
      set_requires_grad(*disc, false);
      g_adv = loss_adversarial(disc->forward(out.reconstruction), GanTarget::Real, false, L.adversarial);
      loss_g = loss_g + L.adv_weight * g_adv;
      set_requires_grad(*disc, true);
    }
    opt_g.zero_grad();
    loss_g.backward();
    dist.all_reduce_gradients(vae->parameters());
    double gnorm = clip_gradients(vae->parameters(), cfg.train.grad_clip);
    opt_g.step();
    if (ema) ema->update(*vae);

    // Discriminator step (authors: 0.005 · 0.5 · (fake + real)).
    torch::Tensor d_loss = torch::zeros({}, x.options());
    if (adv) {
      auto fake = out.reconstruction.detach();
      d_loss = 0.5 * (loss_adversarial(disc->forward(fake), GanTarget::Fake, true, L.adversarial) +
                      loss_adversarial(disc->forward(x), GanTarget::Real, true, L.adversarial));
      opt_d.zero_grad();
      (L.adv_weight * d_loss).backward();
      dist.all_reduce_gradients(disc->parameters());
      clip_gradients(disc->parameters(), cfg.train.grad_clip);
      opt_d.step();
    }
    ++step;

    run.check_finite(loss_g.item<double>(), step, "VAE loss", " (lower optim.lr or check the data)");
    if (run.log_due(step)) {
      auto row = run.reduce({{"loss", loss_g.item<double>()}, {"recon", recon.item<double>()}, {"l1", l1.item<double>()}, {"kl", kl.item<double>()},
                             {"g_adv", g_adv.item<double>()}, {"d_loss", d_loss.item<double>()}, {"grad_norm", gnorm},
                             {"lr", cfg.optim.lr * lr_scale}, {"perceptual", perc.item<double>()}});
      if (run.validate_due(step)) {
        last_val = validate(evaluated(), labels_val, device, cfg.train.batch_size);
        row["val_l1"] = last_val.l1;
        row["val_boundary_ratio"] = last_val.boundary_ratio;
        for (size_t c = 0; c < last_val.dice.size(); ++c) {
          const std::string name = c < data.channel_names.size() ? data.channel_names[c] : std::to_string(c);
          row["val_dice_" + name] = last_val.dice[c];
          row["val_volume_ratio_" + name] = last_val.volume_ratio[c];
        }
      }
      run.log(step, row, fmt::format("l1 {:.4f} kl {:.1f}", row["l1"], row["kl"]));
    }
    run.checkpoint_if_due(step);
  }
  if (!dist.is_main()) return last_val;  // validation, montage and plots are rank 0's
  run.finish();
  if (last_val.dice.empty()) last_val = validate(evaluated(), labels_val, device, cfg.train.batch_size);
  report_vae(last_val, data.channel_names, evaluated(), labels_val, device, run.path("reconstructions.png"));
  plot_metrics(run.metrics_path(), {"l1", "val_l1"}, run.path("loss.png"));
  return last_val;
}

}  // namespace brainspade
