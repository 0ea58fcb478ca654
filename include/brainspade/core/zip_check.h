#pragma once
/// Structural check of a ZIP container (the format of torch.save / torch::pickle_save files) before its bytes reach
/// LibTorch's reader, which is not memory-safe on malformed archives (docs/reliability.md: an ASan
/// heap-use-after-free in miniz on a corrupted checkpoint). Independent of LibTorch, so it is cheap to fuzz and to
/// build with sanitizers.
///
/// Accepted: one end-of-central-directory record (ZIP64 when its fields overflow), a central directory that lies
/// inside the file and holds exactly the announced entries, every entry stored (not compressed, as PyTorch writes
/// them), its local header and data inside the file before the central directory, and the CRC-32 of its data equal to
/// the recorded one. Anything else is an InputError naming `path`, `what` and the first problem found.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace brainspade {

/// One stored entry of a checked archive: its name and where its bytes lie in the file.
struct ZipEntry {
  std::string name;
  uint64_t offset = 0, size = 0;
};

/// CRC-32 (IEEE 802.3, the ZIP polynomial 0xEDB88320) of `size` bytes, continuing from `crc` (0 to start).
uint32_t crc32_ieee(const unsigned char* data, size_t size, uint32_t crc = 0);

/// Throws InputError unless `data` is a well-formed stored-entry ZIP archive (see above). Returns the entry count and,
/// when `entries` is given, fills it with every entry's name and data range.
size_t check_zip_container(const unsigned char* data, size_t size, const std::string& path, const std::string& what,
                           std::vector<ZipEntry>* entries = nullptr);

}  // namespace brainspade
