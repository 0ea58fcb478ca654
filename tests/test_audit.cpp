// brainspade audit: each measure against a hand-computed case, and the command on folders that copy their training
// slices (flagged) and that do not (passed).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/data/slice_dataset.h"
#include "brainspade/eval/audit.h"
#include "brainspade/sampling/label_sampler.h"
#include "brainspade/training/train_ldm.h"
#include "brainspade/training/train_spade.h"
#include "brainspade/training/train_vae.h"
#include "support/helpers.h"
#include "support/phantom.h"
#include "support/tiny_configs.h"

using namespace brainspade;
namespace fs = std::filesystem;

TEST(AuditMeasures, LabelSimilarityIsTheMeanDiceOfThePresentTissues) {
  // 1 x 8 maps, 3 classes. Query: tissue 1 on pixels 0-3. Reference: tissue 1 on pixels 2-5, tissue 2 on pixel 7.
  auto a = torch::tensor({1, 1, 1, 1, 0, 0, 0, 0}, torch::kLong).view({1, 1, 8});
  auto b = torch::tensor({0, 0, 1, 1, 1, 1, 0, 2}, torch::kLong).view({1, 1, 8});
  // Tissue 1: 2·2/(4 + 4) = 0.5; tissue 2: 0 (present in the reference only); mean 0.25.
  auto [sim, idx] = nearest_label_maps(a, b, 3, 0);
  EXPECT_NEAR(sim[0].item<double>(), 0.25, 1e-6);
  // Both maps empty of tissue: similarity 1 (nothing differs).
  auto empty = torch::zeros({1, 1, 8}, torch::kLong);
  EXPECT_NEAR(nearest_label_maps(empty, empty, 3, 0).first[0].item<double>(), 1.0, 1e-6);
}

TEST(AuditMeasures, ShiftSearchFindsAShiftedCopyAndItsIndex) {
  auto map = torch::zeros({12, 16}, torch::kLong);
  map.slice(0, 3, 8).slice(1, 4, 10).fill_(2);
  map.slice(0, 5, 6).slice(1, 5, 12).fill_(1);
  auto other = torch::zeros({12, 16}, torch::kLong);
  other.slice(0, 0, 4).slice(1, 0, 4).fill_(1);
  auto moved = torch::roll(map, {1, 2}, {0, 1});  // the map shifted down 1 and right 2
  auto refs = torch::stack({other, moved});
  auto no_shift = nearest_label_maps(map.unsqueeze(0), refs, 3, 0);
  EXPECT_LT(no_shift.first[0].item<double>(), 0.9);
  auto shift2 = nearest_label_maps(map.unsqueeze(0), refs, 3, 2);
  EXPECT_NEAR(shift2.first[0].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(shift2.second[0].item<int64_t>(), 1);
}

// References come in blocks (256 at a time): the best match must be found, with its index, whatever block holds it.
TEST(AuditMeasures, SearchFindsTheBestReferenceInALaterBlock) {
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(3);
  auto refs = torch::randint(0, 3, {600, 6, 8}, gen, torch::kLong);
  auto query = refs.slice(0, 550, 552).clone();  // copies of references 550 and 551
  auto [sim, idx] = nearest_label_maps(query, refs, 3, 1);
  EXPECT_NEAR(sim[0].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(sim[1].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(idx[0].item<int64_t>(), 550);
  EXPECT_EQ(idx[1].item<int64_t>(), 551);
  auto images = torch::randn({600, 6, 8}, gen);
  auto [isim, iidx] = nearest_images(2 * images.slice(0, 300, 301) + 1, images, 0);
  EXPECT_NEAR(isim[0].item<double>(), 1.0, 1e-5);
  EXPECT_EQ(iidx[0].item<int64_t>(), 300);
}

TEST(AuditMeasures, ImageSimilarityIsCorrelationInvariantToScaleAndOffset) {
  torch::manual_seed(0);
  auto img = torch::randn({1, 10, 12});
  auto refs = torch::cat({-img, 3 * img + 5, torch::randn({1, 10, 12})});
  auto [sim, idx] = nearest_images(img, refs, 0);
  EXPECT_NEAR(sim[0].item<double>(), 1.0, 1e-5);
  EXPECT_EQ(idx[0].item<int64_t>(), 1);
  EXPECT_NEAR(nearest_images(img, -img, 0).first[0].item<double>(), -1.0, 1e-5);
}

TEST(AuditMeasures, RocAucCountsPairsAndTies) {
  auto t = [](std::vector<double> v) { return torch::tensor(v, torch::kDouble); };
  EXPECT_DOUBLE_EQ(roc_auc(t({3, 4}), t({1, 2})), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(t({1, 2}), t({3, 4})), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(t({2, 2}), t({2, 2})), 0.5);
  // 3 > 2, 3 > 1, 2 = 2 (½), 2 > 1: 3.5 of 4 pairs.
  EXPECT_DOUBLE_EQ(roc_auc(t({3, 2}), t({2, 1})), 0.875);
  auto [lo, hi] = roc_auc_interval(t({3, 2, 5, 1}), t({2, 1, 0, 4}), 200, 0.95, 7);
  const double auc = roc_auc(t({3, 2, 5, 1}), t({2, 1, 0, 4}));
  EXPECT_LE(lo, auc);
  EXPECT_GE(hi, auc);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 1.0);
  EXPECT_EQ(roc_auc_interval(t({3, 2, 5, 1}), t({2, 1, 0, 4}), 200, 0.95, 7), std::make_pair(lo, hi));
}

namespace {
// A label-only folder as `sample labels` writes it, from rows of a dataset.
std::string write_label_folder(const std::string& dir, const torch::Tensor& pv) {
  make_dirs(dir + "/labels");
  std::string conditions = csv_row({"id", "label_pv", "slice_position"});
  for (int64_t i = 0; i < pv.size(0); ++i) {
    const std::string file = fmt::format("labels/label_{:06d}_pv.nii.gz", i);
    write_slice_nifti(dir + "/" + file, pv[i]);
    conditions += csv_row({std::to_string(i), file, "0.5"});
  }
  write_text_atomic(dir + "/conditions.csv", conditions);
  return dir;
}
}  // namespace

// Training slices: one phantom subject. Held-out and "honest" slices: the same anatomy moved by 6 px (beyond the
// shift search), so they are close to, but not copies of, training slices. A folder of training slices is flagged;
// a folder drawn like the held-out slices passes.
TEST(Audit, FlagsAFolderOfTrainingSlicesAndPassesOneThatIsNot) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.subjects = 1;
  po.slices = 12;
  po.two_modalities = false;
  SliceDataset ds = testutil::make_phantom_dataset(po);
  ds.save(dir / "train.pt");
  SliceDataset hold = ds;
  hold.labels = torch::roll(ds.labels, {6}, {3});
  hold.images = torch::roll(ds.images, {6}, {3});
  hold.save(dir / "holdout.pt");
  AuditJob job;
  job.run.out_dir = dir / "copy";
  job.train = dir / "train.pt";
  job.holdout = dir / "holdout.pt";
  job.pairs = write_label_folder(dir / "copies", ds.labels);
  const AuditReport copied = run_audit(job);
  EXPECT_EQ(copied.n_synthetic, 12);
  EXPECT_DOUBLE_EQ(copied.label_near_copies, 1.0);
  EXPECT_LT(copied.label_threshold, 1.0);
  ASSERT_FALSE(copied.checks.empty());
  EXPECT_FALSE(copied.checks[0].pass);
  EXPECT_TRUE(fs::exists(dir / "copy/audit_montage.png"));
  const auto js = nlohmann::json::parse(read_text(dir / "copy/audit.json"));
  EXPECT_EQ(js.at("label_near_copies").get<double>(), 1.0);
  EXPECT_NE(read_text(dir / "copy/audit.md").find("**fail**"), std::string::npos);

  job.run.out_dir = dir / "honest";
  job.pairs = write_label_folder(dir / "moved", torch::roll(ds.labels, {-6}, {3}));
  const AuditReport honest = run_audit(job);
  EXPECT_LE(honest.label_near_copies, 0.10);
  EXPECT_TRUE(honest.checks[0].pass);

  job.holdout = dir / "missing.pt";
  EXPECT_THROW(run_audit(job), InputError);
}

// A label generator trained for many steps on 4 slices memorises them: the audit must catch it, by its samples (near
// copies) and by membership inference on the LDM (its training slices denoised better than held-out ones).
TEST(Audit, CatchesALabelGeneratorThatMemorisedFourSlices) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.subjects = 1;
  po.slices = 8;
  po.two_modalities = false;
  SliceDataset ds = testutil::make_phantom_dataset(po);
  SliceDataset train = ds.select(torch::tensor({0, 2, 4, 6}, torch::kLong));
  SliceDataset hold = ds.select(torch::tensor({1, 3, 5, 7}, torch::kLong));
  hold.labels = torch::roll(hold.labels, {6}, {3});
  hold.images = torch::roll(hold.images, {6}, {3});
  train.save(dir / "train.pt");
  hold.save(dir / "holdout.pt");
  auto v = testutil::tiny_vae(dir / "train.pt", dir / "vae", 200);
  v.train.val_fraction = 0;
  v.train.checkpoint_every = 200;
  v.train.log_every = 50;
  train_vae(v, false);
  auto l = testutil::tiny_ldm(dir / "train.pt", dir / "vae/checkpoints/last.ckpt", dir / "ldm", 400);
  l.train.val_fraction = 0;
  l.train.checkpoint_every = 400;
  l.train.log_every = 100;
  l.optim.lr = 2e-3;
  train_ldm(l, false);
  LabelSampleJob s;
  s.run.out_dir = dir / "samples";
  s.run.device = "cpu";
  s.ldm_checkpoint = dir / "ldm/checkpoints/last.ckpt";
  s.num = 8;
  s.sampler.steps = 25;
  s.sampler.slice_range = {0.0, 1.0};
  run_label_sampling(s);

  AuditJob job;
  job.run.out_dir = dir / "audit";
  job.pairs = dir / "samples";
  job.train = dir / "train.pt";
  job.holdout = dir / "holdout.pt";
  job.ldm_checkpoint = s.ldm_checkpoint;
  job.bootstrap_rounds = 200;
  const AuditReport r = run_audit(job);
  std::printf("    memorising generator: near copies %.2f (threshold %.3f), membership AUC %.2f [%.2f, %.2f]\n",
              r.label_near_copies, r.label_threshold, r.auc, r.auc_lo, r.auc_hi);
  EXPECT_GE(r.label_near_copies, 0.5);
  EXPECT_GE(r.auc, 0.9);
  int failed = 0;
  for (const auto& c : r.checks) failed += !c.pass;
  EXPECT_GE(failed, 1);
  // Its held-out slices interleave with the training ones (half a training spacing away): the verdict stands.
  EXPECT_NEAR(r.position_gap, 0.5, 1e-6);
  EXPECT_TRUE(r.checks.back().caveat.empty()) << r.checks.back().caveat;
}

// Held-out slices from a slab sit where the LDM saw nothing; interleaved ones (held-out subjects) do not.
TEST(AuditMeasures, PositionGapSeparatesASlabFromInterleavedSlices) {
  std::vector<double> t;
  for (int i = 0; i <= 20; ++i) t.push_back(i * 0.01);        // 0.00 .. 0.20
  for (int i = 50; i <= 100; ++i) t.push_back(i * 0.01);      // 0.50 .. 1.00
  std::vector<double> twice = t;
  twice.insert(twice.end(), t.begin(), t.end());               // two subjects: the same positions twice
  auto train = torch::tensor(twice, torch::kDouble);
  // Slab 0.30, 0.35, 0.40: nearest training positions 0.10, 0.15, 0.10 away, spacing 0.01 → median 10 spacings.
  EXPECT_NEAR(held_out_position_gap(train, torch::tensor({0.30, 0.35, 0.40}, torch::kDouble)), 10.0, 1e-6);
  // Interleaved: 0.005 and 0.505 lie half a spacing from a training slice.
  EXPECT_NEAR(held_out_position_gap(train, torch::tensor({0.005, 0.505}, torch::kDouble)), 0.5, 1e-6);
  EXPECT_TRUE(std::isnan(held_out_position_gap(torch::tensor({0.5}, torch::kDouble), torch::tensor({0.1}, torch::kDouble))));
}

// `--shard i/n`: three processes measuring a third each give the numbers one process gives; the report is written by
// the shard that completes the parts; a part measured with other settings is refused, naming it.
TEST(Audit, ShardsTogetherMeasureWhatOneRunMeasures) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.subjects = 1;
  po.slices = 10;
  po.two_modalities = false;
  SliceDataset ds = testutil::make_phantom_dataset(po);
  ds.save(dir / "train.pt");
  SliceDataset hold = ds;
  hold.labels = torch::roll(ds.labels, {5}, {3});
  hold.images = torch::roll(ds.images, {5}, {3});
  hold.save(dir / "holdout.pt");
  AuditJob job;
  job.train = dir / "train.pt";
  job.holdout = dir / "holdout.pt";
  job.pairs = write_label_folder(dir / "maps", torch::roll(ds.labels, {-4}, {2}));
  job.run.out_dir = dir / "one";
  const AuditReport one = run_audit(job);

  job.run.out_dir = dir / "sharded";
  const AuditReport first = run_audit(job, Shard{2, 3});
  EXPECT_FALSE(first.complete);
  EXPECT_TRUE(fs::exists(dir / "sharded/shards/part-2-of-3.json"));
  EXPECT_FALSE(fs::exists(dir / "sharded/audit.md"));
  EXPECT_FALSE(run_audit(job, Shard{0, 3}).complete);
  const AuditReport last = run_audit(job, Shard{1, 3});
  ASSERT_TRUE(last.complete);
  EXPECT_TRUE(fs::exists(dir / "sharded/audit.md"));
  EXPECT_TRUE(torch::allclose(last.label_synthetic, one.label_synthetic, 0, 1e-9));
  EXPECT_TRUE(torch::allclose(last.label_holdout, one.label_holdout, 0, 1e-9));
  EXPECT_DOUBLE_EQ(last.label_near_copies, one.label_near_copies);
  // A rerun of a shard whose part exists measures nothing and writes the same report.
  EXPECT_TRUE(run_audit(job, Shard{0, 3}).complete);

  job.max_shift = 1;  // other settings: the parts on disk no longer apply
  try {
    run_audit(job, Shard{0, 3});
    FAIL() << "a part measured with another max_shift was merged";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("part-0-of-3.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_shift"), std::string::npos) << e.what();
  }
}

// A SPADE trained for many steps on 4 slices memorises their images: it rebuilds them from their label maps better
// than held-out slices (the same anatomy moved by 6 px, which a model that learned the mapping would rebuild as well).
// The control, the same training on all 8 slices, makes both sets members: the check passes.
TEST(Audit, CatchesASPADEThatMemorisedFourSlices) {
  testutil::TempDir dir;
  testutil::PhantomOptions po;
  po.subjects = 1;
  po.slices = 8;
  po.two_modalities = false;
  SliceDataset ds = testutil::make_phantom_dataset(po);
  SliceDataset train = ds.select(torch::tensor({0, 2, 4, 6}, torch::kLong));
  SliceDataset hold = ds.select(torch::tensor({1, 3, 5, 7}, torch::kLong));
  hold.labels = torch::roll(hold.labels, {6}, {3});
  hold.images = torch::roll(hold.images, {6}, {3});
  train.save(dir / "train.pt");
  hold.save(dir / "holdout.pt");
  SliceDataset both = ds;  // every slice, the odd ones moved as in the held-out set
  const auto odd = torch::tensor({1, 3, 5, 7}, torch::kLong);
  both.labels = ds.labels.index_copy(0, odd, hold.labels);
  both.images = ds.images.index_copy(0, odd, hold.images);
  both.save(dir / "both.pt");
  auto train_on = [&](const std::string& dataset, const std::string& out) {
    auto c = testutil::tiny_spade(dataset, "", out, 150);
    c.train.val_fraction = 0;
    c.train.checkpoint_every = 150;
    c.train.log_every = 100;
    c.augment_style = false;
    c.loss.perceptual_network = "none";  // no classifier: GAN, feature-matching and KLD terms only
    train_spade(c, false);
    return out + "/checkpoints/last.ckpt";
  };

  AuditJob job;
  job.run.out_dir = dir / "audit";
  job.pairs = write_label_folder(dir / "maps", train.labels);
  job.train = dir / "train.pt";
  job.holdout = dir / "holdout.pt";
  job.spade_checkpoint = train_on(dir / "train.pt", dir / "spade");
  job.bootstrap_rounds = 200;
  const AuditReport r = run_audit(job);
  std::printf("    memorising SPADE: reconstruction error training %.3f, held-out %.3f, AUC %.2f [%.2f, %.2f]\n",
              r.spade_train.mean().item<double>(), r.spade_holdout.mean().item<double>(), r.spade_auc, r.spade_auc_lo,
              r.spade_auc_hi);
  ASSERT_EQ(r.spade_train.numel(), 4);
  ASSERT_EQ(r.spade_holdout.numel(), 4);
  EXPECT_GE(r.spade_auc, 0.9);
  EXPECT_GT(r.spade_holdout.mean().item<double>(), 1.3 * r.spade_train.mean().item<double>());
  EXPECT_FALSE(r.checks.back().pass);
  EXPECT_NE(r.checks.back().name.find("SPADE"), std::string::npos);
  const auto js = nlohmann::json::parse(read_text(dir / "audit/audit.json"));
  EXPECT_EQ(js.at("spade_train").size(), 4u);

  job.run.out_dir = dir / "control";
  job.spade_checkpoint = train_on(dir / "both.pt", dir / "spade_both");
  const AuditReport c = run_audit(job);
  std::printf("    SPADE trained on both sets: reconstruction error %.3f / %.3f, AUC %.2f [%.2f, %.2f]\n",
              c.spade_train.mean().item<double>(), c.spade_holdout.mean().item<double>(), c.spade_auc, c.spade_auc_lo,
              c.spade_auc_hi);
  EXPECT_LT(c.spade_holdout.mean().item<double>(), 1.3 * c.spade_train.mean().item<double>());
  EXPECT_TRUE(c.checks.back().pass);

  // A dataset without images cannot be rebuilt: the error names it before any measuring.
  SliceDataset no_images = hold;
  no_images.images = torch::Tensor();
  no_images.modality_names.clear();
  no_images.save(dir / "labels_only.pt");
  job.holdout = dir / "labels_only.pt";
  try {
    run_audit(job);
    FAIL() << "a held-out dataset without images was accepted for the SPADE check";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("labels_only.pt"), std::string::npos) << e.what();
  }
}
