#pragma once
/// Modality and dataset discriminator D_mod-dat (paper section 2.2, eq. 1; authors' modality_classifier/modisc.py
/// and image_generator/.../modisc_v2.py). Pre-trained on real slices with BCE-with-logits on one-hot modality and
/// dataset targets, then frozen while SPADE trains; its BCE on generated images is L_mod,dat.
///
/// Two trunks:
///   densenet121: MONAI DenseNet121(spatial_dims 2, in_channels 1, dropout 0.2): conv0 7×7 s2 → BN → ReLU →
///                maxpool 3 s2, dense blocks {6, 12, 24, 16} (growth 32, bn_size 4) with transitions halving
///                channels, norm5 → 1024 channels. Submodule names follow MONAI ("features.denseblock1.denselayer1.
///                layers.conv1.weight", "class_layers.out.weight").
///   small:       a few [conv3 → BN → ReLU → maxpool 2] blocks; quick to train on CPU.
/// Heads (both on the trunk's features): modality = class_layers (ReLU → AdaptiveAvgPool(1) → flatten → Linear),
/// dataset = dataset_layers (same structure, the authors' extra head).
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

/// Settings of the modality/dataset classifier (config section "classifier").
struct ModalityClassifierOptions {
  std::string arch = "densenet121";  ///< densenet121 | small
  int64_t in_channels = 1;
  int64_t n_modalities = 2;          ///< e.g. T1, FLAIR
  int64_t n_datasets = 1;            ///< e.g. SABRE, ADNI, ...
  double dropout = 0.2;              ///< dense-layer channel dropout (MONAI dropout_prob; Dropout2d in 2-D)
  std::vector<int64_t> small_widths{16, 32, 64};  ///< channels of the small trunk's blocks
  std::vector<int64_t> densenet_blocks{6, 12, 24, 16};  ///< layers per dense block (121: 6, 12, 24, 16)
  int64_t growth_rate = 32;
  int64_t init_features = 64;
  int64_t bn_size = 4;
  void visit(ConfigVisitor& v);
  void validate() const;
};

/// Result of classifying a batch of slices.
struct ClassifierOutput {
  torch::Tensor modality_logits;  ///< [B, n_modalities]
  torch::Tensor dataset_logits;   ///< [B, n_datasets]
  torch::Tensor features;         ///< [B, C, h, w] trunk output before the heads
};

/// One DenseNet layer: BN-ReLU-conv1×1(bn_size·growth)-BN-ReLU-conv3×3(growth)[-channel dropout (Dropout2d, as
/// MONAI's 2-D layer)], output cat([x, new]).
class DenseLayerImpl : public torch::nn::Module {
 public:
  DenseLayerImpl(int64_t in_channels, int64_t growth_rate, int64_t bn_size, double dropout);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] → [B, C + growth, H, W]
  torch::nn::Sequential layers;
};
TORCH_MODULE(DenseLayer);

/// denselayer1 ... denselayerN applied in sequence.
class DenseBlockImpl : public torch::nn::Module {
 public:
  DenseBlockImpl(int64_t num_layers, int64_t in_channels, int64_t growth_rate, int64_t bn_size, double dropout);
  torch::Tensor forward(const torch::Tensor& x);
  std::vector<DenseLayer> dense_layers;
};
TORCH_MODULE(DenseBlock);

/// BN-ReLU-conv1×1-avgpool2 between dense blocks.
class TransitionImpl : public torch::nn::Module {
 public:
  TransitionImpl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::BatchNorm2d norm{nullptr};
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Transition);

class ModalityClassifierImpl : public torch::nn::Module {
 public:
  explicit ModalityClassifierImpl(ModalityClassifierOptions options);
  /// x: [B, in_channels, H, W] → {modality_logits, dataset_logits, features}. With `levels`, the trunk's
  /// activations at each of its resolution levels are appended to it, shallow to deep (see level_names()); the last
  /// one is `features`.
  ClassifierOutput forward(const torch::Tensor& x, std::vector<torch::Tensor>* levels = nullptr);
  /// The trunk modules whose outputs are the feature levels, shallow to deep, one per resolution — the analogue of
  /// VGG's relu1_1 … relu5_1 for the perceptual loss: small: relu0 … reluN-1 then the last pool (full, ½, … and the
  /// final 1/2^N map); densenet121: relu0 (½), denseblock1 … denseblock3 (¼ … 1/16), norm5 (1/32).
  std::vector<std::string> level_names() const;
  const ModalityClassifierOptions& options() const { return options_; }
  int64_t feature_channels() const { return feature_channels_; }

  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential class_layers{nullptr};    ///< modality head
  torch::nn::Sequential dataset_layers{nullptr};  ///< dataset head

 private:
  ModalityClassifierOptions options_;
  int64_t feature_channels_ = 0;
  std::vector<bool> is_level_;  ///< per child of `features`: is its output a level (level_names(), set once)
};
TORCH_MODULE(ModalityClassifier);

}  // namespace brainspade
