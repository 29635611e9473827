#include "libs/auth/token_verifier.h"

#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"
#include "libs/json/json.h"

namespace crm::auth {
namespace {

absl::Status Refuse(absl::string_view reason) { return absl::UnauthenticatedError(reason); }

// Header and payload JSON limits: both fit in the token-size limit anyway;
// the depth limit keeps nesting shallow (claims need depth 3 at most).
json::ParseOptions JsonLimits(size_t max_size) {
  json::ParseOptions o;
  o.max_size = max_size;
  o.max_depth = 4;
  return o;
}

absl::StatusOr<json::Value> DecodeJsonSegment(absl::string_view segment, size_t max_size) {
  std::optional<std::string> bytes = Base64UrlDecode(segment);
  if (!bytes.has_value()) return Refuse("access token malformed");
  absl::StatusOr<json::Value> v = json::Parse(*bytes, JsonLimits(max_size));
  if (!v.ok() || !v->is_object()) return Refuse("access token malformed");
  return v;
}

// A required non-empty string claim.
absl::StatusOr<std::string> RequiredString(const json::Value& claims, absl::string_view name) {
  const json::Value* v = claims.Find(name);
  if (v == nullptr || !v->is_string() || v->string_value().empty()) {
    return Refuse("access token claims invalid");
  }
  return v->string_value();
}

// An optional array of strings; absent gives an empty vector.
absl::StatusOr<std::vector<std::string>> StringArray(const json::Value& claims,
                                                     absl::string_view name) {
  std::vector<std::string> out;
  const json::Value* v = claims.Find(name);
  if (v == nullptr) return out;
  if (!v->is_array()) return Refuse("access token claims invalid");
  out.reserve(v->array().size());
  for (const json::Value& item : v->array()) {
    if (!item.is_string()) return Refuse("access token claims invalid");
    out.push_back(item.string_value());
  }
  return out;
}

// An integer NumericDate; `required` false allows absence (nullopt).
absl::StatusOr<std::optional<absl::Time>> TimeClaim(const json::Value& claims,
                                                    absl::string_view name, bool required) {
  const json::Value* v = claims.Find(name);
  if (v == nullptr) {
    if (required) return Refuse("access token claims invalid");
    return std::optional<absl::Time>();
  }
  std::optional<int64_t> secs = v->AsInt64();
  if (!secs.has_value()) return Refuse("access token claims invalid");
  return std::optional<absl::Time>(absl::FromUnixSeconds(*secs));
}

bool AudienceMatches(const json::Value* aud, absl::string_view expected) {
  if (aud == nullptr) return false;
  if (aud->is_string()) return aud->string_value() == expected;
  if (!aud->is_array()) return false;
  bool found = false;
  for (const json::Value& a : aud->array()) {
    if (!a.is_string()) return false;
    found = found || a.string_value() == expected;
  }
  return found;
}

}  // namespace

TokenVerifier::TokenVerifier(TokenVerifierOptions options, const KeySet& keys,
                             RevocationChecker& revocation, const base::Clock& clock)
    : options_(std::move(options)),
      keys_(keys),
      revocation_(revocation),
      clock_(clock),
      cache_(options_.cache_capacity) {}

absl::StatusOr<std::shared_ptr<const Principal>> TokenVerifier::Verify(absl::string_view token) {
  if (token.empty()) return Refuse("access token missing");
  if (token.size() > options_.max_token_size) return Refuse("access token too large");
  const absl::Time now = clock_.Now();
  const std::shared_ptr<const KeySet::Snapshot> keys = keys_.Get();
  const std::string hash = crypto::Sha256(token);

  std::shared_ptr<const Principal> principal = cache_.Lookup(hash, now, keys->generation);
  if (principal == nullptr) {
    CRM_ASSIGN_OR_RETURN(principal, VerifyUncached(token, *keys, now));
    cache_.Insert(hash, principal, principal->expires_at + options_.leeway, keys->generation);
  }
  CRM_RETURN_IF_ERROR(CheckRevocation(*principal));
  return principal;
}

absl::Status TokenVerifier::CheckRevocation(const Principal& principal) {
  absl::StatusOr<bool> revoked = revocation_.IsRevoked(principal.session_id);
  if (!revoked.ok()) {
    return absl::UnavailableError("access token revocation check unavailable");
  }
  if (*revoked) return Refuse("access token session revoked");
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Principal>> TokenVerifier::VerifyUncached(
    absl::string_view token, const KeySet::Snapshot& keys, absl::Time now) const {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty()) {
    return Refuse("access token malformed");
  }

  // Header: algorithm and key first, before anything else is trusted.
  CRM_ASSIGN_OR_RETURN(json::Value header, DecodeJsonSegment(parts[0], options_.max_token_size));
  const json::Value* alg = header.Find("alg");
  if (alg == nullptr || !alg->is_string() || alg->string_value() != "EdDSA") {
    return Refuse("access token algorithm not accepted");
  }
  const json::Value* typ = header.Find("typ");
  if (typ != nullptr &&
      (!typ->is_string() || (typ->string_value() != "JWT" && typ->string_value() != "at+jwt"))) {
    return Refuse("access token type not accepted");
  }
  if (header.Find("crit") != nullptr) return Refuse("access token header not accepted");
  const json::Value* kid = header.Find("kid");
  if (kid == nullptr || !kid->is_string()) return Refuse("access token key unknown");
  auto key = keys.keys.find(kid->string_value());
  if (key == keys.keys.end()) return Refuse("access token key unknown");

  // Signature over the exact bytes received.
  std::optional<std::string> signature = Base64UrlDecode(parts[2]);
  if (!signature.has_value()) return Refuse("access token malformed");
  const absl::string_view signing_input = token.substr(0, parts[0].size() + 1 + parts[1].size());
  if (!key->second.Verify(signing_input, *signature)) {
    return Refuse("access token signature invalid");
  }

  // Claims.
  CRM_ASSIGN_OR_RETURN(json::Value claims, DecodeJsonSegment(parts[1], options_.max_token_size));
  const json::Value* iss = claims.Find("iss");
  if (iss == nullptr || !iss->is_string() || iss->string_value() != options_.issuer) {
    return Refuse("access token issuer not accepted");
  }
  if (!AudienceMatches(claims.Find("aud"), options_.audience)) {
    return Refuse("access token audience not accepted");
  }
  CRM_ASSIGN_OR_RETURN(std::optional<absl::Time> exp, TimeClaim(claims, "exp", true));
  CRM_ASSIGN_OR_RETURN(std::optional<absl::Time> nbf, TimeClaim(claims, "nbf", false));
  CRM_ASSIGN_OR_RETURN(std::optional<absl::Time> iat, TimeClaim(claims, "iat", false));
  (void)iat;  // Checked for type only; exp bounds the lifetime.
  if (now >= *exp + options_.leeway) return Refuse("access token expired");
  if (nbf.has_value() && now + options_.leeway < *nbf) {
    return Refuse("access token not yet valid");
  }

  auto p = std::make_shared<Principal>();
  CRM_ASSIGN_OR_RETURN(p->user_id, RequiredString(claims, "sub"));
  CRM_ASSIGN_OR_RETURN(p->session_id, RequiredString(claims, "sid"));
  CRM_ASSIGN_OR_RETURN(std::vector<std::string> permissions, StringArray(claims, "permissions"));
  p->permissions.insert(permissions.begin(), permissions.end());
  CRM_ASSIGN_OR_RETURN(p->teams, StringArray(claims, "teams"));
  p->expires_at = *exp;
  if (const json::Value* cnf = claims.Find("cnf"); cnf != nullptr) {
    const json::Value* x5t = cnf->Find("x5t#S256");
    // 43 characters: the unpadded base64url of a 32-byte SHA-256.
    if (x5t == nullptr || !x5t->is_string() || x5t->string_value().size() != 43 ||
        !Base64UrlDecode(x5t->string_value()).has_value()) {
      return Refuse("access token claims invalid");
    }
    p->cert_thumbprint = x5t->string_value();
  }
  return std::shared_ptr<const Principal>(std::move(p));
}

}  // namespace crm::auth
