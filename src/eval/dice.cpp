#include "brainspade/eval/dice.h"

#include <cmath>

namespace brainspade {

double dice_from_counts(double tp, double fp, double fn, EmptyDice empty) {
  const double denom = 2 * tp + fp + fn;
  if (denom == 0) return empty == EmptyDice::One ? 1.0 : NAN;
  return 2 * tp / denom;
}

double dice_of_class(const torch::Tensor& pred, const torch::Tensor& ref, int64_t k, EmptyDice empty) {
  TORCH_CHECK(pred.sizes() == ref.sizes(), "dice: shapes differ ", pred.sizes(), " vs ", ref.sizes());
  auto p = pred == k, r = ref == k;
  const double tp = (p & r).sum().item<double>();
  return dice_from_counts(tp, p.sum().item<double>() - tp, r.sum().item<double>() - tp, empty);
}

std::vector<double> dice_per_class(const torch::Tensor& pred, const torch::Tensor& ref, int64_t num_classes,
                                   EmptyDice empty) {
  std::vector<double> out;
  for (int64_t c = 0; c < num_classes; ++c) out.push_back(dice_of_class(pred, ref, c, empty));
  return out;
}

}  // namespace brainspade
