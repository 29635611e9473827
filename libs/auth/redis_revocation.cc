#include "libs/auth/redis_revocation.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"

namespace crm::auth {
namespace {

bool IsOpaqueToken(absl::string_view s) {
  if (s.size() < 16 || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

absl::Status ValidateTtl(absl::string_view field, absl::Duration ttl) {
  if (ttl < absl::Seconds(1) || ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be finite and at least 1 s"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisRevocationChecker>> RedisRevocationChecker::Create(
    redis::Client& redis, const base::Clock& clock, RedisRevocationOptions options) {
  CRM_RETURN_IF_ERROR(ValidateTtl("revocation_ttl", options.revocation_ttl));
  if (options.negative_cache_ttl < absl::ZeroDuration() ||
      options.negative_cache_ttl > absl::Seconds(1)) {
    return absl::InvalidArgumentError("negative_cache_ttl: must be between 0 and 1 s");
  }
  return std::unique_ptr<RedisRevocationChecker>(new RedisRevocationChecker(redis, clock, options));
}

absl::StatusOr<std::string> RedisRevocationChecker::KeyFor(absl::string_view session_id) {
  if (base::IsUuid(session_id)) {
    return absl::StrCat(kRevokedKeyPrefix, absl::AsciiStrToLower(session_id));
  }
  if (IsOpaqueToken(session_id)) return absl::StrCat(kRevokedKeyPrefix, session_id);
  return absl::InvalidArgumentError(
      "session_id: must be a UUID or an opaque token of 16-128 base64url characters");
}

absl::StatusOr<bool> RedisRevocationChecker::IsRevoked(absl::string_view session_id) {
  CRM_ASSIGN_OR_RETURN(std::string key, KeyFor(session_id));
  if (options_.cache_capacity > 0) {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (clock_.Now() < it->second.expires_at) return it->second.revoked;
      cache_.erase(it);
    }
  }
  // PTTL answers existence and remaining lifetime in one round trip:
  // -2 no key, -1 no expiry, otherwise milliseconds left.
  CRM_ASSIGN_OR_RETURN(redis::Reply reply, redis_.Command("PTTL", key));
  if (reply.type != redis::Reply::Type::kInteger) {
    return absl::InternalError("revocation store: unexpected PTTL reply");
  }
  const bool revoked = reply.integer != -2;
  if (options_.cache_capacity > 0) {
    const absl::Time now = clock_.Now();
    if (!revoked) {
      if (options_.negative_cache_ttl > absl::ZeroDuration()) {
        Remember(key, false, now + options_.negative_cache_ttl);
      }
    } else {
      const absl::Duration left =
          reply.integer >= 0 ? absl::Milliseconds(reply.integer) : options_.revocation_ttl;
      Remember(key, true, now + left);
    }
  }
  return revoked;
}

absl::Status RedisRevocationChecker::Revoke(absl::string_view session_id, absl::Duration ttl) {
  CRM_ASSIGN_OR_RETURN(std::string key, KeyFor(session_id));
  CRM_RETURN_IF_ERROR(ValidateTtl("ttl", ttl));
  CRM_RETURN_IF_ERROR(redis_.Set(key, "1", ttl));
  if (options_.cache_capacity > 0) Remember(key, true, clock_.Now() + ttl);
  return absl::OkStatus();
}

absl::Status RedisRevocationChecker::RevokeMany(absl::Span<const std::string> session_ids,
                                                absl::Duration ttl) {
  CRM_RETURN_IF_ERROR(ValidateTtl("ttl", ttl));
  std::vector<std::string> keys;
  keys.reserve(session_ids.size());
  for (size_t i = 0; i < session_ids.size(); ++i) {
    absl::StatusOr<std::string> key = KeyFor(session_ids[i]);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("session_ids[", i,
                       "]: must be a UUID or an opaque token of 16-128 base64url characters"));
    }
    keys.push_back(*std::move(key));
  }
  if (keys.empty()) return absl::OkStatus();
  const std::string px = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  redis::Pipeline pipeline;
  for (const std::string& key : keys) pipeline.Add("SET", key, "1", "PX", px);
  CRM_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis_.Execute(pipeline));
  for (const redis::Reply& reply : replies) CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(reply));
  if (options_.cache_capacity > 0) {
    const absl::Time expires_at = clock_.Now() + ttl;
    for (const std::string& key : keys) Remember(key, true, expires_at);
  }
  return absl::OkStatus();
}

void RedisRevocationChecker::Remember(const std::string& key, bool revoked, absl::Time expires_at) {
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    // A revocation is never undone: a late "not revoked" answer from a
    // concurrent check must not overwrite a "revoked" entry.
    if (it->second.revoked && !revoked) return;
    it->second = {revoked, expires_at};
    return;
  }
  if (cache_.size() >= options_.cache_capacity) {
    const absl::Time now = clock_.Now();
    absl::erase_if(cache_, [now](const auto& kv) { return kv.second.expires_at <= now; });
    if (cache_.size() >= options_.cache_capacity) return;
  }
  cache_.emplace(key, CacheEntry{revoked, expires_at});
}

}  // namespace crm::auth
