// The inputs that once killed the program (exit 134, a core dump, no message), run through every command that reads
// them in a child process of its own: each child must exit with code 2 and name the file, never end by a signal.
// The files are the fuzz findings kept in tests/fuzz/corpus/ (crash_*), copied here under the names a user would give.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "brainspade/core/error.h"
#include "brainspade/io/image_io.h"
#include "support/helpers.h"

extern char** environ;

using namespace brainspade;
namespace fs = std::filesystem;

namespace {

struct ChildResult {
  bool signalled = false;
  int signal = 0;
  int exit_code = -1;
  std::string output;
};

// Runs the brainspade program directly (no shell in between, so a signal is seen as a signal) with its output in a file.
ChildResult run_child(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv_s{BRAINSPADE_BINARY, "--log-level", "warn"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  ChildResult r;
  const int rc = posix_spawn(&pid, BRAINSPADE_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return r;
  int status = 0;
  waitpid(pid, &status, 0);
  r.signalled = WIFSIGNALED(status);
  r.signal = r.signalled ? WTERMSIG(status) : 0;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

std::string corpus(const std::string& rel) { return std::string(BRAINSPADE_SOURCE_DIR) + "/tests/fuzz/corpus/" + rel; }

}  // namespace

TEST(CrashInputs, EveryCommandThatReadsThemExitsWith2AndNamesTheFile) {
  testutil::TempDir dir;
  const std::string nii = dir / "scan.nii", png = dir / "style.png", yaml = dir / "train.yaml";
  fs::copy_file(corpus("nifti/crash_nonfinite_orientation_vnl_abort"), nii);
  fs::copy_file(corpus("png/crash_gdcm_probe_assert"), png);
  fs::copy_file(corpus("config/crash_complex_key_bad_conversion"), yaml);
  // Valid companions, so that each command gets as far as the bad file.
  Volume good;
  good.data = torch::rand({1, 4, 20, 16}) * 100 + 10;
  const std::string image = dir / "image.nii.gz";
  write_volume(image, good);
  Volume pv = good;
  pv.data = torch::zeros({6, 4, 20, 16});
  pv.data[3].fill_(1.0);
  const std::string labels = dir / "labels.nii.gz";
  write_volume(labels, pv);
  fs::create_directories(dir / "pred");
  fs::create_directories(dir / "ref");
  fs::copy_file(nii, dir / "pred/case.nii");
  fs::copy_file(nii, dir / "ref/case.nii");
  testutil::write_file(dir / "slice.yaml", "data:\n  images: [" + nii + "]\n  labels: [" + labels + "]\n");

  struct Case {
    std::string file;  // named in the message
    std::vector<std::string> args;
  };
  const std::string out = dir / "out";
  const std::vector<Case> cases = {
      {nii, {"label", "--t1", nii, "--out", out + "/pv.nii.gz"}},
      {nii, {"slice", "--config", dir / "slice.yaml", "--out", out}},
      {nii, {"figure", "--image", nii, "--ref", labels, "--out", out + "/f.png"}},
      {nii, {"style-slices", "--image", nii, "--labels", labels, "--z", "1", "--out-dir", out}},
      {nii, {"style-montage", "--files", nii, "--out", out + "/m.png"}},
      {"case.nii", {"evaluate", "--pred", dir / "pred", "--ref", dir / "ref", "--out", out}},
      {png, {"register-slice", "--match", png, "--reference", image, "--labels", labels}},
      {png, {"style-montage", "--files", png, "--out", out + "/m.png"}},
      {yaml, {"train", "vae", "--config", yaml, "--out", out}},
      {yaml, {"train", "ldm", "--config", yaml, "--out", out}},
      {yaml, {"train", "segmenter", "--config", yaml, "--out", out}},
      {yaml, {"import-official", "--network", "vae", "--config", yaml, "--out", out + "/vae.ckpt", "--weights",
              std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth"}},
      // The options their code trained with: their YAML (a VAE's) and SPADE's opt.txt.
      {yaml, {"import-official", "--network", "vae", "--official-config", yaml, "--out", out + "/vae.ckpt", "--weights",
              std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth"}},
      {png, {"import-official", "--network", "spade", "--official-config", png, "--out", out + "/spade.ckpt",
             "--weights", std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth",
             "--encoder-weights", std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth"}},
      {yaml, {"import-official", "--network", "classifier", "--config", yaml, "--out", out + "/classifier.ckpt",
              "--datasets", "SABRE", "--weights",
              std::string(BRAINSPADE_TEST_DATA) + "/golden/official_vae_final_model.pth"}},
  };
  for (const auto& c : cases) {
    std::string cmd;
    for (const auto& a : c.args) cmd += " " + a;
    SCOPED_TRACE("brainspade" + cmd);
    ChildResult r = run_child(c.args, dir / "child.log");
    EXPECT_FALSE(r.signalled) << "killed by signal " << r.signal << "\n" << r.output;
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.file), std::string::npos) << "the message does not name " << c.file << ":\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << "output written by a refused command";
    fs::remove_all(out);
  }
}

// The reasons, read directly: the field of the header, the format, the key's line.
TEST(CrashInputs, MessagesNameTheCause) {
  testutil::TempDir dir;
  const std::string nii = dir / "scan.nii", png = dir / "style.png";
  fs::copy_file(corpus("nifti/crash_nonfinite_orientation_vnl_abort"), nii);
  fs::copy_file(corpus("png/crash_gdcm_probe_assert"), png);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(no InputError)");
  };
  EXPECT_NE(message([&] { read_volume(nii); }).find("NIfTI"), std::string::npos);
  EXPECT_NE(message([&] { read_png(png); }).find("corrupt PNG"), std::string::npos);
  auto r = testutil::run_cli("train vae --config " + corpus("config/crash_complex_key_bad_conversion") + " --out " +
                             (dir / "out"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("line 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("plain name"), std::string::npos) << r.output;
}

// A NIfTI header whose sform holds a NaN is refused by name even when everything else is valid; the same file with
// the sform switched off (sform_code 0) reads, so the check is about the numbers ITK uses, not about these bytes.
TEST(CrashInputs, NonFiniteSformIsRefusedOnlyWhenUsed) {
  testutil::TempDir dir;
  Volume v;
  v.data = torch::rand({1, 3, 4, 5});
  const std::string path = dir / "v.nii";
  write_volume(path, v);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto write_with = [&](int16_t sform_code) {
    std::string b = bytes;
    std::memcpy(&b[254], &sform_code, 2);
    std::memcpy(&b[296 + 4], &nan, 4);  // srow_y[1]
    std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
  };
  write_with(1);
  try {
    read_volume(path);
    ADD_FAILURE() << "a NaN sform was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("srow_y[1]"), std::string::npos) << e.what();
  }
  write_with(0);
  EXPECT_NO_THROW(read_volume(path));
}

// Image readers are chosen by extension, never by probing: a name brainspade does not read is refused by name.
TEST(CrashInputs, UnknownExtensionsAreRefusedByName) {
  testutil::TempDir dir;
  const std::string path = dir / "scan.dcm";
  testutil::write_file(path, std::string(132, '\0') + "DICM");
  try {
    read_volume(path);
    ADD_FAILURE() << "read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("scan.dcm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unsupported image format"), std::string::npos) << e.what();
  }
}
