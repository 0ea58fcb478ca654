#include "brainspade/training/train_spade.h"

#include <cmath>
#include <deque>
#include <random>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"
#include "brainspade/losses/spade_losses.h"
#include "brainspade/nn/spade_norm.h"
#include "brainspade/training/montage.h"
#include "brainspade/training/run.h"

namespace brainspade {

void SPADELossOptions::visit(ConfigVisitor& v) {
  v("lambda_feat", lambda_feat, "feature-matching weight (SPADE: 10)", Bounds::non_negative());
  v("lambda_perceptual", lambda_perceptual, "perceptual weight (SPADE: 10 with VGG19)", Bounds::non_negative());
  v.choice("perceptual_network", perceptual_network, {"none", "classifier", "vgg19"},
           "perceptual features: the frozen modality classifier's trunk, ImageNet VGG19 (the authors'; needs "
           "perceptual_weights), or none");
  v("perceptual_weights", perceptual_weights,
    "vgg19: weights file written by scripts/export_perceptual_weights.py --arch vgg19 (torchvision's ImageNet VGG19)");
  v("perceptual_level_weights", perceptual_level_weights,
    "one weight per feature level, shallow to deep. classifier: small trunk N blocks + 1, densenet121 5, empty = the "
    "last feature map alone; vgg19: 5 (relu1_1 ... relu5_1), empty = the authors' 1/32, 1/16, 1/8, 1/4, 1",
    Bounds::non_negative());
  v("lambda_kld", lambda_kld, "KLD weight (SPADE: 0.05)", Bounds::non_negative());
  v("alpha_mod", alpha_mod, "modality BCE weight through the frozen classifier (authors: 2.5)", Bounds::non_negative());
  v("alpha_dat", alpha_dat, "dataset BCE weight (authors: 1.0); must stay below alpha_mod", Bounds::non_negative());
  v("mod_dat_start_step", mod_dat_start_step, "step at which the modality/dataset terms start", Bounds::non_negative());
  v("mod_dat_ramp_steps", mod_dat_ramp_steps, "linear ramp of the modality/dataset weights (0 = at once)",
    Bounds::non_negative());
  v("alpha_mod_start", alpha_mod_start, "modality weight at the start of the ramp (paper: 0.1; authors' code: no ramp)",
    Bounds::non_negative());
  v("alpha_dat_start", alpha_dat_start, "dataset weight at the start of the ramp (paper: 0.05)", Bounds::non_negative());
  v("lambda_contrastive", lambda_contrastive, "weight of 1 - cos(E(i), E(T(i)))", Bounds::non_negative());
}
void SPADEOptimOptions::visit(ConfigVisitor& v) {
  v("lr_g", lr_g, "Adam learning rate of generator and encoder (TTUR: 1e-4)", Bounds::positive());
  v("lr_d", lr_d, "Adam learning rate of the discriminator (TTUR: 4e-4)", Bounds::positive());
  v("beta1", beta1, "Adam beta1 (SPADE: 0)", Bounds::range(0.0, 0.999));
  v("beta2", beta2, "Adam beta2 (SPADE: 0.9)", Bounds::range(0.0, 0.9999));
  v("lr_decay", lr_decay, "exponential learning-rate decay per step of both optimisers; 1 = constant (authors' code)",
    Bounds::range(0.5, 1.0));
  v("d_gating", d_gating, "discriminator-accuracy gating (train only D below gating_low, only G above gating_high)");
  v("gating_low", gating_low, "accuracy below which only D trains", Bounds::unit());
  v("gating_high", gating_high, "accuracy above which only G trains", Bounds::unit());
  v("gating_window", gating_window, "steps in the running accuracy", Bounds::at_least(1));
}
void SPADETrainConfig::visit(ConfigVisitor& v) {
  v.section("run", run);
  v.section("data", data);
  v("classifier_checkpoint", classifier_checkpoint, "frozen modality/dataset classifier; empty = those losses off");
  v.section("generator", generator);
  v.section("encoder", encoder);
  v.section("discriminator", discriminator);
  v.section("loss", loss);
  v.section("optim", optim);
  v.section("affine", affine);
  v.section("intensity_augment", intensity_augment);
  v("augment_style", augment_style, "apply intensity_augment to the style input");
  v("balance_modalities", balance_modalities,
    "draw each batch row's modality uniformly, then a slice of it (a contrast with few slices is seen as often as the others)");
  v.section("train", train);
}

// ---------------------------------------------------------------------------------------------------------------
// SPADE VAE-GAN

namespace {

// Config and data that cannot train together: exit 2 before anything is written.
void check_spade_config(const SPADETrainConfig& cfg, const SliceDataset& data) {
  const auto& G_o = cfg.generator;
  BRAINSPADE_CHECK_INPUT(data.channels() == G_o.label_channels, cfg.data.dataset, ": label maps have ", data.channels(),
                         " channels but generator.label_channels is ", G_o.label_channels);
  BRAINSPADE_CHECK_INPUT(cfg.discriminator.label_channels == G_o.label_channels, "config key 'discriminator.label_channels' (",
                         cfg.discriminator.label_channels, ") must equal generator.label_channels (", G_o.label_channels, ")");
  BRAINSPADE_CHECK_INPUT(data.height() == G_o.height && data.width() == G_o.width, cfg.data.dataset, ": slices are ",
                         data.height(), "x", data.width(), " but generator.height/width are ", G_o.height, "x", G_o.width);
  BRAINSPADE_CHECK_INPUT(cfg.encoder.height == G_o.height && cfg.encoder.width == G_o.width,
                         "config keys 'encoder.height'/'encoder.width' must equal the generator's (", G_o.height, "x",
                         G_o.width, ")");
  BRAINSPADE_CHECK_INPUT(cfg.encoder.z_dim == G_o.z_dim, "config key 'encoder.z_dim' (", cfg.encoder.z_dim,
                         ") must equal generator.z_dim (", G_o.z_dim, ")");
  const auto& L = cfg.loss;
  BRAINSPADE_CHECK_INPUT(L.alpha_mod == 0 || L.alpha_mod > L.alpha_dat, "config key 'loss.alpha_dat' (", L.alpha_dat,
                         ") must stay below loss.alpha_mod (", L.alpha_mod, "), as in the paper");
}

// The frozen modality/dataset classifier of the modality/dataset loss (none when classifier_checkpoint is empty),
// checked to know the dataset's modalities and datasets.
ModalityClassifierBundle load_spade_classifier(const SPADETrainConfig& cfg, const SliceDataset& data,
                                               torch::Device device) {
  const auto& L = cfg.loss;
  ModalityClassifierBundle clf;
  const bool use_clf = !cfg.classifier_checkpoint.empty();
  if (use_clf) {
    BRAINSPADE_CHECK_INPUT(file_exists(cfg.classifier_checkpoint), "config key 'classifier_checkpoint': ",
                           cfg.classifier_checkpoint, " does not exist (train it with `brainspade train classifier`, ",
                           "or set it to \"\" to train without the modality/dataset loss)");
    clf = load_classifier(cfg.classifier_checkpoint, device);
    BRAINSPADE_CHECK_INPUT(clf.modality_names == data.modality_names && clf.dataset_names == data.dataset_names,
                           "classifier ", cfg.classifier_checkpoint, " knows modalities [", join_names(clf.modality_names),
                           "] and datasets [", join_names(clf.dataset_names), "] but ", cfg.data.dataset, " has [",
                           join_names(data.modality_names), "] and [", join_names(data.dataset_names), "]");
  }
  if (use_clf && L.perceptual_network == "classifier") check_perceptual_levels(*clf.net, L.perceptual_level_weights);
  BRAINSPADE_CHECK_INPUT(L.perceptual_network != "classifier" || L.lambda_perceptual == 0 || use_clf,
                         "config key 'loss.perceptual_network' is classifier but classifier_checkpoint is empty");
  return clf;
}

// Style rows: another slice of the same volume (limitation 3); deterministic per (seed, rows).
std::vector<int64_t> other_slices(const SliceDataset& data, const std::vector<int64_t>& rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  for (auto r : rows) {
    int64_t o = data.other_slice_same_volume(r, rng);
    out.push_back(o >= 0 ? o : r);
  }
  return out;
}

torch::Tensor gather_rows(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, torch::tensor(rows));
}

// Below this style check `train spade` warns at its end (a generator that draws its styles alike scores about
// 1 / modalities; the lesion SPADE that did scored 0.36-0.53, the ones that drew them 0.87-1.00 at their end).
constexpr double kStyleCheckWarnBelow = 0.75;

}  // namespace

std::vector<std::vector<int64_t>> style_rows_per_modality(const SliceDataset& data, const std::vector<int64_t>& rows,
                                                          const std::vector<int64_t>& pool, uint64_t seed) {
  const int64_t M = static_cast<int64_t>(data.modality_names.size());
  const auto subject = data.subject.accessor<int64_t, 1>();
  const auto modality = data.modality.accessor<int64_t, 1>();
  // Rows per (subject, modality) over the whole dataset, and per modality over the pool.
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> by_subject;
  for (int64_t r = 0; r < data.size(); ++r) by_subject[{subject[r], modality[r]}].push_back(r);
  std::vector<std::vector<int64_t>> by_modality(M);
  for (auto r : pool) by_modality[modality[r]].push_back(r);
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<int64_t>& c, int64_t skip) -> int64_t {
    std::vector<int64_t> ok;
    for (auto x : c)
      if (x != skip) ok.push_back(x);
    if (ok.empty()) return -1;
    return ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
  };
  std::vector<std::vector<int64_t>> out;
  for (auto r : rows) {
    std::vector<int64_t> per(M, -1);
    for (int64_t m = 0; m < M; ++m) {
      auto it = by_subject.find({subject[r], m});
      per[m] = it == by_subject.end() ? -1 : pick(it->second, r);
      if (per[m] < 0) per[m] = pick(by_modality[m], r);
    }
    out.push_back(per);
  }
  return out;
}

namespace {

// The style check's draws: each validation map once per modality (content row, style row, the style's modality),
// fixed for the run.
struct StyleCheckDraws {
  std::vector<int64_t> content, style, modality;
};
StyleCheckDraws style_check_draws(const SliceDataset& data, const std::vector<int64_t>& val_rows,
                                  const std::vector<int64_t>& pool, uint64_t seed) {
  StyleCheckDraws d;
  if (data.modality_names.size() < 2) return d;
  const auto per = style_rows_per_modality(data, val_rows, pool, seed);
  for (size_t i = 0; i < val_rows.size(); ++i)
    for (size_t m = 0; m < per[i].size(); ++m)
      if (per[i][m] >= 0) d.content.push_back(val_rows[i]), d.style.push_back(per[i][m]), d.modality.push_back(m);
  return d;
}

// Held-out L1 between the image made from a validation label map (with a style from another slice of its volume)
// and the real image; with a classifier, the style check: the share of `draws` the classifier assigns to the
// style's modality.
SPADEValidation spade_validation(SPADEGenerator& G, ConvEncoder& E, ModalityClassifierBundle* clf,
                                 const SliceDataset& data, const std::vector<int64_t>& val_rows,
                                 const StyleCheckDraws& draws, uint64_t seed, torch::Device device) {
  auto gather = gather_rows;
  torch::NoGradGuard g;
  G->eval();
  E->eval();
  double total = 0;
  int64_t n = 0;
  auto style_rows = other_slices(data, val_rows, derive_seed(seed, 0x5a1));
  for (size_t i = 0; i < val_rows.size(); i += 8) {
    std::vector<int64_t> r(val_rows.begin() + i, val_rows.begin() + std::min(val_rows.size(), i + 8));
    std::vector<int64_t> s(style_rows.begin() + i, style_rows.begin() + std::min(style_rows.size(), i + 8));
    auto fake = G->forward(gather(data.labels, r).to(device), E->encode(gather(data.images, s).to(device)).mu);
    total += (fake.cpu() - gather(data.images, r)).abs().mean().item<double>() * r.size();
    n += r.size();
  }
  SPADEValidation v{total / std::max<int64_t>(1, n)};
  if (clf && clf->net && !draws.content.empty()) {
    int64_t right = 0;
    for (size_t i = 0; i < draws.content.size(); i += 8) {
      const size_t e = std::min(draws.content.size(), i + 8);
      std::vector<int64_t> r(draws.content.begin() + i, draws.content.begin() + e),
          s(draws.style.begin() + i, draws.style.begin() + e);
      auto fake = G->forward(gather(data.labels, r).to(device), E->encode(gather(data.images, s).to(device)).mu);
      auto pred = clf->net->forward(fake).modality_logits.argmax(1).cpu();
      for (size_t j = 0; j < r.size(); ++j) right += pred[j].item<int64_t>() == draws.modality[i + j];
    }
    v.style_accuracy = static_cast<double>(right) / draws.content.size();
  }
  G->train();
  E->train();
  return v;
}

// Montage: label | style | output | real, for a few held-out slices (rank 0).
void write_spade_montage(SPADEGenerator& G, ConvEncoder& E, const SliceDataset& data,
                         const std::vector<int64_t>& val_rows, uint64_t seed, torch::Device device,
                         const std::string& path) {
  auto gather = gather_rows;
  torch::NoGradGuard g;
  G->eval();
  E->eval();
  std::vector<int64_t> r(val_rows.begin(), val_rows.begin() + std::min<size_t>(4, val_rows.size()));
  auto s = other_slices(data, r, derive_seed(seed, 0x5a1));
  auto fake = G->forward(gather(data.labels, r).to(device), E->encode(gather(data.images, s).to(device)).mu).cpu();
  std::vector<torch::Tensor> tiles;
  for (size_t i = 0; i < r.size(); ++i) {
    tiles.push_back(label_to_rgb(data.labels[r[i]], data.channel_names));
    tiles.push_back(data.images[s[i]][0]);
    tiles.push_back(fake[i][0]);
    tiles.push_back(data.images[r[i]][0]);
  }
  write_montage_png(path, tiles, 4);
  spdlog::info("montage (label | style | output | real): {}", path);
}

// Generator, style encoder and multiscale discriminator, checked to fit the slices (exit 2 otherwise), with the
// authors' init drawn from the global generator seeded with `seed`, on `device`.
SPADENetworks build_spade_networks(const SPADETrainConfig& cfg, const SliceDataset& data, uint64_t seed,
                                   torch::Device device) {
  torch::manual_seed(seed);
  SPADENetworks n;
  auto& G = n.G;
  auto& E = n.E;
  auto& D = n.D;
  check_networks_fit("sections 'generator'/'encoder'/'discriminator'", slice_shape_string(data.images), [&] {
    G = SPADEGenerator(cfg.generator);
    E = ConvEncoder(cfg.encoder);
    D = MultiscaleDiscriminator(cfg.discriminator);
    const auto image = torch::zeros({1, data.images.size(1), data.images.size(2), data.images.size(3)});
    const auto labels = torch::zeros({1, data.labels.size(1), data.labels.size(2), data.labels.size(3)});
    for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(G.get()), static_cast<torch::nn::Module*>(E.get()),
                                 static_cast<torch::nn::Module*>(D.get())})
      m->eval();
    D->forward(labels, G->forward(labels, E->encode(image).mu));
    for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(G.get()), static_cast<torch::nn::Module*>(E.get()),
                                 static_cast<torch::nn::Module*>(D.get())})
      m->train();
  });
  // The authors' init (xavier, gain 0.02) for all three networks, from the seeded global generator.
  nn::spade_init_weights(*G);
  nn::spade_init_weights(*E);
  nn::spade_init_weights(*D);
  G->to(device);
  E->to(device);
  D->to(device);
  return n;
}

// The training rows of each modality present (balance_modalities draws a modality, then a row of it).
std::vector<std::vector<int64_t>> training_rows_by_modality(const Split& split, const SliceDataset& data) {
  std::vector<std::vector<int64_t>> modality_rows;
  std::map<int64_t, std::vector<int64_t>> train_by;
  for (int64_t r : split.train) train_by[data.modality[r].item<int64_t>()].push_back(r);
  for (auto& kv : train_by) modality_rows.push_back(std::move(kv.second));
  return modality_rows;
}

// The rows of step `step`: a modality drawn uniformly, then a row of it (balance_modalities), or the epoch-wise
// permutation of the training rows.
std::vector<int64_t> spade_batch_rows(const SPADETrainConfig& cfg, const Split& split,
                                      const std::vector<std::vector<int64_t>>& modality_rows, uint64_t seed,
                                      int64_t step) {
  std::vector<int64_t> rows;
  if (cfg.balance_modalities) {
    std::mt19937_64 rng(derive_seed(seed, 10, step));
    for (int64_t b = 0; b < cfg.train.batch_size; ++b) {
      const auto& group = modality_rows[rng() % modality_rows.size()];
      rows.push_back(group[rng() % group.size()]);
    }
  } else {
    for (auto r : batch_rows(seed, step, static_cast<int64_t>(split.train.size()), cfg.train.batch_size))
      rows.push_back(split.train[r]);
  }
  return rows;
}

// One hinge step of the discriminator on fake (detached) and real images; records its accuracy (the mean over the
// ranks, so that the gating decides the same everywhere) in the running window `d_acc`. Steps only when `train_d`.
void spade_discriminator_step(MultiscaleDiscriminator& D, torch::optim::Adam& opt_d, const torch::Tensor& seg,
                              const torch::Tensor& fake, const torch::Tensor& real, bool train_d,
                              const SPADETrainConfig& cfg, std::deque<double>& d_acc,
                              std::map<std::string, double>& row) {
  Distributed& dist = distributed();
  auto d_fake = D->forward(seg, fake);
  auto d_real = D->forward(seg, real);
  auto loss_d = loss_gan_d_fake(d_fake) + loss_gan_d_real(d_real);
  // Accuracy of the last scale's patch logits: real > 0, fake < 0.
  double acc = 0.5 * ((d_real.back().back() > 0).to(torch::kFloat).mean().item<double>() +
                      (d_fake.back().back() < 0).to(torch::kFloat).mean().item<double>());
  acc = dist.all_reduce_mean(acc);  // the gating must decide the same on every rank
  d_acc.push_back(acc);
  while (static_cast<int64_t>(d_acc.size()) > cfg.optim.gating_window) d_acc.pop_front();
  if (train_d) {
    opt_d.zero_grad();
    loss_d.backward();
    dist.all_reduce_gradients(D->parameters());
    clip_gradients(D->parameters(), cfg.train.grad_clip);
    opt_d.step();
  }
  row["loss_d"] = loss_d.item<double>();
  row["d_accuracy"] = acc;
}

}  // namespace

std::shared_ptr<VGG19Features> load_spade_vgg(const SPADELossOptions& L, torch::Device device) {
  if (L.perceptual_network != "vgg19" || L.lambda_perceptual == 0) return nullptr;
  BRAINSPADE_CHECK_INPUT(!L.perceptual_weights.empty(), "config key 'loss.perceptual_weights': perceptual_network ",
                         "vgg19 needs torchvision's ImageNet VGG19 weights in a file (write one with ",
                         "scripts/export_perceptual_weights.py --arch vgg19 --torchvision-weights vgg19-dcbb9e9d.pth), ",
                         "or set loss.perceptual_network: classifier or none");
  BRAINSPADE_CHECK_INPUT(L.perceptual_level_weights.empty() || L.perceptual_level_weights.size() == 5,
                         "config key 'loss.perceptual_level_weights': vgg19 has 5 feature levels (relu1_1 ... ",
                         "relu5_1), got ", L.perceptual_level_weights.size(), " weights");
  BRAINSPADE_CHECK_INPUT(file_exists(L.perceptual_weights), "config key 'loss.perceptual_weights': ",
                         L.perceptual_weights, " does not exist (write it with scripts/export_perceptual_weights.py ",
                         "--arch vgg19 --torchvision-weights vgg19-dcbb9e9d.pth --out ", L.perceptual_weights, ")");
  auto weights = load_tensor_dict(L.perceptual_weights);
  auto net = std::make_shared<VGG19Features>();
  net->load_weights(weights, L.perceptual_weights);
  if (weights.count("__random_init__"))
    spdlog::warn("perceptual weights {} are RANDOM (written with --random for tests); not the authors' VGG loss",
                 L.perceptual_weights);
  net->to(device);
  return net;
}

void check_perceptual_levels(const ModalityClassifierImpl& clf, const std::vector<double>& weights) {
  const auto names = clf.level_names();
  BRAINSPADE_CHECK_INPUT(weights.empty() || weights.size() == names.size(),
                         "config key 'loss.perceptual_level_weights': the classifier (", clf.options().arch, ") has ",
                         names.size(), " feature levels (", join_names(names), "), got ", weights.size(), " weights");
}

torch::Tensor perceptual_distance(ModalityClassifier& clf, const torch::Tensor& fake, const torch::Tensor& real,
                                  const std::vector<double>& weights, ClassifierOutput* fake_out) {
  if (weights.empty()) {
    auto out = clf->forward(fake);
    torch::Tensor f_real;
    {
      torch::NoGradGuard ng;  // the real image's features are the target
      f_real = clf->forward(real).features;
    }
    if (fake_out) *fake_out = out;
    return (out.features - f_real).abs().mean();
  }
  check_perceptual_levels(*clf, weights);
  std::vector<torch::Tensor> lf, lr;
  auto out = clf->forward(fake, &lf);
  {
    torch::NoGradGuard ng;
    clf->forward(real, &lr);
  }
  if (fake_out) *fake_out = out;
  torch::Tensor total = torch::zeros({}, fake.options());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] > 0) total = total + weights[i] * (lf[i] - lr[i]).abs().mean();
  }
  return total;
}

std::pair<double, double> modality_dataset_weights(const SPADELossOptions& L, int64_t step) {
  if (step < L.mod_dat_start_step) return {0.0, 0.0};
  const double ramp = L.mod_dat_ramp_steps > 0
                          ? std::min(1.0, double(step - L.mod_dat_start_step + 1) / double(L.mod_dat_ramp_steps))
                          : 1.0;
  return {L.alpha_mod_start + (L.alpha_mod - L.alpha_mod_start) * ramp,
          L.alpha_dat_start + (L.alpha_dat - L.alpha_dat_start) * ramp};
}

torch::Tensor spade_generator_loss(SPADENetworks& nets, ModalityClassifierBundle* clf,
                                   const SPADETrainConfig& cfg, int64_t step, const EncoderOutput& enc,
                                   const torch::Tensor& fake, const torch::Tensor& seg, const torch::Tensor& real,
                                   const torch::Tensor& style_in, const torch::Tensor& style_modality,
                                   const torch::Tensor& style_dataset, torch::Generator& gen,
                                   std::map<std::string, double>& row) {
  const auto& L = cfg.loss;
  auto d_fake = nets.D->forward(seg, fake);
  torch::Tensor loss_g = loss_gan_g(d_fake);
  row["g_gan"] = loss_g.item<double>();
  if (L.lambda_feat > 0) {
    DiscriminatorFeatures d_real;
    {
      torch::NoGradGuard ng;  // real features are targets; gradients flow through the fake branch only
      d_real = nets.D->forward(seg, real);
    }
    auto fm = loss_feature_matching(d_fake, d_real);
    loss_g = loss_g + L.lambda_feat * fm;
    row["g_feat"] = fm.item<double>();
  }
  auto kld = loss_kld(enc.mu, enc.logvar);
  loss_g = loss_g + L.lambda_kld * kld;
  row["kld"] = kld.item<double>();
  if (clf) {
    const auto [alpha_mod, alpha_dat] = modality_dataset_weights(L, step);
    const bool perceptual_on = L.perceptual_network == "classifier" && L.lambda_perceptual > 0;
    ClassifierOutput out;  // one classifier pass over `fake` serves both terms
    torch::Tensor perc;
    if (perceptual_on) perc = perceptual_distance(clf->net, fake, real, L.perceptual_level_weights, &out);
    if (alpha_mod > 0 || alpha_dat > 0) {
      if (!out.modality_logits.defined()) out = clf->net->forward(fake);
      auto md = loss_modality_dataset(out, style_modality, style_dataset, alpha_mod, alpha_dat);
      loss_g = loss_g + md.total;
      row["bce_modality"] = md.modality.item<double>();
      row["bce_dataset"] = md.dataset.item<double>();
    }
    if (perceptual_on) {
      loss_g = loss_g + L.lambda_perceptual * perc;
      row["perceptual"] = perc.item<double>();
    }
  }
  if (L.perceptual_network == "vgg19" && L.lambda_perceptual > 0) {
    TORCH_CHECK(nets.vgg, "perceptual_network vgg19 but no VGG19 was loaded (load_spade_vgg)");
    auto perc = vgg_l1_distance(*nets.vgg, fake, real, L.perceptual_level_weights);
    loss_g = loss_g + L.lambda_perceptual * perc;
    row["perceptual"] = perc.item<double>();
  }
  if (L.lambda_contrastive > 0) {
    auto style_t = random_affine(style_in, cfg.affine, gen);
    auto con = loss_contrastive_style(enc.mu, nets.E->encode(style_t).mu);
    loss_g = loss_g + L.lambda_contrastive * con;
    row["contrastive"] = con.item<double>();
  }
  return loss_g;
}


SPADEValidation train_spade(const SPADETrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_image_training_data(cfg.data);
  const auto& G_o = cfg.generator;
  auto vgg = load_spade_vgg(cfg.loss, device);  // before any output: a missing weights file stops the run here
  check_spade_config(cfg, data);

  const bool use_clf = !cfg.classifier_checkpoint.empty();
  ModalityClassifierBundle clf = load_spade_classifier(cfg, data, device);

  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  BRAINSPADE_CHECK_INPUT(!split.train.empty(), cfg.data.dataset, ": no training slices after the validation split");
  // A modality whose few slices all fell into validation (one PD slice beside a T1 volume) would never be seen as a
  // style: its slices move to training. Then the training rows per modality (balance_modalities).
  keep_every_class_in_training(split, data.modality, data.modality_names, "modality");
  const auto modality_rows = training_rows_by_modality(split, data);

  auto val_rows = split.val.empty() ? std::vector<int64_t>(split.train.begin(), split.train.begin() + std::min<size_t>(8, split.train.size()))
                                    : split.val;

  SPADENetworks nets = build_spade_networks(cfg, data, seed, device);
  nets.vgg = vgg;
  auto& G = nets.G;
  auto& E = nets.E;
  auto& D = nets.D;
  auto ge_params = G->parameters();
  for (auto& p : E->parameters()) ge_params.push_back(p);
  torch::optim::Adam opt_g(ge_params, torch::optim::AdamOptions(cfg.optim.lr_g).betas({cfg.optim.beta1, cfg.optim.beta2}));
  torch::optim::Adam opt_d(D->parameters(), torch::optim::AdamOptions(cfg.optim.lr_d).betas({cfg.optim.beta1, cfg.optim.beta2}));

  std::deque<double> d_acc;  // running discriminator accuracy of the gating window
  StageRun run("spade", "train spade", cfg.run, cfg.train, dump_config(cfg),
               model_section("generator", G_o) + model_section("encoder", cfg.encoder));
  run.track("generator", *G);
  run.track("encoder", *E);
  run.track("discriminator", *D);
  run.track("optim_g", opt_g);
  run.track("optim_d", opt_d);
  run.on_resume([&](const Checkpoint& ck) {
    if (ck.has("d_accuracy")) {
      auto t = ck.tensor("d_accuracy");
      for (int64_t i = 0; i < t.numel(); ++i) d_acc.push_back(t[i].item<double>());
    }
  });
  run.on_save([&](Checkpoint& ck) {
    ck.set_strings("channel_names", data.channel_names);
    ck.set_strings("modality_names", data.modality_names);
    ck.set_int("downsample", cfg.data.downsample);
    ck.set("slice_spacing", torch::tensor(std::vector<double>(data.spacing.begin(), data.spacing.end()), torch::kDouble));
    ck.set("d_accuracy", torch::tensor(std::vector<double>(d_acc.begin(), d_acc.end()), torch::kDouble));
  });
  const int64_t start = run.begin(resume);

  auto style_rows_for = [&](const std::vector<int64_t>& rows, uint64_t s) { return other_slices(data, rows, s); };
  const StyleCheckDraws style_draws = use_clf ? style_check_draws(data, val_rows, split.train, derive_seed(seed, 0x5a2))
                                               : StyleCheckDraws{};
  auto validate = [&] {
    return spade_validation(G, E, use_clf ? &clf : nullptr, data, val_rows, style_draws, seed, device);
  };
  auto gather = gather_rows;

  G->train();
  E->train();
  D->train();
  SPADEValidation val{NAN};
  for (int64_t step = start; step < cfg.train.steps;) {
    if (run.interrupted(step)) return val;
    torch::manual_seed(derive_seed(seed, 7, step));
    auto gen = make_generator(derive_seed(seed, 8, step));
    std::vector<int64_t> rows = spade_batch_rows(cfg, split, modality_rows, seed, step);
    auto style_rows = style_rows_for(rows, derive_seed(seed, 9, step));
    auto seg = gather(data.labels, rows).to(device);     // [B, C, H, W] content
    auto real = gather(data.images, rows).to(device);    // [B, 1, H, W] ground truth of the content slice
    auto style = gather(data.images, style_rows).to(device);  // [B, 1, H, W] another slice of the same volume
    auto style_in = cfg.augment_style ? intensity_augment(style, cfg.intensity_augment, gen) : style;
    // The global batch is gathered and augmented on every rank; each keeps its contiguous rows.
    rows = dist.local_rows(rows);
    style_rows = dist.local_rows(style_rows);
    seg = dist.local_rows(seg);  // [B/world, C, H, W]
    real = dist.local_rows(real);
    style = dist.local_rows(style);
    style_in = dist.local_rows(style_in);
    dist.seed_network_draws(derive_seed(seed, 7, step));  // encoder noise per (step, rank)
    if (dist.active()) gen = make_generator(derive_seed(derive_seed(seed, 8, step), 0xD157ULL, dist.rank()));

    if (cfg.optim.lr_decay < 1.0) {
      const double scale = std::pow(cfg.optim.lr_decay, static_cast<double>(step));
      for (auto& g : opt_g.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(cfg.optim.lr_g * scale);
      for (auto& g : opt_d.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(cfg.optim.lr_d * scale);
    }

    // Gating (authors' train.py): running D accuracy decides which networks step.
    bool train_g = true, train_d = true;
    if (cfg.optim.d_gating && static_cast<int64_t>(d_acc.size()) >= cfg.optim.gating_window) {
      double acc = 0;
      for (double a : d_acc) acc += a;
      acc /= d_acc.size();
      train_g = acc >= cfg.optim.gating_low;
      train_d = acc <= cfg.optim.gating_high;
    }

    // Generator + encoder step.
    auto enc = E->forward(style_in);
    auto fake = G->forward(seg, enc.z);
    std::map<std::string, double> row;
    if (train_g) {
      set_requires_grad(*D, false);
      torch::Tensor loss_g = spade_generator_loss(
          nets, use_clf ? &clf : nullptr, cfg, step, enc, fake, seg, real, style_in,
          gather(data.modality, style_rows).to(device), gather(data.dataset, style_rows).to(device), gen, row);
      set_requires_grad(*D, true);
      opt_g.zero_grad();
      loss_g.backward();
      dist.all_reduce_gradients(ge_params);
      clip_gradients(ge_params, cfg.train.grad_clip);
      opt_g.step();
      row["loss_g"] = loss_g.item<double>();
    }

    // Discriminator step (hinge), fake and real.
    spade_discriminator_step(D, opt_d, seg, fake.detach(), real, train_d, cfg, d_acc, row);
    ++step;
    if (run.log_due(step)) {
      row["l1_to_real"] = (fake.detach() - real).abs().mean().item<double>();
      row["lr_g"] = cfg.optim.lr_g * std::pow(cfg.optim.lr_decay, static_cast<double>(step - 1));
      row = run.reduce(row);
      if (run.validate_due(step)) {
        val = validate();
        row["val_l1"] = val.l1;
        if (std::isfinite(val.style_accuracy)) row["val_style_accuracy"] = val.style_accuracy;
      }
      run.log(step, row, fmt::format("G {:.3f} D {:.3f}", row["loss_g"], row["loss_d"]));
    }
    run.checkpoint_if_due(step);
  }
  if (!dist.is_main()) return val;
  run.finish(std::isfinite(val.style_accuracy)
                 ? fmt::format("held-out L1 {:.4f}, style check {:.2f}", val.l1, val.style_accuracy)
                 : fmt::format("held-out L1 {:.4f}", val.l1));
  if (std::isfinite(val.style_accuracy) && val.style_accuracy < kStyleCheckWarnBelow)
    spdlog::warn("train spade: style check {:.2f}: the classifier sees the style's modality in only {:.0f}% of the "
                 "held-out maps drawn once per modality (chance: {:.0f}%): the generator draws the styles alike, or the "
                 "classifier cannot tell its images apart. More steps (train.steps) or more slices of the rarer "
                 "modality help; val_style_accuracy in metrics.csv shows the course (docs/image-generator.md)",
                 val.style_accuracy, 100 * val.style_accuracy, 100.0 / data.modality_names.size());
  write_spade_montage(G, E, data, val_rows, seed, device, run.path("samples.png"));
  plot_metrics(run.metrics_path(), {"loss_g", "loss_d", "val_l1", "val_style_accuracy"}, run.path("loss.png"));
  return val;
}

}  // namespace brainspade
