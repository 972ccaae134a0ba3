// Reading RFC 4180 CSV: fields separated by commas, records ended by a line break; a field
// holding a comma, a quote or a line break is quoted, a quote inside it doubled (""). HAProxy's
// `show stat` and gridd's own format=csv answers are read with it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gridd {

struct CsvDocument {
  std::vector<std::vector<std::string>> records;
  // Empty when the text is well formed with every record ended by "\n"; otherwise the first
  // problem ("quote inside an unquoted field", "unterminated quoted field", "last record does
  // not end with a line break"). The records are read as far as possible either way.
  std::string error;
};

CsvDocument ParseCsv(std::string_view text);

// The fields of one record given without its line break ("" is one empty field).
std::vector<std::string> SplitCsvRecord(std::string_view record);

}  // namespace gridd
