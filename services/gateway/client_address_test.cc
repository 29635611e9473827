#include "services/gateway/client_address.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::gateway {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;

TrustedProxies Trust(const std::vector<std::string>& cidrs) {
  absl::StatusOr<TrustedProxies> p = TrustedProxies::Parse(cidrs);
  EXPECT_THAT(p.status(), IsOk());
  return p.ok() ? *p : TrustedProxies();
}

std::string Client(const TrustedProxies& proxies, const std::string& peer,
                   std::vector<std::string> forwarded_for) {
  return proxies.ClientAddress(peer, forwarded_for);
}

TEST(TrustedProxiesTest, NoTrustedProxiesIgnoreTheHeader) {
  const TrustedProxies none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(Client(none, "10.0.0.1", {"203.0.113.7"}), "10.0.0.1");
  EXPECT_EQ(Client(Trust({}), "10.0.0.1", {"203.0.113.7"}), "10.0.0.1");
}

TEST(TrustedProxiesTest, AnUntrustedPeerIsTheClientWhateverItSends) {
  const TrustedProxies p = Trust({"10.0.0.0/8"});
  EXPECT_EQ(Client(p, "198.51.100.9", {"203.0.113.7"}), "198.51.100.9");
  EXPECT_EQ(Client(p, "198.51.100.9", {"10.0.0.1"}), "198.51.100.9");
  EXPECT_EQ(Client(p, "2001:db8::9", {"203.0.113.7"}), "2001:db8::9");
}

TEST(TrustedProxiesTest, ATrustedPeerForwardsTheClientIPv4) {
  const TrustedProxies p = Trust({"10.0.0.0/8"});
  EXPECT_EQ(Client(p, "10.1.2.3", {"203.0.113.7"}), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.1.2.3", {"  203.0.113.7  "}), "203.0.113.7");
}

TEST(TrustedProxiesTest, ATrustedPeerForwardsTheClientIPv6) {
  const TrustedProxies p = Trust({"fd00::/8"});
  EXPECT_EQ(Client(p, "fd12:3456::1", {"2001:db8::7"}), "2001:db8::7");
  // Canonical form.
  EXPECT_EQ(Client(p, "fd12:3456::1", {"2001:DB8:0:0:0:0:0:7"}), "2001:db8::7");
}

TEST(TrustedProxiesTest, MixedFamilies) {
  const TrustedProxies p = Trust({"10.0.0.0/8", "fd00::/8"});
  EXPECT_EQ(Client(p, "10.0.0.5", {"2001:db8::7, fd00::1"}), "2001:db8::7");
  EXPECT_EQ(Client(p, "fd00::5", {"203.0.113.7, 10.9.9.9"}), "203.0.113.7");
  // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6.
  EXPECT_EQ(Client(p, "::ffff:10.0.0.5", {"203.0.113.7"}), "203.0.113.7");
  EXPECT_TRUE(p.Contains("::ffff:10.0.0.5"));
  // An IPv4-mapped entry is the IPv4 address.
  EXPECT_EQ(Client(p, "10.0.0.5", {"::ffff:203.0.113.7"}), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.0.0.5", {"203.0.113.7, ::ffff:10.1.1.1"}), "203.0.113.7");
  // IPv6 CIDRs never cover IPv4 addresses, nor the other way round.
  const TrustedProxies all_v6 = Trust({"::/0"});
  EXPECT_FALSE(all_v6.Contains("10.0.0.5"));
  EXPECT_TRUE(all_v6.Contains("2001:db8::1"));
  const TrustedProxies all_v4 = Trust({"0.0.0.0/0"});
  EXPECT_TRUE(all_v4.Contains("203.0.113.7"));
  EXPECT_FALSE(all_v4.Contains("2001:db8::1"));
}

TEST(TrustedProxiesTest, SpoofedLeftmostEntriesAreNotBelieved) {
  const TrustedProxies p = Trust({"10.0.0.0/8"});
  // The client sent "X-Forwarded-For: 192.0.2.1"; our proxy appended the
  // address it saw.
  EXPECT_EQ(Client(p, "10.1.2.3", {"192.0.2.1, 203.0.113.7"}), "203.0.113.7");
  // Even a trusted address or garbage on the left changes nothing.
  EXPECT_EQ(Client(p, "10.1.2.3", {"10.0.0.1, 203.0.113.7"}), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.1.2.3", {"<script>, 203.0.113.7"}), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.1.2.3", {std::string(5000, 'x') + ", 203.0.113.7"}), "203.0.113.7");
  // Sent as a header of its own before the proxy's.
  EXPECT_EQ(Client(p, "10.1.2.3", {"192.0.2.1", "203.0.113.7"}), "203.0.113.7");
}

TEST(TrustedProxiesTest, MultipleProxiesAreSkippedRightToLeft) {
  const TrustedProxies p = Trust({"10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48"});
  EXPECT_EQ(
      Client(p, "10.0.0.3", {"198.51.100.1, 203.0.113.7, 192.168.1.1, 2001:db8:ffff::2, 10.0.0.2"}),
      "203.0.113.7");
  // Across several headers.
  EXPECT_EQ(Client(p, "10.0.0.3", {"203.0.113.7, 192.168.1.1", "10.0.0.2"}), "203.0.113.7");
  // Every entry trusted: the request began inside; the leftmost sent it.
  EXPECT_EQ(Client(p, "10.0.0.3", {"192.168.7.7, 10.0.0.2"}), "192.168.7.7");
}

TEST(TrustedProxiesTest, AbsentEmptyOrMalformedHeadersMeanThePeer) {
  const TrustedProxies p = Trust({"10.0.0.0/8"});
  EXPECT_EQ(Client(p, "10.1.2.3", {}), "10.1.2.3");
  EXPECT_EQ(Client(p, "10.1.2.3", {""}), "10.1.2.3");
  EXPECT_EQ(Client(p, "10.1.2.3", {"   "}), "10.1.2.3");
  for (const char* bad :
       {"unknown", "garbage", "203.0.113.7:443", "[2001:db8::1]", "[2001:db8::1]:443", "1.2.3",
        "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "203.0.113.7 10.0.0.1", "fe80::1%eth0",
        "2001:db8::1::2", ",", " , ", "203.0.113.7,", "_gateway", "0x7f.0.0.1"}) {
    EXPECT_EQ(Client(p, "10.1.2.3", {bad}), "10.1.2.3") << bad;
  }
  // Garbage between the client and our proxies: nothing left of it counts.
  EXPECT_EQ(Client(p, "10.1.2.3", {"203.0.113.7, bogus, 10.0.0.2"}), "10.1.2.3");
  EXPECT_EQ(Client(p, "10.1.2.3", {"203.0.113.7,,10.0.0.2"}), "10.1.2.3");
  EXPECT_EQ(Client(p, "10.1.2.3", {std::string(100'000, '1')}), "10.1.2.3");
}

TEST(TrustedProxiesTest, ReadsABoundedNumberOfEntries) {
  const TrustedProxies p = Trust({"10.0.0.0/8"});
  std::vector<std::string> hops(TrustedProxies::kMaxForwardedEntries - 1, "10.0.0.1");
  hops.insert(hops.begin(), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.1.2.3", {absl::StrJoin(hops, ", ")}), "203.0.113.7");
  hops.insert(hops.end(), "10.0.0.1");  // One hop too many.
  EXPECT_EQ(Client(p, "10.1.2.3", {absl::StrJoin(hops, ", ")}), "10.1.2.3");
  // As separate headers too.
  std::vector<std::string> headers(1000, "10.0.0.1");
  headers.insert(headers.begin(), "203.0.113.7");
  EXPECT_EQ(Client(p, "10.1.2.3", headers), "10.1.2.3");
}

TEST(TrustedProxiesTest, PrefixLengthsAndBareAddresses) {
  const TrustedProxies p =
      Trust({"192.168.0.0/23", "10.0.0.1", "2001:db8::/33", "fd00::1", "::ffff:172.16.0.0/108"});
  EXPECT_TRUE(p.Contains("192.168.0.0"));
  EXPECT_TRUE(p.Contains("192.168.1.255"));
  EXPECT_FALSE(p.Contains("192.168.2.0"));
  EXPECT_FALSE(p.Contains("192.167.255.255"));
  EXPECT_TRUE(p.Contains("10.0.0.1"));  // bare: /32
  EXPECT_FALSE(p.Contains("10.0.0.2"));
  EXPECT_TRUE(p.Contains("2001:db8:7fff:ffff::1"));
  EXPECT_FALSE(p.Contains("2001:db8:8000::1"));
  EXPECT_TRUE(p.Contains("fd00::1"));  // bare: /128
  EXPECT_FALSE(p.Contains("fd00::2"));
  EXPECT_TRUE(p.Contains("172.16.5.5"));  // ::ffff:172.16.0.0/108 is 172.16.0.0/12
  EXPECT_TRUE(p.Contains("172.31.255.255"));
  EXPECT_FALSE(p.Contains("172.32.0.0"));
  EXPECT_FALSE(p.Contains(""));
  EXPECT_FALSE(p.Contains("not an address"));
  EXPECT_TRUE(Trust({"10.0.0.0/32"}).Contains("10.0.0.0"));
  EXPECT_TRUE(Trust({"::/128"}).Contains("::"));
}

TEST(TrustedProxiesTest, BadCidrsAreRefusedNamingTheSetting) {
  for (const char* bad :
       {"10.0.0.0/33", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8a", "10.0.0.0/ 8",
        "10.0.0.0/0008", "10.0.0.0/8/8", "example.com", "10.0.0.0/8 trailing", "10.0.0", "/8",
        "10.1.0.0/8", "fd00::1/8", "::ffff:10.0.0.0/8", "*"}) {
    EXPECT_THAT(TrustedProxies::Parse({"10.0.0.0/8", bad}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trusted_proxies")))
        << bad;
  }
  EXPECT_THAT(TrustedProxies::Parse({"10.1.0.0/8"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10.0.0.0/8")));
  EXPECT_THAT(TrustedProxies::Parse({"10.0.0.0/33"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0..32")));
  EXPECT_THAT(TrustedProxies::Parse({"fd00::/129"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0..128")));
  EXPECT_THAT(TrustedProxies::Parse({" 10.0.0.0/8 ", "fd00::/8", "0.0.0.0/0", "::/0"}).status(),
              IsOk());
}

}  // namespace
}  // namespace crm::gateway
