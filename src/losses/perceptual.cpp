#include "brainspade/losses/perceptual.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <spdlog/spdlog.h>

#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"

namespace brainspade {

namespace {
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}
torch::nn::ReLU relu() { return torch::nn::ReLU(torch::nn::ReLUOptions().inplace(false)); }

// torchvision squeezenet Fire module: squeeze 1x1 → ReLU → cat(expand1x1 → ReLU, expand3x3 → ReLU).
class FireImpl : public torch::nn::Module {
 public:
  FireImpl(int64_t in, int64_t s, int64_t e1, int64_t e3) {
    squeeze = register_module("squeeze", conv(in, s, 1));
    expand1x1 = register_module("expand1x1", conv(s, e1, 1));
    expand3x3 = register_module("expand3x3", conv(s, e3, 3, 1, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = torch::relu(squeeze(x));
    return torch::cat({torch::relu(expand1x1(h)), torch::relu(expand3x3(h))}, 1);
  }
  torch::nn::Conv2d squeeze{nullptr}, expand1x1{nullptr}, expand3x3{nullptr};
};
TORCH_MODULE(Fire);

torch::nn::MaxPool2d maxpool_ceil() { return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).ceil_mode(true)); }

std::vector<torch::Tensor> run_taps(torch::nn::Sequential& seq, torch::Tensor h, const std::vector<size_t>& taps) {
  std::vector<torch::Tensor> out;
  size_t next = 0;
  for (size_t i = 0; i < seq->size() && next < taps.size(); ++i) {
    h = seq[i]->as<torch::nn::Conv2d>()      ? seq[i]->as<torch::nn::Conv2d>()->forward(h)
        : seq[i]->as<torch::nn::ReLU>()      ? torch::relu(h)
        : seq[i]->as<torch::nn::MaxPool2d>() ? seq[i]->as<torch::nn::MaxPool2d>()->forward(h)
                                             : seq[i]->as<Fire>()->forward(h);
    if (i == taps[next]) {
      out.push_back(h);
      ++next;
    }
  }
  return out;
}
}  // namespace

void FeatureNetwork::load_weights(const std::map<std::string, torch::Tensor>& weights, const std::string& source) {
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters(true)) {
    auto it = weights.find(p.key());
    BRAINSPADE_CHECK_INPUT(it != weights.end(), "perceptual weights ", source, " lack '", p.key(),
                           "' (export them with scripts/export_perceptual_weights.py)");
    BRAINSPADE_CHECK_INPUT(it->second.sizes() == p.value().sizes(), "perceptual weights ", source, ": '", p.key(),
                           "' has shape ", it->second.sizes(), " but the network expects ", p.value().sizes());
    p.value().copy_(it->second);
  }
  for (auto& p : parameters()) p.set_requires_grad(false);
  eval();
}

SqueezeNetFeatures::SqueezeNetFeatures() {
  seq = torch::nn::Sequential(conv(3, 64, 3, 2), relu(), maxpool_ceil(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
                              maxpool_ceil(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), maxpool_ceil(),
                              Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                              Fire(512, 64, 256, 256));
  register_module("features", seq);
}

std::vector<torch::Tensor> SqueezeNetFeatures::features(const torch::Tensor& x) {
  return run_taps(seq, x, {1, 4, 7, 9, 10, 11, 12});
}

namespace {
// torchvision's VGG `features` from its layer list: a width is conv3×3 + ReLU, -1 a 2×2 max-pool (same indices, so
// the exported "features.N.weight" names fit).
torch::nn::Sequential vgg_features(const std::vector<int64_t>& cfg) {
  torch::nn::Sequential seq;
  int64_t in = 3;
  for (auto c : cfg) {
    if (c < 0) {
      seq->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
    } else {
      seq->push_back(conv(in, c, 3, 1, 1));
      seq->push_back(relu());
      in = c;
    }
  }
  return seq;
}
}  // namespace

VGG16Features::VGG16Features() {
  seq = register_module(
      "features", vgg_features({64, 64, -1, 128, 128, -1, 256, 256, 256, -1, 512, 512, 512, -1, 512, 512, 512}));
}

std::vector<torch::Tensor> VGG16Features::features(const torch::Tensor& x) { return run_taps(seq, x, {3, 8, 15, 22, 29}); }

VGG19Features::VGG19Features() {
  seq = register_module("features", vgg_features({64, 64, -1, 128, 128, -1, 256, 256, 256, 256, -1, 512, 512, 512, 512,
                                                  -1, 512, 512, 512, 512}));
}

std::vector<torch::Tensor> VGG19Features::features(const torch::Tensor& x) { return run_taps(seq, x, {1, 6, 11, 20, 29}); }

torch::Tensor vgg_l1_distance(VGG19Features& net, const torch::Tensor& x, const torch::Tensor& y,
                              const std::vector<double>& weights) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1 && x.sizes() == y.sizes(),
              "vgg_l1_distance needs two [B, 1, H, W] tensors of equal shape; got ", x.sizes(), " and ", y.sizes());
  const std::vector<double> w = weights.empty() ? std::vector<double>{1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0} : weights;
  TORCH_CHECK(w.size() == 5, "vgg_l1_distance needs 5 layer weights; got ", w.size());
  auto fx = net.features(x.expand({-1, 3, -1, -1}));
  std::vector<torch::Tensor> fy;
  {
    torch::NoGradGuard no_grad;  // the real image's features are the target
    fy = net.features(y.expand({-1, 3, -1, -1}));
  }
  torch::Tensor total = torch::zeros({}, x.options());
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i] > 0) total = total + w[i] * (fx[i] - fy[i]).abs().mean();
  return total;
}

std::map<std::string, torch::Tensor> load_tensor_dict(const std::string& path) {
  BRAINSPADE_CHECK_INPUT(std::filesystem::exists(path), "weights file ", path,
                         " does not exist (write it with scripts/export_perceptual_weights.py)");
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : read_pickle_dict(path, "perceptual weights file")) {
    if (!kv.second.isTensor())
      throw input_error("weights file ", path, ": entry '", kv.first, "' is not a tensor (write the file with "
                        "scripts/export_perceptual_weights.py)");
    out[kv.first] = kv.second.toTensor();
  }
  return out;
}

void PerceptualLossOptions::visit(ConfigVisitor& v) {
  v.choice("network", network, {"squeeze", "vgg16", "none"}, "feature network of the perceptual loss");
  v("weights", weights, "feature weights from scripts/export_perceptual_weights.py");
  v("per_channel", per_channel, "score each channel as its own grey image (brainSPADE)");
}

PerceptualLossImpl::PerceptualLossImpl(const PerceptualLossOptions& o) : options(o) {
  TORCH_CHECK(o.network == "squeeze" || o.network == "vgg16" || o.network == "none",
              "PerceptualLoss network must be squeeze, vgg16 or none; got '", o.network, "'");
  if (o.network == "none") return;
  BRAINSPADE_CHECK_INPUT(!o.weights.empty(), "the perceptual loss with network '", o.network,
                         "' needs a weights file (perceptual.weights; see scripts/export_perceptual_weights.py)");
  auto weights = load_tensor_dict(o.weights);
  if (o.network == "squeeze")
    net_ = std::make_shared<SqueezeNetFeatures>();
  else
    net_ = std::make_shared<VGG16Features>();
  register_module("net", net_);
  net_->load_weights(weights, o.weights);
  random_init_ = weights.count("__random_init__") > 0;
  if (random_init_)
    spdlog::warn("perceptual weights {} are RANDOM (written with --random for tests); the loss is not LPIPS", o.weights);
  for (int k = 0;; ++k) {
    auto it = weights.find("lin" + std::to_string(k) + ".model.1.weight");
    if (it == weights.end()) break;
    lin_.push_back(register_buffer("lin" + std::to_string(k), it->second.clone()));
  }
  shift_ = register_buffer("shift", torch::tensor({-.030, -.088, -.188}).reshape({1, 3, 1, 1}));
  scale_ = register_buffer("scale", torch::tensor({.458, .448, .450}).reshape({1, 3, 1, 1}));
}

torch::Tensor PerceptualLossImpl::forward(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(x.sizes() == y.sizes() && x.dim() == 4, "PerceptualLoss needs two [B, C, H, W] tensors of equal shape; got ",
              x.sizes(), " and ", y.sizes());
  if (!net_) return torch::zeros({}, x.options());
  auto prep = [&](const torch::Tensor& t) {
    auto h = t;
    if (options.per_channel) h = t.reshape({-1, 1, t.size(2), t.size(3)}).expand({-1, 3, -1, -1});  // [B·C, 3, H, W]
    TORCH_CHECK(h.size(1) == 3, "PerceptualLoss without per_channel needs 3-channel images; got ", t.sizes());
    return (h - shift_.to(h.dtype())) / scale_.to(h.dtype());
  };
  auto fx = net_->features(prep(x)), fy = net_->features(prep(y));
  TORCH_CHECK(lin_.empty() || lin_.size() == fx.size(), "PerceptualLoss has ", lin_.size(), " linear heads for ",
              fx.size(), " feature layers");
  torch::Tensor total;
  for (size_t k = 0; k < fx.size(); ++k) {
    auto nx = fx[k] / (fx[k].pow(2).sum(1, true).sqrt() + 1e-10);
    auto ny = fy[k] / (fy[k].pow(2).sum(1, true).sqrt() + 1e-10);
    auto d = (nx - ny).pow(2);                                                   // [N, C_k, H_k, W_k]
    auto per_pos = lin_.empty() ? d.sum(1) : (d * lin_[k].to(d.dtype())).sum(1);  // [N, H_k, W_k]
    auto per_img = per_pos.mean({1, 2});                                          // [N]
    total = total.defined() ? total + per_img : per_img;
  }
  return total.mean();
}

}  // namespace brainspade
