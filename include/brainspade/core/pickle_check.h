#pragma once
/// Structural check of a pickle stream (the data.pkl entry of a torch::pickle_save / torch.save archive) before
/// LibTorch's unpickler sees it. The unpickler allocates what the stream claims before it reads: a 4-byte string
/// length of "step" made it reserve 1.9 GB for a 735-byte file (fuzz_checkpoint, 2026-12-01), and a LONG_BINPUT memo
/// index of 2^32 - 1 would reserve 2^33 memo slots. Independent of LibTorch, like the ZIP check.
///
/// Walks the opcodes of protocols 0-5 and throws an InputError naming `path`, `what`, the byte offset and the opcode
/// unless: every opcode is known, every argument lies inside the stream (length-prefixed strings and bytes included,
/// newline-terminated arguments end before the stream does), memo indices (PUT/GET and their binary forms) are below
/// the stream's length (a well-formed pickle numbers them 0, 1, 2 ... in order) and read only once written, every
/// opcode finds the values it takes on the unpickler's stack above the top mark (BUILD on an empty stack was a SEGV
/// in LibTorch's unpickler), and the stream ends with STOP leaving one value.
#include <cstddef>
#include <string>

namespace brainspade {

void check_pickle_stream(const unsigned char* data, size_t size, const std::string& path, const std::string& what);

}  // namespace brainspade
