#include "services/identity/password_policy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/base/validate.h"

namespace crm::identity {
namespace {

bool OnList(absl::string_view lower) {
  const absl::Span<const absl::string_view> list = CommonPasswordList();
  return std::binary_search(list.begin(), list.end(), lower);
}

// ASCII digits, punctuation and space: what people pad a word with.
bool IsPadding(char c) {
  const auto u = static_cast<unsigned char>(c);
  return absl::ascii_isdigit(u) || absl::ascii_ispunct(u) || c == ' ';
}

// True if `lower_haystack` contains `needle` lower-cased (ASCII), for needles
// of at least `min_length` code points.
bool ContainsIdentifier(absl::string_view lower_haystack, absl::string_view needle,
                        size_t min_length) {
  if (needle.empty() || !base::IsValidUtf8Text(needle) || base::Utf8Length(needle) < min_length) {
    return false;
  }
  return absl::StrContains(lower_haystack, absl::AsciiStrToLower(needle));
}

Violation Make(ViolationCode code, std::string message) { return {code, std::move(message)}; }

}  // namespace

absl::string_view ViolationCodeName(ViolationCode code) {
  switch (code) {
    case ViolationCode::kInvalidUtf8:
      return "invalid_utf8";
    case ViolationCode::kTooShort:
      return "too_short";
    case ViolationCode::kTooLong:
      return "too_long";
    case ViolationCode::kContainsUsername:
      return "contains_username";
    case ViolationCode::kContainsEmail:
      return "contains_email";
    case ViolationCode::kCommonPassword:
      return "common_password";
    case ViolationCode::kReused:
      return "reused";
  }
  return "unknown";
}

bool IsCommonPassword(absl::string_view password) {
  const std::string lower = absl::AsciiStrToLower(password);
  const absl::string_view s = lower;
  if (OnList(s)) return true;
  // Rule 2: every prefix obtained by dropping trailing padding.
  size_t end = s.size();
  while (end > 0 && IsPadding(s[end - 1])) {
    --end;
    if (end > 0 && OnList(s.substr(0, end))) return true;
  }
  // Rule 3: every suffix obtained by dropping leading padding.
  size_t begin = 0;
  while (begin < s.size() && IsPadding(s[begin])) {
    ++begin;
    if (begin < s.size() && OnList(s.substr(begin))) return true;
  }
  // Rule 4: both runs removed.
  if (begin < end && (begin > 0 || end < s.size())) {
    return OnList(s.substr(begin, end - begin));
  }
  return false;
}

absl::StatusOr<PasswordPolicy> PasswordPolicy::Create(const PolicyParams& params) {
  if (params.max_length < 1 || params.max_length > kMaxPasswordCodePoints) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_length: must be 1..", kMaxPasswordCodePoints));
  }
  if (params.min_length < 1 || params.min_length > params.max_length) {
    return absl::InvalidArgumentError("min_length: must be 1..max_length");
  }
  if (params.min_identifier_length < 1) {
    return absl::InvalidArgumentError("min_identifier_length: must be at least 1");
  }
  return PasswordPolicy(params);
}

absl::StatusOr<std::vector<Violation>> PasswordPolicy::Check(absl::string_view password,
                                                             const PolicyContext& context) const {
  std::vector<Violation> out;
  // The byte cap first, so a huge input costs nothing further.
  if (password.size() > kMaxPasswordBytes) {
    out.push_back(Make(ViolationCode::kTooLong,
                       absl::StrCat("must be at most ", params_.max_length, " characters")));
    return out;
  }
  if (!base::IsValidUtf8Text(password)) {
    out.push_back(
        Make(ViolationCode::kInvalidUtf8, "must be valid UTF-8 text without control characters"));
    return out;
  }
  const size_t length = base::Utf8Length(password);
  if (length < params_.min_length) {
    out.push_back(Make(ViolationCode::kTooShort,
                       absl::StrCat("must be at least ", params_.min_length, " characters")));
  }
  if (length > params_.max_length) {
    out.push_back(Make(ViolationCode::kTooLong,
                       absl::StrCat("must be at most ", params_.max_length, " characters")));
  }

  const std::string lower = absl::AsciiStrToLower(password);
  if (ContainsIdentifier(lower, context.username, params_.min_identifier_length)) {
    out.push_back(Make(ViolationCode::kContainsUsername, "must not contain the username"));
  }
  const std::string email = base::NormalizeEmail(context.email);
  const absl::string_view local = absl::string_view(email).substr(0, email.rfind('@'));
  const absl::string_view untagged = local.substr(0, local.find('+'));
  if (ContainsIdentifier(lower, email, params_.min_identifier_length) ||
      ContainsIdentifier(lower, local, params_.min_identifier_length) ||
      ContainsIdentifier(lower, untagged, params_.min_identifier_length)) {
    out.push_back(Make(ViolationCode::kContainsEmail,
                       "must not contain the e-mail address or its local part"));
  }
  if (IsCommonPassword(password)) {
    out.push_back(Make(ViolationCode::kCommonPassword,
                       "is too common: it, or it without leading or trailing digits and "
                       "symbols, is on the list of common passwords"));
  }

  // The slow rule last, and only for input the hasher accepts (anything else
  // can never have been stored).
  if (ValidatePasswordInput(password).ok()) {
    const size_t n = std::min(params_.history_size, context.previous_hashes.size());
    for (size_t i = 0; i < n; ++i) {
      absl::StatusOr<VerifyResult> r = context.hasher.Verify(password, context.previous_hashes[i]);
      if (!r.ok()) return r.status();
      if (r->match) {
        out.push_back(
            Make(ViolationCode::kReused,
                 absl::StrCat("must not be one of the last ", params_.history_size, " passwords")));
        break;
      }
    }
  }
  return out;
}

absl::Status ToStatus(const std::vector<Violation>& violations) {
  if (violations.empty()) return absl::OkStatus();
  std::vector<std::string> reasons;
  std::vector<absl::string_view> codes;
  for (const Violation& v : violations) {
    reasons.push_back(absl::StrCat(ViolationCodeName(v.code), ": ", v.message));
    codes.push_back(ViolationCodeName(v.code));
  }
  absl::Status status =
      absl::InvalidArgumentError(absl::StrCat("password: ", absl::StrJoin(reasons, "; ")));
  status.SetPayload(kPasswordViolationsPayload, absl::Cord(absl::StrJoin(codes, ",")));
  return status;
}

}  // namespace crm::identity
