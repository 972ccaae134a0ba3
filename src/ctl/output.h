// How gridctl shows a command's result to a person: arrays of objects as aligned tables,
// objects as "key: value" lines. --json bypasses all of this.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace gridd::ctl {

// One value as a table cell or after "key: ".
inline std::string FormatValue(const nlohmann::ordered_json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "-";
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Display width, counting UTF-8 code points rather than bytes so non-ASCII names still align.
inline std::size_t DisplayWidth(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

inline std::string Header(std::string key) {
  for (char& c : key) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return key;
}

// Columns are the keys in the order first seen, so optional keys missing from the first row
// still get a column; a row without a key shows "-".
inline void PrintTable(const nlohmann::ordered_json& rows, std::ostream& out) {
  std::vector<std::string> columns;
  for (const auto& row : rows) {
    for (const auto& [key, value] : row.items()) {
      if (std::find(columns.begin(), columns.end(), key) == columns.end()) columns.push_back(key);
    }
  }

  std::vector<std::vector<std::string>> cells;
  cells.emplace_back();
  for (const auto& column : columns) cells.back().push_back(Header(column));
  for (const auto& row : rows) {
    cells.emplace_back();
    for (const auto& column : columns) {
      auto it = row.find(column);
      cells.back().push_back(it == row.end() ? "-" : FormatValue(*it));
    }
  }

  std::vector<std::size_t> widths(columns.size(), 0);
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(line[i]));
    }
  }
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) {
      out << line[i];
      if (i + 1 < line.size()) out << std::string(widths[i] - DisplayWidth(line[i]) + 2, ' ');
    }
    out << '\n';
  }
}

inline void PrintResult(const nlohmann::ordered_json& result, std::ostream& out) {
  if (result.is_array()) {
    if (result.empty()) {
      out << "(none)\n";
    } else if (std::all_of(result.begin(), result.end(),
                           [](const auto& row) { return row.is_object(); })) {
      PrintTable(result, out);
    } else {
      for (const auto& item : result) out << FormatValue(item) << '\n';
    }
  } else if (result.is_object()) {
    for (const auto& [key, value] : result.items()) {
      // A nested list of records (a job's history) reads better as a table of its own.
      if (value.is_array() && !value.empty() &&
          std::all_of(value.begin(), value.end(), [](const auto& row) { return row.is_object(); })) {
        out << key << ":\n";
        PrintTable(value, out);
      } else {
        out << key << ": " << FormatValue(value) << '\n';
      }
    }
  } else if (!result.is_null()) {
    out << FormatValue(result) << '\n';
  }
}

}  // namespace gridd::ctl
