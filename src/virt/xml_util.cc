#include "virt/xml_util.h"

#include <cctype>
#include <charconv>

namespace gridd::virt {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the well-formed UTF-8 sequence starting at text[i] that encodes a character XML
// allows, or 0 when there is none.
size_t ValidXmlCharLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) {
    return (lead >= 0x20 || lead == '\t' || lead == '\n' || lead == '\r') ? 1 : 0;
  }
  size_t length = 0;
  uint32_t code = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code = lead & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates, and the two non-characters XML excludes.
  if (length == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF) || code >= 0xFFFE)) {
    return 0;
  }
  if (length == 4 && (code < 0x10000 || code > 0x10FFFF)) return 0;
  return length;
}

void AppendUtf8(std::string& out, uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Parses the attributes of the tag whose name ends at `pos`, up to its closing '>'.
XmlAttributes ParseAttributes(std::string_view xml, size_t pos) {
  XmlAttributes attributes;
  while (pos < xml.size()) {
    while (pos < xml.size() && IsSpace(xml[pos])) ++pos;
    if (pos >= xml.size() || xml[pos] == '>' || xml[pos] == '/' || xml[pos] == '?') break;
    const size_t name_start = pos;
    while (pos < xml.size() && xml[pos] != '=' && !IsSpace(xml[pos]) && xml[pos] != '>') ++pos;
    std::string name(xml.substr(name_start, pos - name_start));
    while (pos < xml.size() && IsSpace(xml[pos])) ++pos;
    if (pos >= xml.size() || xml[pos] != '=') break;
    ++pos;
    while (pos < xml.size() && IsSpace(xml[pos])) ++pos;
    if (pos >= xml.size() || (xml[pos] != '\'' && xml[pos] != '"')) break;
    const char quote = xml[pos++];
    const size_t end = xml.find(quote, pos);
    if (end == std::string_view::npos) break;
    attributes[std::move(name)] = XmlUnescape(xml.substr(pos, end - pos));
    pos = end + 1;
  }
  return attributes;
}

// Position just past "<tag" of the next start tag named exactly `tag`, or npos.
size_t FindStartTag(std::string_view xml, std::string_view tag, size_t from) {
  // Built by appending: GCC 12 warns falsely (-Wrestrict) about "<" + std::string.
  std::string open(1, '<');
  open.append(tag);
  for (size_t pos = xml.find(open, from); pos != std::string_view::npos;
       pos = xml.find(open, pos + 1)) {
    const size_t after = pos + open.size();
    if (after < xml.size() && (IsSpace(xml[after]) || xml[after] == '>' || xml[after] == '/')) {
      return after;
    }
  }
  return std::string_view::npos;
}

// Position of the '>' ending the tag that starts before `pos`, skipping quoted values.
size_t TagEnd(std::string_view xml, size_t pos) {
  char quote = 0;
  for (; pos < xml.size(); ++pos) {
    const char c = xml[pos];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '>') {
      return pos;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = ValidXmlCharLength(text, i);
    if (length == 0) {
      out += kReplacementChar;
      ++i;
      continue;
    }
    if (length == 1) {
      switch (text[i]) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        // Attribute value normalisation would turn raw whitespace controls into spaces.
        case '\t':
          out += "&#9;";
          break;
        case '\n':
          out += "&#10;";
          break;
        case '\r':
          out += "&#13;";
          break;
        default:
          out += text[i];
          break;
      }
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  return out;
}

std::string XmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    const size_t semicolon = text.find(';', i);
    if (semicolon == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    const std::string_view entity = text.substr(i + 1, semicolon - i - 1);
    if (entity == "amp") {
      out += '&';
    } else if (entity == "lt") {
      out += '<';
    } else if (entity == "gt") {
      out += '>';
    } else if (entity == "quot") {
      out += '"';
    } else if (entity == "apos") {
      out += '\'';
    } else if (entity.size() > 1 && entity[0] == '#') {
      const bool hex = entity[1] == 'x' || entity[1] == 'X';
      const std::string_view digits = entity.substr(hex ? 2 : 1);
      uint32_t code = 0;
      auto [ptr, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), code, hex ? 16 : 10);
      if (ec == std::errc() && ptr == digits.data() + digits.size() && code <= 0x10FFFF) {
        AppendUtf8(out, code);
      } else {
        out.append(text.substr(i, semicolon - i + 1));
      }
    } else {
      out.append(text.substr(i, semicolon - i + 1));
    }
    i = semicolon + 1;
  }
  return out;
}

std::vector<XmlAttributes> FindElements(std::string_view xml, std::string_view tag) {
  std::vector<XmlAttributes> elements;
  for (size_t pos = FindStartTag(xml, tag, 0); pos != std::string_view::npos;
       pos = FindStartTag(xml, tag, pos)) {
    elements.push_back(ParseAttributes(xml, pos));
  }
  return elements;
}

XmlAttributes RootAttributes(std::string_view xml) {
  for (size_t pos = xml.find('<'); pos != std::string_view::npos; pos = xml.find('<', pos + 1)) {
    if (pos + 1 < xml.size() && (xml[pos + 1] == '?' || xml[pos + 1] == '!')) continue;
    size_t name_end = pos + 1;
    while (name_end < xml.size() && !IsSpace(xml[name_end]) && xml[name_end] != '>' &&
           xml[name_end] != '/') {
      ++name_end;
    }
    return ParseAttributes(xml, name_end);
  }
  return {};
}

std::vector<std::string_view> FindSections(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> sections;
  std::string close("</");
  close.append(tag).append(">");
  for (size_t pos = FindStartTag(xml, tag, 0); pos != std::string_view::npos;
       pos = FindStartTag(xml, tag, pos)) {
    const size_t end = TagEnd(xml, pos);
    if (end == std::string_view::npos) break;
    if (xml[end - 1] == '/') continue;  // <tag/> has no content
    const size_t closing = xml.find(close, end + 1);
    if (closing == std::string_view::npos) break;
    sections.push_back(xml.substr(end + 1, closing - end - 1));
    pos = closing + close.size();
  }
  return sections;
}

std::string NewVolumeXml(std::string_view name, uint64_t capacity, std::string_view format,
                         std::optional<uint64_t> allocation) {
  std::string xml = "<volume>\n  <name>" + XmlEscape(name) + "</name>\n  <capacity unit='bytes'>" +
                    std::to_string(capacity) + "</capacity>\n";
  if (allocation) {
    xml += "  <allocation unit='bytes'>" + std::to_string(*allocation) + "</allocation>\n";
  }
  xml += "  <target>\n    <format type='" + XmlEscape(format) + "'/>\n  </target>\n</volume>\n";
  return xml;
}

std::string DnsLabel(std::string_view name, std::string_view fallback) {
  constexpr size_t kMaxLabel = 63;
  std::string label;
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80 && std::isalnum(byte)) {
      label += static_cast<char>(std::tolower(byte));
    } else if (!label.empty() && label.back() != '-') {
      label += '-';
    }
    if (label.size() > kMaxLabel) break;
  }
  if (label.size() > kMaxLabel) label.resize(kMaxLabel);
  while (!label.empty() && label.back() == '-') label.pop_back();
  return label.empty() ? std::string(fallback) : label;
}

}  // namespace gridd::virt
