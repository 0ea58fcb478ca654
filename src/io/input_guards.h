#pragma once
// The checks a file passes before ITK parses it (private to io/): every abort() or hang the fuzzers found in ITK's
// readers and the libraries under them (libpng, niftilib, vnl) is turned away here with an InputError naming the
// file and the field.
#include <cstdint>
#include <string>
#include <vector>

namespace brainspade {

/// A NIfTI-1 header (the first 348+ bytes): NIfTI-1 sizeof_hdr and magic, 1..7 dimensions, finite and plausible
/// voxel sizes, scaling, qform and sform (what ITK turns into geometry and runs an SVD on).
void check_nifti_header(const std::string& path, const std::vector<char>& header);

/// What reading a NIfTI or gzip file to its end found.
struct StreamCheck {
  int64_t non_finite = 0;  ///< NaN/Inf values in a NIfTI float payload (0 for other formats)
  int64_t bytes = -1;      ///< decompressed bytes of a NIfTI or .gz file; -1 when not scanned
};
/// Reads the whole (possibly gzip-compressed) file: a gzip stream must decompress to its end with a matching CRC,
/// a NIfTI header must pass check_nifti_header, and a float payload is scanned for NaN/Inf (niftilib would replace them
/// by 0). Returns the counts; InputError for a truncated or corrupt stream.
StreamCheck check_stream_and_count_non_finite(const std::string& path);

/// Everything libpng treats as a hard error (it would abort(): ITK sets no error handler): chunk framing and CRCs,
/// IHDR fields, the order of critical chunks, an IDAT stream that inflates to exactly the image's rows.
void check_png_structure(const std::string& path);

}  // namespace brainspade
