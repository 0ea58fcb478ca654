// The simulated lesion cohort (`brainspade phantom-lesions`, data/phantom.h): PV maps that still sum to 1, lesion
// volumes inside the configured range, determinism, contrast rules, the slice config it writes, and its errors.
#include <cmath>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/data/phantom.h"
#include "brainspade/data/slicing.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

namespace brainspade {
namespace {

using testutil::TempDir;

struct SliceRootForTest {
  RunOptions run;
  SliceOptions data;
  void visit(ConfigVisitor& v) {
    v.section("run", run);
    v.section("data", data);
  }
};

// A 3D "brain" at 2 mm: nested ellipsoids of CSF, GM and WM with a deep-GM blob, smooth PV edges; and a T1 with
// WM brighter than GM brighter than CSF, zero outside the brain.
std::pair<Volume, Volume> toy_subject() {
  const int64_t Z = 40, Y = 48, X = 44;
  auto z = torch::linspace(-1, 1, Z).view({Z, 1, 1}), y = torch::linspace(-1, 1, Y).view({1, Y, 1}),
       x = torch::linspace(-1, 1, X).view({1, 1, X});
  auto r = ((x / 0.85).pow(2) + (y / 0.9).pow(2) + (z / 0.85).pow(2)).sqrt();  // 1 at the brain's edge
  auto edge = [&](double at) { return torch::sigmoid((at - r) * 25); };       // 1 inside radius `at`
  auto brain = edge(1.0), in_gm = edge(0.9), in_wm = edge(0.75);
  auto deep = torch::sigmoid((0.18 - ((x - 0.2).pow(2) + y.pow(2) + z.pow(2)).sqrt()) * 25) * in_wm;
  auto wm = in_wm - deep;
  auto gm = in_gm - in_wm;
  auto csf = brain - in_gm;
  auto bg = 1 - brain;
  auto zeros = torch::zeros_like(bg);
  Volume pv, t1;
  pv.data = torch::stack({bg, csf, gm, wm, deep, zeros}).contiguous();
  pv.spacing = {2.0, 2.0, 2.0};
  t1 = pv.with_data(((csf * 30 + gm * 70 + deep * 80 + wm * 110) * (bg < 0.5)).unsqueeze(0).contiguous());
  return {t1, pv};
}

PhantomConfig toy_config() {
  PhantomConfig c;
  c.lesions.tumour_radius_mm = {6, 10};
  c.lesions.edema_ratio = {1.5, 2.0};
  c.lesions.margin_mm = 4;
  c.lesions.min_wm = 0.8;
  c.lesions.count = {1, 1};
  c.lesions.z_range = {0.3, 0.7};
  c.cohort.label_map = {0, 1, 2, 3, 2, 3, 4, 5};
  return c;
}

TEST(LesionPhantom, PatientsArePVMapsThatSumToOneWithLesionsOfTheConfiguredSize) {
  auto [t1, pv] = toy_subject();
  auto cfg = toy_config();
  cfg.contrast.bias_field = 0;  // the contrast rules are checked without the acquisition's smooth bias
  for (int64_t i = 0; i < 3; ++i) {
    PhantomPatient p = simulate_patient(t1, pv, cfg, i);
    ASSERT_EQ(p.pv.channels(), 8);
    ASSERT_TRUE(p.pv.same_grid(pv));
    EXPECT_LT((p.pv.data.sum(0) - 1).abs().max().item<double>(), 1e-5);
    EXPECT_GE(p.pv.data.min().item<double>(), 0.0);
    EXPECT_EQ(p.tumours, 1);
    // The core is a sphere of radius 6-10 mm modulated by ±30 % (clamped): between the volumes of radius 3 and 13.
    const double lo = 4.0 / 3 * M_PI * std::pow(3.0, 3) / 1000, hi = 4.0 / 3 * M_PI * std::pow(13.0, 3) / 1000;
    EXPECT_GT(p.tumour_ml, lo) << "patient " << i;
    EXPECT_LT(p.tumour_ml, hi) << "patient " << i;
    EXPECT_GT(p.edema_ml, 0.5 * p.tumour_ml) << "the edema surrounds the core";
    const double voxel_ml = 8.0 / 1000;
    EXPECT_NEAR(p.pv.data[6].sum().item<double>() * voxel_ml, p.tumour_ml, 1e-6 * p.tumour_ml + 1e-9);
    // Contrast rules: in T1 the core is darker than white matter, in PD brighter.
    auto core = p.pv.data[6] > 0.9, wm = p.pv.data[3] > 0.9;
    ASSERT_GT(core.sum().item<int64_t>(), 0);
    EXPECT_LT(p.t1.data[0].masked_select(core).mean().item<double>(),
              0.85 * p.t1.data[0].masked_select(wm).mean().item<double>());
    EXPECT_GT(p.pd.data[0].masked_select(core).mean().item<double>(),
              1.1 * p.pd.data[0].masked_select(wm).mean().item<double>());
    // Brain-extracted images: zero where the voxel is background.
    auto bg = p.pv.data[0] > 0.99;
    EXPECT_EQ(p.t1.data[0].masked_select(bg).abs().max().item<double>(), 0.0);
    EXPECT_EQ(p.pd.data[0].masked_select(bg).abs().max().item<double>(), 0.0);
  }
}

TEST(LesionPhantom, DeterministicPerSeedAndPatientAndAnatomyDiffersBetweenPatients) {
  auto [t1, pv] = toy_subject();
  auto cfg = toy_config();
  auto a = simulate_patient(t1, pv, cfg, 1), b = simulate_patient(t1, pv, cfg, 1), c = simulate_patient(t1, pv, cfg, 2);
  EXPECT_TRUE(torch::equal(a.pv.data, b.pv.data));
  EXPECT_TRUE(torch::equal(a.t1.data, b.t1.data));
  EXPECT_TRUE(torch::equal(a.pd.data, b.pd.data));
  // Another patient: its own deformation moves the healthy tissue too, not only the lesions.
  auto outside = (a.pv.data[6] + a.pv.data[7] + c.pv.data[6] + c.pv.data[7]) < 1e-3;
  EXPECT_GT((a.pv.data[3] - c.pv.data[3]).abs().masked_select(outside).mean().item<double>(), 0.01);
  cfg.run.seed = 7;
  auto d = simulate_patient(t1, pv, cfg, 1);
  EXPECT_FALSE(torch::equal(a.pv.data, d.pv.data));
}

TEST(LesionPhantom, RefusesInconsistentSourcesAndOptions) {
  auto [t1, pv] = toy_subject();
  auto cfg = toy_config();
  auto message = [&](const PhantomConfig& c, const Volume& t, const Volume& p) -> std::string {
    try {
      simulate_patient(t, p, c, 0);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  Volume five = pv.with_data(pv.data.slice(0, 0, 5).contiguous());
  EXPECT_NE(message(cfg, t1, five).find("5 channels, but source.channel_names has 6"), std::string::npos)
      << message(cfg, t1, five);
  auto c2 = cfg;
  c2.lesions.min_wm = 1.0;
  c2.lesions.margin_mm = 40;
  EXPECT_NE(message(c2, t1, pv).find("no voxel with wm PV"), std::string::npos) << message(c2, t1, pv);
  auto c3 = cfg;
  c3.cohort.label_map = {0, 1, 2};
  EXPECT_NE(message(c3, t1, pv).find("cohort.label_map"), std::string::npos);
  auto c4 = cfg;
  c4.lesions.tumour_radius_mm = {9, 4};
  EXPECT_NE(message(c4, t1, pv).find("lesions.tumour_radius_mm"), std::string::npos);
  auto c5 = cfg;
  c5.lesions.names = {"tumour", "wm"};
  EXPECT_NE(message(c5, t1, pv).find("already a source channel"), std::string::npos);
}

TEST(LesionPhantom, CommandWritesACohortThatSlicesWithLesionFlags) {
  TempDir tmp;
  auto [t1, pv] = toy_subject();
  write_volume(tmp / "t1.nii.gz", t1);
  write_volume(tmp / "pv.nii.gz", pv);
  const std::string out = tmp / "cohort";
  testutil::write_file(tmp / "c.yaml", "run: {out_dir: " + out + "}\nsource: {image: " + (tmp / "t1.nii.gz") +
                                           ", labels: " + (tmp / "pv.nii.gz") + "}\n"
                                           "cohort: {train: 2, test: 1, label_map: [0, 1, 2, 3, 2, 3, 4, 5], "
                                           "slice_height: 48, slice_width: 44}\n"
                                           "lesions: {tumour_radius_mm: [6, 10], margin_mm: 4, min_wm: 0.8, "
                                           "count: [1, 1], z_range: [0.3, 0.7]}\n");
  auto r = testutil::run_cli("phantom-lesions --config " + (tmp / "c.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"cohort.csv", "slice.yaml", "montage.png", "train/images/patient000_T1.nii.gz",
                        "train/images/patient001_PD.nii.gz", "train/pv/patient001.nii.gz", "test/T1/patient002.nii.gz",
                        "test/PD/patient002.nii.gz", "test/labels/patient002.nii.gz"})
    EXPECT_TRUE(std::ifstream(out + "/" + f).good()) << f;
  // The test labels are the argmax through label_map: classes 0..5, the tumour (4) among them.
  Volume labels = read_volume(out + "/test/labels/patient002.nii.gz");
  EXPECT_EQ(labels.data.max().item<double>(), 5.0);
  EXPECT_GT((labels.data == 4).sum().item<int64_t>(), 0);
  // The slice config it wrote slices as written: both modalities, lesion flags, a balanced lesion share.
  auto cfg = load_config_text<SliceRootForTest>(read_text(out + "/slice.yaml"), "slice.yaml");
  SliceDataset ds = build_slice_dataset(cfg.data, 0);
  EXPECT_EQ(ds.lesion_names, (std::vector<std::string>{"tumour", "edema"}));
  EXPECT_EQ(ds.modality_names, (std::vector<std::string>{"T1", "PD"}));
  EXPECT_EQ(ds.channels(), 8);
  const double share = (ds.lesion_flags.sum(1) > 0).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(share, 0.5) << "lesion slices after the 2/3 rule";
  EXPECT_LT(share, 0.8);
  // Balancing keeps or drops a slice position with all its modalities: every kept position has T1 and PD.
  std::map<std::pair<int64_t, int64_t>, int> modalities_at;
  for (int64_t i = 0; i < ds.size(); ++i)
    modalities_at[{ds.subject[i].item<int64_t>(), ds.slice_index[i].item<int64_t>()}] |= 1 << ds.modality[i].item<int>();
  for (const auto& [key, bits] : modalities_at) EXPECT_EQ(bits, 3) << "subject " << key.first << " z " << key.second;
  // A bad key exits 2 naming it and writes nothing.
  auto bad = testutil::run_cli("phantom-lesions --config " + (tmp / "c.yaml") + " --out " + (tmp / "bad") +
                               " --set lesions.count=[3,1]");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("lesions.count"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::ifstream(tmp / "bad/cohort.csv").good());
}

}  // namespace
}  // namespace brainspade
