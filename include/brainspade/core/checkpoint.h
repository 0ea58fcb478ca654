#pragma once
/// Checkpoints: one pickle archive holding a dict of named values, written atomically.
///
/// The archive is LibTorch's `torch::pickle_save` format, which Python opens with
/// `torch.load(path)` (a dict of tensors, ints, floats and strings). Module weights are stored under
/// "<prefix>.<state dict name>", so a PyTorch module with the same structure loads them with a key copy.
#include <map>
#include <string>

#include <torch/torch.h>

namespace brainspade {

/// Writes a dict (string keys) with torch::pickle_save, atomically. Python opens the file with torch.load.
void write_pickle_dict(const std::string& path, const c10::impl::GenericDict& dict);
/// Reads such a file into name → value; InputError naming the path and `what` (e.g. "checkpoint") when the file is
/// missing, empty, truncated, another format or not a dict with string keys.
std::map<std::string, c10::IValue> read_pickle_dict(const std::string& path, const std::string& what);

class Checkpoint {
 public:
  Checkpoint() = default;

  void set(const std::string& key, const torch::Tensor& t);
  void set_int(const std::string& key, int64_t v);
  void set_double(const std::string& key, double v);
  void set_string(const std::string& key, const std::string& v);
  /// A list of names (channels, modalities), stored as one comma-joined string.
  void set_strings(const std::string& key, const std::vector<std::string>& v);

  bool has(const std::string& key) const;
  /// InputError naming the key and the file when absent.
  torch::Tensor tensor(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;

  /// Stores every parameter and buffer of `module` under "<prefix>.<name>".
  void add_module(const std::string& prefix, const torch::nn::Module& module);
  /// Copies "<prefix>.<name>" into every parameter and buffer of `module`; a missing key or a shape
  /// mismatch is an InputError naming the key, both shapes and `what` (e.g. "VAE checkpoint runs/vae/last.ckpt").
  void load_module(const std::string& prefix, torch::nn::Module& module, const std::string& what) const;

  /// Optimizer state (any torch::optim optimizer) as the bytes of LibTorch's own archive in a uint8 tensor
  /// under `key`; Python sees an opaque byte tensor, C++ restores moments, step counts and learning rates.
  void add_optimizer(const std::string& key, torch::optim::Optimizer& opt);
  void load_optimizer(const std::string& key, torch::optim::Optimizer& opt) const;

  /// Atomic save; parent folders are created.
  void save(const std::string& path) const;
  /// InputError for a missing, empty, truncated or non-checkpoint file.
  static Checkpoint load(const std::string& path);

  /// Where this checkpoint was read from ("" if built in memory); used in error messages.
  const std::string& source() const { return source_; }
  std::vector<std::string> keys() const;

 private:
  std::map<std::string, c10::IValue> values_;
  std::string source_;
};

/// Verifies `ckpt` holds the stage `stage` (e.g. "vae"), else InputError naming both.
void check_checkpoint_stage(const Checkpoint& ckpt, const std::string& stage);

}  // namespace brainspade
