#include "services/identity/signing_keys.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/primitives.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::identity {
namespace {

// Transaction advisory lock key of key maintenance ("crm_skey" in ASCII).
// Advisory locks are per database, so only identity's replicas contend.
constexpr int64_t kSigningKeyLockKey = 0x63726d5f736b6579;
constexpr size_t kKidBytes = 16;
constexpr absl::string_view kAadPrefix = "crm.identity.signing_key.v1:";
constexpr absl::Duration kMinRetiredKept = absl::Seconds(15 * 60 + 30);

// Times cross the wire as whole microseconds since the Unix epoch.
#define CRM_TS_PARAM(n) "('epoch'::timestamptz + (" n ")::bigint * interval '1 microsecond')"
#define CRM_TS_COL(c) "(extract(epoch from " c ") * 1000000)::bigint"

// clang-format off
constexpr const char* kLockSql = "SELECT pg_advisory_xact_lock($1)";

// Keys not retired, or retired after $1 (micros): those still published.
constexpr const char* kSelectKeysSql =
    "SELECT kid, public_key, private_key_wrapped, " CRM_TS_COL("created_at") ", "
    CRM_TS_COL("activated_at") ", " CRM_TS_COL("retired_at") " "
    "FROM signing_keys WHERE retired_at IS NULL OR retired_at > " CRM_TS_PARAM("$1");

// $1 kid, $2 public key, $3 wrapped private key, $4 KEK version, $5 created,
// $6 activated (micros).
constexpr const char* kInsertKeySql =
    "INSERT INTO signing_keys (kid, public_key, private_key_wrapped, kek_version, created_at, "
    "    activated_at) "
    "VALUES ($1, $2, $3, $4, " CRM_TS_PARAM("$5") ", " CRM_TS_PARAM("$6") ")";

// $1 kid, $2 now (micros).
constexpr const char* kRetireKeySql =
    "UPDATE signing_keys SET retired_at = " CRM_TS_PARAM("$2") " "
    "WHERE kid = $1 AND retired_at IS NULL";
// clang-format on

#undef CRM_TS_COL
#undef CRM_TS_PARAM

struct KeyRow {
  PublishedKey key;
  std::optional<crypto::Ed25519PublicKey> public_key;  // key.public_key parsed
  std::string wrapped;
  std::shared_ptr<const auth::TokenSigner> signer;  // set for keys not retired
};

// Newest first: by activation, then creation, then kid (a total order every
// replica agrees on).
bool Newer(const KeyRow& a, const KeyRow& b) {
  return std::tie(a.key.activated_at, a.key.created_at, a.key.kid) >
         std::tie(b.key.activated_at, b.key.created_at, b.key.kid);
}

std::string Aad(absl::string_view kid) { return absl::StrCat(kAadPrefix, kid); }

// The signer of a stored key. The ring's FAILED_PRECONDITION (KEK version
// missing) and DATA_LOSS (modified, or wrapped for another kid) keep their
// codes, prefixed with the kid; a key not matching its public half is DATA_LOSS.
absl::StatusOr<std::shared_ptr<const auth::TokenSigner>> UnwrapSigner(const crypto::KeyRing& ring,
                                                                      const KeyRow& row) {
  const std::string& kid = row.key.kid;
  absl::StatusOr<crypto::SecretBytes> seed = ring.UnwrapSecret(row.wrapped, Aad(kid));
  if (!seed.ok()) {
    return absl::Status(seed.status().code(),
                        absl::StrCat("signing key ", kid, ": ", seed.status().message()));
  }
  absl::StatusOr<crypto::Ed25519PrivateKey> key = crypto::Ed25519PrivateKey::FromSeed(seed->view());
  if (!key.ok()) {
    return absl::DataLossError(absl::StrCat("signing key ", kid, ": not an Ed25519 seed"));
  }
  if (key->PublicKey().Raw() != row.key.public_key) {
    return absl::DataLossError(
        absl::StrCat("signing key ", kid, ": private key does not match the stored public key"));
  }
  return std::make_shared<const auth::TokenSigner>(*std::move(key), kid);
}

// A fresh key pair with a random kid, its seed wrapped for that kid.
absl::StatusOr<KeyRow> NewKey(const crypto::KeyRing& ring, absl::Time now,
                              absl::Time activated_at) {
  KeyRow row;
  row.key.kid = auth::Base64UrlEncode(crypto::RandomBytes(kKidBytes));
  const crypto::SecretBytes seed = crypto::RandomSecret(crypto::kEd25519SeedSize);
  CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                       crypto::Ed25519PrivateKey::FromSeed(seed.view()));
  CRM_ASSIGN_OR_RETURN(row.wrapped, ring.Wrap(seed.view(), Aad(row.key.kid)));
  row.public_key = key.PublicKey();
  row.key.public_key = row.public_key->Raw();
  row.key.created_at = now;
  row.key.activated_at = activated_at;
  row.signer = std::make_shared<const auth::TokenSigner>(std::move(key), row.key.kid);
  return row;
}

absl::Status CheckDuration(absl::string_view name, absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must be positive and finite"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SigningKeys>> SigningKeys::Create(pg::Pool& pool,
                                                                 const crypto::KeyRing& ring,
                                                                 const base::Clock& clock,
                                                                 SigningKeyOptions options) {
  CRM_RETURN_IF_ERROR(CheckDuration("rotate_after", options.rotate_after));
  CRM_RETURN_IF_ERROR(CheckDuration("publish_ahead", options.publish_ahead));
  CRM_RETURN_IF_ERROR(CheckDuration("retired_kept", options.retired_kept));
  if (options.publish_ahead >= options.rotate_after) {
    return absl::InvalidArgumentError("publish_ahead: must be less than rotate_after");
  }
  if (options.retired_kept < kMinRetiredKept) {
    return absl::InvalidArgumentError(
        "retired_kept: must be at least 15m30s (access-token lifetime + verifier leeway)");
  }
  return std::unique_ptr<SigningKeys>(new SigningKeys(pool, ring, clock, options));
}

absl::Status SigningKeys::Refresh() { return Sync(/*rotate=*/false); }

absl::Status SigningKeys::RotateNow() { return Sync(/*rotate=*/true); }

absl::Status SigningKeys::Sync(bool rotate) {
  absl::MutexLock sync_lock(&sync_mu_);
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now()));
  const int64_t now_us = absl::ToUnixMicros(now);
  // Everything, crypto included, happens before COMMIT: a replica whose ring
  // cannot unwrap the stored keys changes nothing.
  CRM_ASSIGN_OR_RETURN(
      std::vector<KeyRow> rows,
      pool_.TransactValue<std::vector<KeyRow>>(
          [&](pqxx::work& tx) -> absl::StatusOr<std::vector<KeyRow>> {
            tx.exec_params(kLockSql, kSigningKeyLockKey);
            std::vector<KeyRow> rows;
            for (const auto& r : tx.exec_params(
                     kSelectKeysSql, now_us - absl::ToInt64Microseconds(options_.retired_kept))) {
              KeyRow row;
              row.key.kid = r[0].as<std::string>();
              row.key.public_key = pqxx::binarystring(r[1]).str();
              row.wrapped = pqxx::binarystring(r[2]).str();
              row.key.created_at = absl::FromUnixMicros(r[3].as<int64_t>());
              row.key.activated_at = absl::FromUnixMicros(r[4].as<int64_t>());
              if (!r[5].is_null()) row.key.retired_at = absl::FromUnixMicros(r[5].as<int64_t>());
              absl::StatusOr<crypto::Ed25519PublicKey> public_key =
                  crypto::Ed25519PublicKey::FromRaw(row.key.public_key);
              if (!public_key.ok()) {
                return absl::DataLossError(
                    absl::StrCat("signing key ", row.key.kid, ": invalid public key"));
              }
              row.public_key = *std::move(public_key);
              if (!row.key.retired_at.has_value()) {
                CRM_ASSIGN_OR_RETURN(row.signer, UnwrapSigner(ring_, row));
              }
              rows.push_back(std::move(row));
            }
            std::sort(rows.begin(), rows.end(), Newer);

            const KeyRow* active = nullptr;
            bool pending = false;
            for (const KeyRow& row : rows) {
              if (row.key.retired_at.has_value()) continue;
              if (row.key.activated_at > now) {
                pending = true;
              } else if (active == nullptr) {
                active = &row;
              }
            }
            std::optional<absl::Time> new_activation;
            if (active == nullptr) {
              new_activation = now;
            } else if (rotate ||
                       (!pending && now - active->key.activated_at >= options_.rotate_after)) {
              new_activation = now + options_.publish_ahead;
            }
            if (new_activation.has_value()) {
              CRM_ASSIGN_OR_RETURN(KeyRow row, NewKey(ring_, now, *new_activation));
              tx.exec_params(kInsertKeySql, row.key.kid, pqxx::binarystring(row.key.public_key),
                             pqxx::binarystring(row.wrapped),
                             static_cast<int64_t>(ring_.active_version()), now_us,
                             absl::ToUnixMicros(*new_activation));
              rows.insert(std::upper_bound(rows.begin(), rows.end(), row, Newer), std::move(row));
            }

            // Every live key older than the newest active one is superseded.
            bool seen_active = false;
            for (KeyRow& row : rows) {
              if (row.key.retired_at.has_value() || row.key.activated_at > now) continue;
              if (!seen_active) {
                seen_active = true;
                continue;
              }
              tx.exec_params(kRetireKeySql, row.key.kid, now_us);
              row.key.retired_at = now;
              row.signer.reset();
            }
            return rows;
          }));

  std::vector<PublishedKey> published;
  std::vector<std::pair<absl::Time, std::shared_ptr<const auth::TokenSigner>>> signers;
  auth::KeySet::KeyMap key_map;
  for (KeyRow& row : rows) {
    key_map.emplace(row.key.kid, *std::move(row.public_key));
    if (row.signer != nullptr) signers.emplace_back(row.key.activated_at, std::move(row.signer));
    published.push_back(std::move(row.key));
  }
  absl::MutexLock lock(&mu_);
  published_ = std::move(published);
  signers_ = std::move(signers);
  key_set_.Replace(std::move(key_map));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const auth::TokenSigner>> SigningKeys::CurrentSigner() const {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  if (signers_.empty()) {
    return absl::FailedPreconditionError("signing keys not loaded yet: call Refresh");
  }
  for (const auto& [activated_at, signer] : signers_) {
    if (activated_at <= now) return signer;
  }
  return absl::FailedPreconditionError("no signing key is active yet");
}

std::vector<PublishedKey> SigningKeys::Published() const {
  absl::MutexLock lock(&mu_);
  return published_;
}

}  // namespace crm::identity
