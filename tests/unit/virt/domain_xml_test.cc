#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gridd/virt/hypervisor.h"
#include "support/golden.h"
#include "support/test_paths.h"
#include "virt/libvirt_handles.h"

namespace gridd::virt {
namespace {

DomainSpec BasicSpec() {
  DomainSpec spec;
  spec.server_id = 7;
  spec.account_id = 3;
  spec.name = "gridd-7";
  spec.hostname = "web01";
  spec.description = "Front-end web server";
  spec.memory_mib = 1024;
  spec.vcpus = 2;
  spec.mac = "52:54:00:00:00:07";
  spec.network = "gridd-public-1";
  spec.storage_pool = "gridd";
  spec.disk_volume = "gridd-7.qcow2";
  return spec;
}

DomainSpec HostileSpec() {
  DomainSpec spec = BasicSpec();
  spec.server_id = 9007199254740993;
  spec.account_id = 42;
  spec.name = "gridd-9007199254740993";
  spec.hostname = "<script>alert('x')</script> & \"Café\" ☕";
  spec.description = "line one\nline two\t]]> <!-- --> &amp; \x01 \xFF";
  spec.memory_mib = 4096;
  spec.vcpus = 4;
  spec.uuid = "6f1c2a0e-1d5b-4a39-9d55-0c1f2b3a4d5e";
  spec.domain_type = "kvm";
  return spec;
}

TEST(RenderDomainXmlTest, MatchesGoldenBasic) {
  gridd::testing::ExpectGolden(
      "domain-basic.xml",
      RenderDomainXml(BasicSpec(), "/var/lib/gridd/images/gridd-7.qcow2", "qcow2"));
}

TEST(RenderDomainXmlTest, MatchesGoldenHostile) {
  gridd::testing::ExpectGolden(
      "domain-hostile.xml",
      RenderDomainXml(HostileSpec(), "/srv/images/a 'quoted' & <odd>.img", "raw"));
}

TEST(RenderDomainXmlTest, NeverEmitsCustomerMarkup) {
  const std::string xml = RenderDomainXml(HostileSpec(), "/p", "qcow2");
  EXPECT_EQ(xml.find("<script>"), std::string::npos);
  EXPECT_EQ(xml.find("]]>"), std::string::npos);
  EXPECT_EQ(xml.find("<!--"), std::string::npos);
  EXPECT_NE(xml.find("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;"), std::string::npos);
}

TEST(PowerStateNameTest, NamesEveryState) {
  EXPECT_STREQ(PowerStateName(PowerState::kMissing), "missing");
  EXPECT_STREQ(PowerStateName(PowerState::kRunning), "running");
  EXPECT_STREQ(PowerStateName(PowerState::kShutOff), "shutoff");
  EXPECT_STREQ(PowerStateName(PowerState::kPaused), "paused");
  EXPECT_STREQ(PowerStateName(PowerState::kShuttingDown), "shutting-down");
  EXPECT_STREQ(PowerStateName(PowerState::kCrashed), "crashed");
  EXPECT_STREQ(PowerStateName(PowerState::kOther), "other");
}

TEST(LibvirtErrorTest, MapsCodesToKinds) {
  using K = HypervisorErrorKind;
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_NO_DOMAIN), K::kNotFound);
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_NO_STORAGE_VOL), K::kNotFound);
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_NO_NETWORK), K::kNotFound);
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_NO_STORAGE_POOL), K::kNotFound);
  for (int code :
       {VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_NO_CONNECT, VIR_ERR_INVALID_CONN,
        VIR_ERR_OPERATION_TIMEOUT, VIR_ERR_AGENT_UNRESPONSIVE, VIR_ERR_AUTH_UNAVAILABLE}) {
    EXPECT_EQ(KindForLibvirtCode(code), K::kTransient) << code;
  }
  for (int code :
       {VIR_ERR_XML_ERROR, VIR_ERR_INVALID_ARG, VIR_ERR_CONFIG_UNSUPPORTED, VIR_ERR_XML_DETAIL}) {
    EXPECT_EQ(KindForLibvirtCode(code), K::kInvalid) << code;
  }
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_INTERNAL_ERROR), K::kInternal);
  EXPECT_EQ(KindForLibvirtCode(VIR_ERR_OPERATION_FAILED), K::kInternal);
  EXPECT_TRUE(LibvirtError(VIR_ERR_RPC, "x").retryable());
  EXPECT_FALSE(LibvirtError(VIR_ERR_NO_DOMAIN, "x").retryable());
}

}  // namespace
}  // namespace gridd::virt
