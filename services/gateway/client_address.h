// TrustedProxies: which TCP peers of the gateway are its own proxies (an
// Ingress controller, a load balancer), and so whose X-Forwarded-For header
// says who the client is. Setting trusted_proxies lists them as CIDRs.
//
// The client of a request is its TCP peer, unless the peer is inside a
// trusted CIDR; then X-Forwarded-For is read from right to left (each proxy
// appends the address it got the request from, so the right end was written
// by our own proxies and anything further left by whoever sent the request):
// entries inside trusted CIDRs are skipped, and the first one that is not is
// the client. When every entry is trusted, the leftmost is the client (it
// came from inside). An absent or empty header, an entry that is not an IP
// address, or more than kMaxForwardedEntries entries to read before an
// answer make the TCP peer the client: a header is never trusted further
// than it parses. So a client may write what it likes into the header it
// sends; it only ever lands left of the entry our proxy appended.
//
// The gateway keys its per-client limit and fills the `source_address`
// evidence (logins, subject sign-in, consent statements, confirmations)
// with this address.
//
// Plain C++ (no HTTP library). Immutable after Parse, so thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace crm::gateway {

class TrustedProxies {
 public:
  // Entries of X-Forwarded-For read at most, right to left.
  static constexpr int kMaxForwardedEntries = 20;

  // Trusts no peer: X-Forwarded-For is never read.
  TrustedProxies() = default;

  // The setting trusted_proxies, already split at commas: CIDRs such as
  // "10.0.0.0/8" or "fd00::/8"; a bare address is a /32 or /128.
  // INVALID_ARGUMENT naming trusted_proxies and the entry for one that is
  // not an address, a prefix length out of range (IPv4 0..32, IPv6 0..128)
  // or an address with bits set beyond its prefix ("10.1.0.0/8").
  static absl::StatusOr<TrustedProxies> Parse(const std::vector<std::string>& cidrs);

  bool empty() const { return cidrs_.empty(); }

  // True if `address`, an IPv4 or IPv6 literal (IPv4-mapped IPv6 counts as
  // IPv4), is inside a trusted CIDR; false for anything else.
  bool Contains(absl::string_view address) const;

  // The client's address of a request from TCP peer `peer` carrying the
  // X-Forwarded-For header values `forwarded_for` (every such header, in
  // order; together one comma-separated list), by the rule above. The peer
  // is returned as given; an address from the header in its canonical form
  // (inet_ntop; IPv4-mapped as IPv4).
  std::string ClientAddress(absl::string_view peer,
                            absl::Span<const std::string> forwarded_for) const;

 private:
  // An IPv4 (first 4 bytes) or IPv6 address.
  struct Ip {
    bool v6 = false;
    std::array<uint8_t, 16> bytes{};
  };
  struct Cidr {
    Ip network;
    int prefix = 0;
  };
  static std::optional<Ip> ParseIp(absl::string_view text);
  static std::string Text(const Ip& ip);
  bool ContainsIp(const Ip& ip) const;

  std::vector<Cidr> cidrs_;
};

}  // namespace crm::gateway
