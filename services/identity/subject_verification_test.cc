// SubjectVerifier on a real Redis (the test environment's), with a fake
// directory standing in for contacts and mailing (the system test
// ExampleShopTest.ASubjectProvesTheirAddressWithAMailedCodeAndFetchesTheirOwnExport
// runs the real ones through the gateway).
#include "services/identity/subject_verification.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/clock.h"
#include "libs/base/uuid.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/test_env.h"
#include "services/identity/credential_store.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class FakeDirectory final : public SubjectDirectory {
 public:
  absl::StatusOr<std::vector<std::string>> SubjectsByEmail(const std::string& email) override {
    looked_up.push_back(email);
    return people[email];
  }
  absl::Status SendCode(const std::string& email, const std::string& code,
                        const std::string& dedup_key) override {
    if (!mail_works) return absl::UnavailableError("mailing: down");
    codes[email] = code;
    dedup_keys.push_back(dedup_key);
    return absl::OkStatus();
  }
  std::map<std::string, std::vector<std::string>> people;
  std::map<std::string, std::string> codes;
  std::vector<std::string> looked_up;
  std::vector<std::string> dedup_keys;
  bool mail_works = true;
};

class SubjectVerifierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto migrated = crm::testing::CreateMigratedDatabase("identity", "identity_subjects", 2);
    ASSERT_THAT(migrated, IsOk());
    migrated_ = new crm::testing::MigratedDatabase(std::move(*migrated));
  }
  static void TearDownTestSuite() {
    delete migrated_;
    migrated_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(migrated_, nullptr);
    CRM_ASSERT_OK_AND_ASSIGN(crm::testing::TestEnv env, crm::testing::TestEnv::Load());
    CRM_ASSERT_OK_AND_ASSIGN(redis_, redis::Client::Create({.host = env.redis().host,
                                                            .port = env.redis().port,
                                                            .password = env.redis().password}));
    CRM_ASSERT_OK_AND_ASSIGN(indexer_, crypto::BlindIndexer::Create(
                                           crypto::SecretBytes::CopyFrom(std::string(32, 's'))));
    credentials_ = std::make_unique<CredentialStore>(*migrated_->pool);
    guard_ = std::make_unique<LoginGuard>(*redis_, *credentials_, lockout_, throttle_, *indexer_,
                                          clock_);
    params_.per_source.max_attempts = 4;
    Make();
    // Unique per test: the Redis of the test run is shared.
    address_ = absl::StrCat("p", base::NewUuid().substr(0, 8), "@customers.example");
    source_ = absl::StrCat("source-", base::NewUuid());
  }

  void Make() {
    CRM_ASSERT_OK_AND_ASSIGN(verifier_, SubjectVerifier::Create(*redis_, *guard_, *indexer_,
                                                                directory_, clock_, params_));
  }

  static crm::testing::MigratedDatabase* migrated_;
  base::FakeClock clock_;
  LockoutPolicy lockout_ = *LockoutPolicy::Create();
  SourceThrottle throttle_ = *SourceThrottle::Create();
  std::unique_ptr<redis::Client> redis_;
  std::optional<crypto::BlindIndexer> indexer_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<LoginGuard> guard_;
  FakeDirectory directory_;
  SubjectVerificationParams params_;
  std::unique_ptr<SubjectVerifier> verifier_;
  std::string address_;
  std::string source_;
};

crm::testing::MigratedDatabase* SubjectVerifierTest::migrated_ = nullptr;

TEST_F(SubjectVerifierTest, TheMailedCodeNamesThePersonOnceOnly) {
  directory_.people[address_] = {"0b5e6c1a-1111-4111-8111-111111111111"};
  // The address is looked up normalized (lower case).
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started started,
                           verifier_->Start(absl::AsciiStrToUpper(address_), source_));
  EXPECT_THAT(directory_.looked_up, ElementsAre(address_));
  EXPECT_EQ(started.expires_at, clock_.Now() + params_.code_ttl);
  const std::string code = directory_.codes[address_];
  ASSERT_EQ(code.size(), 6u);
  EXPECT_THAT(directory_.dedup_keys,
              ElementsAre(absl::StrCat("subject-code:", started.verification_id)));

  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Confirmed confirmed,
                           verifier_->Confirm(started.verification_id, code, source_));
  EXPECT_THAT(confirmed.subject_ids, ElementsAre("0b5e6c1a-1111-4111-8111-111111111111"));
  EXPECT_THAT(verifier_->Confirm(started.verification_id, code, source_),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SubjectVerifierTest, RedisHoldsNeitherTheAddressNorTheCodeAndForgetsThemInTime) {
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started started, verifier_->Start(address_, source_));
  const std::string code = directory_.codes[address_];
  CRM_ASSERT_OK_AND_ASSIGN(
      redis::Reply all, redis_->Command("HGETALL", SubjectVerifier::Key(started.verification_id)));
  ASSERT_EQ(all.elements.size(), 8u);  // subjects, code and address (HMACs), tries
  for (const redis::Reply& r : all.elements) {
    EXPECT_THAT(r.str, Not(HasSubstr(code)));
    EXPECT_THAT(r.str, Not(HasSubstr(address_)));
  }
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply ttl,
                           redis_->Command("PTTL", SubjectVerifier::Key(started.verification_id)));
  EXPECT_GT(ttl.integer, 0);
  EXPECT_LE(ttl.integer, absl::ToInt64Milliseconds(params_.code_ttl));
  CRM_ASSERT_OK_AND_ASSIGN(redis::Reply keys, redis_->Command("KEYS", "*"));
  for (const redis::Reply& k : keys.elements) EXPECT_THAT(k.str, Not(HasSubstr("customers")));
}

TEST_F(SubjectVerifierTest, FiveWrongCodesEndTheVerification) {
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started started, verifier_->Start(address_, source_));
  const std::string code = directory_.codes[address_];
  const std::string wrong = code == "123456" ? "654321" : "123456";
  EXPECT_THAT(verifier_->Confirm(started.verification_id, wrong, source_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4 tries left")));
  for (int i = 0; i < 3; ++i) (void)verifier_->Confirm(started.verification_id, wrong, source_);
  EXPECT_THAT(verifier_->Confirm(started.verification_id, wrong, source_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no tries left")));
  // Even the right code now.
  EXPECT_THAT(verifier_->Confirm(started.verification_id, code, source_),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SubjectVerifierTest, NoOneOrSeveralPeopleWithTheAddress) {
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started none, verifier_->Start(address_, source_));
  CRM_ASSERT_OK_AND_ASSIGN(
      SubjectVerifier::Confirmed nobody,
      verifier_->Confirm(none.verification_id, directory_.codes[address_], source_));
  EXPECT_THAT(nobody.subject_ids, IsEmpty());

  directory_.people[address_] = {"0b5e6c1a-1111-4111-8111-111111111111",
                                 "0b5e6c1a-2222-4222-8222-222222222222"};
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started two, verifier_->Start(address_, source_));
  CRM_ASSERT_OK_AND_ASSIGN(
      SubjectVerifier::Confirmed both,
      verifier_->Confirm(two.verification_id, directory_.codes[address_], source_));
  EXPECT_EQ(both.subject_ids.size(), 2u);
}

TEST_F(SubjectVerifierTest, CodesAreLimitedPerAddressAndPerSource) {
  for (int i = 0; i < 3; ++i) EXPECT_THAT(verifier_->Start(address_, source_), IsOk()) << i;
  EXPECT_THAT(verifier_->Start(address_, "203.0.113.7"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("too many verification codes for this address")));
  // One more from the same source, for another address, then the source is done.
  EXPECT_THAT(verifier_->Start(absl::StrCat("x", address_), source_), IsOk());
  EXPECT_THAT(verifier_->Start(absl::StrCat("y", address_), source_),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("too many verification codes from this source")));
  // An hour later both are free again.
  clock_.Advance(absl::Hours(2));
  EXPECT_THAT(verifier_->Start(address_, source_), IsOk());
}

TEST_F(SubjectVerifierTest, ManyCodesDoNotBuyManyGuesses) {
  params_.per_address.max_attempts = 100;
  params_.per_source.max_attempts = 100;
  params_.tries_per_address.max_attempts = 4;
  Make();
  // Four wrong codes across two verifications use up the address's tries.
  for (int v = 0; v < 2; ++v) {
    CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started s, verifier_->Start(address_, source_));
    const std::string wrong = directory_.codes[address_] == "123456" ? "654321" : "123456";
    for (int i = 0; i < 2; ++i) {
      EXPECT_THAT(verifier_->Confirm(s.verification_id, wrong, source_),
                  StatusIs(absl::StatusCode::kInvalidArgument));
    }
  }
  // A new code for the address, from another source, still cannot be tried.
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started last, verifier_->Start(address_, "elsewhere"));
  EXPECT_THAT(verifier_->Confirm(last.verification_id, directory_.codes[address_], "elsewhere"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("too many codes tried for this address")));
  clock_.Advance(absl::Hours(48));
  EXPECT_THAT(verifier_->Confirm(last.verification_id, directory_.codes[address_], "elsewhere"),
              IsOk());
}

TEST_F(SubjectVerifierTest, ASourceTriesFewCodes) {
  params_.tries_per_source.max_attempts = 2;
  Make();
  EXPECT_THAT(verifier_->Confirm(base::NewUuid(), "123456", source_),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(verifier_->Confirm(base::NewUuid(), "123456", source_),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(verifier_->Confirm(base::NewUuid(), "123456", source_),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("too many codes tried from this source")));
}

TEST_F(SubjectVerifierTest, AMailThatCannotBeSentLeavesNothingBehind) {
  // The verifications of this address, found by the HMAC each one keeps.
  const std::string mine = indexer_->Hex(absl::StrCat("subject-address:", address_));
  auto verifications = [&]() {
    int n = 0;
    absl::StatusOr<redis::Reply> keys =
        redis_->Command("KEYS", "crm:identity:subject-verification:*");
    EXPECT_THAT(keys.status(), IsOk());
    if (!keys.ok()) return -1;
    for (const redis::Reply& k : keys->elements) {
      absl::StatusOr<redis::Reply> address = redis_->Command("HGET", k.str, "address");
      n += address.ok() && address->str == mine ? 1 : 0;
    }
    return n;
  };
  CRM_ASSERT_OK_AND_ASSIGN(SubjectVerifier::Started sent, verifier_->Start(address_, source_));
  EXPECT_EQ(verifications(), 1);  // so the count below sees one when it is there

  directory_.mail_works = false;
  EXPECT_THAT(verifier_->Start(address_, source_), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(verifications(), 1);
}

TEST_F(SubjectVerifierTest, BadInputNamesTheField) {
  EXPECT_THAT(verifier_->Start("not an address", source_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email")));
  EXPECT_THAT(verifier_->Confirm("nope", "123456", source_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("verification_id")));
  for (const char* code : {"", "12345", "1234567", "12a456", "１２３４５６"}) {
    EXPECT_THAT(verifier_->Confirm(base::NewUuid(), code, source_),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("code")))
        << code;
  }
  EXPECT_THAT(verifier_->Confirm(base::NewUuid(), "123456", source_),
              StatusIs(absl::StatusCode::kNotFound));
  params_.max_tries = 0;
  EXPECT_THAT(SubjectVerifier::Create(*redis_, *guard_, *indexer_, directory_, clock_, params_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject_code_tries")));
}

}  // namespace
}  // namespace crm::identity
