#include "libs/auth/token_verifier.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/token_minter.h"
#include "libs/testing/status_matchers.h"

namespace crm::auth {
namespace {

using ::crm::auth::testing::kTestAudience;
using ::crm::auth::testing::kTestIssuer;
using ::crm::auth::testing::TokenMinter;
using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

class TokenVerifierTest : public ::testing::Test {
 protected:
  TokenVerifierTest() : keys_(minter_.KeyMap()), verifier_(Options(), keys_, revocation_, clock_) {}

  static TokenVerifierOptions Options() {
    TokenVerifierOptions o;
    o.issuer = kTestIssuer;
    o.audience = kTestAudience;
    o.leeway = absl::Seconds(30);
    return o;
  }

  AccessTokenClaims Claims() const { return minter_.DefaultClaims(clock_.Now()); }

  // A payload the minter's defaults would produce, for MintRaw variations.
  std::string Payload(absl::string_view extra = "") const {
    const int64_t now = absl::ToUnixSeconds(clock_.Now());
    return absl::StrCat(R"({"iss":"crm-identity","aud":"crm-test","sub":"user-1",)",
                        R"("sid":"session-1","exp":)", now + 600, extra, "}");
  }

  void ExpectRefused(absl::string_view token, absl::string_view reason) {
    absl::StatusOr<std::shared_ptr<const Principal>> r = verifier_.Verify(token);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr(reason)));
    if (!r.ok()) {
      // Never echo the token or any of its parts.
      for (absl::string_view part : absl::StrSplit(token, '.')) {
        if (part.size() >= 4) {
          EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(part)));
        }
      }
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("user-1")));
    }
  }

  base::FakeClock clock_;
  TokenMinter minter_;
  KeySet keys_;
  InMemoryRevocationChecker revocation_;
  TokenVerifier verifier_;
};

TEST_F(TokenVerifierTest, ValidTokenGivesPrincipal) {
  AccessTokenClaims c = Claims();
  c.permissions = {"contacts.read", "contacts.write"};
  c.teams = {"sales-north"};
  c.audience = {"crm-other", kTestAudience};
  c.token_id = "jti-1";
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Principal> p, verifier_.Verify(minter_.Mint(c)));
  EXPECT_EQ(p->user_id, "user-1");
  EXPECT_EQ(p->session_id, "session-1");
  EXPECT_TRUE(p->Has("contacts.read"));
  EXPECT_TRUE(p->Has("contacts.write"));
  EXPECT_FALSE(p->Has("contacts.read.all"));
  EXPECT_THAT(p->teams, UnorderedElementsAre("sales-north"));
  EXPECT_EQ(p->expires_at, absl::FromUnixSeconds(absl::ToUnixSeconds(c.expires_at)));
  EXPECT_FALSE(p->IsCertificateBound());
}

TEST_F(TokenVerifierTest, CertificateBoundTokenExposesThumbprint) {
  AccessTokenClaims c = Claims();
  c.cert_thumbprint = CertificateThumbprint("shop certificate DER");
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Principal> p, verifier_.Verify(minter_.Mint(c)));
  EXPECT_EQ(p->cert_thumbprint, c.cert_thumbprint);
  EXPECT_THAT(p->CheckCertificateBinding("shop certificate DER"), IsOk());
  EXPECT_THAT(p->CheckCertificateBinding("other certificate DER"),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(TokenVerifierTest, ExpiredTokenIsRefusedAfterLeeway) {
  AccessTokenClaims c = Claims();
  c.expires_at = clock_.Now() + absl::Minutes(1);
  const std::string token = minter_.Mint(c);
  clock_.Advance(absl::Minutes(1) + absl::Seconds(29));
  EXPECT_THAT(verifier_.Verify(token), IsOk());  // within leeway (and now cached)
  clock_.Advance(absl::Seconds(1));
  ExpectRefused(token, "expired");  // the cache entry expires with the token too
}

TEST_F(TokenVerifierTest, ExpiredTokenNeverSeenIsRefused) {
  AccessTokenClaims c = Claims();
  c.issued_at = clock_.Now() - absl::Hours(2);
  c.expires_at = clock_.Now() - absl::Hours(1);
  ExpectRefused(minter_.Mint(c), "expired");
}

TEST_F(TokenVerifierTest, NotYetValidTokenIsRefused) {
  AccessTokenClaims c = Claims();
  c.not_before = clock_.Now() + absl::Minutes(5);
  const std::string token = minter_.Mint(c);
  ExpectRefused(token, "not yet valid");
  clock_.Advance(absl::Minutes(5) - absl::Seconds(30));  // leeway reached
  EXPECT_THAT(verifier_.Verify(token), IsOk());
}

TEST_F(TokenVerifierTest, WrongIssuerOrAudienceIsRefused) {
  AccessTokenClaims c = Claims();
  c.issuer = "someone-else";
  ExpectRefused(minter_.Mint(c), "issuer");
  c = Claims();
  c.audience = {"crm-contacts"};
  ExpectRefused(minter_.Mint(c), "audience");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1"})",
                                absl::StrCat(R"({"iss":"crm-identity","aud":["crm-test",1],)",
                                             R"("sub":"u","sid":"s","exp":9999999999})")),
                "audience");
}

TEST_F(TokenVerifierTest, AlgNoneIsRefused) {
  // Unsigned token: header alg none, empty signature.
  const std::string unsigned_token =
      absl::StrCat(Base64UrlEncode(R"({"alg":"none","kid":"test-key-1"})"), ".",
                   Base64UrlEncode(Payload()), ".");
  ExpectRefused(unsigned_token, "malformed");
  // Even with a valid Ed25519 signature, a header naming another alg is refused.
  ExpectRefused(minter_.MintRaw(R"({"alg":"none","kid":"test-key-1"})", Payload()), "algorithm");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EDDSA","kid":"test-key-1"})", Payload()), "algorithm");
  ExpectRefused(minter_.MintRaw(R"({"kid":"test-key-1"})", Payload()), "algorithm");
  ExpectRefused(minter_.MintRaw(R"({"alg":["EdDSA"],"kid":"test-key-1"})", Payload()), "algorithm");
}

TEST_F(TokenVerifierTest, Hs256ConfusionIsRefused) {
  // The classic attack: HMAC "signature" keyed with the public key.
  ExpectRefused(minter_.MintRaw(R"({"alg":"HS256","kid":"test-key-1"})", Payload()), "algorithm");
  const std::string header = Base64UrlEncode(R"({"alg":"HS256","kid":"test-key-1"})");
  const std::string body = Base64UrlEncode(Payload());
  const std::string forged =
      absl::StrCat(header, ".", body, ".", Base64UrlEncode(std::string(32, 'x')));
  ExpectRefused(forged, "algorithm");
}

TEST_F(TokenVerifierTest, UnknownOrMissingKidIsRefused) {
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"other-key"})", Payload()), "key unknown");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA"})", Payload()), "key unknown");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":7})", Payload()), "key unknown");
  // A token signed by another key under our kid fails the signature.
  TokenMinter impostor("test-key-1");
  ExpectRefused(impostor.Mint(Claims()), "signature invalid");
}

TEST_F(TokenVerifierTest, HeaderTypAndCritAreChecked) {
  EXPECT_THAT(verifier_.Verify(minter_.MintRaw(
                  R"({"alg":"EdDSA","typ":"at+jwt","kid":"test-key-1"})", Payload())),
              IsOk());
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","typ":"JWE","kid":"test-key-1"})", Payload()),
                "type");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1","crit":["exp"]})", Payload()),
                "header");
}

TEST_F(TokenVerifierTest, TamperedPayloadOrSignatureIsRefused) {
  AccessTokenClaims c = Claims();
  c.permissions = {"contacts.read"};
  const std::string token = minter_.Mint(c);
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ASSERT_EQ(parts.size(), 3u);

  AccessTokenClaims escalated = c;
  escalated.permissions = {"contacts.read", "contacts.read.all"};
  std::vector<std::string> other = absl::StrSplit(minter_.Mint(escalated), '.');
  ExpectRefused(absl::StrCat(parts[0], ".", other[1], ".", parts[2]), "signature invalid");

  std::string sig = *Base64UrlDecode(parts[2]);
  sig[10] = static_cast<char>(sig[10] ^ 0x04);
  ExpectRefused(absl::StrCat(parts[0], ".", parts[1], ".", Base64UrlEncode(sig)),
                "signature invalid");
  ExpectRefused(absl::StrCat(parts[0], ".", parts[1], ".", Base64UrlEncode(sig.substr(0, 63))),
                "signature invalid");
}

TEST_F(TokenVerifierTest, MalformedTokensAreRefused) {
  const std::string good = minter_.Mint(Claims());
  std::vector<std::string> p = absl::StrSplit(good, '.');
  const std::string cases[] = {
      "x",
      "a.b",
      absl::StrCat(p[0], ".", p[1]),
      absl::StrCat(good, ".", p[2]),
      absl::StrCat(p[0], "..", p[2]),
      absl::StrCat(".", p[1], ".", p[2]),
      absl::StrCat(p[0], "=.", p[1], ".", p[2]),      // padding
      absl::StrCat(p[0], ".", p[1], ".", p[2], "="),  // padding on signature
      absl::StrCat(p[0], " .", p[1], ".", p[2]),      // whitespace
      absl::StrCat(p[0], "+", ".", p[1], ".", p[2]),  // wrong alphabet
      absl::StrCat(Base64UrlEncode("not json"), ".", p[1], ".", p[2]),
      absl::StrCat(Base64UrlEncode("[1,2]"), ".", p[1], ".", p[2]),
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    ExpectRefused(cases[i], "malformed");
  }
  // The payload is only decoded after the signature over its exact bytes verified.
  ExpectRefused(absl::StrCat(p[0], ".", p[1], "+", ".", p[2]), "signature invalid");
  // Signed, but the payload is not a JSON object.
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1"})", "\"just a string\""),
                "malformed");
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1"})", "{\"sub\":\"u\",}"),
                "malformed");
  // Duplicate claims (a parser-differential trick) are refused.
  ExpectRefused(
      minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1"})", Payload(R"(,"sub":"admin")")),
      "malformed");
  EXPECT_THAT(verifier_.Verify(""), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(TokenVerifierTest, InvalidClaimsAreRefused) {
  const std::string hdr = R"({"alg":"EdDSA","kid":"test-key-1"})";
  const int64_t exp = absl::ToUnixSeconds(clock_.Now()) + 600;
  const std::string base = R"({"iss":"crm-identity","aud":"crm-test")";
  const std::string cases[] = {
      absl::StrCat(base, R"(,"sid":"s","exp":)", exp, "}"),               // no sub
      absl::StrCat(base, R"(,"sub":"","sid":"s","exp":)", exp, "}"),      // empty sub
      absl::StrCat(base, R"(,"sub":"u","exp":)", exp, "}"),               // no sid
      absl::StrCat(base, R"(,"sub":"u","sid":"s"})"),                     // no exp
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":")", exp, "\"}"),  // exp string
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, ".5}"),   // exp fraction
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"nbf":"x"})"),
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"permissions":"all"})"),
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"permissions":[1]})"),
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"teams":{}})"),
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"cnf":{}})"),
      absl::StrCat(base, R"(,"sub":"u","sid":"s","exp":)", exp, R"(,"cnf":{"x5t#S256":"abc"}})"),
  };
  for (const std::string& payload : cases) {
    ExpectRefused(minter_.MintRaw(hdr, payload), "claims invalid");
  }
}

TEST_F(TokenVerifierTest, HugeTokenIsRefusedBeforeParsing) {
  AccessTokenClaims c = Claims();
  for (int i = 0; i < 1000; ++i) c.permissions.push_back(absl::StrCat("permission.number.", i));
  ExpectRefused(minter_.Mint(c), "too large");
  ExpectRefused(std::string(1 << 20, 'A'), "too large");
}

TEST_F(TokenVerifierTest, DeeplyNestedClaimsAreRefused) {
  std::string deep = std::string(50, '[') + std::string(50, ']');
  ExpectRefused(minter_.MintRaw(R"({"alg":"EdDSA","kid":"test-key-1"})",
                                Payload(absl::StrCat(R"(,"x":)", deep))),
                "malformed");
}

TEST_F(TokenVerifierTest, CacheHitReturnsSamePrincipal) {
  const std::string token = minter_.Mint(Claims());
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Principal> a, verifier_.Verify(token));
  CRM_ASSERT_OK_AND_ASSIGN(std::shared_ptr<const Principal> b, verifier_.Verify(token));
  EXPECT_EQ(a, b);  // the same object: served from the cache
  EXPECT_EQ(verifier_.cache().hits(), 1u);
  EXPECT_EQ(verifier_.cache().size(), 1u);
}

TEST_F(TokenVerifierTest, RefusedTokensAreNotCached) {
  AccessTokenClaims c = Claims();
  c.issuer = "someone-else";
  const std::string token = minter_.Mint(c);
  ExpectRefused(token, "issuer");
  EXPECT_EQ(verifier_.cache().size(), 0u);
}

TEST_F(TokenVerifierTest, RevokedSessionIsRefusedEvenWhenCached) {
  const std::string token = minter_.Mint(Claims());
  ASSERT_THAT(verifier_.Verify(token), IsOk());
  ASSERT_EQ(verifier_.cache().size(), 1u);
  revocation_.Revoke("session-1");
  ExpectRefused(token, "revoked");
  // Other sessions are unaffected.
  AccessTokenClaims other = Claims();
  other.session_id = "session-2";
  EXPECT_THAT(verifier_.Verify(minter_.Mint(other)), IsOk());
}

TEST_F(TokenVerifierTest, RevocationStoreFailureFailsClosed) {
  const std::string token = minter_.Mint(Claims());
  ASSERT_THAT(verifier_.Verify(token), IsOk());
  revocation_.SetError(absl::UnavailableError("redis down"));
  EXPECT_THAT(verifier_.Verify(token), StatusIs(absl::StatusCode::kUnavailable));
  revocation_.SetError(absl::OkStatus());
  EXPECT_THAT(verifier_.Verify(token), IsOk());
}

TEST_F(TokenVerifierTest, KeySetRotation) {
  TokenMinter next("test-key-2");
  const std::string old_token = minter_.Mint(Claims());
  const std::string new_token = next.Mint(next.DefaultClaims(clock_.Now()));
  ASSERT_THAT(verifier_.Verify(old_token), IsOk());  // cached under generation 1
  ExpectRefused(new_token, "key unknown");

  // Publish both keys: both verify.
  KeySet::KeyMap both = minter_.KeyMap();
  both.emplace(next.kid(), next.public_key());
  keys_.Replace(std::move(both));
  EXPECT_THAT(verifier_.Verify(old_token), IsOk());
  EXPECT_THAT(verifier_.Verify(new_token), IsOk());

  // Retire the old key: its tokens are refused at once, cached or not.
  keys_.Replace(next.KeyMap());
  ExpectRefused(old_token, "key unknown");
  EXPECT_THAT(verifier_.Verify(new_token), IsOk());
}

TEST(TokenSignerTest, RejectsIncompleteClaims) {
  TokenMinter minter;
  TokenSigner signer(*crypto::Ed25519PrivateKey::Generate(), "k");
  AccessTokenClaims c = minter.DefaultClaims(absl::FromUnixSeconds(1'800'000'000));
  AccessTokenClaims bad = c;
  bad.subject.clear();
  EXPECT_THAT(signer.Sign(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject")));
  bad = c;
  bad.session_id.clear();
  EXPECT_THAT(signer.Sign(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = c;
  bad.audience.clear();
  EXPECT_THAT(signer.Sign(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad = c;
  bad.expires_at = bad.issued_at;
  EXPECT_THAT(signer.Sign(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(signer.Sign(c), IsOk());
}

TEST(TokenSignerTest, HeaderIsEdDsaWithKid) {
  TokenSigner signer(*crypto::Ed25519PrivateKey::Generate(), "kid-\"7\"");
  TokenMinter minter;
  CRM_ASSERT_OK_AND_ASSIGN(std::string token,
                           signer.Sign(minter.DefaultClaims(absl::FromUnixSeconds(1'800'000'000))));
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(*Base64UrlDecode(parts[0]), R"({"alg":"EdDSA","typ":"JWT","kid":"kid-\"7\""})");
  EXPECT_EQ(Base64UrlDecode(parts[2])->size(), 64u);
}

}  // namespace
}  // namespace crm::auth
