#include "gridd/common/csv.h"

#include <utility>

namespace gridd {

CsvDocument ParseCsv(std::string_view text) {
  CsvDocument document;
  auto problem = [&](const char* what) {
    if (document.error.empty()) document.error = what;
  };
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  bool record_open = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    record_open = true;
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      if (!field.empty()) problem("quote inside an unquoted field");
      quoted = true;
    } else if (c == ',') {
      record.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      record.push_back(std::move(field));
      field.clear();
      document.records.push_back(std::move(record));
      record.clear();
      record_open = false;
    } else {
      field += c;
    }
  }
  if (quoted) problem("unterminated quoted field");
  if (record_open) {
    record.push_back(std::move(field));
    document.records.push_back(std::move(record));
    problem("last record does not end with a line break");
  }
  return document;
}

std::vector<std::string> SplitCsvRecord(std::string_view record) {
  CsvDocument document = ParseCsv(record);
  if (document.records.empty()) return {""};
  return std::move(document.records.front());
}

}  // namespace gridd
