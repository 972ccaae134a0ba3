#include "virt/xml_util.h"

#include <gtest/gtest.h>

namespace gridd::virt {
namespace {

TEST(XmlEscapeTest, EscapesMarkupAndBothQuotes) {
  EXPECT_EQ(XmlEscape(R"(<a href="x">Tom & 'Jerry'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;");
}

TEST(XmlEscapeTest, KeepsValidUtf8) { EXPECT_EQ(XmlEscape("Café ☕ 𝄞"), "Café ☕ 𝄞"); }

TEST(XmlEscapeTest, ReplacesBytesXmlCannotCarry) {
  EXPECT_EQ(XmlEscape(std::string("a\x01"
                                  "b",
                                  3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(XmlEscape(std::string("nul\0", 4)), "nul\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xC3"), "\xEF\xBF\xBD");                  // truncated sequence
  EXPECT_EQ(XmlEscape("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(XmlEscape("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(XmlEscape("\xEF\xBF\xBF"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFF
}

TEST(XmlEscapeTest, PreservesWhitespaceControlsAsReferences) {
  EXPECT_EQ(XmlEscape("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
}

TEST(XmlUnescapeTest, InvertsEscape) {
  const std::string text = "<\"x\" & 'y'> é\t\n";
  EXPECT_EQ(XmlUnescape(XmlEscape(text)), text);
  EXPECT_EQ(XmlUnescape("&#233;&#xE9;"), "éé");
  EXPECT_EQ(XmlUnescape("&bogus; &"), "&bogus; &");
}

TEST(FindElementsTest, ReadsAttributesInEitherQuoteStyle) {
  const std::string xml =
      "<dhcp>\n"
      "  <range start='192.0.2.200' end='192.0.2.254'/>\n"
      "  <host mac='52:54:00:00:00:07' name='web' ip='192.0.2.7'/>\n"
      "  <host mac=\"52:54:00:00:00:08\" ip=\"192.0.2.8\" name=\"a&amp;b\"></host>\n"
      "  <hostname>not a host element</hostname>\n"
      "</dhcp>";
  auto hosts = FindElements(xml, "host");
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0]["mac"], "52:54:00:00:00:07");
  EXPECT_EQ(hosts[0]["name"], "web");
  EXPECT_EQ(hosts[0]["ip"], "192.0.2.7");
  EXPECT_EQ(hosts[1]["ip"], "192.0.2.8");
  EXPECT_EQ(hosts[1]["name"], "a&b");
}

TEST(FindSectionsTest, ReturnsContentOfEachElement) {
  const std::string xml =
      "<network><dns><host ip='1.2.3.4'/></dns>"
      "<ip address='192.0.2.1'><dhcp><host mac='m1' ip='i1'/></dhcp></ip>"
      "<ip address='198.51.100.1'><dhcp/></ip></network>";
  auto sections = FindSections(xml, "dhcp");
  ASSERT_EQ(sections.size(), 1u);
  EXPECT_EQ(sections[0], "<host mac='m1' ip='i1'/>");
}

TEST(RootAttributesTest, SkipsDeclarationAndReadsFirstElement) {
  auto attributes =
      RootAttributes("<?xml version='1.0'?>\n<server server-id=\"7\" account-id='3'><x/></server>");
  EXPECT_EQ(attributes["server-id"], "7");
  EXPECT_EQ(attributes["account-id"], "3");
}

TEST(DnsLabelTest, ReducesNamesToLabels) {
  EXPECT_EQ(DnsLabel("web01", "f"), "web01");
  EXPECT_EQ(DnsLabel("My Web Server", "f"), "my-web-server");
  EXPECT_EQ(DnsLabel("  --Café <prod> & 'db'__", "f"), "caf-prod-db");
  EXPECT_EQ(DnsLabel("www.example.com", "f"), "www-example-com");
  EXPECT_EQ(DnsLabel("☕☕", "server-7"), "server-7");
  EXPECT_EQ(DnsLabel("", "server-7"), "server-7");
  const std::string label = DnsLabel(std::string(62, 'a') + " b", "f");
  EXPECT_EQ(label, std::string(62, 'a'));  // cut at 63, trailing hyphen dropped
  EXPECT_EQ(DnsLabel(std::string(100, 'x'), "f").size(), 63u);
}

// The two forms libvirt is given: an image or raw volume left to the pool's allocation, and a
// moved volume that the copy's stream fills.
TEST(NewVolumeXmlTest, WritesCapacityFormatAndOptionalAllocation) {
  EXPECT_EQ(NewVolumeXml("web01 & <db>.qcow2", 10737418240, "qcow2"),
            "<volume>\n  <name>web01 &amp; &lt;db&gt;.qcow2</name>\n"
            "  <capacity unit='bytes'>10737418240</capacity>\n"
            "  <target>\n    <format type='qcow2'/>\n  </target>\n</volume>\n");
  EXPECT_EQ(NewVolumeXml("seed.iso", 4096, "raw", 0),
            "<volume>\n  <name>seed.iso</name>\n  <capacity unit='bytes'>4096</capacity>\n"
            "  <allocation unit='bytes'>0</allocation>\n"
            "  <target>\n    <format type='raw'/>\n  </target>\n</volume>\n");
}

}  // namespace
}  // namespace gridd::virt
