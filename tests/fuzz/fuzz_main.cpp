// libFuzzer entry point: one executable per target (BRAINSPADE_FUZZ_TARGET names the function in fuzz_targets.h).
// Built only with -DBRAINSPADE_FUZZ=ON under clang; scripts/fuzz.sh builds and runs them.
#include <cstddef>
#include <cstdint>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // a refused input is not news
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return brainspade::BRAINSPADE_FUZZ_TARGET(data, size);
}

#ifdef BRAINSPADE_FUZZ_CHECKPOINT
// The checkpoint target's custom mutator: the ZIP check turns away any file whose CRC-32s are wrong, so plain
// mutations almost never reach LibTorch's unpickler behind it. This mutator picks one stored entry of the archive,
// lets libFuzzer mutate its payload in place (same length, so no offset moves) and writes the payload's new CRC-32
// into the entry's local header and its central-directory record. Non-ZIP inputs get a plain mutation.
#include <zlib.h>

#include <cstring>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct Entry {
  size_t local = 0, central = 0, data = 0, size = 0;
};

// Stored (method 0) entries found through the central directory; empty when the bytes are not a readable ZIP.
std::vector<Entry> stored_entries(const uint8_t* d, size_t n) {
  std::vector<Entry> out;
  for (size_t at = 0; at + 46 <= n; ++at) {
    if (le32(d + at) != 0x02014b50) continue;  // central directory record
    Entry e;
    e.central = at;
    const uint16_t method = le16(d + at + 10);
    e.size = le32(d + at + 20);
    e.local = le32(d + at + 42);
    if (method != 0 || e.local + 30 > n || le32(d + e.local) != 0x04034b50) continue;
    e.data = e.local + 30 + le16(d + e.local + 26) + le16(d + e.local + 28);
    if (e.size == 0 || e.data + e.size > n || le32(d + e.local + 18) != e.size) continue;
    out.push_back(e);
  }
  return out;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  const auto entries = stored_entries(data, size);
  if (entries.empty() || seed % 8 == 0) return LLVMFuzzerMutate(data, size, max_size);  // sometimes the container
  const Entry& e = entries[seed % entries.size()];
  std::vector<uint8_t> payload(data + e.data, data + e.data + e.size);
  const size_t n = LLVMFuzzerMutate(payload.data(), payload.size(), payload.size());
  if (n < payload.size()) std::memset(payload.data() + n, 0, payload.size() - n);  // keep the length
  std::memcpy(data + e.data, payload.data(), payload.size());
  const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), payload.data(), static_cast<uInt>(payload.size())));
  put32(data + e.local + 14, crc);
  put32(data + e.central + 16, crc);
  return size;
}
#endif
