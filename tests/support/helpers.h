#pragma once
// Test fixtures shared by every test file: temporary folders, running the CLI, tensor comparisons.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace brainspade::testutil {

/// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Result of running the `brainspade` program.
struct CliResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
};
/// Runs build/brainspade with the given argument string (shell-quoted by the caller).
CliResult run_cli(const std::string& args);

/// Writes text to a file (creating folders).
void write_file(const std::string& path, const std::string& text);

/// Writes a perceptual network's parameters as scripts/export_perceptual_weights.py --random does: a pickled dict of
/// torchvision's parameter names plus the "__random_init__" marker.
void write_random_feature_weights(torch::nn::Module& net, const std::string& path);

/// Asserts |a-b| <= atol + rtol*|b| elementwise and prints the max difference.
::testing::AssertionResult tensors_close(const torch::Tensor& a, const torch::Tensor& b, double atol = 1e-5,
                                         double rtol = 1e-4);

/// True when every tensor whose key starts with `prefix` is bit-identical in the two checkpoint files (and at least
/// one such key exists); a difference is reported as a test failure naming the key. Used by the resume tests.
bool same_checkpoint_tensors(const std::string& a, const std::string& b, const std::string& prefix);

/// Path of the example data folder (data/example) or "" when scripts/fetch_example_data.sh has not run.
std::string example_data_dir();

/// Loads a dict of tensors written by scripts/make_golden.py (Python torch.save); fails the test when missing.
std::map<std::string, torch::Tensor> load_golden(const std::string& name);
/// The weights of a golden written by scripts/parity/make_golden_official.py as names and shapes ("shape.<name>"):
/// the seeded fill it used (manual_seed 1234, sorted name order, v = randn / sqrt(fan-in), 10 for vectors and scalars;
/// in batch norms, the modules with a running_var, weight 1 + v and running_var |v| + 0.5), by their name.
std::map<std::string, torch::Tensor> official_seeded_weights(const std::map<std::string, torch::Tensor>& golden);

/// Largest |difference| between a multiscale discriminator's feature maps (scale s, layer j) and a golden's
/// "out.s.j" tensors; fails the test (and returns infinity) when a count, a shape or a key does not match.
double worst_feature_difference(const std::vector<std::vector<torch::Tensor>>& feats,
                                const std::map<std::string, torch::Tensor>& golden, size_t scales, size_t layers);

}  // namespace brainspade::testutil
