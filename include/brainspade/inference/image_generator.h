#pragma once
/// The image generator as sampling uses it: SPADE's generator and style encoder, and the frozen modality/dataset
/// classifier of the rejection step, loaded from their checkpoints.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "brainspade/models/modality_classifier.h"
#include "brainspade/models/spade_encoder.h"
#include "brainspade/models/spade_generator.h"

namespace brainspade {

/// A frozen classifier with the names of its classes.
struct ModalityClassifierBundle {
  ModalityClassifier net{nullptr};
  std::vector<std::string> modality_names, dataset_names;
};
/// Loads a classifier checkpoint (stage classifier); eval mode, parameters frozen.
ModalityClassifierBundle load_classifier(const std::string& path, torch::Device device);

/// A trained image generator for synthesis.
struct ImageGenerator {
  SPADEGenerator generator{nullptr};
  ConvEncoder encoder{nullptr};
  std::vector<std::string> channel_names, modality_names;
  int64_t downsample = 1;  ///< data.downsample of the training run: style images are pooled by it
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  ///< voxel spacing of the training slices: style volumes are resampled to it
};
ImageGenerator load_image_generator(const std::string& path, torch::Device device);

}  // namespace brainspade
