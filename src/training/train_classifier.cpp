#include "brainspade/training/train_classifier.h"

#include <cmath>
#include <random>

#include <spdlog/spdlog.h>

#include "brainspade/core/distributed.h"
#include "brainspade/core/runtime.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/losses/spade_losses.h"
#include "brainspade/training/montage.h"
#include "brainspade/training/run.h"

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
namespace {

void set_lr(torch::optim::Adam& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Modality / dataset classifier

ClassifierValidation train_classifier(const ClassifierTrainConfig& cfg, bool resume) {
  Distributed& dist = distributed();
  torch::Device device = dist.local_device(parse_device(cfg.run.device));
  dist.check_global_batch(cfg.train.batch_size, "train.batch_size");
  auto data = load_image_training_data(cfg.data);
  BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(data.modality_names.size()) == cfg.classifier.n_modalities,
                         "config key 'classifier.n_modalities' is ", cfg.classifier.n_modalities, " but ", cfg.data.dataset,
                         " has ", data.modality_names.size(), " modalities (", join_names(data.modality_names), ")");
  BRAINSPADE_CHECK_INPUT(static_cast<int64_t>(data.dataset_names.size()) == cfg.classifier.n_datasets,
                         "config key 'classifier.n_datasets' is ", cfg.classifier.n_datasets, " but ", cfg.data.dataset,
                         " has ", data.dataset_names.size(), " datasets (", join_names(data.dataset_names), ")");
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
  ModalityClassifier net = nullptr;
  check_networks_fit("section 'classifier'", slice_shape_string(data.images), [&] {
    net = ModalityClassifier(cfg.classifier);
    net->eval();
    net->forward(torch::zeros({1, data.images.size(1), data.images.size(2), data.images.size(3)}));
    net->train();
  });
  net->to(device);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cfg.optim.lr));
  StageRun run("classifier", "train classifier", cfg.run, cfg.train, dump_config(cfg),
               model_section("classifier", cfg.classifier));
  run.track("classifier", *net);
  run.track("optim", opt);
  run.on_save([&](Checkpoint& ck) {
    ck.set_strings("modality_names", data.modality_names);
    ck.set_strings("dataset_names", data.dataset_names);
  });
  const int64_t start = run.begin(resume);
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

  net->train();
  ClassifierValidation val;
  const double decay = std::pow(cfg.optim.lr_final / cfg.optim.lr, 1.0 / std::max<int64_t>(1, cfg.train.steps));
  for (int64_t step = start; step < cfg.train.steps;) {
    if (run.interrupted(step)) return val;
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
      auto gen = make_generator(derive_seed(seed, 6, step));
      x = intensity_augment(random_affine(x, cfg.affine, gen), cfg.intensity_augment, gen);
    }
    // The global batch is drawn and augmented on every rank; each keeps its contiguous rows.
    idx = dist.local_rows(idx);
    x = dist.local_rows(x);  // [B/world, 1, H, W]
    dist.seed_network_draws(derive_seed(seed, 4, step));  // dropout masks per (step, rank)
    set_lr(opt, cfg.optim.lr * std::pow(decay, double(step)));
    auto out = net->forward(x.to(device));
    auto l = loss_modality_dataset(out, data.modality.index_select(0, idx).to(device),
                                           data.dataset.index_select(0, idx).to(device), 1.0, 1.0);
    opt.zero_grad();
    l.total.backward();
    dist.all_reduce_gradients(net->parameters());
    clip_gradients(net->parameters(), cfg.train.grad_clip);
    opt.step();
    ++step;
    if (run.log_due(step)) {
      auto row = run.reduce({{"loss", l.total.item<double>()}, {"bce_modality", l.modality.item<double>()},
                             {"bce_dataset", l.dataset.item<double>()}});
      if (run.validate_due(step)) {
        val = validate();
        row["val_modality_accuracy"] = val.modality_accuracy;
        row["val_dataset_accuracy"] = val.dataset_accuracy;
      }
      run.log(step, row, fmt::format("loss {:.4f}", row["loss"]));
    }
    run.checkpoint_if_due(step);
  }
  if (!dist.is_main()) return val;
  run.finish(fmt::format("held-out accuracy: modality {:.3f}, dataset {:.3f}", val.modality_accuracy, val.dataset_accuracy));
  plot_metrics(run.metrics_path(), {"loss"}, run.path("loss.png"));
  return val;
}

}  // namespace brainspade
