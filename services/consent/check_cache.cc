#include "services/consent/check_cache.h"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/log/log.h"

namespace crm::consent {
namespace {

std::string GenKey(const std::string& subject) { return absl::StrCat("consent:gen:", subject); }
std::string StateKey(const std::string& subject, const std::string& purpose) {
  return absl::StrCat("consent:state:", subject, ":", purpose);
}

void Count(prometheus::Counter* c) {
  if (c != nullptr) c->Increment();
}

}  // namespace

std::string EncodeStanding(const std::string& generation, const ConsentStore::Standing& s) {
  const PurposeState& st = s.state;
  return absl::StrCat(
      generation, "|", static_cast<int>(st.kind), "|",
      st.expires_at == absl::InfiniteFuture() ? int64_t{-1} : absl::ToUnixMicros(st.expires_at),
      "|", s.restricted ? 1 : 0);
}

std::optional<ConsentStore::Standing> DecodeStanding(const std::string& value,
                                                     const std::string& generation) {
  std::vector<absl::string_view> parts = absl::StrSplit(value, '|');
  int kind = 0;
  int64_t expires = 0;
  if (parts.size() != 4 || parts[0] != generation || !absl::SimpleAtoi(parts[1], &kind) ||
      kind < 0 || kind > 3 || !absl::SimpleAtoi(parts[2], &expires) ||
      (parts[3] != "0" && parts[3] != "1")) {
    return std::nullopt;
  }
  ConsentStore::Standing s;
  s.state.kind = static_cast<PurposeState::Kind>(kind);
  s.state.expires_at = expires < 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(expires);
  s.restricted = parts[3] == "1";
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
}

std::vector<CheckCache::Lookup> CheckCache::GetMany(const std::vector<std::string>& subjects,
                                                    const std::string& purpose) {
  std::vector<Lookup> out(subjects.size());
  if (redis_ == nullptr || subjects.empty()) return out;
  std::vector<std::string> keys;
  keys.reserve(2 * subjects.size() + 1);
  keys.push_back("MGET");
  for (const std::string& s : subjects) {
    keys.push_back(GenKey(s));
    keys.push_back(StateKey(s, purpose));
  }
  std::vector<absl::string_view> argv(keys.begin(), keys.end());
  absl::StatusOr<redis::Reply> r = redis_->CommandArgv(argv);
  if (!r.ok() || r->type != redis::Reply::Type::kArray ||
      r->elements.size() != 2 * subjects.size()) {
    for (size_t i = 0; i < subjects.size(); ++i) Count(error_);
    return out;
  }
  for (size_t i = 0; i < subjects.size(); ++i) {
    const redis::Reply& gen = r->elements[2 * i];
    const redis::Reply& state = r->elements[2 * i + 1];
    out[i].generation = gen.is_nil() ? "0" : gen.str;
    if (!state.is_nil()) out[i].standing = DecodeStanding(state.str, out[i].generation);
    Count(out[i].standing.has_value() ? hit_ : miss_);
  }
  return out;
}

void CheckCache::PutMany(const std::vector<std::string>& subjects, const std::vector<size_t>& which,
                         const std::string& purpose, const std::vector<Lookup>& lookups,
                         const std::vector<ConsentStore::Standing>& standings) {
  if (redis_ == nullptr) return;
  redis::Pipeline p;
  const std::string ttl_ms = absl::StrCat(absl::ToInt64Milliseconds(ttl_));
  for (size_t i : which) {
    if (lookups[i].generation.empty()) continue;
    p.Add("SET", StateKey(subjects[i], purpose),
          EncodeStanding(lookups[i].generation, standings[i]), "PX", ttl_ms);
  }
  if (p.size() > 0) (void)redis_->Execute(p);  // best effort, as Put
}

void CheckCache::Invalidate(const std::string& subject) {
  if (redis_ == nullptr) return;
  redis::Pipeline p;
  p.Add("INCR", GenKey(subject));
  p.Add("PEXPIRE", GenKey(subject), absl::StrCat(absl::ToInt64Milliseconds(2 * ttl_)));
  absl::StatusOr<std::vector<redis::Reply>> r = redis_->Execute(p);
  if (!r.ok() || r->empty() || r->front().is_error()) {
    Count(error_);
    log::Warn("consent.cache_invalidate_failed",
              {{"status", r.ok() ? absl::InternalError("error reply") : r.status()}});
  }
}

}  // namespace crm::consent
