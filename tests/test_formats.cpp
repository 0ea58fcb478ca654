// The formats brainspade writes by library code: RFC 4180 CSV (every CSV file), uint8 hard label NIfTI, and the
// command line's answer to a mistyped command.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "brainspade/core/atomic_file.h"
#include "brainspade/core/csv.h"
#include "brainspade/core/error.h"
#include "brainspade/io/image_io.h"
#include "brainspade/training/common.h"
#include "support/helpers.h"

using namespace brainspade;
namespace fs = std::filesystem;

TEST(Csv, FieldsThatNeedQuotingAreQuotedAndRoundTrip) {
  const std::vector<std::string> fields{"plain", "a,b", "say \"hi\"", "two\nlines", "", "cr\r\nlf", "x"};
  const std::string row = csv_row(fields);
  // Written by hand from RFC 4180: quotes around fields with , " CR LF; inner quotes doubled.
  EXPECT_EQ(row, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,\"cr\r\nlf\",x\n");
  const auto parsed = parse_csv(row + csv_row({"1", "2"}), "t.csv");
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0], fields);
  EXPECT_EQ(parsed[1], (std::vector<std::string>{"1", "2"}));
}

// fuzz_csv: a record of one empty field was written as an empty line, which the reader skips.
TEST(Csv, ARecordOfOneEmptyFieldRoundTrips) {
  EXPECT_EQ(csv_row({""}), "\"\"\n");
  const auto t = parse_csv_table(csv_row({""}) + csv_row({"C"}), "t.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{""}));
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"C"}));
}

TEST(Csv, ReadsCrLfEmptyLinesAndAMissingFinalLineBreak) {
  const auto r = parse_csv("a,b\r\n\r\n1,\r\n2,3", "t.csv");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1], (std::vector<std::string>{"1", ""}));
  EXPECT_EQ(r[2], (std::vector<std::string>{"2", "3"}));
}

TEST(Csv, MalformedTextIsAnInputErrorNamingTheFileAndLine) {
  auto message = [](const std::string& text) {
    try {
      parse_csv_table(text, "manifest.csv");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message("a,b\n1,\"open\n").find("line 2"), std::string::npos);
  EXPECT_NE(message("a,b\n1,\"x\"y\n").find("after a closing quote"), std::string::npos);
  const std::string counts = message("a,b,c\n1,2\n");
  EXPECT_NE(counts.find("manifest.csv"), std::string::npos) << counts;
  EXPECT_NE(counts.find("2 fields, the header has 3"), std::string::npos) << counts;
  EXPECT_NE(message("").find("empty CSV"), std::string::npos);
  EXPECT_EQ(parse_csv_table("a,b\n1,2\n", "t").column("b"), 1);
  EXPECT_EQ(parse_csv_table("a,b\n1,2\n", "t").column("c"), -1);
}

// The metrics file is written through the same writer: a later column widens the header and pads earlier rows, and
// a resume drops the rows after the resumed step.
TEST(Csv, MetricsFileWidensAndResumes) {
  testutil::TempDir dir;
  const std::string path = dir / "metrics.csv";
  {
    MetricsCsv m(path, 0);
    m.write(1, {{"loss", 0.5}});
    m.write(2, {{"loss", 0.25}, {"val_dice", 0.75}});
    m.write(3, {{"loss", 0.125}});
  }
  EXPECT_EQ(read_text(path), "step,loss,val_dice\n1,0.5,\n2,0.25,0.75\n3,0.125,\n");
  { MetricsCsv resumed(path, 2); }
  EXPECT_EQ(read_text(path), "step,loss,val_dice\n1,0.5,\n2,0.25,0.75\n");
}

TEST(LabelVolume, WrittenAsUint8NIfTIWithTheSameVoxelsAndGeometry) {
  testutil::TempDir dir;
  Volume v;
  v.data = torch::randint(0, 6, {1, 3, 5, 4}).to(torch::kFloat32);
  v.spacing = {0.5, 1.0, 2.0};
  v.origin = {1.0, -2.0, 3.0};
  const std::string path = dir / "seg.nii";
  write_label_volume(path, v);
  std::ifstream in(path, std::ios::binary);
  char header[348];
  in.read(header, sizeof header);
  int16_t datatype = 0, bitpix = 0;
  std::memcpy(&datatype, header + 70, 2);
  std::memcpy(&bitpix, header + 72, 2);
  EXPECT_EQ(datatype, 2);  // DT_UNSIGNED_CHAR
  EXPECT_EQ(bitpix, 8);
  Volume back = read_volume(path);
  EXPECT_TRUE(back.same_grid(v));
  EXPECT_TRUE(torch::equal(back.data, v.data));
  Volume bad = v;
  bad.data = v.data + 0.5;
  EXPECT_THROW(write_label_volume(dir / "bad.nii", bad), c10::Error);
  EXPECT_FALSE(fs::exists(dir / "bad.nii"));
}

TEST(Cli, AMistypedCommandIsNamedWithTheNearestOne) {
  auto r = testutil::run_cli("train vea --config x.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown command 'vea' for 'brainspade train'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean 'vae'"), std::string::npos) << r.output;
  r = testutil::run_cli("nosuch --help");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown command 'nosuch'"), std::string::npos) << r.output;
  // Option values are not commands: `sample --config FILE` reaches the config loader.
  r = testutil::run_cli("--log-level warn sample --config /nonexistent/sample.yaml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("sample.yaml"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("unknown command"), std::string::npos) << r.output;
}

TEST(Cli, HelpListsCommandsInPipelineOrder) {
  auto r = testutil::run_cli("--help");
  EXPECT_EQ(r.exit_code, 0);
  std::vector<size_t> at;
  for (const char* c : {"  label ", "  slice ", "  holdout ", "  train ", "  sample ", "  segment ", "  evaluate "}) {
    at.push_back(r.output.find(c));
    EXPECT_NE(at.back(), std::string::npos) << c << " missing from:\n" << r.output;
  }
  EXPECT_TRUE(std::is_sorted(at.begin(), at.end())) << r.output;
}
