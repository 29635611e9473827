#include "services/identity/password_hasher.h"

#include <argon2.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// Cheap parameters so the suite stays fast; the defaults get their own tests.
HashParams Cheap() { return HashParams{.memory_kib = 256, .iterations = 1, .parallelism = 1}; }

PasswordHasher MakeHasher(const HashParams& params) {
  absl::StatusOr<PasswordHasher> h = PasswordHasher::Create(params);
  EXPECT_THAT(h, IsOk());
  return *std::move(h);
}

TEST(PasswordHasherTest, HashIsPhcStringWithDefaultParameters) {
  PasswordHasher hasher = MakeHasher(HashParams());
  absl::StatusOr<std::string> h = hasher.Hash("correct horse battery");
  ASSERT_THAT(h, IsOk());
  // 16-byte salt -> 22 base64 characters, 32-byte tag -> 43, no padding.
  EXPECT_THAT(
      *h,
      MatchesRegex(R"(\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43})"));
}

TEST(PasswordHasherTest, RoundTripMatchesWithoutRehash) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string h, hasher.Hash("correct horse battery"));
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, hasher.Verify("correct horse battery", h));
  EXPECT_TRUE(r.match);
  EXPECT_FALSE(r.needs_rehash);
}

TEST(PasswordHasherTest, WrongPasswordDoesNotMatch) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string h, hasher.Hash("correct horse battery"));
  for (absl::string_view wrong : {"correct horse batterY", "correct horse batter", "x"}) {
    CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, hasher.Verify(wrong, h));
    EXPECT_FALSE(r.match) << wrong;
    EXPECT_FALSE(r.needs_rehash);
  }
}

TEST(PasswordHasherTest, EachHashHasAFreshSalt) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string a, hasher.Hash("same password here"));
  CRM_ASSERT_OK_AND_ASSIGN(std::string b, hasher.Hash("same password here"));
  EXPECT_NE(a, b);
}

TEST(PasswordHasherTest, NonAsciiPasswordRoundTrips) {
  PasswordHasher hasher = MakeHasher(Cheap());
  const std::string pw = "Grüße aus Köln 🎉";
  CRM_ASSERT_OK_AND_ASSIGN(std::string h, hasher.Hash(pw));
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, hasher.Verify(pw, h));
  EXPECT_TRUE(r.match);
}

// Each raised parameter alone makes an old hash ask for a rehash; equal or
// stronger stored parameters do not.
TEST(PasswordHasherTest, NeedsRehashWhenConfiguredParametersAreRaised) {
  PasswordHasher old_hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string h, old_hasher.Hash("correct horse battery"));

  HashParams more_memory = Cheap();
  more_memory.memory_kib *= 2;
  HashParams more_passes = Cheap();
  more_passes.iterations += 1;
  HashParams more_lanes = Cheap();
  more_lanes.parallelism = 2;
  for (const HashParams& raised : {more_memory, more_passes, more_lanes}) {
    PasswordHasher new_hasher = MakeHasher(raised);
    CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, new_hasher.Verify("correct horse battery", h));
    EXPECT_TRUE(r.match);
    EXPECT_TRUE(r.needs_rehash) << raised.memory_kib << "," << raised.iterations << ","
                                << raised.parallelism;
    // A wrong password never asks for a rehash: the caller has nothing to hash.
    CRM_ASSERT_OK_AND_ASSIGN(VerifyResult wrong, new_hasher.Verify("wrong horse battery", h));
    EXPECT_FALSE(wrong.match);
    EXPECT_FALSE(wrong.needs_rehash);
  }

  // A hash stronger than the configuration is fine as it is.
  HashParams lowered = Cheap();
  lowered.memory_kib /= 2;
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, MakeHasher(lowered).Verify("correct horse battery", h));
  EXPECT_TRUE(r.match);
  EXPECT_FALSE(r.needs_rehash);
}

TEST(PasswordHasherTest, NeedsRehashForShortSalt) {
  // A valid hash with an 8-byte salt ("somesalt"), made by libargon2's encoder.
  char encoded[128];
  ASSERT_EQ(argon2id_hash_encoded(1, 256, 1, "pw-for-short-salt", 17, "somesalt", 8, 32, encoded,
                                  sizeof(encoded)),
            ARGON2_OK);
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r,
                           MakeHasher(Cheap()).Verify("pw-for-short-salt", encoded));
  EXPECT_TRUE(r.match);
  EXPECT_TRUE(r.needs_rehash);
}

// Our encoding against the reference implementation's, both ways.
TEST(PasswordHasherTest, InteroperatesWithLibargon2Encoding) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string ours, hasher.Hash("interop password"));
  EXPECT_EQ(argon2id_verify(ours.c_str(), "interop password", 16), ARGON2_OK);
  EXPECT_EQ(argon2id_verify(ours.c_str(), "interop passwore", 16), ARGON2_VERIFY_MISMATCH);

  char theirs[128];
  const std::string salt = "0123456789abcdef";
  ASSERT_EQ(argon2id_hash_encoded(1, 256, 1, "interop password", 16, salt.data(), salt.size(), 32,
                                  theirs, sizeof(theirs)),
            ARGON2_OK);
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, hasher.Verify("interop password", theirs));
  EXPECT_TRUE(r.match);
  EXPECT_FALSE(r.needs_rehash);
}

// Known answer from the reference implementation's own test suite
// (phc-winner-argon2 src/test.c, Argon2id v=0x13: password "password", salt
// "somesalt", t=2, m=2^16 KiB, p=1, 32-byte tag). The raw tag and the encoded
// string are the reference's; the encoded one is parsed by our decoder.
TEST(PasswordHasherTest, ReferenceImplementationKnownAnswer) {
  constexpr absl::string_view kTagHex =
      "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7";
  constexpr char kEncoded[] =
      "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
  unsigned char tag[32];
  ASSERT_EQ(argon2id_hash_raw(2, 65536, 1, "password", 8, "somesalt", 8, tag, sizeof(tag)),
            ARGON2_OK);
  EXPECT_EQ(absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(tag), sizeof(tag))),
            kTagHex);

  PasswordHasher hasher = MakeHasher(HashParams());
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult r, hasher.Verify("password", kEncoded));
  EXPECT_TRUE(r.match);
  EXPECT_TRUE(r.needs_rehash);  // 8-byte salt, below our 16
  CRM_ASSERT_OK_AND_ASSIGN(VerifyResult wrong, hasher.Verify("Password", kEncoded));
  EXPECT_FALSE(wrong.match);
}

// RFC 9106 section 5.3 (Argon2id, version 0x13): password 32 x 0x01, salt
// 16 x 0x02, secret 8 x 0x03, associated data 12 x 0x04, m=32 KiB, t=3, p=4,
// 32-byte tag. Needs argon2_ctx, since the high-level API has no secret/ad:
// this pins the library we link, not our encoding (the tests above do that).
TEST(PasswordHasherTest, Rfc9106Argon2idTestVector) {
  std::vector<uint8_t> pwd(32, 0x01), salt(16, 0x02), secret(8, 0x03), ad(12, 0x04), out(32);
  argon2_context ctx{};
  ctx.out = out.data();
  ctx.outlen = static_cast<uint32_t>(out.size());
  ctx.pwd = pwd.data();
  ctx.pwdlen = static_cast<uint32_t>(pwd.size());
  ctx.salt = salt.data();
  ctx.saltlen = static_cast<uint32_t>(salt.size());
  ctx.secret = secret.data();
  ctx.secretlen = static_cast<uint32_t>(secret.size());
  ctx.ad = ad.data();
  ctx.adlen = static_cast<uint32_t>(ad.size());
  ctx.t_cost = 3;
  ctx.m_cost = 32;
  ctx.lanes = 4;
  ctx.threads = 4;
  ctx.version = ARGON2_VERSION_13;
  ctx.flags = ARGON2_DEFAULT_FLAGS;
  ASSERT_EQ(argon2_ctx(&ctx, Argon2_id), ARGON2_OK);
  EXPECT_EQ(absl::BytesToHexString(
                absl::string_view(reinterpret_cast<const char*>(out.data()), out.size())),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
}

TEST(PasswordHasherTest, MalformedOrForeignStoredHashIsDataLossWithoutEchoingIt) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string good, hasher.Hash("correct horse battery"));
  const std::string salt_b64 = "c29tZXNhbHRzb21lc2FsdA";  // 16 bytes
  const std::string tag_b64 = "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
  const std::vector<std::string> bad = {
      "",
      "plaintext-password",
      "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  // bcrypt
      "$argon2i$v=19$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2d$v=19$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=16$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64,        // no version
      "$argon2id$v=19$t=1,m=256,p=1$" + salt_b64 + "$" + tag_b64,   // order
      "$argon2id$v=19$m=0256,t=1,p=1$" + salt_b64 + "$" + tag_b64,  // leading zero
      "$argon2id$v=19$m=-256,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=256,t=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=256,t=1,p=1,k=2$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt_b64 + "$" + tag_b64,  // 4 TiB
      "$argon2id$v=19$m=99999999999,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=256,t=1000,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=256,t=1,p=0$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=4,t=1,p=1$" + salt_b64 + "$" + tag_b64,
      "$argon2id$v=19$m=256,t=1,p=1$" + salt_b64 + "==$" + tag_b64,  // padding
      "$argon2id$v=19$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64 + "=",
      "$argon2id$v=19$m=256,t=1,p=1$c29tZQ$" + tag_b64,                 // 4-byte salt
      "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsA$" + tag_b64,  // 21 chars: 4n+1
      "$argon2id$v=19$m=256,t=1,p=1$" + salt_b64 + "$CTFhFdXPJO1a",     // 9-byte tag
      "$argon2id$v=19$m=256,t=1,p=1$" + salt_b64 + "$" + tag_b64 + "$",
      "$argon2id$v=19$m=256,t=1,p=1$" + salt_b64,
      "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdB$" + tag_b64,  // non-zero spare bits
      "$argon2id$v=19$m=256,t=1,p=1$c29t*XNhbHRzb21lc2FsdA$" + tag_b64,
      good.substr(0, good.size() - 1) + "!",
      " " + good,
  };
  for (const std::string& encoded : bad) {
    absl::StatusOr<VerifyResult> r = hasher.Verify("correct horse battery", encoded);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss)) << encoded;
    if (!r.ok() && !encoded.empty()) {
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(encoded))) << encoded;
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(tag_b64)));
      EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(salt_b64)));
    }
  }
}

TEST(PasswordHasherTest, RejectsBadPasswordInputBeforeHashing) {
  PasswordHasher hasher = MakeHasher(Cheap());
  CRM_ASSERT_OK_AND_ASSIGN(std::string good, hasher.Hash("correct horse battery"));
  const std::vector<std::string> bad = {
      "",
      std::string(kMaxPasswordBytes + 1, 'a'),
      std::string(1 << 20, 'a'),  // 1 MB
      std::string(kMaxPasswordCodePoints + 1, 'a'),
      std::string("abc\xff"
                  "defghijklm"),          // invalid byte
      std::string("abc\xc3(defghijklm"),  // truncated sequence
      std::string("abc\xed\xa0\x80"
                  "defghijk"),             // surrogate
      std::string("abcdef\0ghijklm", 14),  // NUL
  };
  for (const std::string& pw : bad) {
    EXPECT_THAT(hasher.Hash(pw),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password")))
        << pw.size();
    EXPECT_THAT(hasher.Verify(pw, good),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("password")));
    // The input check comes first: a malformed stored hash is not even looked at.
    EXPECT_THAT(hasher.Verify(pw, "garbage"), StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(hasher.DummyVerify(pw), StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

TEST(PasswordHasherTest, AcceptsInputAtTheLimits) {
  PasswordHasher hasher = MakeHasher(Cheap());
  // 128 four-byte code points: exactly 512 bytes.
  std::string longest;
  for (size_t i = 0; i < kMaxPasswordCodePoints; ++i) longest += "\xf0\x9f\x94\x91";  // U+1F511
  ASSERT_EQ(longest.size(), kMaxPasswordBytes);
  EXPECT_THAT(ValidatePasswordInput(longest), IsOk());
  EXPECT_THAT(hasher.Hash(longest), IsOk());
  EXPECT_THAT(ValidatePasswordInput(std::string(kMaxPasswordCodePoints, 'a')), IsOk());
  EXPECT_THAT(ValidatePasswordInput("x"), IsOk());
  EXPECT_THAT(ValidatePasswordInput("tab\tand newline\n ok"), IsOk());
}

TEST(PasswordHasherTest, DummyVerifyRunsAndNeverMatches) {
  PasswordHasher hasher = MakeHasher(Cheap());
  for (absl::string_view pw : {"correct horse battery", "x", ""}) {
    absl::StatusOr<VerifyResult> r = hasher.DummyVerify(pw);
    if (pw.empty()) {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument));
      continue;
    }
    ASSERT_THAT(r, IsOk());
    EXPECT_FALSE(r->match);
    EXPECT_FALSE(r->needs_rehash);
  }
}

TEST(PasswordHasherTest, CreateRejectsOutOfBoundsParameters) {
  EXPECT_THAT(PasswordHasher::Create({.memory_kib = 256, .iterations = 1, .parallelism = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parallelism")));
  EXPECT_THAT(PasswordHasher::Create({.memory_kib = 256, .iterations = 1, .parallelism = 17}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parallelism")));
  EXPECT_THAT(PasswordHasher::Create({.memory_kib = 256, .iterations = 0, .parallelism = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("iterations")));
  EXPECT_THAT(PasswordHasher::Create({.memory_kib = 31, .iterations = 1, .parallelism = 4}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("memory_kib")));
  EXPECT_THAT(PasswordHasher::Create(
                  {.memory_kib = HashParams::kMaxMemoryKib + 1, .iterations = 1, .parallelism = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("memory_kib")));
  EXPECT_THAT(PasswordHasher::Create({.memory_kib = 32, .iterations = 1, .parallelism = 4}),
              IsOk());
}

TEST(PasswordHasherTest, ErrorMessagesNeverContainThePassword) {
  PasswordHasher hasher = MakeHasher(Cheap());
  const std::string secret = std::string(kMaxPasswordCodePoints + 1, 'q');
  absl::StatusOr<std::string> r = hasher.Hash(secret);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("password"), Not(HasSubstr("qq"))));
}

}  // namespace
}  // namespace crm::identity
