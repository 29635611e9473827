#include "libs/dkim/signer.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"
#include "libs/crypto/test_files.h"
#include "libs/dkim/canonicalization.h"
#include "libs/dkim/testing/dkimpy.h"
#include "libs/testing/status_matchers.h"

namespace crm::dkim {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// In the past: dkimpy refuses a t= more than 10 hours in the future.
const absl::Time kSigningTime = absl::FromUnixSeconds(1'700'000'000);

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

// PKCS#8 PEM of `key`, or the traditional PKCS#1 form ("BEGIN RSA PRIVATE KEY").
std::string PrivatePem(EVP_PKEY* key, bool traditional = false) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  const int ok =
      traditional ? PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0,
                                                         nullptr, nullptr)
                  : PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  EXPECT_EQ(ok, 1);
  return BioText(bio.get());
}

Pkey NewRsaKey(size_t bits) {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  EXPECT_NE(key, nullptr);
  return key;
}

SignerOptions Options() {
  SignerOptions options;
  options.domain = "mail.example.com";
  options.selector = "crm2025";
  return options;
}

// A newsletter as the mailing service sends it: one-click unsubscribe
// (RFC 8058), a folded List-Unsubscribe, an 8bit UTF-8 body.
const std::string kNewsletter =
    "From: \"Example Shop\" <news@mail.example.com>\r\n"
    "To: recipient@example.net\r\n"
    "Subject: =?UTF-8?Q?Nowo=C5=9Bci?= of the week\r\n"
    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "Message-ID: <20231114221320.1@mail.example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "List-Unsubscribe: <https://crm.example.com/u/abc123>,\r\n"
    " <mailto:unsubscribe@mail.example.com?subject=abc123>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "\r\n"
    "Dzień dobry,\r\n"
    "\r\n"
    "zażółć gęślą jaźń — nowości tygodnia: ½ ceny, 20 € taniej.\r\n";

// Folded header fields, whitespace runs and trailing whitespace everywhere,
// trailing blank lines.
const std::string kUntidy =
    "From: news@mail.example.com\r\n"
    "To:   recipient@example.net  \r\n"
    "Subject: A subject\r\n\tthat is folded   \r\n  over three lines\t\r\n"
    "List-Unsubscribe:\r\n\t<https://crm.example.com/u/xyz>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click  \r\n"
    "\r\n"
    "Line with trailing spaces   \r\n"
    "Tabs\t\tand  runs   inside\t\r\n"
    "\r\n"
    "\r\n"
    "   \r\n";

const std::string kEmptyBody =
    "From: news@mail.example.com\r\n"
    "Subject: nothing to say\r\n"
    "List-Unsubscribe: <https://crm.example.com/u/e>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "\r\n";

const std::string kNoFinalCrlf =
    "From: news@mail.example.com\r\n"
    "Subject: unterminated\r\n"
    "\r\n"
    "first line\r\n"
    "last line without CRLF";

std::string Replace(const std::string& s, absl::string_view from, absl::string_view to) {
  EXPECT_TRUE(absl::StrContains(s, from)) << from;
  return absl::StrReplaceAll(s, {{from, to}});
}

// The tag=value pairs of a DKIM-Signature field, unfolded, whitespace removed.
std::map<std::string, std::string> Tags(absl::string_view header) {
  std::string value(absl::StripPrefix(header, "DKIM-Signature:"));
  value = absl::StrReplaceAll(value, {{"\r\n", ""}, {"\t", ""}, {" ", ""}});
  std::map<std::string, std::string> tags;
  for (absl::string_view tag : absl::StrSplit(value, ';', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(tag, absl::MaxSplits('=', 1));
    tags[kv.first] = kv.second;
  }
  return tags;
}

using ::crm::dkim::testing::VerifyWithDkimpy;  // the independent verifier (dkimpy)

// ---------------------------------------------------------------------------

class SignerTest : public ::testing::Test {
 protected:
  // One 2048-bit key for the suite: generating it takes a while (more so
  // under the sanitizers).
  static void SetUpTestSuite() {
    Pkey key = NewRsaKey(2048);
    pem_ = new std::string(PrivatePem(key.get()));
  }
  static void TearDownTestSuite() {
    delete pem_;
    pem_ = nullptr;
  }

  static Signer MakeSigner(SignerOptions options = Options()) {
    absl::StatusOr<Signer> signer = Signer::FromPem(*pem_, std::move(options));
    EXPECT_THAT(signer, IsOk());
    return *std::move(signer);
  }

  static std::string SignedOrDie(const Signer& signer, const std::string& message) {
    absl::StatusOr<std::string> signed_message = signer.SignMessage(message, kSigningTime);
    EXPECT_THAT(signed_message, IsOk());
    return signed_message.ok() ? *signed_message : message;
  }

  static std::string* pem_;
};

std::string* SignerTest::pem_ = nullptr;

TEST_F(SignerTest, DkimpyVerifiesSignedMessages) {
  const Signer signer = MakeSigner();
  SignerOptions repeated_options = Options();
  repeated_options.signed_headers = {"From", "X-Campaign", "Subject"};
  const Signer repeated = MakeSigner(repeated_options);
  const std::string with_repeats =
      "X-Campaign: first\r\nFrom: news@mail.example.com\r\nX-Campaign: second\r\n"
      "Subject: repeated fields\r\n\r\nbody\r\n";

  CRM_ASSERT_OK_AND_ASSIGN(
      auto results,
      VerifyWithDkimpy(
          signer.DnsRecordName(), signer.DnsTxtRecord(),
          {
              {"newsletter.eml", SignedOrDie(signer, kNewsletter)},
              {"untidy.eml", SignedOrDie(signer, kUntidy)},
              {"empty_body.eml", SignedOrDie(signer, kEmptyBody)},
              {"no_final_crlf.eml", SignedOrDie(signer, kNoFinalCrlf)},
              {"from_only.eml", SignedOrDie(signer, "From: a@mail.example.com\r\n\r\nhi\r\n")},
              {"repeated.eml", SignedOrDie(repeated, with_repeats)},
          }));
  for (const auto& [name, verdict] : results) EXPECT_EQ(verdict, "valid") << name;
}

TEST_F(SignerTest, DkimpyRejectsTamperedMessages) {
  const Signer signer = MakeSigner();
  const std::string newsletter = SignedOrDie(signer, kNewsletter);
  SignerOptions repeated_options = Options();
  repeated_options.signed_headers = {"From", "X-Campaign"};
  const std::string repeated = SignedOrDie(
      MakeSigner(repeated_options),
      "X-Campaign: first\r\nFrom: a@mail.example.com\r\nX-Campaign: second\r\n\r\nb\r\n");

  CRM_ASSERT_OK_AND_ASSIGN(
      auto results,
      VerifyWithDkimpy(
          signer.DnsRecordName(), signer.DnsTxtRecord(),
          {
              {"subject.eml", Replace(newsletter, "of the week", "of the year")},
              {"body.eml", Replace(newsletter, "20 €", "30 €")},
              {"body_appended.eml", newsletter + "P.S. click here\r\n"},
              {"list_unsubscribe.eml",
               Replace(newsletter, "https://crm.example.com/u/abc123", "https://evil.example/u")},
              {"list_unsubscribe_post_removed.eml",
               Replace(newsletter, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "")},
              {"from.eml", Replace(newsletter, "<news@mail.example.com>", "<news@evil.example>")},
              {"signature.eml", Replace(newsletter, "t=1700000000", "t=1700000001")},
              // Bottom-up selection: the two fields' order is signed.
              {"repeated_swapped.eml",
               absl::StrReplaceAll(repeated, {{"X-Campaign: first", "X-Campaign: second"},
                                              {"X-Campaign: second", "X-Campaign: first"}})},
              {"untidy_body.eml", Replace(SignedOrDie(signer, kUntidy), "Tabs", "Tables")},
              {"empty_body_filled.eml", SignedOrDie(signer, kEmptyBody) + "now a body\r\n"},
          }));
  for (const auto& [name, verdict] : results) {
    EXPECT_THAT(verdict, StartsWith("invalid")) << name;
  }
}

TEST_F(SignerTest, DkimpyAcceptsChangesRelaxedCanonicalizationIgnores) {
  const Signer signer = MakeSigner();
  const std::string newsletter = SignedOrDie(signer, kNewsletter);
  CRM_ASSERT_OK_AND_ASSIGN(
      auto results,
      VerifyWithDkimpy(
          signer.DnsRecordName(), signer.DnsTxtRecord(),
          {
              {"refolded_subject.eml",
               Replace(newsletter, "Subject: =?UTF-8?Q?Nowo=C5=9Bci?= of the week",
                       "Subject:   =?UTF-8?Q?Nowo=C5=9Bci?=\r\n\tof   the week ")},
              {"name_case.eml",
               Replace(newsletter, "List-Unsubscribe-Post:", "LIST-UNSUBSCRIBE-POST:")},
              {"body_whitespace.eml",
               Replace(newsletter, "Dzień dobry,\r\n", "Dzień  \t dobry,   \r\n") + "\r\n\r\n"},
              {"unsigned_header_added.eml", "X-Mailer: something\r\n" + newsletter},
          }));
  for (const auto& [name, verdict] : results) EXPECT_EQ(verdict, "valid") << name;
}

TEST_F(SignerTest, OversigningForbidsAddedFields) {
  const std::string injected = "List-Unsubscribe: <https://evil.example/u>\r\n";
  const Signer plain = MakeSigner();
  SignerOptions oversign_options = Options();
  oversign_options.oversign = true;
  const Signer oversigned = MakeSigner(oversign_options);

  CRM_ASSERT_OK_AND_ASSIGN(
      auto results,
      VerifyWithDkimpy(
          plain.DnsRecordName(), plain.DnsTxtRecord(),
          {
              {"oversigned.eml", SignedOrDie(oversigned, kNewsletter)},
              {"oversigned_added.eml", injected + SignedOrDie(oversigned, kNewsletter)},
              {"plain_added.eml", injected + SignedOrDie(plain, kNewsletter)},
          }));
  EXPECT_EQ(results["oversigned.eml"], "valid");
  EXPECT_THAT(results["oversigned_added.eml"], StartsWith("invalid"));
  // Without oversigning, a field added above the signed one is not noticed:
  // the verifier picks the bottom-most instance (§5.4.2).
  EXPECT_EQ(results["plain_added.eml"], "valid");
}

TEST_F(SignerTest, DkimpyRejectsAnotherKeysRecord) {
  const Signer signer = MakeSigner();
  Pkey other_key = NewRsaKey(2048);
  CRM_ASSERT_OK_AND_ASSIGN(Signer other, Signer::FromPem(PrivatePem(other_key.get()), Options()));
  CRM_ASSERT_OK_AND_ASSIGN(
      auto results, VerifyWithDkimpy(signer.DnsRecordName(), other.DnsTxtRecord(),
                                     {{"newsletter.eml", SignedOrDie(signer, kNewsletter)}}));
  EXPECT_THAT(results["newsletter.eml"], StartsWith("invalid"));
}

TEST_F(SignerTest, HeaderFieldHasTheTagsFoldedToShortLines) {
  const Signer signer = MakeSigner();
  CRM_ASSERT_OK_AND_ASSIGN(std::string header, signer.Sign(kNewsletter, kSigningTime));
  EXPECT_THAT(header, StartsWith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "));
  EXPECT_THAT(RelaxedHeader(header),
              StartsWith("dkim-signature:v=1; a=rsa-sha256; c=relaxed/relaxed; "
                         "d=mail.example.com; s=crm2025; t=1700000000; h=from:to:"));
  ASSERT_TRUE(absl::EndsWith(header, "\r\n"));
  std::vector<std::string> lines = absl::StrSplit(header, "\r\n");
  lines.pop_back();  // After the final CRLF.
  ASSERT_GT(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), 78u) << lines[i];
    EXPECT_FALSE(lines[i].empty());
    if (i > 0) {
      EXPECT_EQ(lines[i][0], '\t') << lines[i];
    }
  }
  std::map<std::string, std::string> tags = Tags(header);
  EXPECT_EQ(tags["v"], "1");
  EXPECT_EQ(tags["a"], "rsa-sha256");
  EXPECT_EQ(tags["c"], "relaxed/relaxed");
  EXPECT_EQ(tags["d"], "mail.example.com");
  EXPECT_EQ(tags["s"], "crm2025");
  EXPECT_EQ(tags["t"], "1700000000");
  EXPECT_EQ(tags["h"],
            "from:to:subject:date:message-id:mime-version:content-type:"
            "content-transfer-encoding:list-unsubscribe:list-unsubscribe-post");
  CRM_ASSERT_OK_AND_ASSIGN(ParsedMessage parsed, ParseMessage(kNewsletter));
  EXPECT_EQ(tags["bh"], absl::Base64Escape(crypto::Sha256(RelaxedBody(parsed.body))));
  std::string signature;
  ASSERT_TRUE(absl::Base64Unescape(tags["b"], &signature));
  EXPECT_EQ(signature.size(), 256u);
  EXPECT_EQ(tags.size(), 9u);
}

TEST_F(SignerTest, EmptyBodyHashIsSha256OfNothing) {
  CRM_ASSERT_OK_AND_ASSIGN(std::string header, MakeSigner().Sign(kEmptyBody, kSigningTime));
  EXPECT_EQ(Tags(header)["bh"], "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST_F(SignerTest, RepeatedFieldsListedOncePerInstanceAndOversignAddsOne) {
  SignerOptions options = Options();
  options.signed_headers = {"from", "X-Campaign", "x-campaign", "Subject", "Reply-To"};
  const std::string message =
      "X-Campaign: a\r\nFrom: a@mail.example.com\r\nX-Campaign: b\r\nSubject: s\r\n\r\n";
  CRM_ASSERT_OK_AND_ASSIGN(std::string header, MakeSigner(options).Sign(message, kSigningTime));
  EXPECT_EQ(Tags(header)["h"], "from:x-campaign:x-campaign:subject");
  options.oversign = true;
  CRM_ASSERT_OK_AND_ASSIGN(header, MakeSigner(options).Sign(message, kSigningTime));
  EXPECT_EQ(Tags(header)["h"],
            "from:from:x-campaign:x-campaign:x-campaign:subject:subject:reply-to");
}

TEST_F(SignerTest, SignMessagePrependsTheHeaderField) {
  const Signer signer = MakeSigner();
  CRM_ASSERT_OK_AND_ASSIGN(std::string header, signer.Sign(kNewsletter, kSigningTime));
  EXPECT_THAT(signer.SignMessage(kNewsletter, kSigningTime), IsOkAndHolds(header + kNewsletter));
}

TEST_F(SignerTest, SignatureDependsOnTime) {
  const Signer signer = MakeSigner();
  CRM_ASSERT_OK_AND_ASSIGN(std::string a, signer.Sign(kNewsletter, kSigningTime));
  CRM_ASSERT_OK_AND_ASSIGN(std::string b,
                           signer.Sign(kNewsletter, kSigningTime + absl::Seconds(1)));
  EXPECT_EQ(Tags(b)["t"], "1700000001");
  EXPECT_NE(Tags(a)["b"], Tags(b)["b"]);
}

TEST_F(SignerTest, ConcurrentSignaturesAreAllCorrect) {
  // RSA PKCS#1 v1.5 is deterministic: every thread must get the same field.
  const Signer signer = MakeSigner();
  CRM_ASSERT_OK_AND_ASSIGN(std::string expected, signer.Sign(kNewsletter, kSigningTime));
  std::vector<std::string> got(4 * 8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        absl::StatusOr<std::string> h = signer.Sign(kNewsletter, kSigningTime);
        got[t * 8 + i] = h.ok() ? *h : h.status().ToString();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& h : got) EXPECT_EQ(h, expected);
}

// Refusals never repeat message content (the secret marker).
constexpr char kSecret[] = "secret-person@example.org";

TEST_F(SignerTest, RefusesMessagesWithoutExactlyOneFrom) {
  const Signer signer = MakeSigner();
  EXPECT_THAT(
      signer.Sign(absl::StrCat("To: ", kSecret, "\r\nSubject: x\r\n\r\nbody\r\n"), kSigningTime),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("no From"), Not(HasSubstr(kSecret)))));
  EXPECT_THAT(
      signer.Sign(absl::StrCat("From: ", kSecret, "\r\nfrom: b@example.com\r\n\r\n"), kSigningTime),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("more than one From"), Not(HasSubstr(kSecret)))));
}

TEST_F(SignerTest, RefusesMalformedMessages) {
  const Signer signer = MakeSigner();
  EXPECT_THAT(
      signer.SignMessage(absl::StrCat("From: ", kSecret, "\r\nSubject: x\r\n"), kSigningTime),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("no empty line"), Not(HasSubstr(kSecret)))));
  EXPECT_THAT(signer.Sign(absl::StrCat("From: ", kSecret, "\n\nbody\n"), kSigningTime),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("CRLF"), Not(HasSubstr(kSecret)))));
}

TEST_F(SignerTest, RefusesSigningTimeBefore1970) {
  EXPECT_THAT(MakeSigner().Sign(kNewsletter, absl::UnixEpoch() - absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("signing time")));
  EXPECT_THAT(MakeSigner().Sign(kNewsletter, absl::InfiniteFuture()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("signing time")));
}

TEST_F(SignerTest, RefusesInvalidOptions) {
  const auto with = [](auto change) {
    SignerOptions options = Options();
    change(options);
    return options;
  };
  for (const char* domain : {"", "example..com", "-a.example", "a-.example", "ex ample.com",
                             "example.com.", "a;b.example", "ex_ample.com"}) {
    EXPECT_THAT(Signer::FromPem(*pem_, with([&](SignerOptions& o) { o.domain = domain; })),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM domain")))
        << domain;
    EXPECT_THAT(Signer::FromPem(*pem_, with([&](SignerOptions& o) { o.selector = domain; })),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM selector")))
        << domain;
  }
  EXPECT_THAT(Signer::FromPem(*pem_, with([](SignerOptions& o) {
                o.domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(62, 'd');  // 254 bytes
              })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM domain")));
  EXPECT_THAT(Signer::FromPem(*pem_, with([](SignerOptions& o) {
                o.domain = std::string(64, 'a') + ".example";
              })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM domain")));
  EXPECT_THAT(Signer::FromPem(*pem_, with([](SignerOptions& o) {
                o.signed_headers = {"To", "Subject"};
              })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must include From")));
  EXPECT_THAT(Signer::FromPem(*pem_, with([](SignerOptions& o) { o.signed_headers = {}; })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must include From")));
  EXPECT_THAT(Signer::FromPem(*pem_, with([](SignerOptions& o) {
                o.signed_headers = {"From", "DKIM-Signature"};
              })),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM-Signature")));
  for (const char* bad : {"", "Sub ject", "Subject:", "Subj\xC3\xA9"}) {
    EXPECT_THAT(Signer::FromPem(*pem_, with([&](SignerOptions& o) {
                  o.signed_headers = {"From", bad};
                })),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("signed_headers")))
        << bad;
  }
  CRM_ASSERT_OK_AND_ASSIGN(Signer ok, Signer::FromPem(*pem_, with([](SignerOptions& o) {
                             o.domain = "Mail-1.Example.COM";
                             o.selector = "s1.2025-11";
                           })));
  EXPECT_EQ(ok.DnsRecordName(), "s1.2025-11._domainkey.Mail-1.Example.COM");
}

TEST_F(SignerTest, RefusesKeysThatAreNotRsa2048OrMore) {
  Pkey small = NewRsaKey(1024);
  EXPECT_THAT(Signer::FromPem(PrivatePem(small.get()), Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("1024 bits"), HasSubstr("2048"))));
  Pkey ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed25519, nullptr);
  EXPECT_THAT(Signer::FromPem(PrivatePem(ed25519.get()), Options()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an RSA key")));
  const std::string garbage =
      "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXBlcnNvbg==\n"
      "-----END PRIVATE KEY-----\n";
  EXPECT_THAT(Signer::FromPem(garbage, Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("does not parse"), Not(HasSubstr("c2VjcmV0")))));
  EXPECT_THAT(Signer::FromPem("", Options()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not parse")));
}

TEST_F(SignerTest, AcceptsTraditionalRsaPemAndPublishesTheSameKey) {
  CRM_ASSERT_OK_AND_ASSIGN(Signer pkcs8, Signer::FromPem(*pem_, Options()));
  // Re-encode the suite key as "BEGIN RSA PRIVATE KEY".
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem_->data(), static_cast<int>(pem_->size())));
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(key, nullptr);
  const std::string traditional = PrivatePem(key.get(), /*traditional=*/true);
  ASSERT_THAT(traditional, StartsWith("-----BEGIN RSA PRIVATE KEY-----"));
  CRM_ASSERT_OK_AND_ASSIGN(Signer pkcs1, Signer::FromPem(traditional, Options()));
  EXPECT_EQ(pkcs1.DnsTxtRecord(), pkcs8.DnsTxtRecord());
  EXPECT_EQ(pkcs1.key_bits(), 2048);
}

TEST_F(SignerTest, DnsTxtRecordHoldsTheSubjectPublicKeyInfo) {
  const Signer signer = MakeSigner();
  EXPECT_EQ(signer.DnsRecordName(), "crm2025._domainkey.mail.example.com");
  const std::string record = signer.DnsTxtRecord();
  absl::string_view p = record;
  ASSERT_TRUE(absl::ConsumePrefix(&p, "v=DKIM1; k=rsa; p=")) << record;
  std::string der;
  ASSERT_TRUE(absl::Base64Unescape(p, &der));
  const unsigned char* in = reinterpret_cast<const unsigned char*>(der.data());
  Pkey published(d2i_PUBKEY(nullptr, &in, static_cast<long>(der.size())));
  ASSERT_NE(published, nullptr);
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem_->data(), static_cast<int>(pem_->size())));
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(published.get(), key.get()), 1);
  // No private material: the DER is a public key only.
  EXPECT_LT(der.size(), 300u);
}

TEST_F(SignerTest, LoadsKeyFileWithSafePermissions) {
  crypto::testing::TempDir dir;
  const std::string good = dir.Write("dkim.pem", *pem_, 0600);
  CRM_ASSERT_OK_AND_ASSIGN(Signer signer, Signer::FromPemFile(good, Options()));
  EXPECT_EQ(signer.key_bits(), 2048);
  EXPECT_EQ(signer.domain(), "mail.example.com");
  EXPECT_EQ(signer.selector(), "crm2025");

  EXPECT_THAT(Signer::FromPemFile(dir.Write("open.pem", *pem_, 0644), Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  const std::string bad = dir.Write("bad.pem", "not a key", 0600);
  EXPECT_THAT(Signer::FromPemFile(bad, Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(bad), HasSubstr("does not parse"))));
  EXPECT_THAT(Signer::FromPemFile(dir.path() + "/missing.pem", Options()),
              StatusIs(absl::StatusCode::kNotFound));
  SignerOptions no_domain = Options();
  no_domain.domain = "";
  EXPECT_THAT(Signer::FromPemFile(good, no_domain),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DKIM domain")));
}

}  // namespace
}  // namespace crm::dkim
