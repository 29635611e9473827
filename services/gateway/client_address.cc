#include "services/gateway/client_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crm::gateway {
namespace {

constexpr size_t kMaxAddressText = INET6_ADDRSTRLEN - 1;
constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// True if the first `prefix` bits of `a` and `b` (arrays of 16) are equal.
bool SamePrefix(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int prefix) {
  const int full = prefix / 8;
  const int rest = prefix % 8;
  if (std::memcmp(a.data(), b.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

// `bytes` with every bit after the first `prefix` cleared.
std::array<uint8_t, 16> Masked(std::array<uint8_t, 16> bytes, int prefix) {
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(prefix - 8 * i, 0, 8);
    bytes[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  return bytes;
}

}  // namespace

std::optional<TrustedProxies::Ip> TrustedProxies::ParseIp(absl::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) return std::nullopt;
  char buf[kMaxAddressText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Ip ip;
  if (text.find(':') == absl::string_view::npos) {
    // glibc's inet_pton takes dotted-quad decimal only (no "010", no "1.2").
    if (inet_pton(AF_INET, buf, ip.bytes.data()) != 1) return std::nullopt;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return std::nullopt;
  ip.v6 = true;
  if (std::memcmp(ip.bytes.data(), kV4MappedPrefix, sizeof(kV4MappedPrefix)) == 0) {
    // ::ffff:a.b.c.d is the IPv4 address (what a dual-stack socket reports).
    std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
    std::memset(ip.bytes.data() + 4, 0, 12);
    ip.v6 = false;
  }
  return ip;
}

std::string TrustedProxies::Text(const Ip& ip) {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "";
  }
  return buf;
}

absl::StatusOr<TrustedProxies> TrustedProxies::Parse(const std::vector<std::string>& cidrs) {
  TrustedProxies proxies;
  for (const std::string& raw : cidrs) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting trusted_proxies: \"", entry.substr(0, 60), "\" ", why));
    };
    const size_t slash = entry.find('/');
    const absl::string_view address = entry.substr(0, slash);
    std::optional<Ip> ip = ParseIp(address);
    if (!ip.has_value()) return bad("is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)");
    // An IPv4-mapped IPv6 CIDR (::ffff:10.0.0.0/104) is the IPv4 one (/8).
    const bool mapped = !ip->v6 && address.find(':') != absl::string_view::npos;
    const int bits = ip->v6 || mapped ? 128 : 32;
    int prefix = bits;
    if (slash != absl::string_view::npos) {
      const absl::string_view digits = entry.substr(slash + 1);
      if (digits.empty() || digits.size() > 3 ||
          !std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit) ||
          !absl::SimpleAtoi(digits, &prefix) || prefix > bits) {
        return bad(absl::StrCat("has a prefix length out of range (0..", bits, ")"));
      }
    }
    if (mapped) {
      if (prefix < 96) return bad("mixes IPv4-mapped and other IPv6 addresses");
      prefix -= 96;
    }
    if (Masked(ip->bytes, prefix) != ip->bytes) {
      Ip network = *ip;
      network.bytes = Masked(ip->bytes, prefix);
      return bad(absl::StrCat("has bits set beyond its prefix (the network is ", Text(network), "/",
                              prefix, ")"));
    }
    proxies.cidrs_.push_back({*ip, prefix});
  }
  return proxies;
}

bool TrustedProxies::ContainsIp(const Ip& ip) const {
  for (const Cidr& cidr : cidrs_) {
    if (cidr.network.v6 == ip.v6 && SamePrefix(cidr.network.bytes, ip.bytes, cidr.prefix)) {
      return true;
    }
  }
  return false;
}

bool TrustedProxies::Contains(absl::string_view address) const {
  std::optional<Ip> ip = ParseIp(address);
  return ip.has_value() && ContainsIp(*ip);
}

std::string TrustedProxies::ClientAddress(absl::string_view peer,
                                          absl::Span<const std::string> forwarded_for) const {
  if (cidrs_.empty() || !Contains(peer)) return std::string(peer);
  std::optional<Ip> leftmost;
  int read = 0;
  for (auto header = forwarded_for.rbegin(); header != forwarded_for.rend(); ++header) {
    absl::string_view rest = absl::StripAsciiWhitespace(*header);
    if (rest.empty()) continue;  // An empty header adds no entry.
    while (true) {
      const size_t comma = rest.rfind(',');
      const absl::string_view entry = absl::StripAsciiWhitespace(
          comma == absl::string_view::npos ? rest : rest.substr(comma + 1));
      if (++read > kMaxForwardedEntries) return std::string(peer);
      std::optional<Ip> ip = ParseIp(entry);
      if (!ip.has_value()) return std::string(peer);  // Garbage: trust none of it.
      if (!ContainsIp(*ip)) return Text(*ip);
      leftmost = ip;
      if (comma == absl::string_view::npos) break;
      rest = rest.substr(0, comma);
    }
  }
  // No entry, or every one a trusted proxy: the request began inside.
  return leftmost.has_value() ? Text(*leftmost) : std::string(peer);
}

}  // namespace crm::gateway
