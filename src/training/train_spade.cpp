#include "brainspade/training/train_spade.h"

#include <cmath>
#include <deque>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"
#include "brainspade/core/progress.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/io/image_io.h"
#include "brainspade/losses/spade_losses.h"
#include "brainspade/nn/spade_norm.h"
#include "brainspade/training/montage.h"

namespace brainspade {

void ClassifierOptimOptions::visit(ConfigVisitor& v) {
  v("lr", lr, "initial Adam learning rate", Bounds::positive());
  v("lr_final", lr_final, "learning rate at the last step (exponential decay)", Bounds::positive());
  v("augment", augment, "random affine + intensity augmentation of the training inputs");
}
void ClassifierTrainConfig::visit(ConfigVisitor& v) {
  v.section("run", run);
  v.section("data", data);
  v.section("classifier", classifier);
  v.section("optim", optim);
  v.section("affine", affine);
  v.section("intensity_augment", intensity_augment);
  v.section("train", train);
}
void SPADELossOptions::visit(ConfigVisitor& v) {
  v("lambda_feat", lambda_feat, "feature-matching weight (SPADE: 10)", Bounds::non_negative());
  v("lambda_perceptual", lambda_perceptual, "perceptual weight (SPADE: 10 with VGG19)", Bounds::non_negative());
  v.choice("perceptual_network", perceptual_network, {"none", "classifier"},
           "perceptual features: the frozen modality classifier's trunk, or none");
  v("lambda_kld", lambda_kld, "KLD weight (SPADE: 0.05)", Bounds::non_negative());
  v("alpha_mod", alpha_mod, "modality BCE weight through the frozen classifier (authors: 2.5)", Bounds::non_negative());
  v("alpha_dat", alpha_dat, "dataset BCE weight (authors: 1.0); must stay below alpha_mod", Bounds::non_negative());
  v("mod_dat_start_step", mod_dat_start_step, "step at which the modality/dataset terms start", Bounds::non_negative());
  v("mod_dat_ramp_steps", mod_dat_ramp_steps, "linear ramp of the modality/dataset weights (0 = at once)",
    Bounds::non_negative());
  v("lambda_contrastive", lambda_contrastive, "weight of 1 - cos(E(i), E(T(i)))", Bounds::non_negative());
}
void SPADEOptimOptions::visit(ConfigVisitor& v) {
  v("lr_g", lr_g, "Adam learning rate of generator and encoder (TTUR: 1e-4)", Bounds::positive());
  v("lr_d", lr_d, "Adam learning rate of the discriminator (TTUR: 4e-4)", Bounds::positive());
  v("beta1", beta1, "Adam beta1 (SPADE: 0)", Bounds::range(0.0, 0.999));
  v("beta2", beta2, "Adam beta2 (SPADE: 0.9)", Bounds::range(0.0, 0.9999));
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

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}
void set_lr(torch::optim::Adam& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}
std::string slice_shape(const torch::Tensor& images) {
  return fmt::format("{}x{}x{} slices", images.size(1), images.size(2), images.size(3));
}
SliceDataset load_images_dataset(const DataSource& source) {
  auto data = load_training_data(source);
  BRAINSPADE_CHECK_INPUT(data.images.defined() && data.images.numel() > 0, source.dataset,
                         ": this dataset has no images (a labels-only dataset cannot train an image stage)");
  return data;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Modality / dataset classifier

ClassifierValidation train_classifier(const ClassifierTrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_images_dataset(cfg.data);
  BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(data.modality_names.size()) == cfg.classifier.n_modalities,
                         "config key 'classifier.n_modalities' is ", cfg.classifier.n_modalities, " but ", cfg.data.dataset,
                         " has ", data.modality_names.size(), " modalities (", join(data.modality_names), ")");
  BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(data.dataset_names.size()) == cfg.classifier.n_datasets,
                         "config key 'classifier.n_datasets' is ", cfg.classifier.n_datasets, " but ", cfg.data.dataset,
                         " has ", data.dataset_names.size(), " datasets (", join(data.dataset_names), ")");
  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  // A class whose few slices all fell into validation could never be learned: they move to training.
  keep_every_class_in_training(split, data.modality, data.modality_names, "modality");
  keep_every_class_in_training(split, data.dataset, data.dataset_names, "dataset");
  auto tr = torch::tensor(split.train), va = torch::tensor(split.val.empty() ? split.train : split.val);

  // Classes can be very unbalanced (e.g. one PD slice beside a T1 volume): draw rows so that every
  // (modality, dataset) pair is equally likely in a batch.
  auto key = data.modality.index_select(0, tr) * 1000 + data.dataset.index_select(0, tr);
  auto uniq = std::get<0>(at::_unique(key));
  std::vector<std::vector<int64_t>> groups(uniq.numel());
  for (int64_t i = 0; i < key.numel(); ++i)
    for (int64_t g = 0; g < uniq.numel(); ++g)
      if (key[i].item<int64_t>() == uniq[g].item<int64_t>()) groups[g].push_back(split.train[i]);

  torch::manual_seed(seed);
  models::ModalityClassifier net = nullptr;
  check_networks_fit("section 'classifier'", slice_shape(data.images), [&] {
    net = models::ModalityClassifier(cfg.classifier);
    net->eval();
    net->forward(torch::zeros({1, data.images.size(1), data.images.size(2), data.images.size(3)}));
    net->train();
  });
  net->to(device);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.optim.lr));
  CheckpointFiles files(cfg.run.out_dir, cfg.train.keep_checkpoints);
  const std::string model_yaml = dump_section("classifier", cfg.classifier), full_yaml = dump_config(cfg);
  int64_t start = 0;
  if (auto ck = resume_checkpoint(files, resume, "classifier", model_yaml)) {
    ck->load_module("classifier", *net, files.last());
    ck->load_optimizer("optim", opt);
    start = ck->get_int("step");
  }
  dist.check_same(start, "the step to resume from");
  dist.broadcast_parameters(*net);
  auto save = [&](int64_t step) {
    if (!dist.is_main()) return;  // one checkpoint writer
    Checkpoint ck;
    ck.set_string("stage", "classifier");
    ck.set_int("step", step);
    ck.set_string("config", full_yaml);
    ck.set_string("model_config", model_yaml);
    ck.set_strings("modality_names", data.modality_names);
    ck.set_strings("dataset_names", data.dataset_names);
    ck.add_module("classifier", *net);
    ck.add_optimizer("optim", opt);
    files.save(ck, step);
  };
  auto validate = [&]() {
    torch::NoGradGuard g;
    net->eval();
    int64_t ok_m = 0, ok_d = 0, n = va.numel();
    for (int64_t i = 0; i < n; i += 32) {
      auto rows = va.slice(0, i, std::min(i + 32, n));
      auto out = net->forward(data.images.index_select(0, rows).to(device));
      ok_m += (out.modality_logits.argmax(1).cpu() == data.modality.index_select(0, rows)).sum().item<int64_t>();
      ok_d += (out.dataset_logits.argmax(1).cpu() == data.dataset.index_select(0, rows)).sum().item<int64_t>();
    }
    net->train();
    return ClassifierValidation{double(ok_m) / n, double(ok_d) / n};
  };

  MetricsCsv metrics(dist.is_main() ? cfg.run.out_dir + "/metrics.csv" : "", start);
  StopSignal::install();
  Progress progress("train classifier", cfg.train.steps, start);
  net->train();
  ClassifierValidation val;
  const double decay = std::pow(cfg.optim.lr_final / cfg.optim.lr, 1.0 / std::max<int64_t>(1, cfg.train.steps));
  int64_t step = start;
  while (step < cfg.train.steps) {
    if (dist.any(StopSignal::requested())) {
      spdlog::warn("interrupted: saving a checkpoint at step {} (continue with --resume)", step);
      save(step);
      return val;
    }
    torch::manual_seed(derive_seed(seed, 4, step));
    std::mt19937_64 rng(derive_seed(seed, 5, step));
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < cfg.train.batch_size; ++b) {
      const auto& grp = groups[rng() % groups.size()];
      rows.push_back(grp[rng() % grp.size()]);
    }
    auto idx = torch::tensor(rows);
    auto x = data.images.index_select(0, idx);
    if (cfg.optim.augment) {
      auto gen = data::make_generator(derive_seed(seed, 6, step));
      x = data::intensity_augment(data::random_affine(x, cfg.affine, gen), cfg.intensity_augment, gen);
    }
    // The global batch is drawn and augmented on every rank; each keeps its contiguous rows.
    idx = dist.local_rows(idx);
    x = dist.local_rows(x);  // [B/world, 1, H, W]
    dist.seed_network_draws(derive_seed(seed, 4, step));  // dropout masks per (step, rank)
    set_lr(opt, cfg.optim.lr * std::pow(decay, double(step)));
    auto out = net->forward(x.to(device));
    auto l = losses::loss_modality_dataset(out, data.modality.index_select(0, idx).to(device),
                                           data.dataset.index_select(0, idx).to(device), 1.0, 1.0);
    opt.zero_grad();
    l.total.backward();
    dist.all_reduce_gradients(net->parameters());
    clip_gradients(net->parameters(), cfg.train.grad_clip);
    opt.step();
    ++step;
    if (step % cfg.train.log_every == 0 || step == cfg.train.steps) {
      std::map<std::string, double> row{{"loss", l.total.item<double>()}, {"bce_modality", l.modality.item<double>()},
                                        {"bce_dataset", l.dataset.item<double>()}};
      dist.all_reduce_mean(row);
      if (dist.is_main() &&
          ((cfg.train.validate_every > 0 && step % cfg.train.validate_every == 0) || step == cfg.train.steps)) {
        val = validate();
        row["val_modality_accuracy"] = val.modality_accuracy;
        row["val_dataset_accuracy"] = val.dataset_accuracy;
      }
      metrics.write(step, row);
      progress.update(cfg.train.log_every, fmt::format("loss {:.4f}", row["loss"]));
    }
    if (step % cfg.train.checkpoint_every == 0 || step == cfg.train.steps) save(step);
  }
  if (!dist.is_main()) return val;
  progress.finish(fmt::format("held-out accuracy: modality {:.3f}, dataset {:.3f}", val.modality_accuracy, val.dataset_accuracy));
  plot_metrics(cfg.run.out_dir + "/metrics.csv", {"loss"}, cfg.run.out_dir + "/loss.png");
  return val;
}

ModalityClassifierBundle load_classifier(const std::string& path, torch::Device device) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "classifier");
  auto opts = load_section<models::ModalityClassifierOptions>("classifier", ck.get_string("model_config"), path);
  ModalityClassifierBundle b;
  b.net = models::ModalityClassifier(opts);
  ck.load_module("classifier", *b.net, "classifier checkpoint " + path);
  b.net->to(device);
  b.net->eval();
  set_requires_grad(*b.net, false);
  b.modality_names = ck.get_strings("modality_names");
  b.dataset_names = ck.get_strings("dataset_names");
  return b;
}

// ---------------------------------------------------------------------------------------------------------------
// SPADE VAE-GAN

SPADEValidation train_spade(const SPADETrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_images_dataset(cfg.data);
  const auto& G_o = cfg.generator;
  BRAINSPADE_CHECK_INPUT(data.channels() == G_o.label_nc, cfg.data.dataset, ": label maps have ", data.channels(),
                         " channels but generator.label_nc is ", G_o.label_nc);
  BRAINSPADE_CHECK_INPUT(cfg.discriminator.label_nc == G_o.label_nc, "config key 'discriminator.label_nc' (",
                         cfg.discriminator.label_nc, ") must equal generator.label_nc (", G_o.label_nc, ")");
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

  ModalityClassifierBundle clf;
  const bool use_clf = !cfg.classifier_checkpoint.empty();
  if (use_clf) {
    BRAINSPADE_CHECK_INPUT(file_exists(cfg.classifier_checkpoint), "config key 'classifier_checkpoint': ",
                           cfg.classifier_checkpoint, " does not exist (train it with `brainspade train classifier`, ",
                           "or set it to \"\" to train without the modality/dataset loss)");
    clf = load_classifier(cfg.classifier_checkpoint, device);
    BRAINSPADE_CHECK_INPUT(clf.modality_names == data.modality_names && clf.dataset_names == data.dataset_names,
                           "classifier ", cfg.classifier_checkpoint, " knows modalities [", join(clf.modality_names),
                           "] and datasets [", join(clf.dataset_names), "] but ", cfg.data.dataset, " has [",
                           join(data.modality_names), "] and [", join(data.dataset_names), "]");
  }
  BRAINSPADE_CHECK_INPUT(L.perceptual_network == "none" || L.lambda_perceptual == 0 || use_clf,
                         "config key 'loss.perceptual_network' is classifier but classifier_checkpoint is empty");

  const uint64_t seed = static_cast<uint64_t>(cfg.run.seed);
  Split split = split_rows(data.subject, data.slice_index, cfg.train.val_fraction, seed);
  BRAINSPADE_CHECK_INPUT(!split.train.empty(), cfg.data.dataset, ": no training slices after the validation split");
  // A modality whose few slices all fell into validation (one PD slice beside a T1 volume) would never be seen as a
  // style: its slices move to training. Then the training rows per modality (balance_modalities).
  keep_every_class_in_training(split, data.modality, data.modality_names, "modality");
  std::vector<std::vector<int64_t>> modality_rows;
  {
    std::map<int64_t, std::vector<int64_t>> train_by;
    for (int64_t r : split.train) train_by[data.modality[r].item<int64_t>()].push_back(r);
    for (auto& kv : train_by) modality_rows.push_back(std::move(kv.second));
  }

  auto val_rows = split.val.empty() ? std::vector<int64_t>(split.train.begin(), split.train.begin() + std::min<size_t>(8, split.train.size()))
                                    : split.val;

  torch::manual_seed(seed);
  models::SPADEGenerator G = nullptr;
  models::ConvEncoder E = nullptr;
  models::MultiscaleDiscriminator D = nullptr;
  check_networks_fit("sections 'generator'/'encoder'/'discriminator'", slice_shape(data.images), [&] {
    G = models::SPADEGenerator(G_o);
    E = models::ConvEncoder(cfg.encoder);
    D = models::MultiscaleDiscriminator(cfg.discriminator);
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
  auto ge_params = G->parameters();
  for (auto& p : E->parameters()) ge_params.push_back(p);
  torch::optim::Adam opt_g(ge_params, torch::optim::AdamOptions(cfg.optim.lr_g).betas({cfg.optim.beta1, cfg.optim.beta2}));
  torch::optim::Adam opt_d(D->parameters(), torch::optim::AdamOptions(cfg.optim.lr_d).betas({cfg.optim.beta1, cfg.optim.beta2}));

  CheckpointFiles files(cfg.run.out_dir, cfg.train.keep_checkpoints);
  const std::string full_yaml = dump_config(cfg);
  const std::string model_yaml = dump_section("generator", G_o) + dump_section("encoder", cfg.encoder);
  int64_t start = 0;
  std::deque<double> d_acc;
  if (auto ck = resume_checkpoint(files, resume, "spade", model_yaml)) {
    ck->load_module("generator", *G, files.last());
    ck->load_module("encoder", *E, files.last());
    ck->load_module("discriminator", *D, files.last());
    ck->load_optimizer("optim_g", opt_g);
    ck->load_optimizer("optim_d", opt_d);
    start = ck->get_int("step");
    if (ck->has("d_accuracy")) {
      auto t = ck->tensor("d_accuracy");
      for (int64_t i = 0; i < t.numel(); ++i) d_acc.push_back(t[i].item<double>());
    }
  }
  dist.check_same(start, "the step to resume from");
  dist.broadcast_parameters(*G);
  dist.broadcast_parameters(*E);
  dist.broadcast_parameters(*D);
  auto save = [&](int64_t step) {
    if (!dist.is_main()) return;  // one checkpoint writer
    Checkpoint ck;
    ck.set_string("stage", "spade");
    ck.set_int("step", step);
    ck.set_string("config", full_yaml);
    ck.set_string("model_config", model_yaml);
    ck.set_strings("channel_names", data.channel_names);
    ck.set_strings("modality_names", data.modality_names);
    ck.set_int("downsample", cfg.data.downsample);
    ck.add_module("generator", *G);
    ck.add_module("encoder", *E);
    ck.add_module("discriminator", *D);
    ck.add_optimizer("optim_g", opt_g);
    ck.add_optimizer("optim_d", opt_d);
    ck.set("d_accuracy", torch::tensor(std::vector<double>(d_acc.begin(), d_acc.end()), torch::kDouble));
    files.save(ck, step);
  };

  // Style rows: another slice of the same volume (limitation 3); deterministic per (seed, step, j).
  auto style_rows_for = [&](const std::vector<int64_t>& rows, uint64_t s) {
    std::mt19937_64 rng(s);
    std::vector<int64_t> out;
    for (auto r : rows) {
      int64_t o = data.other_slice_same_volume(r, rng);
      out.push_back(o >= 0 ? o : r);
    }
    return out;
  };
  auto gather = [&](const torch::Tensor& t, const std::vector<int64_t>& rows) { return t.index_select(0, torch::tensor(rows)); };

  auto validate = [&]() {
    torch::NoGradGuard g;
    G->eval();
    E->eval();
    double total = 0;
    int64_t n = 0;
    auto style_rows = style_rows_for(val_rows, derive_seed(seed, 0x5a1));
    for (size_t i = 0; i < val_rows.size(); i += 8) {
      std::vector<int64_t> r(val_rows.begin() + i, val_rows.begin() + std::min(val_rows.size(), i + 8));
      std::vector<int64_t> s(style_rows.begin() + i, style_rows.begin() + std::min(style_rows.size(), i + 8));
      auto fake = G->forward(gather(data.labels, r).to(device), E->encode(gather(data.images, s).to(device)).mu);
      total += (fake.cpu() - gather(data.images, r)).abs().mean().item<double>() * r.size();
      n += r.size();
    }
    G->train();
    E->train();
    return SPADEValidation{total / std::max<int64_t>(1, n)};
  };

  MetricsCsv metrics(dist.is_main() ? cfg.run.out_dir + "/metrics.csv" : "", start);
  StopSignal::install();
  Progress progress("train spade", cfg.train.steps, start);
  G->train();
  E->train();
  D->train();
  SPADEValidation val{NAN};
  int64_t step = start;
  while (step < cfg.train.steps) {
    if (dist.any(StopSignal::requested())) {
      spdlog::warn("interrupted: saving a checkpoint at step {} (continue with --resume)", step);
      save(step);
      return val;
    }
    torch::manual_seed(derive_seed(seed, 7, step));
    auto gen = data::make_generator(derive_seed(seed, 8, step));
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
    auto style_rows = style_rows_for(rows, derive_seed(seed, 9, step));
    auto seg = gather(data.labels, rows).to(device);     // [B, C, H, W] content
    auto real = gather(data.images, rows).to(device);    // [B, 1, H, W] ground truth of the content slice
    auto style = gather(data.images, style_rows).to(device);  // [B, 1, H, W] another slice of the same volume
    auto style_in = cfg.augment_style ? data::intensity_augment(style, cfg.intensity_augment, gen) : style;
    // The global batch is gathered and augmented on every rank; each keeps its contiguous rows.
    rows = dist.local_rows(rows);
    style_rows = dist.local_rows(style_rows);
    seg = dist.local_rows(seg);  // [B/world, C, H, W]
    real = dist.local_rows(real);
    style = dist.local_rows(style);
    style_in = dist.local_rows(style_in);
    dist.seed_network_draws(derive_seed(seed, 7, step));  // encoder noise per (step, rank)
    if (dist.active()) gen = data::make_generator(derive_seed(derive_seed(seed, 8, step), 0xD157ULL, dist.rank()));

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
      auto d_fake = D->forward(seg, fake);
      torch::Tensor loss_g = losses::loss_gan_g(d_fake);
      row["g_gan"] = loss_g.item<double>();
      if (L.lambda_feat > 0) {
        models::DiscriminatorFeatures d_real;
        {
          torch::NoGradGuard ng;  // real features are targets; gradients flow through the fake branch only
          d_real = D->forward(seg, real);
        }
        auto fm = losses::loss_feature_matching(d_fake, d_real);
        loss_g = loss_g + L.lambda_feat * fm;
        row["g_feat"] = fm.item<double>();
      }
      auto kld = losses::loss_kld(enc.mu, enc.logvar);
      loss_g = loss_g + L.lambda_kld * kld;
      row["kld"] = kld.item<double>();
      if (use_clf) {
        double ramp = 1.0;
        if (step < L.mod_dat_start_step) ramp = 0.0;
        else if (L.mod_dat_ramp_steps > 0)
          ramp = std::min(1.0, double(step - L.mod_dat_start_step + 1) / L.mod_dat_ramp_steps);
        if (ramp > 0 && (L.alpha_mod > 0 || L.alpha_dat > 0)) {
          auto out = clf.net->forward(fake);
          auto md = losses::loss_modality_dataset(out, gather(data.modality, style_rows).to(device),
                                                  gather(data.dataset, style_rows).to(device), L.alpha_mod * ramp,
                                                  L.alpha_dat * ramp);
          loss_g = loss_g + md.total;
          row["bce_modality"] = md.modality.item<double>();
          row["bce_dataset"] = md.dataset.item<double>();
          if (L.perceptual_network == "classifier" && L.lambda_perceptual > 0) {
            auto f_real = clf.net->forward(real).features.detach();
            auto perc = (out.features - f_real).abs().mean();
            loss_g = loss_g + L.lambda_perceptual * perc;
            row["perceptual"] = perc.item<double>();
          }
        } else if (L.perceptual_network == "classifier" && L.lambda_perceptual > 0) {
          auto perc = (clf.net->forward(fake).features - clf.net->forward(real).features.detach()).abs().mean();
          loss_g = loss_g + L.lambda_perceptual * perc;
          row["perceptual"] = perc.item<double>();
        }
      }
      if (L.lambda_contrastive > 0) {
        auto style_t = data::random_affine(style_in, cfg.affine, gen);
        auto con = losses::loss_contrastive_style(enc.mu, E->encode(style_t).mu);
        loss_g = loss_g + L.lambda_contrastive * con;
        row["contrastive"] = con.item<double>();
      }
      set_requires_grad(*D, true);
      opt_g.zero_grad();
      loss_g.backward();
      dist.all_reduce_gradients(ge_params);
      clip_gradients(ge_params, cfg.train.grad_clip);
      opt_g.step();
      row["loss_g"] = loss_g.item<double>();
    }

    // Discriminator step (hinge), fake and real.
    {
      auto d_fake = D->forward(seg, fake.detach());
      auto d_real = D->forward(seg, real);
      auto loss_d = losses::loss_gan_d_fake(d_fake) + losses::loss_gan_d_real(d_real);
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
    ++step;
    if (step % cfg.train.log_every == 0 || step == cfg.train.steps) {
      row["l1_to_real"] = (fake.detach() - real).abs().mean().item<double>();
      dist.all_reduce_mean(row);
      if (dist.is_main() &&
          ((cfg.train.validate_every > 0 && step % cfg.train.validate_every == 0) || step == cfg.train.steps)) {
        val = validate();
        row["val_l1"] = val.l1;
      }
      metrics.write(step, row);
      progress.update(cfg.train.log_every, fmt::format("G {:.3f} D {:.3f}", row["loss_g"], row["loss_d"]));
    }
    if (step % cfg.train.checkpoint_every == 0 || step == cfg.train.steps) save(step);
  }
  if (!dist.is_main()) return val;
  progress.finish(fmt::format("held-out L1 {:.4f}", val.l1));
  // Montage: label | style | output | real, for a few held-out slices.
  {
    torch::NoGradGuard g;
    G->eval();
    E->eval();
    std::vector<int64_t> r(val_rows.begin(), val_rows.begin() + std::min<size_t>(4, val_rows.size()));
    auto s = style_rows_for(r, derive_seed(seed, 0x5a1));
    auto fake = G->forward(gather(data.labels, r).to(device), E->encode(gather(data.images, s).to(device)).mu).cpu();
    std::vector<torch::Tensor> tiles;
    for (size_t i = 0; i < r.size(); ++i) {
      tiles.push_back(label_to_rgb(data.labels[r[i]]));
      tiles.push_back(data.images[s[i]][0]);
      tiles.push_back(fake[i][0]);
      tiles.push_back(data.images[r[i]][0]);
    }
    write_montage_png(cfg.run.out_dir + "/samples.png", tiles, 4);
    spdlog::info("montage (label | style | output | real): {}/samples.png", cfg.run.out_dir);
  }
  plot_metrics(cfg.run.out_dir + "/metrics.csv", {"loss_g", "loss_d", "val_l1"}, cfg.run.out_dir + "/loss.png");
  return val;
}

ImageGenerator load_image_generator(const std::string& path, torch::Device device) {
  auto ck = Checkpoint::load(path);
  check_checkpoint_stage(ck, "spade");
  const std::string yaml = ck.get_string("model_config");
  ImageGenerator g;
  auto gen_opts = load_section<models::SPADEGeneratorOptions>("generator", yaml, path);
  auto enc_opts = load_section<models::ConvEncoderOptions>("encoder", yaml, path);
  g.generator = models::SPADEGenerator(gen_opts);
  g.encoder = models::ConvEncoder(enc_opts);
  ck.load_module("generator", *g.generator, "SPADE checkpoint " + path);
  ck.load_module("encoder", *g.encoder, "SPADE checkpoint " + path);
  g.generator->to(device);
  g.encoder->to(device);
  g.generator->eval();
  g.encoder->eval();
  g.channel_names = ck.get_strings("channel_names");
  g.modality_names = ck.get_strings("modality_names");
  g.downsample = ck.get_int("downsample");
  return g;
}

}  // namespace brainspade
