// The ZIP container and pickle checks that guard LibTorch's checkpoint reader: valid archives (ours and Python's)
// pass, and truncation, bit flips, moved offsets, compressed entries and pickles that claim more than they hold are
// InputErrors naming the problem.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/checkpoint.h"
#include "brainspade/core/error.h"
#include "brainspade/core/pickle_check.h"
#include "brainspade/core/zip_check.h"
#include "support/helpers.h"

using namespace brainspade;

namespace {

// The message of the InputError a check throws on `bytes` ("" when it passes).
template <class Check>
std::string message_of(Check check, const std::string& bytes) {
  try {
    check(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "x.ckpt", "checkpoint");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string check_message(const std::string& bytes) {
  return message_of([](auto... a) { check_zip_container(a...); }, bytes);
}

size_t entries(const std::string& bytes) {
  return check_zip_container(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "x.ckpt", "checkpoint");
}

std::string reference(const char* name) {
  return read_text(std::string(BRAINSPADE_SOURCE_DIR) + "/tests/data/zip/" + name);
}

std::string small_checkpoint(const testutil::TempDir& dir) {
  Checkpoint ck;
  ck.set("w", torch::arange(0, 300, torch::kFloat32));
  ck.set_int("step", 7);
  ck.set_string("stage", "vae");
  ck.save(dir / "good.ckpt");
  return read_text(dir / "good.ckpt");
}

}  // namespace

TEST(ZipCheck, Crc32MatchesTheStandardCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc32_ieee(reinterpret_cast<const unsigned char*>(s), 9), 0xCBF43926u);
  // Continuing a CRC over two pieces equals the CRC of the whole.
  EXPECT_EQ(crc32_ieee(reinterpret_cast<const unsigned char*>(s) + 4, 5,
                       crc32_ieee(reinterpret_cast<const unsigned char*>(s), 4)),
            0xCBF43926u);
}

TEST(ZipCheck, PythonsStoredArchivePassesAndCompressedIsRefused) {
  EXPECT_EQ(entries(reference("stored.zip")), 2u);
  EXPECT_NE(check_message(reference("deflated.zip")).find("compressed (method 8)"), std::string::npos);
}

TEST(ZipCheck, OurCheckpointsPassAndDamageIsNamed) {
  testutil::TempDir dir;
  const std::string good = small_checkpoint(dir);
  EXPECT_GE(entries(good), 2u);  // data.pkl and the tensor's storage at least
  EXPECT_EQ(Checkpoint::load(dir / "good.ckpt").get_int("step"), 7);

  // Truncation anywhere loses the end record.
  for (double f : {0.0, 0.1, 0.5, 0.9, 0.99}) {
    const std::string msg = check_message(good.substr(0, static_cast<size_t>(f * good.size())));
    EXPECT_NE(msg.find("x.ckpt: not a readable brainspade checkpoint"), std::string::npos) << f << ": " << msg;
  }
  EXPECT_NE(check_message(good.substr(0, good.size() - 1)).find("end-of-central-directory"), std::string::npos);
  // Through the loader (the files that made LibTorch's reader read freed memory under ASan before this check).
  testutil::write_file(dir / "half.ckpt", good.substr(0, good.size() / 2));
  EXPECT_THROW(Checkpoint::load(dir / "half.ckpt"), InputError);
  testutil::write_file(dir / "junk.ckpt", "this is not a pickle archive at all");
  EXPECT_THROW(Checkpoint::load(dir / "junk.ckpt"), InputError);
  // Trailing bytes after the end record.
  EXPECT_NE(check_message(good + "junk").find("end-of-central-directory"), std::string::npos);

  // A flipped bit in the tensor's bytes: the float 150.0 lies inside the stored data.
  std::string flipped = good;
  const float v = 150.0f;
  const size_t at = flipped.find(std::string(reinterpret_cast<const char*>(&v), 4));
  ASSERT_NE(at, std::string::npos);
  flipped[at + 1] = static_cast<char>(flipped[at + 1] ^ 0x10);
  EXPECT_NE(check_message(flipped).find("CRC-32"), std::string::npos) << check_message(flipped);
  testutil::write_file(dir / "flipped.ckpt", flipped);
  try {
    Checkpoint::load(dir / "flipped.ckpt");
    ADD_FAILURE() << "a corrupted checkpoint loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("flipped.ckpt"), std::string::npos) << e.what();
  }

  // The central directory offset in the end record (bytes 16..19 of the last 22) moved by one.
  std::string moved = good;
  const size_t eocd = moved.size() - 22;
  ASSERT_EQ(moved.compare(eocd, 4, "PK\x05\x06"), 0);
  moved[eocd + 16] = static_cast<char>(moved[eocd + 16] + 1);
  EXPECT_NE(check_message(moved).find("central directory"), std::string::npos) << check_message(moved);

  // A local header offset in the first central directory entry pointing past the data.
  std::string local = good;
  const size_t cd = local.find("PK\x01\x02");
  ASSERT_NE(cd, std::string::npos);
  local[cd + 45] = static_cast<char>(0x7f);
  EXPECT_NE(check_message(local).find("local header offset"), std::string::npos) << check_message(local);
}

namespace {

std::string pickle_message(const std::string& bytes) { return message_of(check_pickle_stream, bytes); }

}  // namespace

// Pickles as LibTorch writes them pass; lengths and memo indices that point past the stream are refused before
// LibTorch's unpickler allocates them (fuzz_checkpoint found a 735-byte file whose string length "step" made it
// reserve 1.9 GB).
TEST(PickleCheck, WrittenPicklesPassAndClaimsPastTheStreamAreRefused) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("stage", std::string("vae"));
  dict.insert("lr", 1e-4);
  dict.insert("steps", c10::List<int64_t>({1, 2, 3}));
  dict.insert("w", torch::arange(0, 6, torch::kFloat32));
  const std::vector<char> archive = torch::pickle_save(c10::IValue(dict));
  std::vector<ZipEntry> found;
  check_zip_container(reinterpret_cast<const unsigned char*>(archive.data()), archive.size(), "x.ckpt", "checkpoint",
                      &found);
  std::string pkl;
  for (const auto& e : found)
    if (e.name.size() >= 8 && e.name.compare(e.name.size() - 8, 8, "data.pkl") == 0) pkl = std::string(archive.data() + e.offset, e.size);
  ASSERT_FALSE(pkl.empty());
  EXPECT_EQ(pickle_message(pkl), "");

  // Hand-made streams: PROTO 2, then the opcode under test, then STOP.
  const std::string proto("\x80\x02", 2);
  EXPECT_EQ(pickle_message(proto + "X" + std::string("\x03\x00\x00\x00", 4) + "abc" + "."), "");
  const std::string bomb = pickle_message(proto + "Xstep" + "abc.");
  EXPECT_NE(bomb.find("opcode 0x58 at byte 2 claims 1885697139 bytes"), std::string::npos) << bomb;
  EXPECT_NE(bomb.find("x.ckpt: not a readable brainspade checkpoint"), std::string::npos) << bomb;
  const std::string memo = pickle_message(proto + "N" + "r" + std::string("\xff\xff\xff\xff", 4) + ".");
  EXPECT_NE(memo.find("memo slot 4294967295"), std::string::npos) << memo;
  EXPECT_NE(pickle_message(proto + "Np99999999\n.").find("memo slot past"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "\xff.").find("0xff at byte 2 is not a pickle opcode"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "N").find("no STOP"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "N.N").find("followed by 1 more bytes"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "ctorch\nFloat").find("never ends"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "\x8d" + std::string(8, '\xff') + ".").find("claims 18446744073709551615 bytes"),
            std::string::npos);

  // The stack is followed: BUILD on an empty stack (a SEGV in LibTorch's unpickler), a pop to a mark never set, a
  // memo slot read before it is written, STOP with two values, an odd SETITEMS.
  EXPECT_NE(pickle_message(proto + "b.").find("0x62 at byte 2 needs 2 values on the stack, it holds 0"), std::string::npos)
      << pickle_message(proto + "b.");
  EXPECT_NE(pickle_message(proto + "}N.").find("leaves 2 values"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "}u.").find("never set"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "}(Nu.").find("odd number"), std::string::npos);
  EXPECT_NE(pickle_message(proto + "}(N(N").find("no STOP"), std::string::npos);
  EXPECT_NE(pickle_message(proto + std::string("h\x00.", 3)).find("never written"), std::string::npos);
  EXPECT_EQ(pickle_message(proto + std::string("}q\x00(NNu0h\x00.", 11)), "");
  for (const char* crash : {"crash_pickle_build_on_empty_stack_segv", "crash_pickle_length_claims_1_9_gb"}) {
    const std::string file = std::string(BRAINSPADE_SOURCE_DIR) + "/tests/fuzz/corpus/checkpoint/" + crash;
    try {
      Checkpoint::load(file);
      ADD_FAILURE() << crash << " loaded";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(crash) + ": not a readable brainspade checkpoint (damaged pickle"),
                std::string::npos)
          << e.what();
    }
  }
}

// A well-formed archive whose tensor claims more elements than its storage holds (tests/data/zip/make_zips.py:
// 256x3 over 6 floats): LibTorch builds it without a check and reading it reads past the storage. Refused by name.
TEST(PickleCheck, TensorLargerThanItsStorageIsRefused) {
  const std::string file = std::string(BRAINSPADE_SOURCE_DIR) + "/tests/data/zip/oversized_tensor.pt";
  try {
    read_pickle_dict(file, "checkpoint");
    ADD_FAILURE() << "the oversized tensor loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("oversized_tensor.pt: not a readable brainspade checkpoint (tensor 'w' needs 3072 bytes, its storage holds 24)"),
              std::string::npos)
        << e.what();
  }
}
