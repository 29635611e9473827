#include "services/identity/subject_verification.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"

namespace crm::identity {

namespace {

constexpr char kKeyPrefix[] = "crm:identity:subject-verification:";
constexpr int kCodeDigits = 6;

// A uniformly drawn code of kCodeDigits decimal digits.
std::string NewCode() {
  constexpr uint32_t kRange = 1'000'000;
  // Rejection sampling: the largest multiple of kRange below 2^32.
  constexpr uint32_t kLimit = UINT32_MAX - (UINT32_MAX % kRange);
  while (true) {
    const std::string bytes = crypto::RandomBytes(4);
    uint32_t n = 0;
    for (unsigned char c : bytes) n = (n << 8) | c;
    if (n >= kLimit) continue;
    std::string code = absl::StrCat(n % kRange);
    return std::string(kCodeDigits - code.size(), '0') + code;
  }
}

absl::Status CheckParams(const SubjectVerificationParams& p) {
  if (p.code_ttl < absl::Minutes(1) || p.code_ttl > absl::Hours(24)) {
    return absl::InvalidArgumentError("subject_code_ttl: must be from 1m to 24h");
  }
  if (p.max_tries < 1 || p.max_tries > 20) {
    return absl::InvalidArgumentError("subject_code_tries: must be from 1 to 20");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SubjectVerifier>> SubjectVerifier::Create(
    redis::Client& redis, LoginGuard& guard, const crypto::BlindIndexer& indexer,
    SubjectDirectory& directory, const base::Clock& clock, SubjectVerificationParams params) {
  CRM_RETURN_IF_ERROR(CheckParams(params));
  absl::StatusOr<SourceThrottle> per_address = SourceThrottle::Create(params.per_address);
  if (!per_address.ok()) {
    return absl::InvalidArgumentError("subject_codes_per_address: must be at least 1");
  }
  absl::StatusOr<SourceThrottle> per_source = SourceThrottle::Create(params.per_source);
  if (!per_source.ok()) {
    return absl::InvalidArgumentError("subject_codes_per_source: must be at least 1");
  }
  absl::StatusOr<SourceThrottle> tries_per_address =
      SourceThrottle::Create(params.tries_per_address);
  absl::StatusOr<SourceThrottle> tries_per_source = SourceThrottle::Create(params.tries_per_source);
  if (!tries_per_address.ok() || !tries_per_source.ok()) {
    return absl::InvalidArgumentError("subject_code_tries_per_address: must be at least 1");
  }
  return std::unique_ptr<SubjectVerifier>(
      new SubjectVerifier(redis, guard, indexer, directory, clock, params, *per_address,
                          *per_source, *tries_per_address, *tries_per_source));
}

std::string SubjectVerifier::Key(absl::string_view verification_id) {
  return absl::StrCat(kKeyPrefix, verification_id);
}

std::string SubjectVerifier::CodeMac(absl::string_view verification_id,
                                     absl::string_view code) const {
  return indexer_.Hex(absl::StrCat("subject-code:", verification_id, ":", code));
}

absl::StatusOr<SubjectVerifier::Started> SubjectVerifier::Start(absl::string_view email,
                                                                absl::string_view source) {
  CRM_RETURN_IF_ERROR(base::ValidateEmail("email", email));
  const std::string address = base::NormalizeEmail(email);
  CRM_RETURN_IF_ERROR(guard_.Count(per_source_, "subject-code-source",
                                   source.empty() ? "unknown" : base::SourceKeyOf(source),
                                   "verification codes from this source"));
  CRM_RETURN_IF_ERROR(guard_.Count(per_address_, "subject-code-address", address,
                                   "verification codes for this address"));
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> subjects, directory_.SubjectsByEmail(address));

  Started started{.verification_id = base::NewUuid(),
                  .expires_at = clock_.Now() + params_.code_ttl};
  const std::string code = NewCode();
  const std::string key = Key(started.verification_id);
  redis::Pipeline p;
  p.Add("HSET", key, "subjects", absl::StrJoin(subjects, ","), "code",
        CodeMac(started.verification_id, code), "address",
        indexer_.Hex(absl::StrCat("subject-address:", address)), "tries", "0")
      .Add("PEXPIRE", key, absl::StrCat(absl::ToInt64Milliseconds(params_.code_ttl)));
  CRM_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis_.Execute(p));
  for (const redis::Reply& r : replies) CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(r));
  if (absl::Status sent = directory_.SendCode(
          address, code, absl::StrCat("subject-code:", started.verification_id));
      !sent.ok()) {
    (void)redis_.Del(key);
    return sent;
  }
  return started;
}

absl::StatusOr<SubjectVerifier::Confirmed> SubjectVerifier::Confirm(
    absl::string_view verification_id, absl::string_view code, absl::string_view source) {
  CRM_ASSIGN_OR_RETURN(const std::string id,
                       base::CanonicalUuid("verification_id", verification_id));
  if (code.size() != kCodeDigits || !std::all_of(code.begin(), code.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(absl::StrCat("code: must be ", kCodeDigits, " digits"));
  }
  const absl::Status gone =
      absl::NotFoundError("verification_id: unknown, used or expired; ask for a new code");
  CRM_RETURN_IF_ERROR(guard_.Count(tries_per_source_, "subject-try-source",
                                   source.empty() ? "unknown" : base::SourceKeyOf(source),
                                   "codes tried from this source"));
  const std::string key = Key(id);
  // Count the try first: concurrent guesses cannot exceed max_tries.
  redis::Pipeline p;
  p.Add("EXISTS", key)
      .Add("HINCRBY", key, "tries", "1")
      .Add("HMGET", key, "code", "subjects", "address");
  CRM_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis_.Execute(p));
  for (const redis::Reply& r : replies) CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(r));
  if (replies.size() != 3 || replies[0].integer != 1) {
    // HINCRBY made a key of a missing one: remove it.
    (void)redis_.Del(key);
    return gone;
  }
  const int64_t tries = replies[1].integer;
  const redis::Reply& fields = replies[2];
  if (fields.elements.size() != 3 || fields.elements[0].type != redis::Reply::Type::kString ||
      fields.elements[2].type != redis::Reply::Type::kString) {
    (void)redis_.Del(key);
    return gone;
  }
  if (tries > params_.max_tries) {
    (void)redis_.Del(key);
    return gone;
  }
  // The address's budget across its verifications.
  CRM_RETURN_IF_ERROR(guard_.Count(tries_per_address_, "subject-try-address",
                                   fields.elements[2].str, "codes tried for this address"));
  if (!crypto::ConstantTimeEquals(CodeMac(id, code), fields.elements[0].str)) {
    const int64_t left = params_.max_tries - tries;
    if (left <= 0) (void)redis_.Del(key);
    return absl::InvalidArgumentError(
        left > 0 ? absl::StrCat("code: wrong code; ", left, left == 1 ? " try" : " tries", " left")
                 : "code: wrong code; no tries left, ask for a new code");
  }
  // Single use: only the caller whose DEL removed it may go on.
  CRM_ASSIGN_OR_RETURN(int64_t deleted, redis_.Del(key));
  if (deleted != 1) return gone;
  Confirmed confirmed;
  const std::string& subjects = fields.elements[1].str;
  if (!subjects.empty()) confirmed.subject_ids = absl::StrSplit(subjects, ',');
  return confirmed;
}

}  // namespace crm::identity
