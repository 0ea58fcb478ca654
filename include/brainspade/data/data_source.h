#pragma once
/// The `data:` section of a training config: which slice dataset a stage trains on, loaded at the stage's size.
#include <cstdint>
#include <string>

#include "brainspade/core/config.h"
#include "brainspade/data/slice_dataset.h"

namespace brainspade {

/// Which slice dataset a stage trains on.
struct DataSource {
  std::string dataset = "data/example/slices/dataset.pt";  ///< written by `brainspade slice`
  int64_t downsample = 1;  ///< average-pool slices by this factor at load time (tiny CPU configs use 2: 96x128)
  void visit(ConfigVisitor& v);
};
/// Loads the dataset named by `source` and applies its downsampling (labels stay partial-volume maps).
SliceDataset load_training_data(const DataSource& source);
/// As load_training_data, for the image stages: InputError naming the file when the dataset holds no images.
SliceDataset load_image_training_data(const DataSource& source);

}  // namespace brainspade
