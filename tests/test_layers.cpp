// The library's layering, read from the source tree (docs/architecture.md): who may include whom.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fs = std::filesystem;

namespace {

// Every `#include "brainspade/<layer>/..."` of the files under the given folders, as "file: include".
std::vector<std::string> includes_of(const std::vector<std::string>& folders, const std::regex& include) {
  std::vector<std::string> out;
  for (const auto& folder : folders) {
    const fs::path dir = fs::path(BRAINSPADE_SOURCE_DIR) / folder;
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);)
        if (std::regex_search(line, include)) out.push_back(fs::relative(e.path(), BRAINSPADE_SOURCE_DIR).string() + ": " + line);
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n  " + x;
  return s;
}

}  // namespace

TEST(Layers, SamplingAndInferenceNeverIncludeTraining) {
  const auto bad = includes_of({"src/sampling", "include/brainspade/sampling", "src/inference", "include/brainspade/inference"},
                               std::regex(R"(#include\s+"brainspade/training/)"));
  EXPECT_TRUE(bad.empty()) << "sampling/ and inference/ must not depend on training/:" << join(bad);
}

TEST(Layers, OnlyIoIncludesItk) {
  auto bad = includes_of({"src", "include", "apps"}, std::regex(R"(#include\s+[<"]itk)"));
  bad.erase(std::remove_if(bad.begin(), bad.end(), [](const std::string& s) { return s.rfind("src/io/", 0) == 0; }),
            bad.end());
  EXPECT_TRUE(bad.empty()) << "ITK is io/'s alone:" << join(bad);
}

TEST(Layers, TheProductionLibraryHoldsNoFuzzOrTestCode) {
  EXPECT_FALSE(fs::exists(fs::path(BRAINSPADE_SOURCE_DIR) / "src/fuzz"));
  const auto bad = includes_of({"src", "include", "apps"}, std::regex(R"(#include\s+"(fuzz|support)/)"));
  EXPECT_TRUE(bad.empty()) << join(bad);
}
