#include "services/identity/in_memory_session_store.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"

namespace crm::identity {
namespace {

absl::Time Micros(absl::Time t) { return absl::FromUnixMicros(absl::ToUnixMicros(t)); }

}  // namespace

absl::StatusOr<SessionRecord> InMemorySessionStore::Create(const NewSession& session) {
  CRM_ASSIGN_OR_RETURN(const NewSession s, CanonicalNewSession(session));
  absl::MutexLock lock(&mu_);
  if (sessions_.contains(s.id)) return absl::AlreadyExistsError("session id already exists");
  if (by_hash_.contains(s.refresh_token_hash)) {
    return absl::AlreadyExistsError("refresh token hash already exists");
  }
  Row row;
  row.record = SessionRecord{.id = s.id,
                             .family_id = s.family_id,
                             .user_id = s.user_id,
                             .refresh_token_hash = s.refresh_token_hash,
                             .rotated_from = std::nullopt,
                             .password_change_only = s.password_change_only,
                             .source_address_ciphertext = s.source_address_ciphertext,
                             .user_agent_ciphertext = s.user_agent_ciphertext,
                             .created_at = s.created_at,
                             .expires_at = s.expires_at};
  by_hash_[s.refresh_token_hash] = s.id;
  sessions_[s.id] = row;
  return row.record;
}

absl::StatusOr<SessionRecord> InMemorySessionStore::Rotate(absl::string_view presented_hash,
                                                           absl::string_view new_hash,
                                                           absl::Time now) {
  if (new_hash.size() != kRefreshTokenHashBytes) {
    return absl::InvalidArgumentError("new_token_hash: must be 32 bytes");
  }
  now = Micros(now);
  absl::MutexLock lock(&mu_);
  auto hit = by_hash_.find(std::string(presented_hash));
  if (hit == by_hash_.end()) return absl::UnauthenticatedError("refresh token not recognised");
  Row& old = sessions_.at(hit->second);
  if (old.revoked_at.has_value()) return absl::UnauthenticatedError("session revoked");
  if (now >= old.record.expires_at) return absl::UnauthenticatedError("session expired");
  if (old.rotated_at.has_value()) {
    for (auto& [id, row] : sessions_) {
      if (row.record.family_id == old.record.family_id && !row.revoked_at.has_value()) {
        row.revoked_at = now;
      }
    }
    return absl::FailedPreconditionError("refresh token reused; session revoked");
  }
  if (by_hash_.contains(std::string(new_hash))) {
    return absl::AlreadyExistsError("refresh token hash already exists");
  }
  old.rotated_at = now;
  Row row;
  row.record = old.record;
  row.record.id = base::NewUuid();
  row.record.refresh_token_hash = std::string(new_hash);
  row.record.rotated_from = old.record.id;
  row.record.created_at = now;
  by_hash_[row.record.refresh_token_hash] = row.record.id;
  sessions_[row.record.id] = row;
  return row.record;
}

absl::StatusOr<std::vector<SessionRecord>> InMemorySessionStore::ListSessions(
    absl::string_view user_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  now = Micros(now);
  absl::MutexLock lock(&mu_);
  std::vector<SessionRecord> out;
  for (const auto& [id, row] : sessions_) {
    if (row.record.user_id == uid && !row.rotated_at.has_value() && !row.revoked_at.has_value() &&
        row.record.expires_at > now) {
      out.push_back(row.record);
    }
  }
  std::sort(out.begin(), out.end(), [](const SessionRecord& a, const SessionRecord& b) {
    return std::tie(a.created_at, a.id) > std::tie(b.created_at, b.id);
  });
  return out;
}

absl::Status InMemorySessionStore::Revoke(absl::string_view session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string fid, base::CanonicalUuid("session_id", session_id));
  now = Micros(now);
  absl::MutexLock lock(&mu_);
  bool found = false;
  for (auto& [id, row] : sessions_) {
    if (row.record.family_id != fid) continue;
    found = true;
    if (!row.revoked_at.has_value()) row.revoked_at = now;
  }
  if (!found) return absl::NotFoundError("session not found");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> InMemorySessionStore::RevokeAllForUser(
    absl::string_view user_id, std::optional<std::string> except_session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  std::string except;
  if (except_session_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(except, base::CanonicalUuid("except_session_id", *except_session_id));
  }
  now = Micros(now);
  absl::MutexLock lock(&mu_);
  std::set<std::string> revoked;
  for (auto& [id, row] : sessions_) {
    if (row.record.user_id != uid || row.revoked_at.has_value() || row.record.family_id == except) {
      continue;
    }
    row.revoked_at = now;
    revoked.insert(row.record.family_id);
  }
  return std::vector<std::string>(revoked.begin(), revoked.end());
}

absl::Status InMemorySessionStore::RecordRevocations(absl::Span<const std::string> session_ids,
                                                     absl::Time until) {
  CRM_ASSIGN_OR_RETURN(const std::vector<std::string> ids, CanonicalSessionIds(session_ids));
  absl::MutexLock lock(&mu_);
  for (const std::string& id : ids) {
    absl::Time& recorded = revocations_.try_emplace(id, Micros(until)).first->second;
    recorded = std::max(recorded, Micros(until));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> InMemorySessionStore::IsRevoked(absl::string_view session_id, absl::Time now) {
  CRM_ASSIGN_OR_RETURN(const std::string id, base::CanonicalUuid("session_id", session_id));
  absl::MutexLock lock(&mu_);
  if (auto it = revocations_.find(id); it != revocations_.end() && it->second > now) return true;
  for (const auto& [row_id, row] : sessions_) {
    if (row.record.family_id == id && row.revoked_at.has_value()) return true;
  }
  return false;
}

absl::StatusOr<std::vector<std::string>> InMemorySessionStore::RevocationsInForce(
    absl::Time now, absl::Time revoked_since) {
  absl::MutexLock lock(&mu_);
  std::set<std::string> revoked;
  for (const auto& [id, row] : sessions_) {
    if (row.revoked_at.has_value() && *row.revoked_at >= revoked_since)
      revoked.insert(row.record.family_id);
  }
  for (const auto& [id, until] : revocations_) {
    if (until > now) revoked.insert(id);
  }
  return std::vector<std::string>(revoked.begin(), revoked.end());
}

absl::StatusOr<int64_t> InMemorySessionStore::PruneRevocations(absl::Time before) {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(
      std::erase_if(revocations_, [before](const auto& kv) { return kv.second < before; }));
}

absl::StatusOr<LoginHistoryRecord> InMemorySessionStore::AppendLogin(const LoginAttempt& attempt) {
  LoginHistoryRecord rec{.id = base::NewUuid(),
                         .user_id = std::nullopt,
                         .at = Micros(attempt.at),
                         .result = attempt.result,
                         .source_address_ciphertext = attempt.source_address_ciphertext,
                         .user_agent_ciphertext = attempt.user_agent_ciphertext};
  if (attempt.user_id.has_value()) {
    CRM_ASSIGN_OR_RETURN(rec.user_id, base::CanonicalUuid("user_id", *attempt.user_id));
  }
  absl::MutexLock lock(&mu_);
  history_[rec.id] = rec;
  return rec;
}

absl::StatusOr<LoginHistoryPage> InMemorySessionStore::ListLogins(absl::string_view user_id,
                                                                  absl::Time start_time,
                                                                  absl::Time end_time,
                                                                  int page_size,
                                                                  absl::string_view page_token) {
  CRM_ASSIGN_OR_RETURN(const std::string uid, base::CanonicalUuid("user_id", user_id));
  start_time = Micros(start_time);
  end_time = Micros(end_time);
  if (end_time < start_time) {
    return absl::InvalidArgumentError("end_time: must not be before start_time");
  }
  CRM_ASSIGN_OR_RETURN(const int limit, EffectiveHistoryPageSize(page_size));
  const std::string query = HistoryQueryKey(uid, start_time, end_time);
  std::optional<HistoryCursor> after;
  if (!page_token.empty()) {
    CRM_ASSIGN_OR_RETURN(after, DecodeHistoryPageToken(page_token, query));
  }
  absl::MutexLock lock(&mu_);
  std::vector<const LoginHistoryRecord*> matching;
  for (const auto& [id, rec] : history_) {
    if (rec.user_id != uid || rec.at < start_time || rec.at >= end_time) continue;
    if (after.has_value()) {
      const int64_t at = absl::ToUnixMicros(rec.at);
      if (at > after->at_micros || (at == after->at_micros && rec.id <= after->id)) continue;
    }
    matching.push_back(&rec);
  }
  std::sort(matching.begin(), matching.end(),
            [](const LoginHistoryRecord* a, const LoginHistoryRecord* b) {
              if (a->at != b->at) return a->at > b->at;
              return a->id < b->id;
            });
  LoginHistoryPage page;
  for (const LoginHistoryRecord* rec : matching) {
    if (static_cast<int>(page.entries.size()) == limit) {
      const LoginHistoryRecord& last = page.entries.back();
      page.next_page_token = EncodeHistoryPageToken({absl::ToUnixMicros(last.at), last.id}, query);
      break;
    }
    page.entries.push_back(*rec);
  }
  return page;
}

}  // namespace crm::identity
