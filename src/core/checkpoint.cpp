#include "brainspade/core/checkpoint.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/error.h"
#include "brainspade/core/pickle_check.h"
#include "brainspade/core/zip_check.h"

namespace brainspade {

namespace {
std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}
}  // namespace

void Checkpoint::set(const std::string& key, const torch::Tensor& t) {
  values_[key] = t.detach().to(torch::kCPU).contiguous().clone();
}
void Checkpoint::set_int(const std::string& key, int64_t v) { values_[key] = v; }
void Checkpoint::set_double(const std::string& key, double v) { values_[key] = v; }
void Checkpoint::set_string(const std::string& key, const std::string& v) { values_[key] = v; }
void Checkpoint::set_strings(const std::string& key, const std::vector<std::string>& v) {
  std::string joined;
  for (const auto& x : v) {
    if (x.find(',') != std::string::npos) throw input_error("name '", x, "' for '", key, "' must not contain a comma");
    joined += (joined.empty() ? "" : ",") + x;
  }
  values_[key] = joined;
}
std::vector<std::string> Checkpoint::get_strings(const std::string& key) const {
  std::string s = get_string(key);
  std::vector<std::string> out;
  if (s.empty()) return out;
  for (size_t a = 0, b; a <= s.size(); a = b + 1) {
    b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    out.push_back(s.substr(a, b - a));
  }
  return out;
}
bool Checkpoint::has(const std::string& key) const { return values_.count(key) > 0; }

std::vector<std::string> Checkpoint::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : values_) out.push_back(kv.first);
  return out;
}

torch::Tensor Checkpoint::tensor(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end() || !it->second.isTensor())
    throw input_error(source_.empty() ? "checkpoint" : source_, ": missing tensor '", key, "'");
  return it->second.toTensor();
}
int64_t Checkpoint::get_int(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end() || !it->second.isInt())
    throw input_error(source_.empty() ? "checkpoint" : source_, ": missing integer '", key, "'");
  return it->second.toInt();
}
double Checkpoint::get_double(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end() || !(it->second.isDouble() || it->second.isInt()))
    throw input_error(source_.empty() ? "checkpoint" : source_, ": missing number '", key, "'");
  return it->second.isDouble() ? it->second.toDouble() : static_cast<double>(it->second.toInt());
}
std::string Checkpoint::get_string(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end() || !it->second.isString())
    throw input_error(source_.empty() ? "checkpoint" : source_, ": missing string '", key, "'");
  return it->second.toStringRef();
}

void Checkpoint::add_module(const std::string& prefix, const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters(true)) set(prefix + "." + p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) set(prefix + "." + b.key(), b.value());
}

void Checkpoint::load_module(const std::string& prefix, torch::nn::Module& module, const std::string& what) const {
  torch::NoGradGuard no_grad;
  auto copy_into = [&](const std::string& name, torch::Tensor& dst) {
    std::string key = prefix + "." + name;
    auto it = values_.find(key);
    if (it == values_.end() || !it->second.isTensor())
      throw input_error(what, ": no weights for '", key, "' (checkpoint of a different model or stage?)");
    const torch::Tensor& src = it->second.toTensor();
    if (src.sizes() != dst.sizes())
      throw input_error(what, ": '", key, "' has shape ", shape_str(src.sizes()), " but the configured model expects ",
                        shape_str(dst.sizes()), " (config differs from the one the checkpoint was trained with)");
    dst.copy_(src);
  };
  for (auto& p : module.named_parameters(true)) copy_into(p.key(), p.value());
  for (auto& b : module.named_buffers(true)) copy_into(b.key(), b.value());
}

void Checkpoint::add_optimizer(const std::string& key, torch::optim::Optimizer& opt) {
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  std::ostringstream os;
  archive.save_to(os);
  std::string bytes = os.str();
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  values_[key] = t;
}

void Checkpoint::load_optimizer(const std::string& key, torch::optim::Optimizer& opt) const {
  torch::Tensor t = tensor(key).contiguous();
  std::string bytes(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()));
  std::istringstream is(bytes);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(is);
    opt.load(archive);
  } catch (const c10::Error& e) {
    throw input_error(source_, ": optimizer state '", key, "' does not match the model: ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw input_error(source_, ": optimizer state '", key, "' is not readable: ", e.what());
  }
}

void write_pickle_dict(const std::string& path, const c10::impl::GenericDict& dict) {
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_atomic(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw input_error(tmp, ": cannot open for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw input_error(tmp, ": write failed (disk full?)");
  });
}

namespace {

// The checks every LibTorch archive passes before LibTorch reads it: the ZIP structure (core/zip_check.h) and every
// pickle in it (core/pickle_check.h).
void check_torch_archive(const unsigned char* data, size_t size, const std::string& path, const std::string& what) {
  std::vector<ZipEntry> entries;
  check_zip_container(data, size, path, what, &entries);
  // LibTorch's unpickler allocates what a pickle claims before reading it: every pickle is checked first.
  bool has_data = false;
  for (const auto& e : entries) {
    const std::string leaf = e.name.substr(e.name.find_last_of('/') + 1);
    if (leaf.size() < 4 || leaf.compare(leaf.size() - 4, 4, ".pkl") != 0) continue;
    has_data = has_data || leaf == "data.pkl";
    check_pickle_stream(data + e.offset, static_cast<size_t>(e.size), path, what);
  }
  if (!has_data) throw input_error(path, ": not a readable brainspade ", what, " (the archive has no data.pkl)");
}

// LibTorch 1.13 gives an unpickled tensor the sizes, strides and offset its pickle claims without comparing them with
// the storage it read: reading such a tensor reads past the storage. Every tensor is checked here (inside lists,
// tuples and dicts too) before anything uses it.
void check_tensor_extents(const c10::IValue& v, const std::string& name, const std::string& path, const std::string& what,
                          int depth = 0) {
  if (depth > 64) throw input_error(path, ": not a readable brainspade ", what, " (values nested deeper than 64)");
  if (v.isTensor()) {
    const torch::Tensor& t = v.toTensor();
    if (!t.defined() || t.numel() == 0) return;
    if (!t.has_storage()) throw input_error(path, ": not a readable brainspade ", what, " (tensor '", name, "' has no storage)");
    int64_t last = t.storage_offset();
    bool negative = last < 0;
    for (int64_t d = 0; d < t.dim(); ++d) {
      negative = negative || t.stride(d) < 0;
      last += (t.size(d) - 1) * t.stride(d);
    }
    const uint64_t need = (static_cast<uint64_t>(last) + 1) * t.element_size();
    if (negative || need > t.storage().nbytes())
      throw input_error(path, ": not a readable brainspade ", what, " (tensor '", name, "' needs ", need,
                        " bytes, its storage holds ", t.storage().nbytes(), ")");
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict())
      check_tensor_extents(kv.value(), kv.key().isString() ? kv.key().toStringRef() : name, path, what, depth + 1);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) check_tensor_extents(e, name, path, what, depth + 1);
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) check_tensor_extents(e, name, path, what, depth + 1);
  }
}

}  // namespace

std::map<std::string, c10::IValue> read_pickle_dict(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, ": ", what, " not found or unreadable");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) throw input_error(path, ": ", what, " file is empty");
  // LibTorch's ZIP reader is not memory-safe on damaged archives; only well-formed ones with matching CRCs reach it.
  check_torch_archive(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), path, what);
  c10::IValue v;
  try {
    v = torch::pickle_load(bytes);
  } catch (const std::exception&) {
    throw input_error(path, ": not a readable brainspade ", what, " (truncated or another format)");
  }
  if (!v.isGenericDict()) throw input_error(path, ": not a brainspade ", what, " (top level is not a dict)");
  check_tensor_extents(v, "", path, what);
  std::map<std::string, c10::IValue> out;
  for (const auto& kv : v.toGenericDict()) {
    if (!kv.key().isString()) throw input_error(path, ": not a brainspade ", what, " (non-string key)");
    out[kv.key().toStringRef()] = kv.value();
  }
  return out;
}

void Checkpoint::save(const std::string& path) const {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  for (const auto& kv : values_) dict.insert(kv.first, kv.second);
  write_pickle_dict(path, dict);
}

Checkpoint Checkpoint::load(const std::string& path) {
  Checkpoint ck;
  ck.source_ = path;
  ck.values_ = read_pickle_dict(path, "checkpoint");
  return ck;
}

void check_checkpoint_stage(const Checkpoint& ckpt, const std::string& stage) {
  if (!ckpt.has("stage"))
    throw input_error(ckpt.source(), ": not a brainspade checkpoint (no 'stage' entry)");
  std::string got = ckpt.get_string("stage");
  if (got != stage)
    throw input_error(ckpt.source(), ": this is a '", got, "' checkpoint, but a '", stage, "' checkpoint is needed here");
}

}  // namespace brainspade
