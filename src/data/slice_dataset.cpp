// The slice dataset on disk: one torch::pickle_save dict that Python opens with torch.load.
#include "brainspade/data/slice_dataset.h"

#include <fstream>
#include <map>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"

namespace brainspade {

namespace {
c10::List<std::string> to_list(const std::vector<std::string>& v) {
  c10::List<std::string> l;
  for (const auto& s : v) l.push_back(s);
  return l;
}
}  // namespace

void SliceDataset::save(const std::string& path) const {
  TORCH_CHECK(labels.defined() && labels.dim() == 4, "SliceDataset::save: labels must be [N, C, H, W]");
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  auto put = [&](const char* key, const torch::Tensor& t) { dict.insert(key, t.detach().cpu().contiguous()); };
  if (images.defined()) put("images", images);
  put("labels", labels);
  put("subject", subject);
  put("slice_index", slice_index);
  put("slice_position", slice_position);
  put("modality", modality);
  put("dataset", dataset);
  put("lesion_flags", lesion_flags);
  dict.insert("channel_names", to_list(channel_names));
  dict.insert("subject_names", to_list(subject_names));
  dict.insert("modality_names", to_list(modality_names));
  dict.insert("dataset_names", to_list(dataset_names));
  dict.insert("lesion_names", to_list(lesion_names));
  put("spacing", torch::tensor(std::vector<double>(spacing.begin(), spacing.end()), torch::kDouble));
  dict.insert("orientation", orientation);
  write_pickle_dict(path, dict);
}

SliceDataset SliceDataset::load(const std::string& path) {
  const std::map<std::string, c10::IValue> m = read_pickle_dict(path, "slice dataset");
  auto tensor = [&](const char* key, int64_t dim, bool required = true) -> torch::Tensor {
    auto it = m.find(key);
    if (it == m.end() || !it->second.isTensor()) {
      if (!required) return {};
      throw input_error(path, ": missing tensor '", key, "'");
    }
    torch::Tensor t = it->second.toTensor();
    if (t.dim() != dim) throw input_error(path, ": '", key, "' has ", t.dim(), " dimensions, expected ", dim);
    return t;
  };
  auto names = [&](const char* key) {
    std::vector<std::string> out;
    auto it = m.find(key);
    if (it == m.end() || !it->second.isList()) throw input_error(path, ": missing name list '", key, "'");
    for (const auto& e : it->second.toListRef()) {
      if (!e.isString()) throw input_error(path, ": '", key, "' must be a list of strings");
      out.push_back(e.toStringRef());
    }
    return out;
  };
  SliceDataset ds;
  ds.images = tensor("images", 4, false);
  ds.labels = tensor("labels", 4);
  ds.subject = tensor("subject", 1);
  ds.slice_index = tensor("slice_index", 1);
  ds.slice_position = tensor("slice_position", 1);
  ds.modality = tensor("modality", 1);
  ds.dataset = tensor("dataset", 1);
  ds.lesion_flags = tensor("lesion_flags", 2);
  ds.channel_names = names("channel_names");
  ds.subject_names = names("subject_names");
  ds.modality_names = names("modality_names");
  ds.dataset_names = names("dataset_names");
  ds.lesion_names = names("lesion_names");
  // Geometry (absent from datasets written before it was recorded: 1 mm LPS, what `slice` produced then).
  if (auto sp = tensor("spacing", 1, false); sp.defined()) {
    if (sp.numel() != 3 || !torch::isfinite(sp).all().item<bool>() || !(sp > 0).all().item<bool>())
      throw input_error(path, ": 'spacing' must hold 3 positive numbers");
    auto d = sp.to(torch::kDouble);
    for (int i = 0; i < 3; ++i) ds.spacing[i] = d[i].item<double>();
  }
  if (auto it = m.find("orientation"); it != m.end()) {
    if (!it->second.isString()) throw input_error(path, ": 'orientation' must be a string");
    ds.orientation = it->second.toStringRef();
  }
  const int64_t N = ds.labels.size(0);
  for (const auto& [key, t] : std::vector<std::pair<const char*, torch::Tensor>>{
           {"subject", ds.subject}, {"slice_index", ds.slice_index}, {"slice_position", ds.slice_position},
           {"modality", ds.modality}, {"dataset", ds.dataset}, {"lesion_flags", ds.lesion_flags}})
    if (t.size(0) != N) throw input_error(path, ": '", key, "' has ", t.size(0), " rows but labels has ", N);
  if (ds.images.defined() &&
      (ds.images.size(0) != N || ds.images.size(1) != 1 || ds.images.size(2) != ds.labels.size(2) ||
       ds.images.size(3) != ds.labels.size(3)))
    throw input_error(path, ": images ", ds.images.sizes(), " do not match labels ", ds.labels.sizes());
  if (static_cast<int64_t>(ds.channel_names.size()) != ds.labels.size(1))
    throw input_error(path, ": ", ds.channel_names.size(), " channel names for ", ds.labels.size(1), " label channels");
  if (ds.lesion_flags.size(1) != static_cast<int64_t>(ds.lesion_names.size()))
    throw input_error(path, ": lesion_flags has ", ds.lesion_flags.size(1), " columns for ", ds.lesion_names.size(),
                      " lesion names");
  // Values: a NaN or an out-of-range PV map would otherwise surface steps later as a non-finite loss. The tolerance
  // is looser than slicing's default (data.label_tolerance 1e-3) so that datasets sliced with a larger one still load.
  if (!torch::isfinite(ds.labels).all().item<bool>())
    throw input_error(path, ": 'labels' contains NaN or infinite values");
  if (N > 0) {
    const double lo = ds.labels.min().item<double>(), hi = ds.labels.max().item<double>();
    const double sum_dev = (ds.labels.sum(1) - 1).abs().max().item<double>();
    if (lo < -1e-2 || hi > 1 + 1e-2 || sum_dev > 1e-2)
      throw input_error(path, ": 'labels' are not partial-volume maps: values span [", lo, ", ", hi,
                        "], channel sums deviate from 1 by up to ", sum_dev);
  }
  if (ds.images.defined() && !torch::isfinite(ds.images).all().item<bool>())
    throw input_error(path, ": 'images' contains NaN or infinite values");
  auto check_index = [&](const char* key, const torch::Tensor& t, size_t n) {
    if (N > 0 && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= static_cast<int64_t>(n)))
      throw input_error(path, ": '", key, "' indexes outside its ", n, " names");
  };
  check_index("subject", ds.subject, ds.subject_names.size());
  check_index("modality", ds.modality, ds.modality_names.size());
  check_index("dataset", ds.dataset, ds.dataset_names.size());
  return ds;
}

SliceDataset SliceDataset::select(const torch::Tensor& rows) const {
  SliceDataset out;
  auto r = rows.to(torch::kInt64);
  if (images.defined()) out.images = images.index_select(0, r);
  out.labels = labels.index_select(0, r);
  out.subject = subject.index_select(0, r);
  out.slice_index = slice_index.index_select(0, r);
  out.slice_position = slice_position.index_select(0, r);
  out.modality = modality.index_select(0, r);
  out.dataset = dataset.index_select(0, r);
  out.lesion_flags = lesion_flags.index_select(0, r);
  out.channel_names = channel_names;
  out.subject_names = subject_names;
  out.modality_names = modality_names;
  out.dataset_names = dataset_names;
  out.lesion_names = lesion_names;
  out.spacing = spacing;
  out.orientation = orientation;
  return out;
}

void SliceDataset::build_volume_index() const {
  const int64_t N = size();
  volume_rows_.clear();
  volume_of_row_.assign(N, -1);
  position_in_volume_.assign(N, -1);
  std::map<std::pair<int64_t, int64_t>, int64_t> ids;
  auto s = subject.to(torch::kInt64).contiguous();
  auto m = modality.to(torch::kInt64).contiguous();
  const int64_t* sp = s.data_ptr<int64_t>();
  const int64_t* mp = m.data_ptr<int64_t>();
  for (int64_t row = 0; row < N; ++row) {
    auto key = std::make_pair(sp[row], mp[row]);
    auto it = ids.find(key);
    if (it == ids.end()) {
      it = ids.emplace(key, static_cast<int64_t>(volume_rows_.size())).first;
      volume_rows_.emplace_back();
    }
    volume_of_row_[row] = it->second;
    position_in_volume_[row] = static_cast<int64_t>(volume_rows_[it->second].size());
    volume_rows_[it->second].push_back(row);
  }
}

int64_t SliceDataset::other_slice_same_volume(int64_t row, std::mt19937_64& rng) const {
  TORCH_CHECK(row >= 0 && row < size(), "other_slice_same_volume: row ", row, " outside [0, ", size(), ")");
  if (static_cast<int64_t>(volume_of_row_.size()) != size()) build_volume_index();
  const auto& rows = volume_rows_[volume_of_row_[row]];
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n < 2) return -1;
  // Draw among the n - 1 other positions, skipping the row's own.
  std::uniform_int_distribution<int64_t> pick(0, n - 2);
  int64_t k = pick(rng);
  if (k >= position_in_volume_[row]) ++k;
  return rows[k];
}

}  // namespace brainspade
