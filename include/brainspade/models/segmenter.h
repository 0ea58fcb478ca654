#pragma once
/// The segmentation network of the paper's experiments (section 2.3, A.2): a 2D U-Net with nnU-Net's 2D defaults
/// (Isensee et al. 2021; nnU-Net v2 `PlainConvUNet`): per stage two conv3x3 → InstanceNorm(affine) → LeakyReLU(0.01),
/// the first conv of every stage but the first downsamples with stride 2, transposed-conv (k2, s2) upsampling,
/// skip concatenation, and a 1x1 segmentation head at every decoder resolution (deep supervision).
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

struct SegmenterOptions {
  int64_t in_channels = 1;                            ///< image channels (1: one modality)
  int64_t num_classes = 4;                            ///< output classes incl. background (class 0)
  std::vector<int64_t> features{32, 64, 128, 256, 512};  ///< channels per stage; the number of stages = its length
  bool deep_supervision = true;                       ///< forward() returns one logit map per decoder resolution
  double negative_slope = 0.01;                       ///< LeakyReLU slope (nnU-Net: 1e-2)
  void visit(ConfigVisitor& v);
  /// Input height and width must be divisible by this (2^(stages − 1)).
  int64_t size_divisor() const { return int64_t(1) << (features.size() - 1); }
};

/// conv_0 → norm_0 → act → conv_1 → norm_1 → act; conv_0 has `stride`.
class StackedConvsImpl : public torch::nn::Module {
 public:
  StackedConvsImpl(int64_t in, int64_t out, int64_t stride, double slope);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_0{nullptr}, conv_1{nullptr};
  torch::nn::InstanceNorm2d norm_0{nullptr}, norm_1{nullptr};
  double slope_;
};
TORCH_MODULE(StackedConvs);

class SegmenterImpl : public torch::nn::Module {
 public:
  explicit SegmenterImpl(const SegmenterOptions& options);
  /// x: [B, in_channels, H, W] with H, W divisible by size_divisor().
  /// Returns logits, full resolution first: [B, K, H, W], [B, K, H/2, W/2], ... (stages − 1 maps with deep
  /// supervision in training mode, only the first in eval mode or without deep supervision).
  std::vector<torch::Tensor> forward(const torch::Tensor& x);
  /// Full-resolution logits [B, K, H, W] (eval-time convenience).
  torch::Tensor predict_logits(const torch::Tensor& x);
  const SegmenterOptions& options() const { return options_; }

 private:
  SegmenterOptions options_;
  torch::nn::ModuleList encoder{nullptr}, upsample{nullptr}, decoder{nullptr}, seg_heads{nullptr};
};
TORCH_MODULE(Segmenter);

}  // namespace brainspade
