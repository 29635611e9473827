// Fuzz target `link_token`: mailing's unsubscribe and confirmation link
// tokens (services/mailing/tokens.h), which arrive from anyone who follows
// or alters a link.
//
// Properties beyond "no crash, no sanitizer report":
//  - the input as a token is refused, of either kind, by LinkTokens under a
//    key generated at start-up (the fuzzer cannot know it);
//  - under a fixed key it verifies only if genuinely minted: the claims it
//    yields, issued again, give back exactly the input (and only for the kind
//    it was issued as);
//  - minting from the input (a subject id from its first 16 bytes, the rest
//    as list id) and verifying gives back the same subject, list and time,
//    for the kind minted and not the other;
//  - refusals are INVALID_ARGUMENT with one of the fixed messages, never
//    quoting the token.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/base/validate.h"
#include "libs/crypto/primitives.h"
#include "libs/crypto/secret_bytes.h"
#include "services/mailing/tokens.h"

namespace {

using ::crm::mailing::LinkClaims;
using ::crm::mailing::LinkTokens;
using ::crm::mailing::TokenKind;

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (link_token): %s\n", property);
  std::abort();
}

LinkTokens Must(absl::StatusOr<LinkTokens> tokens) {
  if (!tokens.ok()) Fail("test set-up: no key");
  return *std::move(tokens);
}

struct World {
  LinkTokens known =
      Must(LinkTokens::Create(crm::crypto::SecretBytes::CopyFrom(std::string(32, 'k'))));
  LinkTokens unknown =
      Must(LinkTokens::Create(crm::crypto::SecretBytes::CopyFrom(crm::crypto::RandomBytes(32))));
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
};

void CheckRefusal(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) Fail("refusal is not INVALID_ARGUMENT");
  if (status.message() != "token: malformed" && status.message() != "token: not valid" &&
      status.message() != "token: expired") {
    Fail("refusal message is not one of the fixed set");
  }
}

// A canonical UUID (version and variant bits set) from 16 bytes.
std::string Uuid(absl::string_view bytes16) {
  std::string b(bytes16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  const std::string hex = absl::BytesToHexString(b);
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

void VerifyInput(const World& w, absl::string_view token) {
  for (TokenKind kind : {TokenKind::kUnsubscribe, TokenKind::kConfirm}) {
    absl::StatusOr<LinkClaims> forged = w.unknown.Verify(kind, token, w.now);
    if (forged.ok()) Fail("accepted a token under a key the fuzzer cannot know");
    CheckRefusal(forged.status());

    absl::StatusOr<LinkClaims> c = w.known.Verify(kind, token, w.now, absl::Hours(24));
    if (!c.ok()) {
      CheckRefusal(c.status());
      continue;
    }
    if (c->kind != kind) Fail("claims of another kind");
    if (w.known.Issue(kind, c->subject_id, c->list_id, c->issued_at) != token) {
      Fail("accepted a token that was not minted so");
    }
  }
}

void MintAndVerify(const World& w, absl::string_view input) {
  if (input.size() < 17) return;
  const std::string subject = Uuid(input.substr(0, 16));
  const std::string list(input.substr(16, 64));
  if (!crm::base::ValidateName("list_id", list, 64).ok()) return;
  for (TokenKind kind : {TokenKind::kUnsubscribe, TokenKind::kConfirm}) {
    const std::string token = w.known.Issue(kind, subject, list, w.now);
    absl::StatusOr<LinkClaims> c = w.known.Verify(kind, token, w.now, absl::Hours(1));
    if (!c.ok()) Fail("a minted token does not verify");
    if (c->subject_id != subject || c->list_id != list || c->issued_at != w.now) {
      Fail("a minted token's claims changed");
    }
    const TokenKind other =
        kind == TokenKind::kConfirm ? TokenKind::kUnsubscribe : TokenKind::kConfirm;
    if (w.known.Verify(other, token, w.now).ok()) Fail("a token verified as the other kind");
    if (w.unknown.Verify(kind, token, w.now).ok()) Fail("a token verified under another key");
    if (kind == TokenKind::kConfirm &&
        w.known.Verify(kind, token, w.now + absl::Hours(2), absl::Hours(1)).ok()) {
      Fail("an expired confirmation verified");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const World* const world = new World();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  VerifyInput(*world, input);
  MintAndVerify(*world, input);
  return 0;
}
