#pragma once
/// Perceptual loss in the LPIPS form (Zhang et al. 2018 §3): frozen ImageNet features, each layer's features
/// unit-normalised along channels, squared difference, (weighted) sum over channels, spatial mean, sum over
/// layers. brainSPADE applies `lpips.LPIPS(net="squeeze")` to each label channel separately (B·C single-channel
/// images replicated to 3 channels), weight 0.002.
///
/// Weights: nothing can be downloaded here, so the torchvision feature extractor is read from a file written
/// once by scripts/export_perceptual_weights.py (a torch.save dict of tensors named like torchvision's state
/// dict, "features.N.weight"). If the file also holds LPIPS linear heads ("lin{k}.model.1.weight", from the
/// lpips package's weights/v0.1/squeeze.pth), they weight the channels; otherwise every channel has weight 1
/// (LPIPS's "baseline" variant, lpips=False) — the numbers then differ from LPIPS proper.
/// A file written with --random holds a "__random_init__" entry; loading it logs a warning (tests only).
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/core/config.h"

namespace brainspade {

/// A frozen image feature extractor: [N, 3, H, W] → list of feature maps [N, C_k, H_k, W_k].
class FeatureNetwork : public torch::nn::Module {
 public:
  virtual std::vector<torch::Tensor> features(const torch::Tensor& x) = 0;
  /// Copies "features.*" tensors from `weights` (InputError naming `source` on a missing key or bad shape).
  void load_weights(const std::map<std::string, torch::Tensor>& weights, const std::string& source);
};

/// torchvision SqueezeNet 1.1 `features` (Iandola et al. 2016), taps after relu1, fire4, fire7, fire9,
/// fire10, fire11, fire12 (the 7 LPIPS squeeze slices).
class SqueezeNetFeatures : public FeatureNetwork {
 public:
  SqueezeNetFeatures();
  std::vector<torch::Tensor> features(const torch::Tensor& x) override;
  torch::nn::Sequential seq{nullptr};
};

/// torchvision VGG16 `features` (Simonyan & Zisserman 2015), taps after relu1_2, relu2_2, relu3_3, relu4_3,
/// relu5_3 (the 5 LPIPS vgg slices).
class VGG16Features : public FeatureNetwork {
 public:
  VGG16Features();
  std::vector<torch::Tensor> features(const torch::Tensor& x) override;
  torch::nn::Sequential seq{nullptr};
};

/// torchvision VGG19 `features`, taps after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: the layers of the
/// pix2pixHD / SPADE VGG loss that the authors' image generator trains with (`lambda_vgg` 10).
class VGG19Features : public FeatureNetwork {
 public:
  VGG19Features();
  std::vector<torch::Tensor> features(const torch::Tensor& x) override;
  torch::nn::Sequential seq{nullptr};
};

/// The SPADE VGG loss (pix2pixHD/SPADE `VGGLoss`, as the authors use it): grey images [B, 1, H, W] replicated to 3
/// channels, no ImageNet normalisation, Σ_i weights[i] · mean|f_i(x) − f_i(y)| over VGG19's five taps, y's features
/// a target (no gradient). weights: 5 entries (their 1/32, 1/16, 1/8, 1/4, 1 when empty).
torch::Tensor vgg_l1_distance(VGG19Features& net, const torch::Tensor& x, const torch::Tensor& y,
                              const std::vector<double>& weights = {});

/// Reads a dict of tensors written by Python's torch.save; InputError naming the path when missing or unreadable.
std::map<std::string, torch::Tensor> load_tensor_dict(const std::string& path);

struct PerceptualLossOptions {
  std::string network = "squeeze";  ///< squeeze | vgg16 | none
  std::string weights;              ///< file from scripts/export_perceptual_weights.py (required unless none)
  bool per_channel = true;          ///< score each input channel as its own grey image (the authors' usage)
  void visit(ConfigVisitor& v);
};

class PerceptualLossImpl : public torch::nn::Module {
 public:
  /// Loads the weights file now: a configured file that is missing is an InputError naming the path.
  explicit PerceptualLossImpl(const PerceptualLossOptions& options = {});
  /// x, y: [B, C, H, W] (per_channel) or [B, 3, H, W] → scalar mean distance; 0 for network "none".
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& y);
  bool enabled() const { return net_ != nullptr; }
  bool random_weights() const { return random_init_; }

  PerceptualLossOptions options;

 private:
  std::shared_ptr<FeatureNetwork> net_;
  std::vector<torch::Tensor> lin_;  // [1, C_k, 1, 1] per layer, or empty for uniform weights
  torch::Tensor shift_, scale_;     // LPIPS ScalingLayer, [1, 3, 1, 1]
  bool random_init_ = false;
};
TORCH_MODULE(PerceptualLoss);

}  // namespace brainspade
