#pragma once
/// CSV as RFC 4180 defines it: the one reader and writer of every CSV file brainspade writes or reads (manifest.csv,
/// records, metrics.csv). A field holding a comma, a double quote, CR or LF is written in double quotes with its
/// quotes doubled, so any path or name round-trips.
#include <string>
#include <vector>

namespace brainspade {

/// One field, quoted when it must be.
std::string csv_field(const std::string& value);
/// One record: the fields joined by commas, ending in "\n".
std::string csv_row(const std::vector<std::string>& fields);

/// Every record of `text` (a final line break is optional; empty lines are skipped). InputError naming `what` on
/// an unterminated quoted field or on text after a closing quote.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& what);

/// A CSV file with a header row.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  ///< each with header.size() fields
  /// Index of column `name`, or -1.
  int column(const std::string& name) const;
};
/// Parses `text` as a header and rows; every row must have the header's field count (InputError naming `what`, the
/// row and both counts otherwise). An empty text is an InputError too.
CsvTable parse_csv_table(const std::string& text, const std::string& what);
/// Reads and parses the file at `path` (InputError naming it when missing).
CsvTable read_csv_table(const std::string& path);

}  // namespace brainspade
