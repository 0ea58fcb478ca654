#include "support/helpers.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>

#include "brainspade/core/checkpoint.h"

namespace brainspade::testutil {

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path() / ("brainspade-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(base);
  path_ = base.string();
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CliResult run_cli(const std::string& args) {
  CliResult r;
  std::string cmd = std::string(BRAINSPADE_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void write_file(const std::string& path, const std::string& text) {
  auto p = std::filesystem::path(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

void write_random_feature_weights(torch::nn::Module& net, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (auto& p : net.named_parameters()) dict.insert(p.key(), p.value().detach().clone());
  dict.insert("__random_init__", torch::ones({1}));
  const auto bytes = torch::pickle_save(c10::IValue(dict));
  write_file(path, std::string(bytes.begin(), bytes.end()));
}

::testing::AssertionResult tensors_close(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol) {
  if (a.sizes() != b.sizes()) {
    std::ostringstream os;
    os << "shape mismatch: " << a.sizes() << " vs " << b.sizes();
    return ::testing::AssertionFailure() << os.str();
  }
  auto af = a.detach().to(torch::kCPU, torch::kDouble), bf = b.detach().to(torch::kCPU, torch::kDouble);
  auto diff = (af - bf).abs();
  double max_diff = a.numel() ? diff.max().item<double>() : 0.0;
  bool ok = (diff <= atol + rtol * bf.abs()).all().item<bool>();
  std::printf("    max |diff| = %.3g (atol %.1g, rtol %.1g)\n", max_diff, atol, rtol);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| = " << max_diff << " exceeds atol " << atol << " + rtol " << rtol;
}

bool same_checkpoint_tensors(const std::string& a, const std::string& b, const std::string& prefix) {
  auto ca = Checkpoint::load(a), cb = Checkpoint::load(b);
  int compared = 0;
  for (const auto& k : ca.keys()) {
    if (k.rfind(prefix, 0) != 0) continue;
    if (!torch::equal(ca.tensor(k), cb.tensor(k))) {
      ADD_FAILURE() << "weights differ at " << k;
      return false;
    }
    ++compared;
  }
  return compared > 0;
}

std::string example_data_dir() {
  std::string d = std::string(BRAINSPADE_SOURCE_DIR) + "/data/example";
  return std::filesystem::exists(d + "/ch2bet.nii.gz") ? d : "";
}

std::map<std::string, torch::Tensor> load_golden(const std::string& name) {
  std::string path = std::string(BRAINSPADE_TEST_DATA) + "/golden/" + name + ".pt";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "golden file missing: " << path << " (run scripts/make_golden.py)";
    return {};
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto dict = torch::pickle_load(bytes).toGenericDict();
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : dict) out[kv.key().toStringRef()] = kv.value().toTensor();
  return out;
}

std::map<std::string, torch::Tensor> official_seeded_weights(const std::map<std::string, torch::Tensor>& golden) {
  torch::NoGradGuard no_grad;
  const std::string kShape = "shape.";
  // A name's module prefix ("a.norm1.") and leaf ("running_var").
  auto prefix_of = [](const std::string& name) { return name.substr(0, name.rfind('.') + 1); };
  auto leaf_of = [](const std::string& name) { return name.substr(name.rfind('.') + 1); };
  std::set<std::string> batch_norms;  // the prefixes of the modules holding a running_var
  for (const auto& kv : golden)
    if (kv.first.rfind(kShape, 0) == 0 && leaf_of(kv.first) == "running_var")
      batch_norms.insert(prefix_of(kv.first.substr(kShape.size())));
  torch::manual_seed(1234);
  std::map<std::string, torch::Tensor> out;  // std::map iterates in sorted order, like Python's sorted()
  for (const auto& [key, shape_t] : golden) {
    if (key.rfind(kShape, 0) != 0) continue;
    std::vector<int64_t> shape(shape_t.data_ptr<int64_t>(), shape_t.data_ptr<int64_t>() + shape_t.numel());
    const double fan =
        shape.size() >= 2 ? static_cast<double>(c10::multiply_integers(shape.begin() + 1, shape.end())) : 10.0;
    const std::string name = key.substr(kShape.size());
    torch::Tensor v = torch::randn(shape) / std::sqrt(fan);
    if (batch_norms.count(prefix_of(name)) && leaf_of(name) == "weight") v = v + 1.0;
    if (batch_norms.count(prefix_of(name)) && leaf_of(name) == "running_var") v = v.abs() + 0.5;
    out[name] = v;
  }
  return out;
}

double worst_feature_difference(const std::vector<std::vector<torch::Tensor>>& feats,
                                const std::map<std::string, torch::Tensor>& golden, size_t scales, size_t layers) {
  const double fail = std::numeric_limits<double>::infinity();
  EXPECT_EQ(feats.size(), scales);
  if (feats.size() != scales) return fail;
  double worst = 0;
  for (size_t s = 0; s < scales; ++s) {
    EXPECT_EQ(feats[s].size(), layers) << "scale " << s;
    if (feats[s].size() != layers) return fail;
    for (size_t j = 0; j < layers; ++j) {
      const auto key = "out." + std::to_string(s) + "." + std::to_string(j);
      auto it = golden.find(key);
      EXPECT_TRUE(it != golden.end()) << "the golden has no " << key;
      if (it == golden.end()) return fail;
      EXPECT_EQ(feats[s][j].sizes(), it->second.sizes()) << key;
      if (feats[s][j].sizes() != it->second.sizes()) return fail;
      worst = std::max(worst, (feats[s][j] - it->second).abs().max().item<double>());
    }
  }
  return worst;
}

}  // namespace brainspade::testutil
