#pragma once
/// The one Dice coefficient of brainspade: 2|P ∩ R| / (|P| + |R|) of one class in two hard label maps. What a class
/// absent from both maps scores is the caller's choice, and each caller keeps the rule its figures were reported with:
/// - EmptyDice::One: agreeing on absence is perfect agreement (evaluate, label-agreement: per-volume tables, as
///   nnU-Net's evaluation reports an empty class);
/// - EmptyDice::NaN: undefined, left out of means (validation during training, where a batch may lack a class).
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace brainspade {

enum class EmptyDice { One, NaN };

/// Dice from the counts of true positives, false positives and false negatives.
double dice_from_counts(double tp, double fp, double fn, EmptyDice empty);
/// Dice of class `k` between `pred` and `ref`, integer label tensors of one shape (TORCH_CHECK otherwise).
double dice_of_class(const torch::Tensor& pred, const torch::Tensor& ref, int64_t k, EmptyDice empty);
/// Dice of classes 0 .. num_classes-1, pooled over every element of `pred` and `ref`.
std::vector<double> dice_per_class(const torch::Tensor& pred, const torch::Tensor& ref, int64_t num_classes,
                                   EmptyDice empty);

}  // namespace brainspade
