#include "brainspade/core/csv.h"

#include <fstream>
#include <iterator>

#include "brainspade/core/error.h"

namespace brainspade {

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_row(const std::vector<std::string>& fields) {
  // A record of one empty field would be an empty line, which readers skip: it is written as "" (found by fuzz_csv).
  if (fields.size() == 1 && fields[0].empty()) return "\"\"\n";
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + csv_field(fields[i]);
  return out + "\n";
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& what) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  size_t line = 1;
  size_t i = 0;
  bool record_has_content = false;  // an empty line is no record
  auto end_record = [&] {
    if (record_has_content || !field.empty() || !record.empty()) {
      record.push_back(field);
      records.push_back(record);
    }
    record.clear();
    field.clear();
    record_has_content = false;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && field.empty()) {
      // A quoted field: up to the closing quote; "" is a quote.
      const size_t start_line = line;
      ++i;
      for (;;) {
        if (i >= text.size())
          throw input_error(what, ": line ", start_line, ": a quoted field is not closed (unterminated \")");
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (text[i] == '\n') ++line;
        field += text[i++];
      }
      record_has_content = true;
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
        throw input_error(what, ": line ", line, ": text after a closing quote (a quote inside a field must be doubled)");
      continue;
    }
    if (c == ',') {
      record.push_back(field);
      field.clear();
      record_has_content = true;
      ++i;
    } else if (c == '\r' || c == '\n') {
      end_record();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++i;
      ++line;
    } else {
      field += c;
      ++i;
    }
  }
  end_record();
  return records;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

CsvTable parse_csv_table(const std::string& text, const std::string& what) {
  auto records = parse_csv(text, what);
  if (records.empty()) throw input_error(what, ": empty CSV (no header row)");
  CsvTable t;
  t.header = std::move(records[0]);
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != t.header.size())
      throw input_error(what, ": record ", r, " has ", records[r].size(), " fields, the header has ", t.header.size());
    t.rows.push_back(std::move(records[r]));
  }
  return t;
}

CsvTable read_csv_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, ": cannot open CSV file");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_csv_table(text, path);
}

}  // namespace brainspade
