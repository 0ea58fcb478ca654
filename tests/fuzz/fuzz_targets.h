#pragma once
/// Fuzz targets for the readers that take untrusted bytes. Each turns any input into either a valid result or
/// brainspade::InputError (caught and counted as a clean refusal) and returns 0; anything else — another exception,
/// a crash, a hang or a huge allocation — is a bug. The same functions run under libFuzzer (tests/fuzz/fuzz_main.cpp,
/// scripts/fuzz.sh) and under GoogleTest, which replays the committed corpora (tests/test_fuzz_regressions.cpp).
#include <cstddef>
#include <cstdint>

namespace brainspade {

/// YAML text → every training config root (vae, ldm, classifier, spade, segmenter) through load_config_text; a config
/// that loads must dump to YAML that loads again to the same dump (aborts otherwise).
int fuzz_config(const uint8_t* data, size_t size);
/// Bytes → a temporary .nii (or .nii.gz when the bytes start with the gzip magic) → read_volume.
int fuzz_nifti(const uint8_t* data, size_t size);
/// Bytes → a temporary .png → read_png.
int fuzz_png(const uint8_t* data, size_t size);
/// Bytes → a temporary .ckpt → Checkpoint::load (the ZIP container check, then LibTorch's unpickler).
int fuzz_checkpoint(const uint8_t* data, size_t size);
/// Bytes → parse_csv_table, the reader of manifest.csv and metrics.csv; a table that parses must write back (csv_row)
/// to text that parses to the same table (aborts otherwise).
int fuzz_csv(const uint8_t* data, size_t size);

}  // namespace brainspade
