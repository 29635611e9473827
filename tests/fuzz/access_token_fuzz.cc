// Fuzz target `access_token`: TokenVerifier (libs/auth) on hostile access
// tokens, in two ways per input:
//  1. the input as the bearer token itself, verified twice: with a key set
//     whose key is generated at start-up (the fuzzer cannot know it), where
//     every token must be refused; and with a key set holding a fixed key,
//     where a token may be accepted only if its signature is exactly the one
//     that key makes over `header.payload` (Ed25519 is deterministic), i.e.
//     only if it was genuinely minted;
//  2. the input as "<header JSON>\n<payload JSON>", signed with the fixed key:
//     this reaches the header and claim checks behind the signature. A token
//     accepted here must satisfy every rule of token_verifier.h (alg EdDSA,
//     known kid, no crit, issuer, audience, times, sub and sid), its Principal
//     must carry exactly the claims signed, and the same bytes with the
//     unknown key must still be refused.
// Every refusal must be UNAUTHENTICATED with one of the verifier's fixed
// reasons, so no part of a token can reach a log through the message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "libs/auth/base64url.h"
#include "libs/auth/key_set.h"
#include "libs/auth/revocation.h"
#include "libs/auth/token_signer.h"
#include "libs/auth/token_verifier.h"
#include "libs/base/clock.h"
#include "libs/crypto/ed25519.h"
#include "libs/json/json.h"

namespace {

using ::crm::auth::Principal;

constexpr char kKid[] = "k1";
constexpr char kIssuer[] = "crm-identity";
constexpr char kAudience[] = "crm-test";
constexpr char kRevokedSession[] = "revoked-session";

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (access_token): %s\n", property);
  std::abort();
}

crm::crypto::Ed25519PrivateKey Must(absl::StatusOr<crm::crypto::Ed25519PrivateKey> key) {
  if (!key.ok()) Fail("test set-up: no key");
  return *std::move(key);
}

struct World {
  crm::base::FakeClock clock;  // 2027-01-15
  crm::auth::InMemoryRevocationChecker revocation;
  // Fixed: tokens made with it are "genuinely minted" by this harness.
  crm::crypto::Ed25519PrivateKey known = Must(
      crm::crypto::Ed25519PrivateKey::FromSeed(std::string(crm::crypto::kEd25519SeedSize, '\x42')));
  // Fresh on every start: no input can carry a signature it makes.
  crm::crypto::Ed25519PrivateKey unknown = Must(crm::crypto::Ed25519PrivateKey::Generate());
  crm::auth::KeySet known_keys{{{kKid, known.PublicKey()}}};
  crm::auth::KeySet unknown_keys{{{kKid, unknown.PublicKey()}}};
  // No cache: each input is judged on its own, reproducibly.
  crm::auth::TokenVerifier with_known{Options(), known_keys, revocation, clock};
  crm::auth::TokenVerifier with_unknown{Options(), unknown_keys, revocation, clock};

  World() { revocation.Revoke(kRevokedSession); }

  static crm::auth::TokenVerifierOptions Options() {
    crm::auth::TokenVerifierOptions o;
    o.issuer = kIssuer;
    o.audience = kAudience;
    o.cache_capacity = 0;
    return o;
  }
};

void CheckRefusal(const absl::Status& status) {
  static const auto* const kReasons = new absl::flat_hash_set<std::string>{
      "access token missing",
      "access token too large",
      "access token malformed",
      "access token algorithm not accepted",
      "access token type not accepted",
      "access token header not accepted",
      "access token key unknown",
      "access token signature invalid",
      "access token issuer not accepted",
      "access token audience not accepted",
      "access token claims invalid",
      "access token expired",
      "access token not yet valid",
      "access token session revoked",
  };
  if (status.code() != absl::StatusCode::kUnauthenticated) Fail("refusal is not UNAUTHENTICATED");
  if (!kReasons->contains(status.message())) Fail("refusal reason is not one of the fixed set");
}

const crm::json::Value& Member(const crm::json::Value& object, absl::string_view name) {
  const crm::json::Value* v = object.Find(name);
  if (v == nullptr) Fail("accepted token lacks a required member");
  return *v;
}

// A token accepted with the fixed key: check it against what was signed.
void CheckAccepted(absl::string_view token, const Principal& p, const World& w) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) Fail("accepted token is not three segments");
  const std::string signing_input(token.substr(0, parts[0].size() + 1 + parts[1].size()));
  absl::StatusOr<std::string> signature = w.known.Sign(signing_input);
  if (!signature.ok() || crm::auth::Base64UrlEncode(*signature) != parts[2]) {
    Fail("accepted a signature the key did not make");
  }
  const std::optional<std::string> header_json = crm::auth::Base64UrlDecode(parts[0]);
  const std::optional<std::string> claims_json = crm::auth::Base64UrlDecode(parts[1]);
  if (!header_json || !claims_json) Fail("accepted non-canonical base64url");
  absl::StatusOr<crm::json::Value> header = crm::json::Parse(*header_json);
  absl::StatusOr<crm::json::Value> claims = crm::json::Parse(*claims_json);
  if (!header.ok() || !claims.ok()) Fail("accepted a segment that is not JSON");

  const crm::json::Value& alg = Member(*header, "alg");
  if (!alg.is_string() || alg.string_value() != "EdDSA") Fail("accepted alg other than EdDSA");
  const crm::json::Value& kid = Member(*header, "kid");
  if (!kid.is_string() || kid.string_value() != kKid) Fail("accepted an unknown kid");
  if (header->Find("crit") != nullptr) Fail("accepted a crit header");

  const crm::json::Value& iss = Member(*claims, "iss");
  if (!iss.is_string() || iss.string_value() != kIssuer) Fail("accepted a foreign issuer");
  const crm::json::Value& sub = Member(*claims, "sub");
  const crm::json::Value& sid = Member(*claims, "sid");
  if (!sub.is_string() || sub.string_value().empty() || sub.string_value() != p.user_id) {
    Fail("principal user is not the token's sub");
  }
  if (!sid.is_string() || sid.string_value().empty() || sid.string_value() != p.session_id) {
    Fail("principal session is not the token's sid");
  }
  if (p.session_id == kRevokedSession) Fail("accepted a revoked session");
  const std::optional<int64_t> exp = Member(*claims, "exp").AsInt64();
  if (!exp.has_value() || absl::FromUnixSeconds(*exp) != p.expires_at) {
    Fail("principal expiry is not the token's exp");
  }
  if (w.clock.Now() >= p.expires_at + World::Options().leeway) Fail("accepted an expired token");
  if (const crm::json::Value* nbf = claims->Find("nbf"); nbf != nullptr) {
    const std::optional<int64_t> t = nbf->AsInt64();
    if (!t.has_value() || w.clock.Now() + World::Options().leeway < absl::FromUnixSeconds(*t)) {
      Fail("accepted a token not yet valid");
    }
  }
  const crm::json::Value& aud = Member(*claims, "aud");
  bool audience = aud.is_string() && aud.string_value() == kAudience;
  if (aud.is_array()) {
    for (const crm::json::Value& a : aud.array()) {
      audience = audience || (a.is_string() && a.string_value() == kAudience);
    }
  }
  if (!audience) Fail("accepted a token for another audience");
}

void VerifyBoth(World& w, absl::string_view token) {
  absl::StatusOr<std::shared_ptr<const Principal>> unknown = w.with_unknown.Verify(token);
  if (unknown.ok()) Fail("accepted a token under a key the fuzzer cannot know");
  CheckRefusal(unknown.status());
  absl::StatusOr<std::shared_ptr<const Principal>> known = w.with_known.Verify(token);
  if (known.ok()) {
    if (*known == nullptr) Fail("accepted with a null principal");
    CheckAccepted(token, **known, w);
  } else {
    CheckRefusal(known.status());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* const world = new World();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  VerifyBoth(*world, input);

  const size_t newline = input.find('\n');
  if (newline != absl::string_view::npos) {
    absl::StatusOr<std::string> token = crm::auth::SignCompactJws(
        world->known, input.substr(0, newline), input.substr(newline + 1));
    if (!token.ok()) Fail("test set-up: signing failed");
    VerifyBoth(*world, *token);
  }
  return 0;
}
