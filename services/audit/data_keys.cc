#include "services/audit/data_keys.h"

#include <algorithm>
#include <pqxx/binarystring>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/data_key.h"
#include "libs/pg/array.h"

namespace crm::audit {

namespace {

// Inserts missing scopes with fresh wrapped keys (a concurrent inserter
// wins: ON CONFLICT DO NOTHING), then reads every asked scope.
constexpr char kInsertKey[] =
    "INSERT INTO audit_data_keys (key_scope, wrapped, created_at) "
    "VALUES ($1, $2, to_timestamp($3::double precision / 1e6)) ON CONFLICT (key_scope) DO NOTHING";
constexpr char kSelectKeys[] =
    "SELECT key_scope, wrapped FROM audit_data_keys WHERE key_scope = ANY($1::text[])";
constexpr char kDestroyKey[] =
    "INSERT INTO audit_data_keys (key_scope, wrapped, created_at, destroyed_at) "
    "VALUES ($1, NULL, to_timestamp($2::double precision / 1e6), "
    "to_timestamp($2::double precision / 1e6)) "
    "ON CONFLICT (key_scope) DO UPDATE SET wrapped = NULL, "
    "destroyed_at = COALESCE(audit_data_keys.destroyed_at, EXCLUDED.destroyed_at)";
constexpr char kWasLive[] =
    "SELECT wrapped IS NOT NULL FROM audit_data_keys WHERE key_scope = $1 FOR UPDATE";

}  // namespace

absl::StatusOr<DataKey> DataKeys::Unwrap(const std::string& scope,
                                         const std::string& wrapped) const {
  absl::StatusOr<crypto::SecretBytes> key =
      crypto::UnwrapDataKey(ring_, wrapped, kDataKeyPurpose, scope);
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("audit data key does not unwrap: ", key.status().message()));
  }
  return std::make_shared<const crypto::SecretBytes>(*std::move(key));
}

void DataKeys::Remember(const std::string& scope, DataKey key) {
  if (cache_.size() >= capacity_) cache_.clear();
  cache_[scope] = Cached{std::move(key), clock_.Now() + kDataKeyCacheTtl};
}

absl::StatusOr<absl::flat_hash_map<std::string, DataKey>> DataKeys::GetOrCreate(
    const std::vector<std::string>& scopes) {
  absl::flat_hash_map<std::string, DataKey> out;
  std::vector<std::string> missing;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    for (const std::string& s : scopes) {
      if (out.contains(s)) continue;
      auto it = cache_.find(s);
      if (it != cache_.end() && it->second.until > now) {
        out[s] = it->second.key;
      } else if (std::find(missing.begin(), missing.end(), s) == missing.end()) {
        missing.push_back(s);
      }
    }
  }
  if (missing.empty()) return out;
  // Inserted in one order by every replica, so two batches creating the same
  // scopes cannot deadlock on each other's rows.
  std::sort(missing.begin(), missing.end());
  // Fresh keys for every miss; only those whose insert wins are used.
  std::vector<std::string> wrapped_new;
  for (const std::string& s : missing) {
    crypto::SecretBytes key = crypto::NewDataKey();
    CRM_ASSIGN_OR_RETURN(std::string w, crypto::WrapDataKey(ring_, key, kDataKeyPurpose, s));
    wrapped_new.push_back(std::move(w));
  }
  const int64_t now = absl::ToUnixMicros(clock_.Now());
  std::vector<std::pair<std::string, std::optional<std::string>>> rows;
  CRM_RETURN_IF_ERROR(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    rows.clear();
    for (size_t i = 0; i < missing.size(); ++i) {
      tx.exec_params(kInsertKey, missing[i],
                     pqxx::binarystring(wrapped_new[i].data(), wrapped_new[i].size()), now);
    }
    for (const auto& row : tx.exec_params(kSelectKeys, pg::ArrayLiteral(missing))) {
      std::optional<std::string> w;
      if (!row[1].is_null()) w = pqxx::binarystring(row[1]).str();
      rows.emplace_back(row[0].as<std::string>(), std::move(w));
    }
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  for (auto& [scope, wrapped] : rows) {
    if (!wrapped.has_value()) {
      out[scope] = nullptr;  // destroyed
      continue;
    }
    CRM_ASSIGN_OR_RETURN(DataKey key, Unwrap(scope, *wrapped));
    Remember(scope, key);
    out[scope] = std::move(key);
  }
  return out;
}

absl::StatusOr<DataKey> DataKeys::Get(const std::string& scope) {
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(scope);
    if (it != cache_.end() && it->second.until > clock_.Now()) return it->second.key;
  }
  std::optional<std::string> wrapped;
  CRM_RETURN_IF_ERROR(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    wrapped.reset();
    for (const auto& row : tx.exec_params(kSelectKeys, pg::ArrayLiteral({scope}))) {
      if (!row[1].is_null()) wrapped = pqxx::binarystring(row[1]).str();
    }
    return absl::OkStatus();
  }));
  if (!wrapped.has_value()) return DataKey();
  CRM_ASSIGN_OR_RETURN(DataKey key, Unwrap(scope, *wrapped));
  absl::MutexLock lock(&mu_);
  Remember(scope, key);
  return key;
}

absl::StatusOr<bool> DataKeys::Destroy(const std::string& scope) {
  bool was_live = false;
  CRM_RETURN_IF_ERROR(pool_.Transact([&](pqxx::work& tx) -> absl::Status {
    was_live = false;
    for (const auto& row : tx.exec_params(kWasLive, scope)) was_live = row[0].as<bool>();
    tx.exec_params(kDestroyKey, scope, absl::ToUnixMicros(clock_.Now()));
    return absl::OkStatus();
  }));
  absl::MutexLock lock(&mu_);
  cache_.erase(scope);
  return was_live;
}

}  // namespace crm::audit
