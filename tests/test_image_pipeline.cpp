// The image generator end to end on a phantom dataset: classifier, SPADE training and resume, synthesis,
// joint pair generation (determinism, shards, resume, bad inputs).
#include <algorithm>
#include <filesystem>
#include <cmath>
#include <cstring>
#include <fstream>

#include <zlib.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/io/image_io.h"
#include "brainspade/losses/spade_losses.h"
#include "brainspade/core/csv.h"
#include "brainspade/sampling/pair_sampler.h"
#include "brainspade/training/train_segmenter.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_spade.h"
#include "support/helpers.h"
#include "support/phantom.h"
#include "support/tiny_configs.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

ClassifierTrainConfig tiny_classifier(const std::string& dataset, const std::string& out, int64_t steps) {
  ClassifierTrainConfig c;
  c.run.out_dir = out;
  c.run.device = "cpu";
  c.data.dataset = dataset;
  c.classifier.arch = "small";
  c.classifier.n_modalities = 2;
  c.classifier.n_datasets = 2;
  c.classifier.small_widths = {8, 16};
  c.train.steps = steps;
  c.train.batch_size = 8;
  c.train.log_every = 10;
  c.train.checkpoint_every = steps;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.0;
  return c;
}

struct TrainedImages {
  testutil::TempDir dir;
  std::string dataset, classifier, spade, vae, ldm, style;
  TrainedImages() {
    dataset = testutil::write_phantom_dataset(dir.path(), {});
    train_classifier(tiny_classifier(dataset, dir / "clf", 200), false);
    classifier = dir / "clf/checkpoints/last.ckpt";
    train_spade(testutil::tiny_spade(dataset, classifier, dir / "spade", 4), false);
    spade = dir / "spade/checkpoints/last.ckpt";
    VAETrainConfig v;
    v.run.out_dir = dir / "vae";
    v.run.device = "cpu";
    v.data.dataset = dataset;
    v.vae.channels = {8, 16};
    v.vae.num_res_blocks = 1;
    v.vae.norm_groups = 4;
    v.discriminator.ndf = 8;
    v.train.steps = 4;
    v.train.batch_size = 4;
    v.train.log_every = 2;
    v.train.checkpoint_every = 4;
    v.train.validate_every = 0;
    train_vae(v, false);
    vae = dir / "vae/checkpoints/last.ckpt";
    LDMTrainConfig l;
    l.run.out_dir = dir / "ldm";
    l.run.device = "cpu";
    l.data.dataset = dataset;
    l.vae_checkpoint = vae;
    l.unet.model_channels = 8;
    l.unet.channel_mult = {1, 2};
    l.unet.num_res_blocks = 1;
    l.unet.attention_levels = {1};
    l.unet.norm_groups = 4;
    l.unet.cond_dim = 1;
    l.train.steps = 2;
    l.train.batch_size = 4;
    l.train.log_every = 2;
    l.train.checkpoint_every = 2;
    l.train.validate_every = 0;
    train_ldm(l, false);
    ldm = dir / "ldm/checkpoints/last.ckpt";
    // A style image: one phantom T1 slice as NIfTI.
    auto d = testutil::make_phantom_dataset({});
    style = dir / "style_t1.nii.gz";
    write_slice_nifti(style, d.images[2]);
  }
};
TrainedImages& trained_images() {
  static TrainedImages t;
  return t;
}

PairSampleJob pair_job(const TrainedImages& t, const std::string& out, int64_t num) {
  PairSampleJob j;
  j.run.out_dir = out;
  j.run.device = "cpu";
  j.run.seed = 3;
  j.ldm_checkpoint = t.ldm;
  j.spade_checkpoint = t.spade;
  j.styles = {t.style};
  j.num = num;
  j.sampler.steps = 4;
  j.sampler.batch_size = 2;
  return j;
}

// The same job with the random-contrast image generator: no SPADE, style or classifier.
PairSampleJob randomized_pair_job(const TrainedImages& t, const std::string& out, int64_t num) {
  auto j = pair_job(t, out, num);
  j.image_generator = "randomized";
  j.spade_checkpoint = "";
  j.styles = {};
  return j;
}

std::map<std::string, std::string> folder_bytes(const std::string& dir, const std::string& sub) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir + "/" + sub))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_text(e.path().string());
  return out;
}

}  // namespace

TEST(TrainClassifier, SeparatesPhantomModalities) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto c = tiny_classifier(ds, dir / "clf", 200);
  c.train.val_fraction = 0.3;
  auto val = train_classifier(c, false);
  EXPECT_GE(val.modality_accuracy, 0.9);
  auto b = load_classifier(dir / "clf/checkpoints/last.ckpt", torch::kCPU);
  EXPECT_EQ(b.modality_names, (std::vector<std::string>{"T1", "PD"}));
}

TEST(TrainSPADE, ResumeGivesTheSameWeights) {
  auto& t = trained_images();
  testutil::TempDir dir;
  train_spade(testutil::tiny_spade(t.dataset, t.classifier, dir / "a", 6), false);
  train_spade(testutil::tiny_spade(t.dataset, t.classifier, dir / "b", 4), false);
  train_spade(testutil::tiny_spade(t.dataset, t.classifier, dir / "b", 6), true);
  for (const char* net : {"generator.", "encoder.", "discriminator."})
    EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", net));
}

TEST(TrainSPADE, TwoGeneratorStepsLowerTheGeneratorLossOnAFixedBatch) {
  // train_spade's own generator loss (spade_generator_loss: hinge + feature matching + KLD + contrastive at the tiny
  // config's weights; no classifier), D frozen, on one fixed batch: two Adam steps of G and E must lower it.
  auto& t = trained_images();
  auto cfg = testutil::tiny_spade(t.dataset, "", "", 1);
  auto d = testutil::make_phantom_dataset({});
  torch::manual_seed(0);
  SPADENetworks nets{SPADEGenerator(cfg.generator), ConvEncoder(cfg.encoder),
                     MultiscaleDiscriminator(cfg.discriminator), nullptr};
  auto seg = d.labels.slice(0, 0, 4), real = d.images.slice(0, 0, 4), style = d.images.slice(0, 4, 8);
  auto params = nets.G->parameters();
  for (auto& p : nets.E->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3).betas({0.0, 0.9}));
  for (auto& p : nets.D->parameters()) p.set_requires_grad(false);
  std::map<std::string, double> row;
  auto gen_loss = [&] {
    auto gen = make_generator(5);  // the same contrastive transform every time: a fixed objective
    auto enc = nets.E->encode(style);
    auto fake = nets.G->forward(seg, enc.mu);
    auto none = torch::zeros({4}, torch::kLong);
    return spade_generator_loss(nets, nullptr, cfg, 0, enc, fake, seg, real, style, none, none, gen, row);
  };
  double before = gen_loss().item<double>();
  for (const char* term : {"g_gan", "g_feat", "kld"}) EXPECT_TRUE(row.count(term)) << term << " not computed";
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    gen_loss().backward();
    opt.step();
  }
  double after = gen_loss().item<double>();
  EXPECT_LT(after, before) << "before " << before << " after " << after;
}

TEST(TrainSPADE, ModalityAndDatasetWeightsRampBetweenTheirRanges) {
  SPADELossOptions L;
  L.alpha_mod = 2.5;
  L.alpha_dat = 0.75;
  L.alpha_mod_start = 0.1;
  L.alpha_dat_start = 0.05;
  L.mod_dat_start_step = 10;
  L.mod_dat_ramp_steps = 4;
  EXPECT_EQ(modality_dataset_weights(L, 9), std::make_pair(0.0, 0.0));  // before the start: off
  auto w = modality_dataset_weights(L, 10);                              // first ramp step: 1/4 of the way
  EXPECT_NEAR(w.first, 0.1 + 2.4 / 4, 1e-12);
  EXPECT_NEAR(w.second, 0.05 + 0.7 / 4, 1e-12);
  w = modality_dataset_weights(L, 13);
  EXPECT_NEAR(w.first, 2.5, 1e-12);
  EXPECT_NEAR(w.second, 0.75, 1e-12);
  EXPECT_EQ(modality_dataset_weights(L, 1000), w);
  L.mod_dat_ramp_steps = 0;  // no ramp: the final weights from the start step (the authors' code, start step 0)
  EXPECT_EQ(modality_dataset_weights(L, 10), std::make_pair(2.5, 0.75));
}

TEST(TrainSPADE, WritesMontageLossPlotAndMetrics) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto c = testutil::tiny_spade(t.dataset, t.classifier, dir / "s", 6);
  c.optim.lr_decay = 0.9;
  c.train.log_every = 1;
  c.train.validate_every = 3;
  auto val = train_spade(c, false);
  EXPECT_TRUE(std::isfinite(val.l1));
  // The style check runs with a classifier and two modalities: a share of the drawn maps.
  EXPECT_GE(val.style_accuracy, 0.0);
  EXPECT_LE(val.style_accuracy, 1.0);
  EXPECT_TRUE(fs::exists(dir / "s/samples.png"));
  EXPECT_TRUE(fs::exists(dir / "s/loss.png"));
  auto csv = read_text(dir / "s/metrics.csv");
  for (const char* col : {"g_gan", "g_feat", "kld", "bce_modality", "bce_dataset", "perceptual", "contrastive", "loss_d",
                          "val_l1", "val_style_accuracy"})
    EXPECT_NE(csv.find(col), std::string::npos) << col << " missing from " << csv.substr(0, 200);
  // optim.lr_decay: the learning rate of step s (1-based) is lr_g · 0.9^(s−1).
  auto table = read_csv_table(dir / "s/metrics.csv");
  const int lr = table.column("lr_g"), step = table.column("step");
  ASSERT_TRUE(lr >= 0 && step >= 0 && !table.rows.empty());
  const auto& last = table.rows.back();
  EXPECT_EQ(std::stoi(last[step]), 6);
  EXPECT_NEAR(std::stod(last[lr]), c.optim.lr_g * std::pow(0.9, 5), 1e-9);
}

// The style check's style rows: every modality of the row's own subject (another slice), from the pool only where
// the subject lacks that modality; the same seed gives the same rows.
TEST(TrainSPADE, StyleCheckTakesEachModalityFromTheSameSubjectFirst) {
  auto d = testutil::make_phantom_dataset({});
  // Rows: subject 0 T1 0-5, PD 6-11; subject 1 T1 12-17, PD 18-23. Subject 1's PD volume becomes subject 2's, so
  // subject 1 has no PD slice of its own.
  d.subject_names.push_back("s2");
  d.subject.slice(0, 18, 24).fill_(2);
  const std::vector<int64_t> rows = {2, 14}, pool = {6, 7, 12, 13};
  const auto per = style_rows_per_modality(d, rows, pool, 5);
  ASSERT_EQ(per.size(), 2u);
  for (const auto& p : per) ASSERT_EQ(p.size(), 2u);
  for (int m = 0; m < 2; ++m) {
    EXPECT_EQ(d.modality[per[0][m]].item<int64_t>(), m);
    EXPECT_EQ(d.subject[per[0][m]].item<int64_t>(), 0);
  }
  EXPECT_NE(per[0][0], 2);  // another slice than the content's own
  EXPECT_EQ(d.subject[per[1][0]].item<int64_t>(), 1);
  EXPECT_NE(per[1][0], 14);
  EXPECT_TRUE(per[1][1] == 6 || per[1][1] == 7) << "subject 1's PD style should come from the pool, got row " << per[1][1];
  EXPECT_EQ(style_rows_per_modality(d, rows, pool, 5), per);
  // A modality that neither the subject nor the pool holds: -1.
  d.subject.slice(0, 6, 12).fill_(2);
  EXPECT_EQ(style_rows_per_modality(d, {2}, {12, 13}, 5)[0][1], -1);
}

// The style code sets the contrast: a SPADE trained on the phantom's T1-like (WM brightest) and PD-like (CSF
// brightest) slices draws one label map with WM brighter than CSF from a T1 style and the other way round from a PD
// style. With the authors' batch norm. Measured when written (WM − CSF, T1 style / PD style, rows 2 and 14): batch
// +0.71 / −0.51 and +0.72 / −0.42; the same run with `instance` drew both styles alike, +0.21 / +0.22 and +0.24 / +0.21
// (configs/tiny/spade_lesion.yaml, docs/image-generator.md). 100 steps pass with a thin margin, 60 do not.
TEST(TrainSPADE, BatchNormGeneratorDrawsEachStyleInItsOwnContrast) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto c = testutil::tiny_spade(t.dataset, t.classifier, dir / "s", 150);
  c.generator.norm = "batch";
  c.loss.lambda_contrastive = 0.0;
  c.train.val_fraction = 0.0;
  c.train.log_every = 50;
  c.train.checkpoint_every = c.train.steps;
  c.train.validate_every = c.train.steps;
  const auto val = train_spade(c, false);
  std::printf("style check of the batch-norm generator: %.3f\n", val.style_accuracy);
  auto g = load_image_generator(dir / "s/checkpoints/last.ckpt", torch::kCPU);
  const auto d = testutil::make_phantom_dataset({});
  // Rows: subject 0 T1 slices 0-5, PD 6-11; subject 1 T1 12-17, PD 18-23.
  for (int64_t row : {2, 14}) {
    auto seg = d.labels.slice(0, row, row + 1);
    auto csf = seg[0][1] > 0.5, wm = seg[0][3] > 0.5;
    ASSERT_GT(csf.sum().item<int64_t>(), 10);
    double diff[2];
    for (int m = 0; m < 2; ++m) {
      const int64_t style_row = row + 2 + 6 * m;  // another slice of the same subject, T1 then PD
      auto gen = at::detail::createCPUGenerator(0);
      auto img = synthesize_images(g, seg, d.images.slice(0, style_row, style_row + 1), false, gen, torch::kCPU)[0][0];
      diff[m] = img.masked_select(wm).mean().item<double>() - img.masked_select(csf).mean().item<double>();
    }
    EXPECT_GT(diff[0], 0.0) << "row " << row << ": the T1 style drew CSF brighter than WM";
    EXPECT_LT(diff[1], 0.0) << "row " << row << ": the PD style drew WM brighter than CSF";
  }
}

TEST(TrainSPADE, MissingClassifierCheckpointIsNamed) {
  auto& t = trained_images();
  testutil::TempDir dir;
  try {
    train_spade(testutil::tiny_spade(t.dataset, dir / "nope.ckpt", dir / "s", 2), false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.ckpt does not exist"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "s/checkpoints"));
}

TEST(TrainSPADE, PerceptualLevelWeightsOfTheWrongCountAreRefusedBeforeTraining) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto c = testutil::tiny_spade(t.dataset, t.classifier, dir / "s", 2);
  c.loss.perceptual_level_weights = {1.0, 1.0};  // the tiny test classifier has more levels
  try {
    train_spade(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'loss.perceptual_level_weights'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("got 2 weights"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "s/checkpoints"));
  c.loss.perceptual_level_weights = {0.25, 0.5, 1.0};  // two blocks + the last map: trains
  train_spade(c, false);
  EXPECT_TRUE(fs::exists(dir / "s/checkpoints/last.ckpt"));
}

TEST(TrainSPADE, Vgg19PerceptualLossNeedsItsWeightsFileAndTrainsWithIt) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto c = testutil::tiny_spade(t.dataset, t.classifier, dir / "s", 2);
  c.loss.perceptual_network = "vgg19";
  c.loss.lambda_perceptual = 10;
  auto refused = [&](const std::string& needle) {
    try {
      train_spade(c, false);
      ADD_FAILURE() << "expected InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "s/checkpoints"));
  };
  refused("'loss.perceptual_weights'");           // no file given: the key and the export command
  refused("export_perceptual_weights.py --arch vgg19");
  c.loss.perceptual_weights = dir / "missing.pt";
  refused(dir / "missing.pt");
  // A weights file as scripts/export_perceptual_weights.py --random --arch vgg19 writes it: torchvision's names.
  torch::manual_seed(2);
  VGG19Features net;
  testutil::write_random_feature_weights(net, dir / "vgg19.pt");
  c.loss.perceptual_weights = dir / "vgg19.pt";
  c.loss.perceptual_level_weights = {1, 1};
  refused("vgg19 has 5 feature levels");
  c.loss.perceptual_level_weights.clear();
  train_spade(c, false);
  EXPECT_TRUE(fs::exists(dir / "s/checkpoints/last.ckpt"));
  const std::string metrics = read_text(dir / "s/metrics.csv");
  EXPECT_NE(metrics.find("perceptual"), std::string::npos) << "the VGG term was not logged";
}

TEST(SampleImages, WrongLabelChannelsAndStyleSizeAreRefused) {
  auto& t = trained_images();
  auto g = load_image_generator(t.spade, torch::kCPU);
  auto gen = at::detail::createCPUGenerator(0);
  auto seg = torch::rand({1, 6, 32, 48});
  auto style = torch::randn({1, 1, 32, 48});
  EXPECT_EQ(synthesize_images(g, seg, style, false, gen, torch::kCPU).sizes(), (std::vector<int64_t>{1, 1, 32, 48}));
  EXPECT_THROW(synthesize_images(g, torch::rand({1, 9, 32, 48}), style, false, gen, torch::kCPU), InputError);
  EXPECT_THROW(synthesize_images(g, seg, torch::randn({1, 3, 32, 48}), false, gen, torch::kCPU), InputError);
  // A style image of another size is cropped/padded to the generator's grid.
  EXPECT_EQ(load_style_image(t.style, 40, 40).sizes(), (std::vector<int64_t>{1, 40, 40}));
}

// Channels 0 = background, 1 = GM, 2 = WM on a 10x10 slice.
TEST(TissueContrast, MeansPerArgmaxTissueOnTheMappedScale) {
  auto pv = torch::zeros({3, 10, 10});
  pv[0].slice(0, 0, 5).fill_(1);     // rows 0-4: background
  pv[1].slice(0, 5, 7).fill_(0.6);   // rows 5-6: GM (argmax) with some WM
  pv[2].slice(0, 5, 7).fill_(0.4);
  pv[2].slice(0, 7, 10).fill_(1);    // rows 7-9: WM
  auto z = torch::zeros({10, 10});
  z.slice(0, 5, 7).fill_(-1.0);      // z-scored: GM one sd below the brain mean
  z.slice(0, 7, 10).fill_(0.5);
  z[7][0] = 1.5;                      // WM: 29 pixels at 0.5, one at 1.5 → mean 0.5 + 1/30
  const TissueContrast c = tissue_contrast(z, pv, 1, 2, /*scale=*/20.0, /*shift=*/100.0);
  EXPECT_NEAR(c.gm, 80.0, 1e-9);
  EXPECT_NEAR(c.wm, 100.0 + 20.0 * (0.5 + 1.0 / 30.0), 1e-9);
  EXPECT_NEAR(c.ratio(), 80.0 / (110.0 + 20.0 / 30.0), 1e-9);
  EXPECT_TRUE(std::isnan(tissue_contrast(z, torch::zeros({3, 10, 10}), 1, 2).gm));  // no GM pixel
}

TEST(SampleImages, TakesRealLabelMapsFromASliceDatasetAndWritesTheContrastTable) {
  auto& t = trained_images();
  testutil::TempDir dir;
  ImageSampleJob job;
  job.run.out_dir = dir / "out";
  job.run.device = "cpu";
  job.spade_checkpoint = t.spade;
  job.labels = {t.dataset};
  job.label_rows = {0, 3};
  job.styles = {t.style};
  run_image_sampling(job);
  const auto ds = SliceDataset::load(t.dataset);
  for (int64_t r : {0, 3}) {
    const std::string name = "dataset_" + ds.subject_names[ds.subject[r].item<int64_t>()] + "_z" +
                             std::to_string(ds.slice_index[r].item<int64_t>());
    EXPECT_TRUE(fs::exists(dir / ("out/images/" + name + "_image.nii.gz"))) << name;
  }
  const std::string csv = read_text(dir / "out/contrast.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;  // header + 2 rows
  job.label_rows = {999};
  try {
    run_image_sampling(job);
    ADD_FAILURE() << "row 999 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("label_rows"), std::string::npos) << e.what();
  }
}

TEST(SamplePairs, SameSeedSameBytesAndShardsUnionToTheSingleRun) {
  auto& t = trained_images();
  testutil::TempDir dir;
  run_pair_sampling(pair_job(t, dir / "one", 5));
  run_pair_sampling(pair_job(t, dir / "again", 5));
  auto one = folder_bytes(dir / "one", "images"), again = folder_bytes(dir / "again", "images");
  EXPECT_EQ(one.size(), 5u);
  EXPECT_EQ(one, again);
  run_pair_sampling(pair_job(t, dir / "sharded", 5), parse_shard("1/2"));
  run_pair_sampling(pair_job(t, dir / "sharded", 5), parse_shard("0/2"));
  EXPECT_EQ(folder_bytes(dir / "sharded", "images"), one);
  EXPECT_EQ(folder_bytes(dir / "sharded", "labels"), folder_bytes(dir / "one", "labels"));
  EXPECT_EQ(read_text(dir / "sharded/manifest.csv"), read_text(dir / "one/manifest.csv"));
  // The hard segmentation is the argmax of the PV map.
  auto pv = read_volume(dir / "one/labels_pv/pair_000000_pv.nii.gz").data.select(1, 0);
  auto seg = read_volume(dir / "one/labels/pair_000000_seg.nii.gz").data[0][0];
  EXPECT_TRUE(torch::equal(pv.argmax(0).to(torch::kFloat), seg));
}

TEST(SamplePairs, MaskBackgroundZeroesExactlyTheBackgroundOfTheLabelMap) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto plain = pair_job(t, dir / "plain", 3);
  auto masked = pair_job(t, dir / "masked", 3);
  masked.mask_background = true;
  run_pair_sampling(plain);
  run_pair_sampling(masked);
  for (const char* id : {"pair_000000", "pair_000002"}) {
    auto a = read_volume(dir / ("plain/images/" + std::string(id) + ".nii.gz")).data[0][0];
    auto b = read_volume(dir / ("masked/images/" + std::string(id) + ".nii.gz")).data[0][0];
    auto seg = read_volume(dir / ("masked/labels/" + std::string(id) + "_seg.nii.gz")).data[0][0];
    auto bg = seg == 0;
    ASSERT_GT(bg.sum().item<int64_t>(), 0) << id;
    ASSERT_GT((~bg).sum().item<int64_t>(), 0) << id;
    EXPECT_EQ(b.masked_select(bg).abs().max().item<float>(), 0.0f) << id << ": background not zero";
    EXPECT_GT(a.masked_select(bg).abs().max().item<float>(), 0.0f) << id << ": SPADE's own background was already 0";
    EXPECT_TRUE(torch::equal(a.masked_select(~bg), b.masked_select(~bg))) << id << ": the brain changed";
  }
}

TEST(SamplePairs, RestartAfterAKillContinuesWithoutDuplicates) {
  auto& t = trained_images();
  testutil::TempDir dir;
  run_pair_sampling(pair_job(t, dir / "ref", 6));
  // Simulate a run killed after the first batch: only pair 0 and 1 finished, pair 2 half-written.
  run_pair_sampling(pair_job(t, dir / "killed", 2));
  write_text_atomic(dir / "killed/images/pair_000002.nii.gz", "partial");
  auto s = run_pair_sampling(pair_job(t, dir / "killed", 6));
  EXPECT_EQ(s.skipped, 2);
  EXPECT_EQ(s.written, 4);
  EXPECT_EQ(folder_bytes(dir / "killed", "images"), folder_bytes(dir / "ref", "images"));
  EXPECT_EQ(read_text(dir / "killed/manifest.csv"), read_text(dir / "ref/manifest.csv"));
}

TEST(SamplePairs, NnUNetLayoutAndManifest) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto j = pair_job(t, dir / "nn", 3);
  j.format = "nnunet";
  j.nnunet_name = "Dataset501_Test";
  j.classifier_checkpoint = t.classifier;
  j.target_modality = "T1";
  j.max_style_redraws = 2;
  run_pair_sampling(j);
  EXPECT_TRUE(fs::exists(dir / "nn/Dataset501_Test/imagesTr/pair_000000_0000.nii.gz"));
  EXPECT_TRUE(fs::exists(dir / "nn/Dataset501_Test/labelsTr/pair_000002.nii.gz"));
  const auto js = nlohmann::json::parse(read_text(dir / "nn/Dataset501_Test/dataset.json"));
  EXPECT_EQ(js.at("numTraining"), 3) << js;
  EXPECT_EQ(js.at("labels").at("wm"), 3) << js;
  EXPECT_EQ(js.at("labels").at("background"), 0) << js;
  EXPECT_EQ(js.at("channel_names").at("0"), "T1") << js;
  EXPECT_EQ(js.at("file_ending"), ".nii.gz") << js;
  auto manifest = read_text(dir / "nn/manifest.csv");
  EXPECT_EQ(std::count(manifest.begin(), manifest.end(), '\n'), 4) << manifest;
  EXPECT_EQ(manifest.rfind("id,seed,conditions[slice_position],style,style_redraws,image,label_pv,label_seg", 0), 0u);
}

// Two runs from one seed and label generator with other styles share one nnU-Net folder as channels 0 and 1 (the
// multi-contrast dataset of experiment 3); a run whose label maps differ is refused.
TEST(SamplePairs, NnUNetChannelsOfTwoRunsMakeOneMultiContrastDataset) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto a = pair_job(t, dir / "t1", 3);
  a.format = "nnunet";
  a.nnunet_dir = dir / "Dataset502_Two";
  a.target_modality = "T1";
  run_pair_sampling(a);
  auto b = a;
  b.run.out_dir = dir / "pd";
  b.nnunet_channel = 1;
  b.target_modality = "PD";
  run_pair_sampling(b);
  for (const char* f :
       {"imagesTr/pair_000002_0000.nii.gz", "imagesTr/pair_000002_0001.nii.gz", "labelsTr/pair_000002.nii.gz"})
    EXPECT_TRUE(fs::exists(dir / ("Dataset502_Two/" + std::string(f)))) << f;
  const auto js = nlohmann::json::parse(read_text(dir / "Dataset502_Two/dataset.json"));
  EXPECT_EQ(js.at("channel_names").at("0"), "T1") << js;
  EXPECT_EQ(js.at("channel_names").at("1"), "PD") << js;
  auto c = a;
  c.run.out_dir = dir / "other";
  c.run.seed = 77;  // other label maps
  c.nnunet_channel = 2;
  try {
    run_pair_sampling(c);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("differs from the one already there"), std::string::npos) << e.what();
  }
}

TEST(SamplePairs, BadInputsLeaveNothingBehind) {
  auto& t = trained_images();
  testutil::TempDir dir;
  run_pair_sampling(pair_job(t, dir / "run", 2));
  auto other = pair_job(t, dir / "run", 2);
  other.run.seed = 99;  // a different run into the same folder
  try {
    run_pair_sampling(other);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds pairs of a different run"), std::string::npos) << e.what();
  }
  auto swapped = pair_job(t, dir / "swapped", 2);
  swapped.spade_checkpoint = t.vae;
  EXPECT_THROW(run_pair_sampling(swapped), InputError);
  EXPECT_FALSE(fs::exists(dir / "swapped/records"));
  auto no_style = pair_job(t, dir / "nostyle", 2);
  no_style.styles = {dir / "missing.png"};
  EXPECT_THROW(run_pair_sampling(no_style), InputError);
  EXPECT_THROW(parse_shard("2/2"), InputError);
  EXPECT_THROW(parse_shard("x"), InputError);
  auto cli = testutil::run_cli("sample --ldm " + t.ldm + " --spade " + t.spade + " --style " + t.style + " --num -3 --out " +
                               (dir / "neg"));
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
}

TEST(SamplePairs, RandomizedGeneratorNeedsNoSPADEAndIsDeterministic) {
  auto& t = trained_images();
  testutil::TempDir dir;
  auto job = [&](const std::string& out) { return randomized_pair_job(t, dir / out, 3); };
  run_pair_sampling(job("one"));
  run_pair_sampling(job("again"));
  auto one = folder_bytes(dir / "one", "images");
  EXPECT_EQ(one.size(), 3u);
  EXPECT_EQ(one, folder_bytes(dir / "again", "images"));
  // Same labels as the SPADE run of the same seed: only the image generator differs.
  run_pair_sampling(pair_job(t, dir / "spade", 3));
  EXPECT_EQ(folder_bytes(dir / "one", "labels"), folder_bytes(dir / "spade", "labels"));
  EXPECT_NE(folder_bytes(dir / "one", "images"), folder_bytes(dir / "spade", "images"));
  auto manifest = read_text(dir / "one/manifest.csv");
  EXPECT_NE(manifest.find(",randomized,0,"), std::string::npos) << manifest;
  // Background (argmax 0 with full weight) is 0 in the image.
  auto pv = read_volume(dir / "one/labels_pv/pair_000001_pv.nii.gz").data.select(1, 0);
  auto img = read_volume(dir / "one/images/pair_000001.nii.gz").data[0][0];
  EXPECT_EQ(img.masked_select(pv[0] > 0.999).abs().max().item<double>(), 0.0);
  auto with_clf = job("clf");
  with_clf.classifier_checkpoint = t.classifier;
  EXPECT_THROW(run_pair_sampling(with_clf), InputError);
  auto cli = testutil::run_cli("sample --ldm " + t.ldm + " --num 2 --set image_generator=randomized --set sampler.steps=4 --set run.device=cpu --out " +
                               (dir / "cli"));
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_TRUE(fs::exists(dir / "cli/images/pair_000001.nii.gz")) << cli.output;
}

// label_pairs: a run takes another run's label maps and conditions instead of drawing its own (exp3 pays for the
// label sampling and its lesion redraws once for T1, PD and the randomized pairs). A SPADE run over the maps of a
// randomized run of the same seed writes exactly what the SPADE run that draws them does.
TEST(SamplePairs, LabelPairsReuseTheMapsOfAnotherRun) {
  auto& t = trained_images();
  testutil::TempDir dir;
  run_pair_sampling(randomized_pair_job(t, dir / "rand", 4));
  run_pair_sampling(pair_job(t, dir / "spade", 4));
  auto reuse = pair_job(t, dir / "reuse", 4);
  reuse.label_pairs = dir / "rand";
  reuse.sampler.steps = 1;  // would draw other maps: the ones written must come from label_pairs
  run_pair_sampling(reuse);
  EXPECT_EQ(folder_bytes(dir / "reuse", "labels_pv"), folder_bytes(dir / "rand", "labels_pv"));
  EXPECT_EQ(folder_bytes(dir / "reuse", "labels"), folder_bytes(dir / "spade", "labels"));
  EXPECT_EQ(folder_bytes(dir / "reuse", "images"), folder_bytes(dir / "spade", "images"));
  EXPECT_EQ(read_text(dir / "reuse/manifest.csv"), read_text(dir / "spade/manifest.csv"));
  // A folder with fewer pairs than asked for, a missing one, or the run's own output: refused before writing.
  auto more = pair_job(t, dir / "more", 6);
  more.label_pairs = dir / "rand";
  try {
    run_pair_sampling(more);
    ADD_FAILURE() << "6 pairs from a folder of 4 were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("pair_000004"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "more"));
  auto missing = pair_job(t, dir / "missing", 2);
  missing.label_pairs = dir / "nowhere";
  EXPECT_THROW(run_pair_sampling(missing), InputError);
  auto self = pair_job(t, dir / "rand", 2);
  self.label_pairs = dir / "rand";
  EXPECT_THROW(run_pair_sampling(self), InputError);
}

// A style path holding a comma, a quote and a space is one field of manifest.csv (RFC 4180 quoting), and
// `train segmenter` reads the pairs back through it (it failed with "row with 10 fields, header has 8"). The hard
// label maps are 8-bit unsigned NIfTI (datatype 2), as nnU-Net and viewers expect.
TEST(SamplePairs, StylePathWithCommaAndQuoteSurvivesIntoTrainSegmenter) {
  auto& t = trained_images();
  testutil::TempDir dir;
  const std::string odd = dir / "my, \"odd\" style.nii.gz";
  fs::copy_file(t.style, odd);
  auto j = pair_job(t, dir / "pairs", 4);
  j.styles = {odd};
  run_pair_sampling(j);
  const CsvTable manifest = read_csv_table(dir / "pairs/manifest.csv");
  ASSERT_EQ(manifest.rows.size(), 4u);
  const int style = manifest.column("style"), seg = manifest.column("label_seg");
  ASSERT_GE(style, 0);
  ASSERT_GE(seg, 0);
  for (const auto& row : manifest.rows) EXPECT_EQ(row[style], odd);
  // NIfTI-1 datatype (int16 at byte 70 of the decompressed header): 2 = unsigned char.
  gzFile f = gzopen((dir / "pairs/" + manifest.rows[0][seg]).c_str(), "rb");
  ASSERT_NE(f, nullptr);
  char header[348];
  ASSERT_EQ(gzread(f, header, sizeof header), 348);
  gzclose(f);
  int16_t datatype = 0;
  std::memcpy(&datatype, header + 70, 2);
  EXPECT_EQ(datatype, 2) << "hard labels are not uint8";

  SegmenterTrainConfig c;
  c.run.out_dir = dir / "seg";
  c.run.device = "cpu";
  c.data.sources = {dir / "pairs"};
  c.data.class_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  c.model.num_classes = 6;
  c.model.features = {8, 16, 32};
  c.train.steps = 2;
  c.train.batch_size = 2;
  c.train.log_every = 1;
  c.train.checkpoint_every = 2;
  c.train.validate_every = 0;
  c.train.val_fraction = 0.25;
  EXPECT_NO_THROW(train_segmenter(c, false));
  EXPECT_TRUE(fs::exists(dir / "seg/checkpoints/last.ckpt"));
}
