#include "support/phantom.h"

#include <cmath>

namespace brainspade::testutil {

SliceDataset make_phantom_dataset(const PhantomOptions& o) {
  torch::manual_seed(static_cast<int64_t>(o.seed));
  const int64_t H = o.height, W = o.width, M = o.two_modalities ? 2 : 1;
  const int64_t N = o.subjects * o.slices * M;
  auto ys = torch::linspace(-1, 1, H).view({H, 1}).expand({H, W});
  auto xs = torch::linspace(-1, 1, W).view({1, W}).expand({H, W});
  std::vector<torch::Tensor> labels, images;
  std::vector<int64_t> subject, slice_index, modality;
  std::vector<float> position;
  const float contrast[2][6] = {{0.0f, 0.2f, 0.55f, 0.9f, 0.6f, 0.75f},   // T1-like: WM brightest
                                {0.0f, 0.95f, 0.75f, 0.5f, 0.7f, 0.6f}};  // PD-like: CSF brightest
  for (int64_t s = 0; s < o.subjects; ++s)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < o.slices; ++k) {
        double size = 0.75 + 0.15 * std::sin(0.5 * k + s) ;  // the brain shrinks and grows across slices
        auto r = torch::sqrt((ys / (0.9 * size)).pow(2) + (xs / size).pow(2));
        auto soft = [&](double edge) { return torch::sigmoid((edge - r) * 25.0); };  // 1 inside the ellipse
        auto brain = soft(1.0), gm_in = soft(0.85), wm_in = soft(0.6);
        auto blob = torch::sigmoid((0.18 - torch::sqrt((ys - 0.1).pow(2) + (xs.abs() - 0.25).pow(2))) * 30.0) * wm_in;
        auto stem = torch::sigmoid((0.12 - torch::sqrt((ys - 0.6).pow(2) + xs.pow(2))) * 30.0) * wm_in * (k < 2 ? 1.0 : 0.0);
        auto wm = wm_in - blob - stem;
        auto pv = torch::stack({1 - brain, brain - gm_in, gm_in - wm_in, wm.clamp_min(0), blob, stem}, 0).clamp_min(0);
        pv = pv / pv.sum(0, true);
        auto img = torch::zeros({H, W});
        for (int c = 0; c < 6; ++c) img += contrast[m][c] * pv[c];
        img = img + 0.02 * torch::randn({H, W});
        auto mask = brain > 0.5;
        auto vals = img.masked_select(mask);
        img = torch::where(mask, (img - vals.mean()) / vals.std(), torch::zeros_like(img));
        labels.push_back(pv);
        images.push_back(img.unsqueeze(0));
        subject.push_back(s);
        slice_index.push_back(k + 10);
        modality.push_back(m);
        position.push_back(static_cast<float>(k + 1) / (o.slices + 1));
      }
  SliceDataset d;
  d.labels = torch::stack(labels).to(torch::kFloat);
  d.images = torch::stack(images).to(torch::kFloat);
  d.subject = torch::tensor(subject);
  d.slice_index = torch::tensor(slice_index);
  d.slice_position = torch::tensor(position);
  d.modality = torch::tensor(modality);
  d.dataset = torch::tensor(modality);  // dataset follows modality here: two "sources"
  d.lesion_flags = torch::zeros({N, 0});
  d.channel_names = {"background", "csf", "gm", "wm", "deep_gm", "brainstem"};
  for (int64_t s = 0; s < o.subjects; ++s) d.subject_names.push_back("sub-" + std::to_string(s));
  d.modality_names = M == 2 ? std::vector<std::string>{"T1", "PD"} : std::vector<std::string>{"T1"};
  d.dataset_names = M == 2 ? std::vector<std::string>{"phantomA", "phantomB"} : std::vector<std::string>{"phantomA"};
  return d;
}

std::string write_phantom_dataset(const std::string& dir, const PhantomOptions& o) {
  std::string path = dir + "/dataset.pt";
  make_phantom_dataset(o).save(path);
  return path;
}

}  // namespace brainspade::testutil
