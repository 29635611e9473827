#include "services/identity/service_util.h"

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/base/grpc_status.h"

namespace crm::identity {

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros / 1'000'000;
  int64_t rest = micros % 1'000'000;
  if (rest < 0) {
    rest += 1'000'000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}

absl::StatusOr<absl::Time> GetTime(absl::string_view field, const google::protobuf::Timestamp& ts) {
  // The protobuf range: 0001-01-01 .. 9999-12-31.
  if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
      ts.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a valid timestamp"));
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::StatusOr<std::string> NormalizeUsername(absl::string_view field, absl::string_view input) {
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat(field, ": must be 3..64 of a-z 0-9 . _ - starting with a letter or digit"));
  if (input.size() < 3 || input.size() > 64) return bad;
  std::string out = absl::AsciiStrToLower(input);
  for (char c : out) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return bad;
    }
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(out[0]))) return bad;
  return out;
}

absl::Status ValidateSpiffeId(absl::string_view field, absl::string_view value) {
  constexpr absl::string_view kPrefix = "spiffe://crm.local/";
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat(field, ": must be spiffe://crm.local/<name> with a name of a-z 0-9 . _ -"));
  if (!absl::StartsWith(value, kPrefix)) return bad;
  absl::string_view name = value.substr(kPrefix.size());
  if (name.empty() || name.size() > 64) return bad;
  for (char c : name) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return bad;
    }
  }
  return absl::OkStatus();
}

absl::Status PrefixField(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

std::string UserResource(absl::string_view user_id) { return absl::StrCat("user/", user_id); }

std::string EncodeOffsetToken(size_t offset, absl::string_view query_key) {
  return absl::WebSafeBase64Escape(absl::StrCat("o1|", offset, "|", query_key));
}

absl::StatusOr<size_t> DecodeOffsetToken(absl::string_view token, absl::string_view query_key) {
  if (token.empty()) return 0;
  const absl::Status bad =
      absl::InvalidArgumentError("page.page_token: malformed or not for this query");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  size_t offset;
  if (parts.size() != 3 || parts[0] != "o1" || !absl::SimpleAtoi(parts[1], &offset) ||
      parts[2] != query_key) {
    return bad;
  }
  return offset;
}

grpc::Status ToGrpc(const absl::Status& status) { return base::ToGrpcStatus(status); }

}  // namespace crm::identity
