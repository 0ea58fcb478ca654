#include "brainspade/models/modality_classifier.h"

#include <algorithm>

namespace brainspade {

void ModalityClassifierOptions::visit(ConfigVisitor& v) {
  v.choice("arch", arch, {"densenet121", "small"}, "trunk: MONAI-style DenseNet-121 or a small conv net");
  v("in_channels", in_channels, "image channels", Bounds::at_least(1));
  v("n_modalities", n_modalities, "modality classes (modality head outputs)", Bounds::at_least(1));
  v("n_datasets", n_datasets, "dataset classes (dataset head outputs)", Bounds::at_least(1));
  v("dropout", dropout, "dropout inside dense layers", Bounds::range(0.0, 0.99));
  v("small_widths", small_widths, "channels of the small trunk's conv-BN-ReLU-pool blocks", Bounds::at_least(1));
  v("densenet_blocks", densenet_blocks, "layers per dense block (DenseNet-121: 6 12 24 16)", Bounds::at_least(1));
  v("growth_rate", growth_rate, "DenseNet growth rate", Bounds::at_least(1));
  v("init_features", init_features, "DenseNet stem width", Bounds::at_least(1));
  v("bn_size", bn_size, "DenseNet bottleneck factor", Bounds::at_least(1));
}

void ModalityClassifierOptions::validate() const {
  BRAINSPADE_CHECK_INPUT(arch == "densenet121" || arch == "small", "classifier.arch must be densenet121 or small, got '",
                         arch, "'");
  BRAINSPADE_CHECK_INPUT(in_channels > 0 && n_modalities > 0 && n_datasets > 0,
                         "classifier: in_channels, n_modalities and n_datasets must be positive");
  BRAINSPADE_CHECK_INPUT(arch != "small" || !small_widths.empty(), "classifier.small_widths must not be empty");
  BRAINSPADE_CHECK_INPUT(arch != "densenet121" || !densenet_blocks.empty(),
                         "classifier.densenet_blocks must not be empty");
  BRAINSPADE_CHECK_INPUT(dropout >= 0.0 && dropout < 1.0, "classifier.dropout must be in [0, 1), got ", dropout);
}

DenseLayerImpl::DenseLayerImpl(int64_t in_channels, int64_t growth_rate, int64_t bn_size, double dropout) {
  const int64_t mid = bn_size * growth_rate;
  layers = torch::nn::Sequential();
  layers->push_back("norm1", torch::nn::BatchNorm2d(in_channels));
  layers->push_back("relu1", torch::nn::ReLU());
  layers->push_back("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, mid, 1).bias(false)));
  layers->push_back("norm2", torch::nn::BatchNorm2d(mid));
  layers->push_back("relu2", torch::nn::ReLU());
  layers->push_back("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(mid, growth_rate, 3).padding(1).bias(false)));
  // MONAI's 2-D dropout factory gives nn.Dropout2d: whole channels of the new features are dropped.
  if (dropout > 0) layers->push_back("dropout", torch::nn::Dropout2d(dropout));
  register_module("layers", layers);
}

torch::Tensor DenseLayerImpl::forward(const torch::Tensor& x) { return torch::cat({x, layers->forward(x)}, 1); }

DenseBlockImpl::DenseBlockImpl(int64_t num_layers, int64_t in_channels, int64_t growth_rate, int64_t bn_size,
                               double dropout) {
  for (int64_t i = 0; i < num_layers; ++i) {
    dense_layers.push_back(register_module("denselayer" + std::to_string(i + 1),
                                           DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, dropout)));
  }
}

torch::Tensor DenseBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = x;
  for (auto& layer : dense_layers) h = layer->forward(h);
  return h;
}

TransitionImpl::TransitionImpl(int64_t in_channels, int64_t out_channels) {
  norm = register_module("norm", torch::nn::BatchNorm2d(in_channels));
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).bias(false)));
}

torch::Tensor TransitionImpl::forward(const torch::Tensor& x) {
  return torch::avg_pool2d(conv->forward(torch::relu(norm->forward(x))), 2, 2);
}

namespace {
torch::nn::Sequential make_head(int64_t in, int64_t out) {
  torch::nn::Sequential head;
  head->push_back("relu", torch::nn::ReLU());
  head->push_back("pool", torch::nn::AdaptiveAvgPool2d(1));
  head->push_back("flatten", torch::nn::Flatten(torch::nn::FlattenOptions().start_dim(1)));
  head->push_back("out", torch::nn::Linear(in, out));
  return head;
}
}  // namespace

ModalityClassifierImpl::ModalityClassifierImpl(ModalityClassifierOptions options) : options_(std::move(options)) {
  options_.validate();
  features = torch::nn::Sequential();
  if (options_.arch == "densenet121") {
    // MONAI DenseNet: stem, dense blocks with transitions, final norm5 (networks/nets/densenet.py).
    int64_t ch = options_.init_features;
    features->push_back("conv0", torch::nn::Conv2d(torch::nn::Conv2dOptions(options_.in_channels, ch, 7)
                                                       .stride(2).padding(3).bias(false)));
    features->push_back("norm0", torch::nn::BatchNorm2d(ch));
    features->push_back("relu0", torch::nn::ReLU());
    features->push_back("pool0", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
    const auto& blocks = options_.densenet_blocks;
    for (size_t i = 0; i < blocks.size(); ++i) {
      features->push_back("denseblock" + std::to_string(i + 1),
                          DenseBlock(blocks[i], ch, options_.growth_rate, options_.bn_size, options_.dropout));
      ch += blocks[i] * options_.growth_rate;
      if (i + 1 == blocks.size()) {
        features->push_back("norm5", torch::nn::BatchNorm2d(ch));
      } else {
        features->push_back("transition" + std::to_string(i + 1), Transition(ch, ch / 2));
        ch /= 2;
      }
    }
    feature_channels_ = ch;  // 1024 for DenseNet-121
  } else {
    int64_t in = options_.in_channels;
    for (size_t i = 0; i < options_.small_widths.size(); ++i) {
      const int64_t out = options_.small_widths[i];
      const std::string s = std::to_string(i);
      features->push_back("conv" + s, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
      features->push_back("norm" + s, torch::nn::BatchNorm2d(out));
      features->push_back("relu" + s, torch::nn::ReLU());
      features->push_back("pool" + s, torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
      in = out;
    }
    feature_channels_ = in;
  }
  register_module("features", features);
  class_layers = register_module("class_layers", make_head(feature_channels_, options_.n_modalities));
  dataset_layers = register_module("dataset_layers", make_head(feature_channels_, options_.n_datasets));
  const auto wanted = level_names();
  for (const auto& name : features->named_children().keys())
    is_level_.push_back(std::find(wanted.begin(), wanted.end(), name) != wanted.end());
}

std::vector<std::string> ModalityClassifierImpl::level_names() const {
  std::vector<std::string> names;
  if (options_.arch == "densenet121") {
    names.push_back("relu0");
    for (size_t i = 0; i + 1 < options_.densenet_blocks.size(); ++i) names.push_back("denseblock" + std::to_string(i + 1));
    names.push_back("norm5");
  } else {
    const size_t n = options_.small_widths.size();
    for (size_t i = 0; i < n; ++i) names.push_back("relu" + std::to_string(i));
    names.push_back("pool" + std::to_string(n - 1));
  }
  return names;
}

ClassifierOutput ModalityClassifierImpl::forward(const torch::Tensor& x, std::vector<torch::Tensor>* levels) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels, "ModalityClassifier expects [B, ",
              options_.in_channels, ", H, W], got ", x.sizes());
  torch::Tensor f;  // [B, C, h, w]
  if (levels == nullptr) {
    f = features->forward(x);
  } else {
    f = x;
    size_t i = 0;
    for (auto it = features->begin(); it != features->end(); ++it, ++i) {
      f = it->forward(f);
      if (is_level_[i]) levels->push_back(f);
    }
  }
  return {class_layers->forward(f), dataset_layers->forward(f), f};
}

}  // namespace brainspade
