// Image I/O: round trips keep voxels and physical geometry; every kind of bad file is an InputError naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/draw/montage.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {
Volume ramp_volume(int64_t C, int64_t Z, int64_t Y, int64_t X) {
  Volume v;
  v.data = torch::arange(C * Z * Y * X, torch::kFloat32).view({C, Z, Y, X});  // [C, Z, Y, X]
  v.spacing = {1.5, 2.0, 3.0};
  v.origin = {-10.0, 20.0, 5.0};
  return v;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(ImageIO, RoundTripKeepsVoxelsAndGeometry) {
  testutil::TempDir dir;
  for (const char* ext : {".nii.gz", ".nii", ".mha"}) {
    Volume v = ramp_volume(1, 4, 5, 6);
    write_volume(dir / (std::string("a") + ext), v);
    Volume r = read_volume(dir / (std::string("a") + ext));
    EXPECT_EQ(r.data.sizes(), v.data.sizes()) << ext;
    EXPECT_TRUE(testutil::tensors_close(r.data, v.data, 0, 0)) << ext;
    EXPECT_TRUE(r.same_grid(v, 1e-4)) << ext << ": " << r.grid_string() << " vs " << v.grid_string();
  }
}

TEST(ImageIO, FourDimensionalFilesAreChannels) {
  testutil::TempDir dir;
  Volume v = ramp_volume(3, 4, 5, 6);
  write_volume(dir / "pv.nii.gz", v);
  Volume r = read_volume(dir / "pv.nii.gz");
  ASSERT_EQ(r.data.sizes(), (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_TRUE(testutil::tensors_close(r.data, v.data, 0, 0));
  EXPECT_TRUE(r.same_grid(v, 1e-4));
}

TEST(ImageIO, FlippedAndPermutedAxesAreNormalisedKeepingPhysicalPositions) {
  // Array X runs along -L (right), array Y along +S, array Z along +P: a sagittal-ish storage order.
  Volume v = ramp_volume(1, 3, 4, 5);
  v.direction = {-1, 0, 0, 0, 0, 1, 0, 1, 0};
  Volume r = reorient_to_lps(v);
  // Directions become the identity, spacing follows its axis.
  for (int i = 0; i < 9; ++i) EXPECT_DOUBLE_EQ(r.direction[i], (i % 4 == 0) ? 1.0 : 0.0) << i;
  EXPECT_DOUBLE_EQ(r.spacing[0], 1.5);
  EXPECT_DOUBLE_EQ(r.spacing[1], 3.0);  // old Z (along P) is the new Y
  EXPECT_DOUBLE_EQ(r.spacing[2], 2.0);
  EXPECT_EQ(r.data.sizes(), (std::vector<int64_t>{1, 4, 3, 5}));
  // Every voxel keeps its value at its physical position.
  for (int64_t z = 0; z < 3; ++z)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 5; ++x) {
        auto p = index_to_physical(v, x, y, z);
        // Find the same point in the reoriented grid.
        double nx = (p[0] - r.origin[0]) / r.spacing[0], ny = (p[1] - r.origin[1]) / r.spacing[1],
               nz = (p[2] - r.origin[2]) / r.spacing[2];
        auto ix = std::llround(nx), iy = std::llround(ny), iz = std::llround(nz);
        ASSERT_NEAR(nx, ix, 1e-9);
        EXPECT_EQ(r.data[0][iz][iy][ix].item<float>(), v.data[0][z][y][x].item<float>());
      }
  // And survives a file round trip in that orientation.
  testutil::TempDir dir;
  write_volume(dir / "v.nii.gz", v);
  Volume back = read_volume(dir / "v.nii.gz");
  EXPECT_TRUE(back.same_grid(r, 1e-4)) << back.grid_string() << " vs " << r.grid_string();
  EXPECT_TRUE(testutil::tensors_close(back.data, r.data, 0, 0));
}

TEST(ImageIO, ResampleOntoAShiftedGridMovesByThePhysicalOffset) {
  Volume src = ramp_volume(1, 6, 7, 8);
  src.spacing = {1, 1, 1};
  Volume ref = src;
  ref.origin = {src.origin[0] + 2, src.origin[1] + 1, src.origin[2]};
  Volume out = resample_like(src, ref, false, -5.0);
  // out[z][y][x] = src[z][y+1][x+2] where inside, fill beyond.
  EXPECT_TRUE(testutil::tensors_close(out.data.slice(3, 0, 6).slice(2, 0, 6), src.data.slice(3, 2, 8).slice(2, 1, 7),
                                      1e-4, 0));
  EXPECT_FLOAT_EQ(out.data[0][0][0][7].item<float>(), -5.0f);
  EXPECT_TRUE(out.same_grid(ref));
  // Half-voxel shift interpolates linearly.
  Volume half = src;
  half.origin[0] += 0.5;
  Volume h = resample_like(src, half);
  EXPECT_NEAR(h.data[0][2][3][1].item<float>(), 0.5 * (src.data[0][2][3][1].item<float>() + src.data[0][2][3][2].item<float>()),
              1e-4);
}

TEST(ImageIO, BadFilesAreInputErrorsNamingTheFile) {
  testutil::TempDir dir;
  EXPECT_NE(error_of([&] { read_volume(dir / "missing.nii.gz"); }).find("missing.nii.gz: file not found"),
            std::string::npos);
  testutil::write_file(dir / "empty.nii.gz", "");
  EXPECT_NE(error_of([&] { read_volume(dir / "empty.nii.gz"); }).find("empty.nii.gz: file is empty"),
            std::string::npos);
  testutil::write_file(dir / "junk.nii", std::string(400, 'x'));
  EXPECT_NE(error_of([&] { read_volume(dir / "junk.nii"); }).find("junk.nii:"), std::string::npos);

  // Truncated: the first half of a valid compressed file.
  write_volume(dir / "ok.nii.gz", ramp_volume(1, 20, 20, 20));
  std::string bytes = read_text(dir / "ok.nii.gz");
  testutil::write_file(dir / "cut.nii.gz", bytes.substr(0, bytes.size() / 2));
  auto msg = error_of([&] { read_volume(dir / "cut.nii.gz"); });
  EXPECT_NE(msg.find("cut.nii.gz:"), std::string::npos) << msg;

  // Not 3D: a PNG.
  write_png(dir / "flat.png", torch::zeros({4, 5}, torch::kUInt8));
  msg = error_of([&] { read_volume(dir / "flat.png"); });
  EXPECT_NE(msg.find("expected a 3D or 4D image, got 2D"), std::string::npos) << msg;

  // Absurd sizes are refused from the header, before allocating.
  testutil::write_file(dir / "huge.mha",
                       "ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_FLOAT\n"
                       "ElementDataFile = LOCAL\n");
  msg = error_of([&] { read_volume(dir / "huge.mha"); });
  EXPECT_NE(msg.find("huge.mha: image dimension 100000 is outside"), std::string::npos) << msg;
  testutil::write_file(dir / "many.mha",
                       "ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_FLOAT\n"
                       "ElementDataFile = LOCAL\n");
  msg = error_of([&] { read_volume(dir / "many.mha"); });
  EXPECT_NE(msg.find("exceed the limit"), std::string::npos) << msg;

  // NaN voxels.
  Volume nan = ramp_volume(1, 3, 3, 3);
  nan.data[0][1][1][1] = std::numeric_limits<float>::quiet_NaN();
  write_volume(dir / "nan.nii.gz", nan);
  msg = error_of([&] { read_volume(dir / "nan.nii.gz"); });
  EXPECT_NE(msg.find("nan.nii.gz: contains 1 NaN or infinite"), std::string::npos) << "message: [" << msg << "]";
}

TEST(ImageIO, PngRoundTripAndWindowing) {
  testutil::TempDir dir;
  auto img = torch::arange(12, torch::kFloat32).view({3, 4}) * 20;  // [H, W]
  write_png(dir / "g.png", img.to(torch::kUInt8));
  auto back = read_png(dir / "g.png");
  EXPECT_TRUE(testutil::tensors_close(back, img, 0, 0));
  auto w = window_to_uint8(img, 0.0, 220.0);
  EXPECT_EQ(w[0][0].item<uint8_t>(), 0);
  EXPECT_EQ(w[2][3].item<uint8_t>(), 255);
  EXPECT_EQ(w[1][1].item<uint8_t>(), 116);  // 100 / 220 * 255 = 115.9
  EXPECT_THROW(read_png(dir / "nope.png"), InputError);
}

TEST(ImageIO, LabelColoursFollowTheAuthorsChannelOrder) {
  auto labels = torch::zeros({6, 2, 3});  // [C, H, W]
  for (int64_t c = 0; c < 6; ++c) labels[c][c / 3][c % 3] = 1.0;
  auto rgb = label_to_rgb(labels);  // [H, W, 3]
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{2, 3, 3}));
  for (int64_t c = 0; c < 6; ++c) {
    auto col = label_colour(c);
    for (int k = 0; k < 3; ++k) EXPECT_EQ(rgb[c / 3][c % 3][k].item<uint8_t>(), col[k]) << "channel " << c;
  }
  EXPECT_EQ(label_colour(7), (std::array<uint8_t, 3>{220, 30, 30}));  // tumour red
  // Soft colouring mixes: half CSF, half WM.
  auto mix = torch::zeros({4, 1, 1});
  mix[1][0][0] = 0.5;
  mix[3][0][0] = 0.5;
  auto s = label_to_rgb(mix, true);
  EXPECT_EQ(s[0][0][2].item<uint8_t>(), (230 + 245) / 2 + 1);  // 237.5 rounds to 238
}

TEST(ImageIO, MontagePlacesTilesInAGrid) {
  testutil::TempDir dir;
  std::vector<torch::Tensor> tiles;
  tiles.push_back(torch::ones({10, 12}) * 7);                      // float, normalised alone
  tiles.push_back(torch::rand({6, 8}));                            // smaller, centred
  tiles.push_back(label_to_rgb(torch::eye(3).view({3, 1, 3}).expand({3, 10, 3}).contiguous()));  // RGB [10, 3, 3]
  write_montage_png(dir / "m.png", tiles, 2);
  auto m = read_png(dir / "m.png");  // luminance [H, W]
  // 2 columns, 2 rows of 10x12 cells with 2 px padding.
  EXPECT_EQ(m.size(0), 2 * (10 + 2) + 2);
  EXPECT_EQ(m.size(1), 2 * (12 + 2) + 2);
  EXPECT_NEAR(m[0][0].item<float>(), 32, 1);     // padding grey
  EXPECT_NEAR(m[5][5].item<float>(), 255, 1);    // constant tile maps to its window top
  EXPECT_NEAR(m[2][16].item<float>(), 32, 1);    // above the centred small tile: background
}

TEST(ImageIO, ReadsTheColin27ExampleWhenPresent) {
  std::string d = testutil::example_data_dir();
  if (d.empty()) GTEST_SKIP() << "run scripts/fetch_example_data.sh for this test";
  Volume v = read_volume(d + "/ch2bet.nii.gz");
  EXPECT_EQ(v.data.sizes(), (std::vector<int64_t>{1, 181, 217, 181}));
  EXPECT_DOUBLE_EQ(v.spacing[0], 1.0);
  // NIfTI origin (-90, -125, -71) RAS = (90, 125, -71) LPS at the first voxel, before the LR/AP flips.
  // After normalisation X runs to +L: the first voxel is the rightmost one at LPS x = -90.
  EXPECT_NEAR(v.origin[0], -90.0, 1e-3);
  EXPECT_NEAR(v.origin[1], -91.0, 1e-3);
  EXPECT_NEAR(v.origin[2], -71.0, 1e-3);
  EXPECT_GT(v.data.max().item<float>(), 50.0f);
  auto t1 = read_png(d + "/BrainT1Slice.png");
  EXPECT_EQ(t1.sizes(), (std::vector<int64_t>{217, 181}));
}
