// Replays every committed fuzz input (tests/fuzz/corpus/<target>/: seeds and each crashing input that was fixed)
// through the same target functions libFuzzer runs. Each must end in a valid result or InputError, quickly.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"
#include "fuzz/fuzz_targets.h"
#include "brainspade/io/image_io.h"

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

struct Replayed {
  int files = 0;
};

Replayed replay(const std::string& target, int (*fn)(const uint8_t*, size_t)) {
  Replayed r;
  const fs::path dir = fs::path(BRAINSPADE_SOURCE_DIR) / "tests/fuzz/corpus" / target;
  EXPECT_TRUE(fs::is_directory(dir)) << dir;
  if (!fs::is_directory(dir)) return r;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto t0 = std::chrono::steady_clock::now();
    try {
      EXPECT_EQ(fn(bytes.data(), bytes.size()), 0) << f;
    } catch (const std::exception& e) {
      ADD_FAILURE() << f << ": escaped with an exception other than InputError: " << e.what();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 5.0) << f << " took " << s << " s (a hang?)";
    ++r.files;
  }
  return r;
}

}  // namespace

TEST(FuzzRegressions, ConfigCorpusLoadsOrIsRefused) { EXPECT_GE(replay("config", fuzz_config).files, 10); }
TEST(FuzzRegressions, NiftiCorpusReadsOrIsRefused) { EXPECT_GE(replay("nifti", fuzz_nifti).files, 6); }
TEST(FuzzRegressions, PngCorpusReadsOrIsRefused) { EXPECT_GE(replay("png", fuzz_png).files, 4); }
TEST(FuzzRegressions, CsvCorpusParsesOrIsRefused) { EXPECT_GE(replay("csv", fuzz_csv).files, 4); }
TEST(FuzzRegressions, CheckpointCorpusLoadsOrIsRefused) { EXPECT_GE(replay("checkpoint", fuzz_checkpoint).files, 3); }

// Python's torch.save output reads in C++; its truncated and bit-flipped copies are refused by name.
TEST(FuzzRegressions, CheckpointSeedsFromPython) {
  const std::string dir = std::string(BRAINSPADE_SOURCE_DIR) + "/tests/fuzz/corpus/checkpoint/";
  Checkpoint ck = Checkpoint::load(dir + "seed_torch_save.ckpt");
  EXPECT_EQ(ck.get_string("stage"), "vae");
  EXPECT_EQ(ck.get_int("step"), 3);
  EXPECT_EQ(ck.tensor("vae.w").sum().item<float>(), 15.0f);
  for (const char* bad : {"seed_truncated.ckpt", "seed_bitflip.ckpt"}) {
    try {
      Checkpoint::load(dir + bad);
      ADD_FAILURE() << bad << " loaded";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

// The seeds are valid inputs, so the corpora start from the readers' success paths (tests/fuzz/make_seeds.py).
TEST(FuzzRegressions, SeedsAreReadAsWritten) {
  const std::string dir = std::string(BRAINSPADE_SOURCE_DIR) + "/tests/fuzz/corpus/";
  for (const char* name : {"nifti/seed_float_4x3x2.nii", "nifti/seed_float_gz.nii.gz"}) {
    Volume v = read_volume(dir + name);
    ASSERT_EQ(v.data.sizes().vec(), std::vector<int64_t>({1, 2, 3, 4})) << name;  // [C, Z, Y, X]
    EXPECT_EQ(v.data.sum().item<double>(), 276.0) << name;               // 0 + 1 + ... + 23
    EXPECT_DOUBLE_EQ(v.spacing[2], 2.0) << name;
  }
  EXPECT_EQ(read_volume(dir + "nifti/seed_pv_2x2x2x3.nii").data.sizes().vec(), std::vector<int64_t>({3, 2, 2, 2}));
  torch::Tensor g = read_png(dir + "png/seed_grey8.png");
  ASSERT_EQ(g.sizes().vec(), std::vector<int64_t>({3, 4}));
  EXPECT_EQ(g[0][3].item<float>(), 255.0f);
  EXPECT_EQ(read_png(dir + "png/seed_grey16.png")[0][1].item<float>(), 65535.0f);
}
