#pragma once
/// The modality/dataset classifier D_mod-dat (paper §2.3): trained on real slices, then frozen; SPADE's
/// modality/dataset loss and the sampler's rejection step read it through load_classifier.
#include <string>
#include <vector>

#include "brainspade/core/config.h"
#include "brainspade/data/augment.h"
#include "brainspade/data/data_source.h"
#include "brainspade/models/modality_classifier.h"
#include "brainspade/training/common.h"
#include "brainspade/inference/image_generator.h"

namespace brainspade {

struct ClassifierOptimOptions {
  double lr = 1e-3;
  double lr_final = 1e-4;  ///< exponential decay from lr to lr_final over the run (authors: 0.01 → 1e-4)
  bool augment = true;     ///< random affine + intensity augmentation of the inputs
  void visit(ConfigVisitor& v);
};

/// Root of `brainspade train classifier --config`.
struct ClassifierTrainConfig {
  RunOptions run;
  DataSource data;
  ModalityClassifierOptions classifier;
  ClassifierOptimOptions optim;
  RandomAffineOptions affine;
  IntensityAugmentOptions intensity_augment;
  TrainLoopOptions train;
  void visit(ConfigVisitor& v);
};

struct ClassifierValidation {
  double modality_accuracy = 0, dataset_accuracy = 0;
};
ClassifierValidation train_classifier(const ClassifierTrainConfig& cfg, bool resume);

}  // namespace brainspade
