#pragma once
// A synthetic "brain" slice dataset for pipeline tests: nested ellipses of CSF, GM and WM with deep-GM blobs,
// smooth partial-volume edges, two modalities with different tissue contrast (T1-like and PD-like).
#include <string>

#include "brainspade/data/slice_dataset.h"

namespace brainspade::testutil {

struct PhantomOptions {
  int64_t subjects = 2;
  int64_t slices = 6;        ///< per subject and modality
  int64_t height = 32, width = 48;
  bool two_modalities = true;  ///< T1-like and PD-like volumes for every subject
  uint64_t seed = 0;
};
SliceDataset make_phantom_dataset(const PhantomOptions& o = {});
/// Saves the phantom to <dir>/dataset.pt and returns the path.
std::string write_phantom_dataset(const std::string& dir, const PhantomOptions& o = {});

}  // namespace brainspade::testutil
