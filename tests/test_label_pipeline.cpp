// The label generator end to end on a phantom dataset: VAE and LDM training, resume, sampling, bad inputs.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/csv.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/data/slicing.h"
#include "brainspade/io/image_io.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_vae.h"
#include "support/helpers.h"
#include "support/phantom.h"
#include "support/tiny_configs.h"

using namespace brainspade;

namespace {

using testutil::tiny_ldm;
using testutil::tiny_vae;

// One shared VAE + LDM for the sampling tests (trained once per test binary run).
struct TrainedLabels {
  testutil::TempDir dir;
  std::string dataset, vae, ldm;
  TrainedLabels() {
    dataset = testutil::write_phantom_dataset(dir.path(), {});
    auto v = tiny_vae(dataset, dir / "vae", 6);
    train_vae(v, false);
    vae = dir / "vae/checkpoints/last.ckpt";
    auto l = tiny_ldm(dataset, vae, dir / "ldm", 6);
    train_ldm(l, false);
    ldm = dir / "ldm/checkpoints/last.ckpt";
  }
};
TrainedLabels& trained_labels() {
  static TrainedLabels t;
  return t;
}

// How many of the VAE tensors ("vae." keys) differ between two checkpoints.
int differing_vae_tensors(const std::string& a, const std::string& b) {
  auto ca = Checkpoint::load(a), cb = Checkpoint::load(b);
  int differing = 0;
  for (const auto& k : ca.keys())
    if (k.rfind("vae.", 0) == 0 && !torch::equal(ca.tensor(k), cb.tensor(k))) ++differing;
  return differing;
}

// train_vae(c) must refuse with an InputError that names `needle`, before it writes a checkpoint.
void expect_vae_refused(const VAETrainConfig& c, const std::string& needle) {
  try {
    train_vae(c, false);
    FAIL() << "no InputError naming " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(c.run.out_dir) / "checkpoints"));
}

}  // namespace

TEST(TrainVAE, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  train_vae(tiny_vae(ds, dir / "a", 6), false);
  train_vae(tiny_vae(ds, dir / "b", 4), false);  // "interrupted" after 4 of 6 steps
  train_vae(tiny_vae(ds, dir / "b", 6), true);
  EXPECT_EQ(Checkpoint::load(dir / "b/checkpoints/last.ckpt").get_int("step"), 6);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", "vae."));
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", "discriminator."));
  // The metrics file of the resumed run has one row per logged step, none duplicated.
  auto csv = read_text(dir / "b/metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3) << csv;
}

// optim.ema_decay: the raw weights train exactly as without it, the checkpoint holds the average too, a resumed run
// averages the same weights, and load_vae (every later stage) hands out the average.
TEST(TrainVAE, EmaWeightsAreResumedAndAreWhatLaterStagesLoad) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto with_ema = [&](const std::string& out, int64_t steps) {
    auto c = tiny_vae(ds, dir / out, steps);
    c.optim.ema_decay = 0.9;
    return c;
  };
  train_vae(tiny_vae(ds, dir / "plain", 6), false);
  train_vae(with_ema("a", 6), false);
  train_vae(with_ema("b", 4), false);
  train_vae(with_ema("b", 6), true);
  const std::string a = dir / "a/checkpoints/last.ckpt", b = dir / "b/checkpoints/last.ckpt";
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "plain/checkpoints/last.ckpt", a, "vae."));
  EXPECT_TRUE(testutil::same_checkpoint_tensors(a, b, "ema."));
  auto ck = Checkpoint::load(a);
  auto vae = load_vae(a, torch::kCPU);
  double max_raw_vs_ema = 0;
  for (auto& p : vae->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), ck.tensor("ema." + p.key()))) << p.key();
    max_raw_vs_ema = std::max(max_raw_vs_ema, (ck.tensor("vae." + p.key()) - ck.tensor("ema." + p.key())).abs().max().item<double>());
  }
  EXPECT_GT(max_raw_vs_ema, 0.0) << "the average equals the raw weights: EMA not applied";
}

// loss.channel_weights are rescaled to mean 1: equal weights of any size are the authors' unweighted loss, bit for
// bit; unequal weights change the training.
TEST(TrainVAE, ChannelWeightsAreRescaledToMeanOne) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  train_vae(tiny_vae(ds, dir / "plain", 3), false);
  auto equal = tiny_vae(ds, dir / "equal", 3);
  equal.loss.channel_weights = std::vector<double>(6, 2.5);
  train_vae(equal, false);
  auto csf = tiny_vae(ds, dir / "csf", 3);
  csf.loss.channel_weights = {1, 4, 1, 1, 2, 1};
  train_vae(csf, false);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "plain/checkpoints/last.ckpt", dir / "equal/checkpoints/last.ckpt", "vae."));
  EXPECT_GT(differing_vae_tensors(dir / "plain/checkpoints/last.ckpt", dir / "csf/checkpoints/last.ckpt"), 0);
}

TEST(TrainVAE, CrossEntropyTermChangesTheGdiceRunAndNeedsIt) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto gdice = [&](const std::string& name, double ce) {
    auto c = tiny_vae(ds, dir / name, 2);
    c.vae.output = "softmax";
    c.loss.reconstruction = "gdice";
    c.loss.ce_weight = ce;
    return c;
  };
  train_vae(gdice("plain", 0.0), false);
  train_vae(gdice("ce", 1.0), false);
  EXPECT_GT(differing_vae_tensors(dir / "plain/checkpoints/last.ckpt", dir / "ce/checkpoints/last.ckpt"), 0);
  auto l1 = tiny_vae(ds, dir / "l1", 2);
  l1.loss.ce_weight = 1.0;
  expect_vae_refused(l1, "loss.ce_weight");
}

TEST(TrainVAE, LearnsToReconstructPhantomTissues) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto c = tiny_vae(ds, dir / "vae", 300);
  c.train.log_every = 50;
  c.train.checkpoint_every = 300;
  c.train.validate_every = 300;
  c.loss.adv_weight = 0.0;
  auto val = train_vae(c, false);
  ASSERT_EQ(val.dice.size(), 6u);
  for (int ch : {0, 2, 3}) EXPECT_GT(val.dice[ch], 0.8) << "channel " << ch;  // background, GM, WM
  ASSERT_EQ(val.volume_ratio.size(), 6u);
  for (int ch : {0, 2, 3}) EXPECT_NEAR(val.volume_ratio[ch], 1.0, 0.2) << "channel " << ch;
  // A VAE that reconstructs the tissues keeps most of their boundaries (the phantom has no sulci to lose).
  EXPECT_GT(val.boundary_ratio, 0.5);
  EXPECT_LT(val.boundary_ratio, 1.5);
  EXPECT_NE(read_text(dir / "vae/metrics.csv").find("val_boundary_ratio"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "vae/reconstructions.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "vae/loss.png"));
}

TEST(TrainVAE, ArgmaxDiceAndVolumeRatioByHand) {
  // Two channels on a 1x4 strip; argmax of ref = [0 0 1 1], of pred = [0 1 1 1]; a third channel nobody has.
  auto one_hot = [](std::vector<int64_t> cls) {
    auto t = torch::zeros({1, 3, 1, static_cast<int64_t>(cls.size())});
    for (size_t i = 0; i < cls.size(); ++i) t[0][cls[i]][0][static_cast<int64_t>(i)] = 1;
    return t;
  };
  auto ref = one_hot({0, 0, 1, 1}), pred = one_hot({0, 1, 1, 1});
  auto dice = argmax_dice(pred, ref), ratio = argmax_volume_ratio(pred, ref);
  EXPECT_DOUBLE_EQ(dice[0], 2.0 * 1 / (1 + 2));
  EXPECT_DOUBLE_EQ(dice[1], 2.0 * 2 / (3 + 2));
  EXPECT_TRUE(std::isnan(dice[2]));
  EXPECT_DOUBLE_EQ(ratio[0], 0.5);
  EXPECT_DOUBLE_EQ(ratio[1], 1.5);
  EXPECT_TRUE(std::isnan(ratio[2]));
}

// The acceptance check on real anatomy: the tiny VAE (one downsampling, as configs/tiny/vae.yaml) overfits a
// handful of Colin27 slices to argmax Dice > 0.9 for background, GM and WM. The slices are cropped to the brain's
// central 128x192 and halved (64x96), the tiny configs' resolution, to keep the test near a minute (400 steps
// reached GM 0.900 / WM 0.901 / deep GM 0.896: 600 leaves a margin).
TEST(TrainVAE, OverfitsAHandfulOfRealColin27Slices) {
  const std::string real = std::string(BRAINSPADE_SOURCE_DIR) + "/data/example/slices/dataset.pt";
  if (!std::filesystem::exists(real)) GTEST_SKIP() << "run scripts/setup.sh (prepares " << real << ")";
  testutil::TempDir dir;
  auto full = SliceDataset::load(real);
  // Four slices from the middle of the brain (deep GM and ventricles), 4 apart.
  auto ds = full.select(torch::arange(full.size() / 2 - 8, full.size() / 2 + 8, 4));
  ds.labels = ds.labels.slice(2, 32, 160).slice(3, 32, 224).contiguous();
  ds.images = ds.images.slice(2, 32, 160).slice(3, 32, 224).contiguous();
  ds.save(dir / "real.pt");
  auto c = tiny_vae(dir / "real.pt", dir / "vae", 600);
  c.data.downsample = 2;
  c.vae.channels = {16, 32};
  c.vae.mid_attention = false;
  c.train.val_fraction = 0.0;  // overfitting: validate on the training slices
  c.train.log_every = 100;
  c.train.checkpoint_every = 600;
  c.loss.adv_weight = 0.0;
  auto val = train_vae(c, false);
  ASSERT_EQ(val.dice.size(), 6u);
  std::printf("    real-slice Dice: bg %.3f csf %.3f gm %.3f wm %.3f deep_gm %.3f\n", val.dice[0], val.dice[1],
              val.dice[2], val.dice[3], val.dice[4]);
  for (int ch : {0, 2, 3}) EXPECT_GT(val.dice[ch], 0.9) << full.channel_names[ch];
}

TEST(TrainVAE, DatasetWithOtherChannelCountIsRefused) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto c = tiny_vae(ds, dir / "vae", 2);
  c.vae.in_channels = 9;
  c.discriminator.in_channels = 9;
  expect_vae_refused(c, "vae.in_channels is 9");
}

TEST(TrainVAE, MissingPerceptualWeightsFileIsNamedBeforeAnythingIsWritten) {
  testutil::TempDir dir;
  auto ds = testutil::write_phantom_dataset(dir.path(), {});
  auto c = tiny_vae(ds, dir / "vae", 2);
  c.loss.perceptual_network = "squeeze";
  c.loss.perceptual_weights = dir / "no_such_weights.pt";
  try {
    train_vae(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_weights.pt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "vae"));
}

namespace {
// The last row of a run's metrics.csv, column name -> value (NaN where empty), read by the project's CSV reader
// (which refuses a row whose field count differs from the header's).
std::map<std::string, double> last_metrics_row(const std::filesystem::path& path) {
  const CsvTable table = read_csv_table(path.string());
  EXPECT_FALSE(table.rows.empty()) << path;
  std::map<std::string, double> row;
  if (table.rows.empty()) return row;
  for (size_t i = 0; i < table.header.size(); ++i) {
    const std::string& v = table.rows.back()[i];
    row[table.header[i]] = v.empty() ? NAN : std::stod(v);
  }
  return row;
}
}  // namespace

TEST(TrainLDM, ResumeGivesTheSameWeightsAndEMA) {
  auto& t = trained_labels();
  testutil::TempDir dir;
  train_ldm(tiny_ldm(t.dataset, t.vae, dir / "a", 6), false);
  train_ldm(tiny_ldm(t.dataset, t.vae, dir / "b", 2), false);
  train_ldm(tiny_ldm(t.dataset, t.vae, dir / "b", 6), true);
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", "unet."));
  EXPECT_TRUE(testutil::same_checkpoint_tensors(dir / "a/checkpoints/last.ckpt", dir / "b/checkpoints/last.ckpt", "ema."));
}

TEST(TrainLDM, HeldOutLossFallsOnPhantomLatents) {
  auto& t = trained_labels();
  testutil::TempDir dir;
  // Held-out loss on fixed noise and timesteps: after 1 step vs after 120.
  double untrained = train_ldm(tiny_ldm(t.dataset, t.vae, dir / "one", 1), false);
  auto c = tiny_ldm(t.dataset, t.vae, dir / "ldm", 120);
  c.train.log_every = 10;
  c.train.checkpoint_every = 120;
  double trained_loss = train_ldm(c, false);
  EXPECT_LT(trained_loss, 0.6 * untrained) << "untrained " << untrained << " trained " << trained_loss;

  // The last row of metrics.csv has the held-out loss per noise band next to the mean it returned.
  auto row = last_metrics_row(dir / "ldm/metrics.csv");
  for (const char* band : {"val_loss_t0_249", "val_loss_t250_499", "val_loss_t500_749", "val_loss_t750_999"})
    ASSERT_TRUE(row.count(band)) << "no column " << band;
  EXPECT_NEAR(row["val_loss"], trained_loss, 1e-4 * trained_loss);
  // With epsilon-prediction the noise is hardest to tell at low noise levels and easiest when z_t is mostly noise.
  EXPECT_GT(row["val_loss_t0_249"], row["val_loss_t750_999"]);
  const double lo = std::min({row["val_loss_t0_249"], row["val_loss_t250_499"], row["val_loss_t500_749"], row["val_loss_t750_999"]});
  const double hi = std::max({row["val_loss_t0_249"], row["val_loss_t250_499"], row["val_loss_t500_749"], row["val_loss_t750_999"]});
  EXPECT_TRUE(row["val_loss"] >= lo && row["val_loss"] <= hi);  // the mean of the bands' latents
}

// optim.lr_schedule cosine: lr at the first step, lr_final at the last, their mean half way, the rate each step used in
// metrics.csv; lr_final above lr, or set without the schedule that uses it, is refused naming the key.
TEST(TrainLDM, TimestepPowerPutsTheConfiguredShareAtLowNoise) {
  DDPMScheduler sched;  // T = 1000
  LDMOptimOptions o;
  const int64_t n = 200000;
  auto share_below = [&](const torch::Tensor& t, int64_t k) { return (t < k).to(torch::kDouble).mean().item<double>(); };
  torch::manual_seed(3);
  auto uniform = sample_training_timesteps(o, sched, n, torch::kCPU);
  EXPECT_EQ(uniform.dtype(), torch::kLong);
  EXPECT_NEAR(share_below(uniform, 250), 0.25, 0.01);
  // power p: P(floor(T u^p) < k) = (k / T)^(1/p), so half of the draws below T/4 for p = 2 and below T/8 for p = 3.
  o.timestep_power = 2.0;
  auto squared = sample_training_timesteps(o, sched, n, torch::kCPU);
  EXPECT_NEAR(share_below(squared, 250), 0.5, 0.01);
  EXPECT_NEAR(squared.to(torch::kDouble).mean().item<double>(), 1000.0 / 3.0 - 0.5, 3.0);  // E[u^2] = 1/3, floored
  EXPECT_GE(squared.min().item<int64_t>(), 0);
  EXPECT_LE(squared.max().item<int64_t>(), 999);
  o.timestep_power = 3.0;
  EXPECT_NEAR(share_below(sample_training_timesteps(o, sched, n, torch::kCPU), 125), 0.5, 0.01);
  // The uniform draw is the scheduler's own: the same numbers as before the option existed.
  o.timestep_power = 1.0;
  torch::manual_seed(5);
  auto a = sample_training_timesteps(o, sched, 16, torch::kCPU);
  torch::manual_seed(5);
  EXPECT_TRUE(torch::equal(a, sched.sample_timesteps(16, torch::kCPU)));
}

TEST(TrainLDM, CosineScheduleDecaysFromLrToLrFinal) {
  LDMOptimOptions o;
  o.lr = 2e-3;
  EXPECT_EQ(ldm_learning_rate(o, 7, 9), 2e-3);  // constant (the authors)
  o.lr_schedule = "cosine";
  o.lr_final = 2e-4;
  EXPECT_DOUBLE_EQ(ldm_learning_rate(o, 0, 9), 2e-3);
  EXPECT_NEAR(ldm_learning_rate(o, 4, 9), 1.1e-3, 1e-12);  // cos(pi/2) = 0
  EXPECT_NEAR(ldm_learning_rate(o, 2, 9), 2e-4 + 0.9e-3 * (1 + std::sqrt(0.5)), 1e-12);
  EXPECT_DOUBLE_EQ(ldm_learning_rate(o, 8, 9), 2e-4);

  auto& t = trained_labels();
  testutil::TempDir dir;
  auto c = tiny_ldm(t.dataset, t.vae, dir / "ldm", 5);
  c.optim.lr_schedule = "cosine";
  c.optim.lr_final = 0.25 * c.optim.lr;
  c.train.log_every = 1;
  train_ldm(c, false);
  EXPECT_NEAR(last_metrics_row(dir / "ldm/metrics.csv")["lr"], c.optim.lr_final, 1e-12);  // step 5 of 5
  c.optim.lr_final = 2 * c.optim.lr;
  try {
    train_ldm(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'optim.lr_final'"), std::string::npos) << e.what();
  }
  c.optim.lr_schedule = "constant";
  c.optim.lr_final = 1e-4;
  try {
    train_ldm(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("optim.lr_schedule"), std::string::npos) << e.what();
  }
}

TEST(TrainLDM, MismatchedVAEAndUNetAreRefused) {
  auto& t = trained_labels();
  testutil::TempDir dir;
  auto c = tiny_ldm(t.dataset, t.vae, dir / "ldm", 2);
  c.unet.in_channels = 4;
  EXPECT_THROW(train_ldm(c, false), InputError);
  c = tiny_ldm(t.dataset, t.vae, dir / "ldm", 2);
  c.unet.cond_dim = 3;  // the conditioning section gives 1 value (slice position)
  EXPECT_THROW(train_ldm(c, false), InputError);
  c = tiny_ldm(t.dataset, t.vae, dir / "ldm", 2);
  c.optim.lesion_weight = 10;  // a healthy LDM: no lesion to weight
  try {
    train_ldm(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'optim.lesion_weight'"), std::string::npos) << e.what();
  }
  c = tiny_ldm(t.dataset, t.ldm, dir / "ldm", 2);  // an LDM checkpoint where the VAE belongs
  try {
    train_ldm(c, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'ldm' checkpoint, but a 'vae' checkpoint"), std::string::npos) << e.what();
  }
}

TEST(SampleLabels, SameSeedGivesTheSameMapsThatAreValidPartialVolumes) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  LabelSamplerOptions o;
  o.steps = 10;
  auto a = sample_label_batch(g, o, 3, 42, torch::kCPU);
  auto b = sample_label_batch(g, o, 3, 42, torch::kCPU);
  EXPECT_TRUE(torch::equal(a.pv, b.pv));
  EXPECT_FALSE(torch::equal(a.pv, sample_label_batch(g, o, 3, 43, torch::kCPU).pv));
  ASSERT_EQ(a.pv.sizes(), (std::vector<int64_t>{3, 6, 32, 48}));
  EXPECT_TRUE(torch::allclose(a.pv.sum(1), torch::ones({3, 32, 48}), 1e-4, 1e-4));
  EXPECT_GE(a.pv.min().item<double>(), 0.0);
  // Conditions drawn inside slice_range.
  EXPECT_TRUE((a.cond >= 0.2).all().item<bool>() && (a.cond <= 0.5).all().item<bool>());
  // DDPM with a strided grid runs too.
  o.sampler = "ddpm";
  EXPECT_EQ(sample_label_batch(g, o, 2, 1, torch::kCPU).pv.size(0), 2);
}

TEST(SampleLabels, DpmSolverAndItsSDESampleValidMapsAndRefuseAGridTheyDoNotHave) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  LabelSamplerOptions o;
  o.sampler = "dpmpp_2m";
  o.steps = 8;
  auto a = sample_label_batch(g, o, 3, 42, torch::kCPU);
  EXPECT_TRUE(torch::equal(a.pv, sample_label_batch(g, o, 3, 42, torch::kCPU).pv));  // deterministic given the seed
  EXPECT_TRUE(torch::allclose(a.pv.sum(1), torch::ones({3, 32, 48}), 1e-4, 1e-4));
  o.use_karras_sigmas = true;
  EXPECT_EQ(sample_label_batch(g, o, 2, 1, torch::kCPU).pv.size(0), 2);
  o.use_karras_sigmas = false;
  // The SDE form draws its noise from the batch's seed: reproducible, and not the ODE's maps from the same start.
  o.sampler = "dpmpp_2m_sde";
  auto sde = sample_label_batch(g, o, 3, 42, torch::kCPU);
  EXPECT_TRUE(torch::equal(sde.pv, sample_label_batch(g, o, 3, 42, torch::kCPU).pv));
  EXPECT_TRUE(torch::allclose(sde.pv.sum(1), torch::ones({3, 32, 48}), 1e-4, 1e-4));
  EXPECT_TRUE(torch::equal(sde.cond, a.cond));  // same conditions and start noise ...
  EXPECT_FALSE(torch::allclose(sde.pv, a.pv, 1e-3, 1e-3));  // ... another path
  o.timestep_spacing = "compvis";
  try {
    sample_label_batch(g, o, 1, 1, torch::kCPU);
    FAIL() << "compvis grid accepted for dpmpp_2m_sde";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("sampler.timestep_spacing"), std::string::npos) << e.what();
  }
  o.sampler = "ddim";
  o.timestep_spacing = "linspace";
  EXPECT_THROW(sample_label_batch(g, o, 1, 1, torch::kCPU), InputError);
}

// sampler.lesion_redraw (redraw_while with lesions_disagree): only the maps whose lesions disagree with their flags are drawn again, with their own
// conditions, until they agree or the redraws run out; the draws are counted per map.
TEST(SampleLabels, LesionRedrawReplacesOnlyTheMapsThatDisagreeWithTheirFlags) {
  constexpr int64_t kTumour = 6, kEdema = 7;
  // A map of 8 channels, 8x8, background everywhere except `n` pixels of each listed lesion channel.
  auto map_with = [](const std::vector<std::pair<int64_t, int64_t>>& lesions) {
    auto pv = torch::zeros({8, 8, 8});
    pv[0].fill_(1.0);
    for (auto [c, n] : lesions)
      for (int64_t i = 0; i < n; ++i) {
        pv[0][c == kTumour ? 0 : 7][i] = 0.0;
        pv[c][c == kTumour ? 0 : 7][i] = 1.0;
      }
    return pv;
  };
  LabelBatch b;
  b.cond = torch::tensor({{1.f, 0.f, 0.4f}, {0.f, 0.f, 0.4f}, {1.f, 1.f, 0.5f}, {0.f, 1.f, 0.6f}});
  b.pv = torch::stack({map_with({}),                              // tumour asked, none: disagrees
                       map_with({{kTumour, 2}}),                 // 2 px < 3: no tumour, none asked: agrees
                       map_with({{kTumour, 4}, {kEdema, 5}}),    // both asked, both there: agrees
                       map_with({{kTumour, 3}, {kEdema, 3}})});  // tumour not asked but there: disagrees
  const auto before = b.pv.clone();
  std::vector<torch::Tensor> asked;
  // The first redraw gives empty maps; from the second on, maps that hold what their flags ask.
  auto draw = [&](const torch::Tensor& c, int64_t attempt) {
    asked.push_back(c.clone());
    std::vector<torch::Tensor> maps;
    for (int64_t i = 0; i < c.size(0); ++i) {
      std::vector<std::pair<int64_t, int64_t>> l;
      if (attempt >= 2 && c[i][0].item<float>() > 0.5f) l.push_back({kTumour, 6});
      if (attempt >= 2 && c[i][1].item<float>() > 0.5f) l.push_back({kEdema, 6});
      maps.push_back(map_with(l));
    }
    return torch::stack(maps);
  };
  auto once = b;
  once.pv = before.clone();
  auto disagree = [&](const torch::Tensor& pv, const torch::Tensor& c) {
    return lesions_disagree(pv, c, {kTumour, kEdema}, 3.0);
  };
  once.disagrees = redraw_while(once, disagree, 1, draw);
  EXPECT_TRUE(torch::equal(once.draws, torch::tensor({2, 1, 1, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(once.disagrees, torch::tensor({true, false, false, true})));  // the one redraw was empty
  asked.clear();
  b.disagrees = redraw_while(b, disagree, 5, draw);
  EXPECT_TRUE(torch::equal(b.draws, torch::tensor({3, 1, 1, 3}, torch::kLong)));
  EXPECT_FALSE(b.disagrees.any().item<bool>());
  ASSERT_EQ(asked.size(), 2u);  // stops once every map agrees
  EXPECT_TRUE(torch::equal(asked[0], b.cond.index_select(0, torch::tensor({0, 3}))));  // the maps' own conditions
  EXPECT_TRUE(torch::equal(b.pv[1], before[1]));  // agreeing maps untouched
  EXPECT_TRUE(torch::equal(b.pv[2], before[2]));
  EXPECT_EQ(b.pv[0][kTumour].sum().item<double>(), 6.0);  // now holds the tumour it asked for
  EXPECT_EQ(b.pv[3][kTumour].sum().item<double>(), 0.0);  // and no tumour it did not ask for
  EXPECT_EQ(b.pv[3][kEdema].sum().item<double>(), 6.0);
  // The rule scales with the map size: 20 px at 192x256 are 5 at 96x128, never below 1.
  EXPECT_DOUBLE_EQ(lesion_min_pixels_at(20, 96, 128), 5.0);
  EXPECT_DOUBLE_EQ(lesion_min_pixels_at(20, 8, 8), 1.0);
}

// implausible_maps on hand-made 96x128 maps (ring 2 px wide: 96 / 48): a centred brain passes; brain along one whole
// edge, or on 3% of the frame, is flagged; the rule's shares are what decide (a looser rule lets the edge map pass).
TEST(SampleLabels, ImplausibleMapsFlagBrainOnTheFrameEdgeAndAlmostNoBrain) {
  auto map = [](int64_t y0, int64_t y1, int64_t x0, int64_t x1) {  // brain (channel 2) on rows y0..y1-1, cols x0..x1-1
    auto pv = torch::zeros({6, 96, 128});
    pv[0].fill_(1.0);
    pv[0].slice(0, y0, y1).slice(1, x0, x1).fill_(0.0);
    pv[2].slice(0, y0, y1).slice(1, x0, x1).fill_(1.0);
    return pv;
  };
  auto pv = torch::stack({map(20, 76, 24, 104),    // 56x80 in the middle: 36% of the frame, off the ring
                          map(0, 60, 24, 104),     // touches the top edge: 2x80 of the 2x(2x128+2x92)=880 ring px
                          map(40, 56, 50, 74)});   // 16x24 = 3.1% of the frame
  EXPECT_TRUE(torch::equal(implausible_maps(pv, 0.05, 0.05), torch::tensor({false, true, true})));
  // The edge map has 160 / 880 = 18% of the ring: flagged at 0.15, not at 0.2; the small one passes a 3% floor.
  EXPECT_TRUE(torch::equal(implausible_maps(pv, 0.15, 0.03), torch::tensor({false, true, false})));
  EXPECT_TRUE(torch::equal(implausible_maps(pv, 0.20, 0.03), torch::tensor({false, false, false})));
}

// sampler.implausible_redraw on the trained phantom generator: with a rule every map breaks (at least 99% brain), each
// map is redrawn the configured number of times and reported as still implausible; with the rule off no map is
// redrawn and the maps are bit-identical to a run without the key, so the default changes nothing.
TEST(SampleLabels, ImplausibleRedrawRedrawsOnlyWhenOnAndReportsWhatRemains) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  LabelSamplerOptions o;
  o.steps = 4;
  auto plain = sample_label_batch(g, o, 3, 7, torch::kCPU);
  EXPECT_TRUE(torch::equal(plain.draws, torch::ones({3}, torch::kLong)));
  o.min_brain_share = 0.99;
  auto judged = sample_label_batch(g, o, 3, 7, torch::kCPU);  // judged, not redrawn
  EXPECT_TRUE(torch::equal(judged.pv, plain.pv));
  EXPECT_TRUE(judged.implausible.all().item<bool>());
  o.implausible_redraw = 2;
  auto redrawn = sample_label_batch(g, o, 3, 7, torch::kCPU);
  EXPECT_TRUE(torch::equal(redrawn.draws, torch::full({3}, 3, torch::kLong)));
  EXPECT_TRUE(redrawn.implausible.all().item<bool>());
  EXPECT_FALSE(torch::equal(redrawn.pv, plain.pv));  // the last redraw is what is kept
  // A rule every map meets: nothing redrawn, the first draw kept.
  o.min_brain_share = 0.0;
  o.max_border_share = 1.0;
  auto kept = sample_label_batch(g, o, 3, 7, torch::kCPU);
  EXPECT_TRUE(torch::equal(kept.draws, torch::ones({3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(kept.pv, plain.pv));
}

// A generator without lesion flags cannot redraw for them: refused naming the key, before anything is drawn.
TEST(SampleLabels, LesionRedrawNeedsALesionConditionedLDM) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  LabelSamplerOptions o;
  o.lesion_redraw = 3;
  try {
    check_sampler_options(g, o);
    FAIL() << "lesion_redraw accepted for a healthy LDM";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'sampler.lesion_redraw'"), std::string::npos) << e.what();
  }
}

// sampler.lesion_combinations: every map's flags are one of the listed combinations, each drawn; an unknown lesion is
// refused naming the key and the LDM's lesions.
TEST(SampleLabels, LesionCombinationsDrawOnlyTheListedFlagSets) {
  ConditioningOptions c;
  c.lesions = {"tumour", "edema"};
  LabelSamplerOptions o;
  o.slice_range = {0.4, 0.6};
  o.lesion_combinations = {"tumour+edema", "edema", "none"};
  at::Generator gen = at::detail::createCPUGenerator(5);
  auto cond = draw_conditions(c, o, 300, gen);  // [300, 3]
  ASSERT_EQ(cond.size(1), 3);
  auto code = (cond.select(1, 0) * 2 + cond.select(1, 1)).to(torch::kLong);  // tumour, edema → 3, 1, 0
  EXPECT_EQ((code == 2).sum().item<int64_t>(), 0) << "tumour without edema is not in the list";
  for (int64_t k : {0, 1, 3}) {
    const int64_t n = (code == k).sum().item<int64_t>();
    EXPECT_GT(n, 70) << k;  // 100 expected of each
    EXPECT_LT(n, 130) << k;
  }
  EXPECT_GE(cond.select(1, 2).min().item<double>(), 0.4);
  EXPECT_LE(cond.select(1, 2).max().item<double>(), 0.6);
  o.lesion_combinations = {"tumour+wmh"};
  try {
    draw_conditions(c, o, 4, gen);
    FAIL();
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'sampler.lesion_combinations'"), std::string::npos) << m;
    EXPECT_NE(m.find("'wmh'"), std::string::npos) << m;
    EXPECT_NE(m.find("tumour, edema"), std::string::npos) << m;
  }
}

TEST(SampleLabels, PostprocessingFillsBackgroundAndRenormalises) {
  auto x = torch::zeros({1, 3, 1, 2});
  x[0][1][0][0] = 0.05;  // all tissues below 0.075 -> background
  x[0][2][0][0] = 0.01;
  x[0][1][0][1] = 1.4;   // clamped to 1, then renormalised with the others
  x[0][2][0][1] = 0.6;
  x[0][0][0][1] = -0.2;
  auto y = postprocess_labels(x, 0.075);
  EXPECT_NEAR(y[0][0][0][0].item<double>(), 1.0 / 1.06, 1e-5);
  EXPECT_NEAR(y[0][1][0][1].item<double>(), 1.0 / 1.6, 1e-5);
  EXPECT_NEAR(y[0][0][0][1].item<double>(), 0.0, 1e-6);
  EXPECT_TRUE(torch::allclose(y.sum(1), torch::ones({1, 1, 2})));
}

// The authors' fill_labels_gaps / impute fill pixels that no channel claims (sum 0) with their neighbours' majority.
// Their PV pipeline (LDM_and_SPADE_pv.py) never calls it, and here no such pixel can arise: a pixel whose tissues are all
// below the threshold becomes background before the clamp, and any other pixel keeps a tissue >= the threshold.
TEST(SampleLabels, PostprocessingLeavesNoPixelWithoutTissue) {
  torch::manual_seed(3);
  auto x = torch::randn({4, 6, 24, 32}) * 2.0 - 1.0;  // mostly negative: raw decoder output far from PV maps
  x.select(1, 0).fill_(-5.0);                           // background channel never claims a pixel on its own
  x.index_put_({0, torch::indexing::Slice(1), 3, 4}, -1.0);   // every tissue negative -> background
  x.index_put_({1, torch::indexing::Slice(1), 5, 6}, 0.075);  // exactly at the threshold -> all tissues kept
  auto y = postprocess_labels(x, 0.075);
  EXPECT_TRUE(torch::allclose(y.sum(1), torch::ones({4, 24, 32}), 1e-5, 1e-5));
  EXPECT_GE(y.min().item<double>(), 0.0);
  EXPECT_NEAR(y[0][0][3][4].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(y[1][1][5][6].item<double>(), 0.2, 1e-6);  // five tissues at 0.075, renormalised
}

TEST(SampleLabels, CommandWritesNiftiMapsAndRefusesWrongCheckpoints) {
  auto& t = trained_labels();
  testutil::TempDir dir;
  auto r = testutil::run_cli("sample labels --ldm " + t.ldm + " --num 3 --steps 5 --out " + (dir / "s") + " --seed 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 3; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "/s/labels/label_%06d_pv.nii.gz", i);
    auto pv = read_volume(dir.path() + name);
    EXPECT_EQ(pv.channels(), 6);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "s/montage.png"));
  // conditions.csv: one row per map, naming its file, with the slice position drawn from sampler.slice_range.
  auto conditions = read_csv_table(dir / "s/conditions.csv");
  ASSERT_EQ(conditions.rows.size(), 3u);
  const int file = conditions.column("label_pv"), position = conditions.column("slice_position");
  ASSERT_TRUE(file >= 0 && position >= 0);
  for (const auto& row : conditions.rows) {
    EXPECT_TRUE(std::filesystem::exists(dir / ("s/" + row[file]))) << row[file];
    const double p = std::stod(row[position]);
    EXPECT_TRUE(p >= 0.2 && p <= 0.5) << p;  // the default slice_range
  }
  // Beside real maps: two rows of the same cell size, so twice the height of one row of 8 samples.
  auto real = testutil::run_cli("sample labels --ldm " + t.ldm + " --num 8 --steps 5 --real " + t.dataset + " --out " +
                                (dir / "r"));
  ASSERT_EQ(real.exit_code, 0) << real.output;
  const auto one_row = read_png(dir / "r/montage.png"), two_rows = read_png(dir / "r/montage_vs_real.png");
  EXPECT_EQ(two_rows.size(1), one_row.size(1));
  EXPECT_NEAR(static_cast<double>(two_rows.size(0)), 2.0 * one_row.size(0), 4.0);
  // tissue_fractions.csv: % of pixels per argmax class, counted here again from the written segmentations and the
  // real dataset (the phantom has the generator's size, so no pooling).
  std::vector<double> sampled(6, 0.0), real_n(6, 0.0);
  double sampled_total = 0;
  for (int i = 0; i < 8; ++i) {
    auto seg = read_volume(dir / ("r/labels/label_00000" + std::to_string(i) + "_seg.nii.gz")).data;
    for (int c = 0; c < 6; ++c) sampled[c] += (seg == c).sum().item<double>();
    sampled_total += seg.numel();
  }
  auto ds = SliceDataset::load(t.dataset);
  auto real_argmax = ds.labels.argmax(1);
  for (int c = 0; c < 6; ++c) real_n[c] = (real_argmax == c).sum().item<double>();
  std::istringstream fractions(read_text(dir / "r/tissue_fractions.csv"));
  std::string row;
  std::getline(fractions, row);
  EXPECT_EQ(row, "class,sampled_percent,real_percent,ratio");
  for (int c = 0; c < 6; ++c) {
    ASSERT_TRUE(std::getline(fractions, row)) << "row " << c;
    std::stringstream fields(row);
    std::string cls, a, b;
    std::getline(fields, cls, ',');
    std::getline(fields, a, ',');
    std::getline(fields, b, ',');
    EXPECT_EQ(cls, ds.channel_names[c]);
    EXPECT_NEAR(std::stod(a), 100.0 * sampled[c] / sampled_total, 1e-3) << row;
    EXPECT_NEAR(std::stod(b), 100.0 * real_n[c] / real_argmax.numel(), 1e-3) << row;
  }
  auto bad = testutil::run_cli("sample labels --ldm " + t.vae + " --num 1 --out " + (dir / "bad"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("'vae' checkpoint, but a 'ldm' checkpoint"), std::string::npos) << bad.output;
  auto zero = testutil::run_cli("sample labels --ldm " + t.ldm + " --num 0 --out " + (dir / "zero"));
  EXPECT_EQ(zero.exit_code, 2) << zero.output;
  EXPECT_NE(zero.output.find("'num'"), std::string::npos) << zero.output;
}

TEST(SampleLabels, InferenceModeGivesBitIdenticalUNetOutputAndSamples) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  g.unet->eval();
  auto x = torch::randn({2, 3, 8, 12});
  auto tt = torch::full({2}, 500, torch::kLong);
  auto c = torch::rand({2, 1});
  torch::Tensor a, b;
  {
    torch::NoGradGuard ng;
    a = g.unet->forward(x, tt, c);
  }
  {
    torch::InferenceMode im;
    b = g.unet->forward(x, tt, c);
  }
  EXPECT_TRUE(torch::equal(a, b));
  // The sampler's results are ordinary tensors that callers may write into.
  LabelSamplerOptions o;
  o.steps = 4;
  auto s = sample_label_batch(g, o, 2, 5, torch::kCPU);
  EXPECT_FALSE(s.pv.is_inference());
  s.pv.mul_(1.0);
}

// bfloat16 sampling must keep the tissue composition of fp32 sampling from the same seed. The U-Net runs in
// bf16 (8-bit mantissa, relative error ~4e-3 per op), the scheduler and decode in fp32. Tolerance: 0.02 absolute
// on each tissue's volume fraction (mean PV over the batch), and the argmax segmentation agrees on >= 90% of pixels.
TEST(SampleLabels, Bfloat16SamplingKeepsTissueVolumeFractions) {
  auto& t = trained_labels();
  auto g = load_label_generator(t.ldm, "", torch::kCPU);
  // After 6 training steps the zero-initialised output layer still predicts epsilon ~ 0, which would make any two
  // samplers agree. The output layer is filled with seeded noise so that the U-Net's prediction is of order 1.
  {
    torch::NoGradGuard ng;
    torch::manual_seed(3);
    for (auto& p : g.unet->named_parameters())  // the output layer (zero at init, ~1e-3 after 6 steps) gets weights
      if (p.key().rfind("out.", 0) == 0) p.value().normal_(0.0, 0.3);
    auto eps = g.unet->forward(torch::randn({2, g.latent_shape[0], g.latent_shape[1], g.latent_shape[2]}),
                               torch::full({2}, 500, torch::kLong), torch::full({2, g.conditioning.dim()}, 0.5f));
    ASSERT_GT(eps.std().item<double>(), 0.1) << "the U-Net must predict something for this test to mean anything";
  }
  LabelSamplerOptions o;
  o.steps = 20;
  auto fp32 = sample_label_batch(g, o, 4, 11, torch::kCPU);
  o.dtype = "bfloat16";
  auto bf16 = sample_label_batch(g, o, 4, 11, torch::kCPU);
  ASSERT_EQ(bf16.pv.scalar_type(), torch::kFloat);
  ASSERT_EQ(bf16.pv.sizes(), fp32.pv.sizes());
  EXPECT_TRUE(torch::equal(bf16.cond, fp32.cond));
  auto frac32 = fp32.pv.mean({0, 2, 3}), frac16 = bf16.pv.mean({0, 2, 3});  // [C]
  double max_diff = (frac32 - frac16).abs().max().item<double>();
  double agree = (fp32.pv.argmax(1) == bf16.pv.argmax(1)).to(torch::kFloat).mean().item<double>();
  std::cout << "tissue fractions fp32 " << frac32 << "\nbf16 " << frac16 << "\nmax |diff| " << max_diff
            << ", argmax agreement " << agree << "\n";
  EXPECT_LT(max_diff, 0.02);
  EXPECT_GE(agree, 0.90);
  // The caller's float32 U-Net is untouched.
  EXPECT_EQ(g.unet->parameters().front().scalar_type(), torch::kFloat);
}
