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

}  // namespace crm::identity
