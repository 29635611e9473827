#include "libs/auth/redis_revocation.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/log/log.h"

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
    redis::Client& redis, const base::Clock& clock, RedisRevocationOptions options,
    prometheus::Registry* registry) {
  CRM_RETURN_IF_ERROR(ValidateTtl("revocation_ttl", options.revocation_ttl));
  if (options.negative_cache_ttl < absl::ZeroDuration() ||
      options.negative_cache_ttl > absl::Seconds(1)) {
    return absl::InvalidArgumentError("negative_cache_ttl: must be between 0 and 1 s");
  }
  std::unique_ptr<RedisRevocationChecker> checker(
      new RedisRevocationChecker(redis, clock, options));
  if (registry != nullptr && options.fallback != nullptr) {
    auto& family = prometheus::BuildCounter()
                       .Name("crm_auth_revocation_fallback_total")
                       .Help("Revocation checks answered by identity's record instead of Redis")
                       .Register(*registry);
    checker->fallback_unavailable_ = &family.Add({{"reason", "redis_unavailable"}});
    checker->fallback_incomplete_ = &family.Add({{"reason", "set_incomplete"}});
  }
  return checker;
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
  bool refreshing = false;
  if (options_.cache_capacity > 0) {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      CacheEntry& e = it->second;
      const absl::Time now = clock_.Now();
      if (now >= e.expires_at) {
        cache_.erase(it);
      } else if (e.revoked || e.refreshing ||
                 now < e.expires_at - options_.negative_cache_ttl / kRefreshPart) {
        return e.revoked;
      } else {
        // The last part of a "not revoked" answer's life: this call asks
        // again while the others keep using the answer, so a busy session
        // is not asked about by every call in flight when it expires.
        e.refreshing = true;
        refreshing = true;
      }
    }
  }
  absl::StatusOr<bool> answer = Ask(session_id, key);
  if (refreshing && !answer.ok()) {
    // The answer in hand is still good until it expires; let the next call
    // try again.
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      it->second.refreshing = false;
      if (clock_.Now() < it->second.expires_at) return it->second.revoked;
    }
  }
  return answer;
}

absl::StatusOr<bool> RedisRevocationChecker::Ask(absl::string_view session_id,
                                                 const std::string& key) {
  // PTTL answers existence and remaining lifetime in one round trip:
  // -2 no key, -1 no expiry, otherwise milliseconds left. With a fallback,
  // the complete mark comes in the same round trip.
  redis::Pipeline pipeline;
  pipeline.Add("PTTL", key);
  if (options_.fallback != nullptr) pipeline.Add("EXISTS", kRevocationsCompleteKey);
  absl::StatusOr<std::vector<redis::Reply>> replies = redis_.Execute(pipeline);
  absl::Status status = replies.status();
  for (size_t i = 0; status.ok() && i < replies->size(); ++i) {
    const redis::Reply& reply = (*replies)[i];
    status = redis::ErrorReplyToStatus(reply);
    if (status.ok() && reply.type != redis::Reply::Type::kInteger) {
      status = absl::InternalError("revocation store: unexpected reply");
    }
  }
  if (!status.ok()) {
    if (options_.fallback != nullptr) return AskFallback(session_id, key, true);
    return status;
  }
  const int64_t pttl = replies->front().integer;
  const bool revoked = pttl != -2;
  if (!revoked && options_.fallback != nullptr && (*replies)[1].integer == 0) {
    return AskFallback(session_id, key, false);
  }
  if (in_fallback_.exchange(false)) log::Info("auth.revocation_fallback_ended");
  RememberAnswer(key, revoked, pttl >= 0 ? absl::Milliseconds(pttl) : options_.revocation_ttl);
  return revoked;
}

absl::StatusOr<bool> RedisRevocationChecker::AskFallback(absl::string_view session_id,
                                                         const std::string& key,
                                                         bool redis_unavailable) {
  if (!in_fallback_.exchange(true)) {
    if (redis_unavailable) {
      log::Warn("auth.revocation_fallback", {{"reason", log::Literal("redis_unavailable")}});
    } else {
      log::Warn("auth.revocation_fallback", {{"reason", log::Literal("set_incomplete")}});
    }
  }
  prometheus::Counter* counter = redis_unavailable ? fallback_unavailable_ : fallback_incomplete_;
  if (counter != nullptr) counter->Increment();
  CRM_ASSIGN_OR_RETURN(const bool revoked, options_.fallback->IsRevoked(session_id));
  RememberAnswer(key, revoked, options_.revocation_ttl);
  return revoked;
}

void RedisRevocationChecker::RememberAnswer(const std::string& key, bool revoked,
                                            absl::Duration revoked_for) {
  if (options_.cache_capacity == 0) return;
  if (revoked) {
    Remember(key, true, clock_.Now() + revoked_for);
  } else if (options_.negative_cache_ttl > absl::ZeroDuration()) {
    Remember(key, false, clock_.Now() + options_.negative_cache_ttl);
  }
}

absl::Status RedisRevocationChecker::Revoke(absl::string_view session_id, absl::Duration ttl) {
  CRM_ASSIGN_OR_RETURN(std::string key, KeyFor(session_id));
  CRM_RETURN_IF_ERROR(ValidateTtl("ttl", ttl));
  // Remembered even if the write fails: this process knows, whatever Redis does.
  RememberAnswer(key, true, ttl);
  CRM_RETURN_IF_ERROR(redis_.Set(key, "1", ttl));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RedisRevocationChecker::KeysFor(
    absl::Span<const std::string> session_ids) {
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
  return keys;
}

absl::Status RedisRevocationChecker::RevokeMany(absl::Span<const std::string> session_ids,
                                                absl::Duration ttl) {
  CRM_RETURN_IF_ERROR(ValidateTtl("ttl", ttl));
  CRM_ASSIGN_OR_RETURN(const std::vector<std::string> keys, KeysFor(session_ids));
  if (keys.empty()) return absl::OkStatus();
  for (const std::string& key : keys) RememberAnswer(key, true, ttl);  // as in Revoke
  const std::string px = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  redis::Pipeline pipeline;
  for (const std::string& key : keys) pipeline.Add("SET", key, "1", "PX", px);
  CRM_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis_.Execute(pipeline));
  for (const redis::Reply& reply : replies) CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(reply));
  return absl::OkStatus();
}

absl::Status RedisRevocationChecker::Republish(absl::Span<const std::string> session_ids,
                                               absl::Duration ttl) {
  CRM_RETURN_IF_ERROR(ValidateTtl("ttl", ttl));
  CRM_ASSIGN_OR_RETURN(const std::vector<std::string> keys, KeysFor(session_ids));
  const std::string px = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  redis::Pipeline pipeline;
  pipeline.Add("MULTI");
  for (const std::string& key : keys) pipeline.Add("SET", key, "1", "PX", px);
  pipeline.Add("SET", kRevocationsCompleteKey, "1");
  pipeline.Add("EXEC");
  CRM_ASSIGN_OR_RETURN(std::vector<redis::Reply> replies, redis_.Execute(pipeline));
  for (const redis::Reply& reply : replies) CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(reply));
  // EXEC answers null when the transaction was aborted.
  if (replies.back().type != redis::Reply::Type::kArray) {
    return absl::UnavailableError("revocation store: republish transaction aborted");
  }
  for (const redis::Reply& reply : replies.back().elements) {
    CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(reply));
  }
  for (const std::string& key : keys) RememberAnswer(key, true, ttl);
  return absl::OkStatus();
}

absl::StatusOr<bool> RedisRevocationChecker::IsComplete() {
  CRM_ASSIGN_OR_RETURN(redis::Reply reply, redis_.Command("EXISTS", kRevocationsCompleteKey));
  CRM_RETURN_IF_ERROR(redis::ErrorReplyToStatus(reply));
  if (reply.type != redis::Reply::Type::kInteger) {
    return absl::InternalError("revocation store: unexpected EXISTS reply");
  }
  return reply.integer != 0;
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
