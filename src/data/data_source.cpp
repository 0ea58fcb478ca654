#include "brainspade/data/data_source.h"

#include "brainspade/core/error.h"

namespace brainspade {

void DataSource::visit(ConfigVisitor& v) {
  v("dataset", dataset, "slice dataset (dataset.pt written by `brainspade slice`)");
  v("downsample", downsample, "average-pool slices by this factor at load time (1 = as sliced)", Bounds::range(1, 8));
}

SliceDataset load_training_data(const DataSource& source) {
  auto data = SliceDataset::load(source.dataset);
  if (source.downsample > 1) {
    const int64_t f = source.downsample;
    BRAINSPADE_CHECK_INPUT(data.height() % f == 0 && data.width() % f == 0, source.dataset, ": slices of ", data.height(),
                           "x", data.width(), " cannot be downsampled by ", f);
    // Area averaging keeps partial-volume maps summing to 1.
    data.labels = torch::avg_pool2d(data.labels, f);
    if (data.images.defined() && data.images.numel() > 0) data.images = torch::avg_pool2d(data.images, f);
  }
  return data;
}

SliceDataset load_image_training_data(const DataSource& source) {
  auto data = load_training_data(source);
  BRAINSPADE_CHECK_INPUT(data.images.defined() && data.images.numel() > 0, source.dataset,
                         ": this dataset has no images (a labels-only dataset cannot train an image stage)");
  return data;
}

}  // namespace brainspade
