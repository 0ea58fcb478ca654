#include "brainspade/data/holdout.h"

#include <algorithm>
#include <cstdint>

#include <spdlog/spdlog.h>

#include "brainspade/core/error.h"

namespace brainspade {

namespace {
int64_t index_of(const std::vector<std::string>& names, const std::string& name, const char* what) {
  auto it = std::find(names.begin(), names.end(), name);
  BRAINSPADE_CHECK_INPUT(it != names.end(), what, " '", name, "' is not in the dataset (it has: ",
                         fmt::format("{}", fmt::join(names, ", ")), ")");
  return it - names.begin();
}
}  // namespace

SlabSplit split_slab(const SliceDataset& ds, double lo, double hi, const std::string& subject,
                     const std::vector<std::string>& modalities) {
  BRAINSPADE_CHECK_INPUT(0.0 <= lo && lo < hi && hi <= 1.0, "slab ", lo, ":", hi,
                         ": expected 0 <= lo < hi <= 1 (relative slice positions)");
  const int64_t s = index_of(ds.subject_names, subject, "subject");
  std::vector<int64_t> keep_modality;
  for (const auto& m : modalities) keep_modality.push_back(index_of(ds.modality_names, m, "modality"));
  auto subj_t = ds.subject.to(torch::kLong).contiguous(), idx_t = ds.slice_index.to(torch::kLong).contiguous();
  auto mod_t = ds.modality.to(torch::kLong).contiguous(), pos_t = ds.slice_position.to(torch::kFloat).contiguous();
  auto subj = subj_t.accessor<int64_t, 1>(), idx = idx_t.accessor<int64_t, 1>(), mod = mod_t.accessor<int64_t, 1>();
  auto pos_a = pos_t.accessor<float, 1>();
  SlabSplit out;
  out.z_lo = INT64_MAX;
  out.z_hi = INT64_MIN;
  std::vector<int64_t> train_rows;
  for (int64_t i = 0; i < ds.size(); ++i) {
    const bool in_slab = subj[i] == s && pos_a[i] >= lo && pos_a[i] < hi;
    if (in_slab) {
      ++out.held_out;
      out.z_lo = std::min(out.z_lo, idx[i]);
      out.z_hi = std::max(out.z_hi, idx[i]);
      continue;
    }
    if (!keep_modality.empty() &&
        std::find(keep_modality.begin(), keep_modality.end(), mod[i]) == keep_modality.end())
      continue;
    train_rows.push_back(i);
  }
  BRAINSPADE_CHECK_INPUT(out.held_out > 0, "slab ", lo, ":", hi, ": no slice of subject ", subject,
                         " has its slice position in this range");
  BRAINSPADE_CHECK_INPUT(!train_rows.empty(), "slab ", lo, ":", hi, ": no training slice is left outside it");
  // A row of another modality of the same subject inside [z_lo, z_hi] (e.g. a second contrast of the same slice)
  // is test anatomy too: it leaves the training rows.
  std::vector<int64_t> rows;
  for (auto i : train_rows)
    if (!(subj[i] == s && idx[i] >= out.z_lo && idx[i] <= out.z_hi)) rows.push_back(i);
  out.held_out += static_cast<int64_t>(train_rows.size() - rows.size());
  BRAINSPADE_CHECK_INPUT(!rows.empty(), "slab ", lo, ":", hi, ": no training slice is left outside it");
  out.train = ds.select(torch::tensor(rows, torch::kLong));
  // The held-out rows: the subject's rows inside [z_lo, z_hi], of the kept modalities (the audit's baseline).
  std::vector<int64_t> held_rows;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (subj[i] == s && idx[i] >= out.z_lo && idx[i] <= out.z_hi &&
        (keep_modality.empty() || std::find(keep_modality.begin(), keep_modality.end(), mod[i]) != keep_modality.end()))
      held_rows.push_back(i);
  if (!held_rows.empty()) out.held = ds.select(torch::tensor(held_rows, torch::kLong));
  return out;
}

Volume keep_slab(const Volume& v, int64_t z_lo, int64_t z_hi) {
  BRAINSPADE_CHECK_INPUT(0 <= z_lo && z_lo <= z_hi && z_hi < v.depth(), "slab z ", z_lo, "..", z_hi,
                         " is outside the volume (depth ", v.depth(), ")");
  auto d = torch::zeros_like(v.data);  // [C, Z, Y, X]
  d.narrow(1, z_lo, z_hi - z_lo + 1).copy_(v.data.narrow(1, z_lo, z_hi - z_lo + 1));
  return v.with_data(d);
}

Volume hard_labels(const Volume& pv, const std::vector<int64_t>& label_map) {
  const int64_t C = pv.channels();
  BRAINSPADE_CHECK_INPUT(label_map.empty() || static_cast<int64_t>(label_map.size()) == C, "label map has ",
                         label_map.size(), " entries but the PV volume has ", C, " channels");
  auto am = pv.data.argmax(0, true);  // [1, Z, Y, X]
  if (!label_map.empty()) am = torch::tensor(label_map, torch::kLong).index({am});
  return pv.with_data(am.to(torch::kFloat));
}

}  // namespace brainspade
