#include "services/consent/check_cache.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <pqxx/pqxx>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"

namespace crm::consent {
namespace {

// Appends the 16 bytes of a canonical UUID (the caller validated it): keys
// stay short, and a 10,000-key MGET costs Redis about half as much as with
// the 36-character form.
void AppendIdBytes(absl::string_view uuid, std::string& out) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < uuid.size(); ++i) {
    if (uuid[i] == '-') continue;
    out.push_back(static_cast<char>((nibble(uuid[i]) << 4) | nibble(uuid[i + 1])));
    ++i;
  }
}
std::string GenKey(absl::string_view subject) {
  std::string key = "cg:";
  AppendIdBytes(subject, key);
  return key;
}
std::string StateKey(absl::string_view subject, absl::string_view purpose) {
  std::string key = "cs:";
  AppendIdBytes(subject, key);
  absl::StrAppend(&key, ":", purpose);
  return key;
}

// MGET of the keys `key(i)` for i < n, built in one buffer.
template <typename KeyFn>
absl::StatusOr<redis::Reply> MultiGet(redis::Client& redis, size_t n, KeyFn key) {
  std::string buffer;
  std::vector<size_t> ends;
  ends.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    key(i, buffer);
    ends.push_back(buffer.size());
  }
  std::vector<absl::string_view> argv;
  argv.reserve(n + 1);
  argv.push_back("MGET");
  size_t begin = 0;
  for (size_t end : ends) {
    argv.push_back(absl::string_view(buffer).substr(begin, end - begin));
    begin = end;
  }
  return redis.CommandArgv(argv);
}

void Count(prometheus::Counter* c, size_t n) {
  if (c != nullptr && n > 0) c->Increment(static_cast<double>(n));
}

// KEYS: generation key, state key, ... ARGV: expected generation, value, ...,
// then the TTL in ms. Sets a state key only where its subject's generation
// is the expected one (a missing generation key reads as "0").
constexpr char kPutScript[] = R"lua(
local ttl = ARGV[#ARGV]
for i = 1, #KEYS, 2 do
  if (redis.call('GET', KEYS[i]) or '0') == ARGV[i] then
    redis.call('SET', KEYS[i + 1], ARGV[i + 1], 'PX', ttl)
  end
end
return 0
)lua";

// cache_invalidations (migration 0005).
constexpr char kAddInvalidation[] =
    "INSERT INTO cache_invalidations (subject_id, purpose_ids) VALUES ($1, $2) RETURNING id";
constexpr char kDeleteInvalidation[] = "DELETE FROM cache_invalidations WHERE id = $1";
constexpr char kPendingInvalidations[] =
    "SELECT id, subject_id::text, purpose_ids FROM cache_invalidations ORDER BY id LIMIT 1000";

}  // namespace

std::string EncodeStanding(const ConsentStore::Standing& s) {
  const PurposeState& st = s.state;
  return absl::StrCat(
      static_cast<int>(st.kind), "|",
      st.expires_at == absl::InfiniteFuture() ? int64_t{-1} : absl::ToUnixMicros(st.expires_at),
      "|", s.restricted ? 1 : 0);
}

std::optional<ConsentStore::Standing> DecodeStanding(absl::string_view value) {
  // "<kind>|<expires>|<restricted>": kind is one digit, restricted one.
  if (value.size() < 5 || value[1] != '|' || value[value.size() - 2] != '|') return std::nullopt;
  const char kind = value[0];
  const char restricted = value.back();
  int64_t expires = 0;
  if (kind < '0' || kind > '3' || (restricted != '0' && restricted != '1') ||
      !absl::SimpleAtoi(value.substr(2, value.size() - 4), &expires)) {
    return std::nullopt;
  }
  ConsentStore::Standing s;
  s.state.kind = static_cast<PurposeState::Kind>(kind - '0');
  s.state.expires_at = expires < 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(expires);
  s.restricted = restricted == '1';
  return s;
}

CheckCache::CheckCache(redis::Client* redis, absl::Duration ttl, prometheus::Registry* registry)
    : redis_(redis), ttl_(ttl) {
  if (registry == nullptr) return;
  auto& family = prometheus::BuildCounter()
                     .Name("crm_consent_check_cache_total")
                     .Help(
                         "Consent checks by cache result: hit, miss (read PostgreSQL), error "
                         "(Redis unreachable: read PostgreSQL)")
                     .Register(*registry);
  hit_ = &family.Add({{"result", "hit"}});
  miss_ = &family.Add({{"result", "miss"}});
  error_ = &family.Add({{"result", "error"}});
  bypass_count_ = &family.Add({{"result", "bypass"}});
}

void CheckCache::NoteRedisFailure() {
  absl::MutexLock l(&mu_);
  ++failures_;
  if (!bypass_.exchange(true)) log::Warn("consent.cache_bypassed", {});
}

std::vector<std::optional<ConsentStore::Standing>> CheckCache::GetMany(
    const std::vector<std::string>& subjects, const std::string& purpose) {
  std::vector<std::optional<ConsentStore::Standing>> out(subjects.size());
  if (redis_ == nullptr || subjects.empty()) return out;
  if (bypassed()) {
    Count(bypass_count_, subjects.size());
    return out;
  }
  absl::StatusOr<redis::Reply> r =
      MultiGet(*redis_, subjects.size(), [&](size_t i, std::string& out) {
        out += "cs:";
        AppendIdBytes(subjects[i], out);
        absl::StrAppend(&out, ":", purpose);
      });
  if (!r.ok() || r->type != redis::Reply::Type::kArray || r->elements.size() != subjects.size()) {
    Count(error_, subjects.size());
    NoteRedisFailure();
    return out;
  }
  size_t hits = 0;
  for (size_t i = 0; i < subjects.size(); ++i) {
    if (r->elements[i].is_nil()) continue;
    out[i] = DecodeStanding(r->elements[i].str);
    if (out[i].has_value()) ++hits;
  }
  Count(hit_, hits);
  Count(miss_, subjects.size() - hits);
  return out;
}

void CheckCache::GetAsync(const std::string& subject, const std::string& purpose,
                          std::function<void(std::optional<ConsentStore::Standing>)> done) {
  if (redis_ == nullptr) {
    done(std::nullopt);
    return;
  }
  if (bypassed()) {
    Count(bypass_count_, 1);
    done(std::nullopt);
    return;
  }
  const std::string key = StateKey(subject, purpose);
  redis_->CommandArgvAsync(
      {"GET", key}, [this, done = std::move(done)](absl::StatusOr<redis::Reply> r) {
        if (!r.ok() || (!r->is_nil() && r->type != redis::Reply::Type::kString)) {
          Count(error_, 1);
          NoteRedisFailure();
          done(std::nullopt);
          return;
        }
        std::optional<ConsentStore::Standing> standing;
        if (!r->is_nil()) standing = DecodeStanding(r->str);
        Count(standing.has_value() ? hit_ : miss_, 1);
        done(standing);
      });
}

std::vector<std::string> CheckCache::Generations(const std::vector<std::string>& subjects,
                                                 const std::vector<size_t>& which) {
  std::vector<std::string> out(which.size());
  if (redis_ == nullptr || which.empty() || bypassed()) return out;
  absl::StatusOr<redis::Reply> r = MultiGet(*redis_, which.size(), [&](size_t k, std::string& out) {
    out += "cg:";
    AppendIdBytes(subjects[which[k]], out);
  });
  if (!r.ok() || r->type != redis::Reply::Type::kArray || r->elements.size() != which.size()) {
    NoteRedisFailure();
    return out;
  }
  for (size_t k = 0; k < which.size(); ++k) {
    out[k] = r->elements[k].is_nil() ? "0" : r->elements[k].str;
  }
  return out;
}

void CheckCache::PutMany(const std::vector<std::string>& subjects, const std::vector<size_t>& which,
                         const std::string& purpose, const std::vector<std::string>& generations,
                         const std::vector<ConsentStore::Standing>& standings) {
  if (redis_ == nullptr || which.size() != generations.size() || which.size() != standings.size()) {
    return;
  }
  std::vector<std::string> keys, values;
  keys.reserve(2 * which.size());
  values.reserve(2 * which.size());
  for (size_t k = 0; k < which.size(); ++k) {
    if (generations[k].empty()) continue;
    keys.push_back(GenKey(subjects[which[k]]));
    keys.push_back(StateKey(subjects[which[k]], purpose));
    values.push_back(generations[k]);
    values.push_back(EncodeStanding(standings[k]));
  }
  if (keys.empty()) return;
  const std::string key_count = absl::StrCat(keys.size());
  const std::string ttl_ms = absl::StrCat(absl::ToInt64Milliseconds(ttl_));
  std::vector<absl::string_view> argv = {"EVAL", kPutScript, key_count};
  argv.reserve(3 + keys.size() + values.size() + 1);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), values.begin(), values.end());
  argv.push_back(ttl_ms);
  (void)redis_->CommandArgv(argv);  // best effort: a failed put is a later miss
}

absl::Status CheckCache::Invalidate(const std::string& subject,
                                    const std::vector<std::string>& purpose_ids) {
  if (redis_ == nullptr) return absl::OkStatus();
  redis::Pipeline p;
  p.Add("INCR", GenKey(subject));
  p.Add("PEXPIRE", GenKey(subject), absl::StrCat(absl::ToInt64Milliseconds(2 * ttl_)));
  if (!purpose_ids.empty()) {
    std::vector<std::string> keys;
    for (const std::string& purpose : purpose_ids) keys.push_back(StateKey(subject, purpose));
    std::vector<absl::string_view> del = {"DEL"};
    del.insert(del.end(), keys.begin(), keys.end());
    p.AddArgv(del);
  }
  absl::StatusOr<std::vector<redis::Reply>> r = redis_->Execute(p);
  bool failed = !r.ok();
  if (r.ok()) {
    for (const redis::Reply& reply : *r) failed = failed || reply.is_error();
  }
  if (!failed) return absl::OkStatus();
  Count(error_, 1);
  NoteRedisFailure();
  const absl::Status status = r.ok() ? absl::InternalError("error reply") : r.status();
  log::Warn("consent.cache_invalidate_failed", {{"status", status}});
  return absl::UnavailableError(absl::StrCat("redis: invalidation failed: ", status.message()));
}

absl::StatusOr<int64_t> CheckCache::Pending(pqxx::transaction_base& tx, const std::string& subject,
                                            const std::vector<std::string>& purpose_ids) const {
  if (redis_ == nullptr) return 0;
  return tx.exec_params1(kAddInvalidation, subject, absl::StrJoin(purpose_ids, ","))[0]
      .as<int64_t>();
}

void CheckCache::Committed(pg::Pool& db, int64_t id, const std::string& subject,
                           const std::vector<std::string>& purpose_ids) {
  if (redis_ == nullptr || !Invalidate(subject, purpose_ids).ok()) return;
  // A failure here only repeats the invalidation in the next Repair.
  (void)db.Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec_params(kDeleteInvalidation, id);
    return absl::OkStatus();
  });
}

absl::Status CheckCache::Repair(pg::Pool& db) {
  if (redis_ == nullptr) return absl::OkStatus();
  struct Row {
    int64_t id;
    std::string subject;
    std::vector<std::string> purposes;
  };
  uint64_t failures_before = 0;
  {
    absl::MutexLock l(&mu_);
    failures_before = failures_;
  }
  std::vector<Row> rows;
  CRM_RETURN_IF_ERROR(db.Transact([&](pqxx::work& tx) -> absl::Status {
    rows.clear();
    for (const pqxx::row& r : tx.exec(kPendingInvalidations)) {
      rows.push_back({r[0].as<int64_t>(), r[1].as<std::string>(),
                      absl::StrSplit(r[2].as<std::string>(), ',', absl::SkipEmpty())});
    }
    return absl::OkStatus();
  }));
  for (const Row& row : rows) {
    CRM_RETURN_IF_ERROR(Invalidate(row.subject, row.purposes));
    CRM_RETURN_IF_ERROR(db.Transact([&](pqxx::work& tx) -> absl::Status {
      tx.exec_params(kDeleteInvalidation, row.id);
      return absl::OkStatus();
    }));
  }
  if (!bypassed() || rows.size() == 1000) return absl::OkStatus();
  // Nothing left to invalidate (as of the SELECT; a later change's own row
  // is its writer's or the next round's): Redis may be trusted again once
  // it answers.
  absl::StatusOr<redis::Reply> pong = redis_->Command("PING");
  if (!pong.ok() || pong->is_error()) {
    return absl::UnavailableError("redis: not answering; the check cache stays bypassed");
  }
  absl::MutexLock l(&mu_);
  // A failure since the SELECT may have left a row it did not see.
  if (failures_ != failures_before) return absl::OkStatus();
  bypass_.store(false);
  log::Info("consent.cache_restored", {});
  return absl::OkStatus();
}

}  // namespace crm::consent
