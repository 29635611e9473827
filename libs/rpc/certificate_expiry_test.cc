// CertificateExpiry: notAfter of the tls_cert file at scrape time, 0 when the
// file cannot be read.
#include "libs/rpc/certificate_expiry.h"

#include <prometheus/text_serializer.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/pki/pki.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/status_matchers.h"

namespace crm::rpc {
namespace {

using ::crm::rpc::testing::TestPki;
using ::crm::testing::IsOk;

// The metric's value as the text endpoint shows it, or -1 if absent.
double Scrape(const CertificateExpiry& expiry) {
  const std::string text = prometheus::TextSerializer().Serialize(expiry.Collect());
  const std::string prefix = absl::StrCat(kCertificateExpiryMetric, "{file=\"server\"} ");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, prefix)) continue;
    double value = -1;
    return absl::SimpleAtod(line, &value) ? value : -1;
  }
  return -1;
}

class CertificateExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(TestPki pki, TestPki::Create({"b"}));
    pki_ = std::make_unique<TestPki>(std::move(pki));
  }

  // Issues "b" valid until `not_after` (whole seconds) and writes it over
  // the files of "b".
  void Rotate(absl::Time not_after) {
    pki::LeafOptions leaf;
    leaf.name = "b";
    leaf.not_before = absl::Now() - absl::Hours(1);
    leaf.not_after = not_after;
    CRM_ASSERT_OK_AND_ASSIGN(pki::CertAndKey pair, pki_->Issue(leaf));
    ASSERT_THAT(pki::WriteCertAndKey(pair, Files().cert_file, Files().key_file), IsOk());
  }

  TlsFiles Files() const { return pki_->Files("b"); }

  std::unique_ptr<TestPki> pki_;
};

TEST_F(CertificateExpiryTest, ReportsNotAfterOfTheFileAtEachScrape) {
  CertificateExpiry expiry(Files().cert_file);
  CRM_ASSERT_OK_AND_ASSIGN(std::string pem, pki::ReadFile(Files().cert_file));
  CRM_ASSERT_OK_AND_ASSIGN(absl::Time not_after, pki::NotAfter(pem));
  EXPECT_EQ(Scrape(expiry), static_cast<double>(absl::ToUnixSeconds(not_after)));

  // A rotated file shows at the next scrape.
  const absl::Time later = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 90 * 86400);
  Rotate(later);
  EXPECT_EQ(Scrape(expiry), static_cast<double>(absl::ToUnixSeconds(later)));
  const absl::Time sooner = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 3600);
  Rotate(sooner);
  EXPECT_EQ(Scrape(expiry), static_cast<double>(absl::ToUnixSeconds(sooner)));
}

TEST_F(CertificateExpiryTest, TheFirstCertificateOfAChainCounts) {
  const absl::Time leaf_expiry = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 7200);
  Rotate(leaf_expiry);
  CRM_ASSERT_OK_AND_ASSIGN(std::string leaf, pki::ReadFile(Files().cert_file));
  CRM_ASSERT_OK_AND_ASSIGN(std::string ca, pki::ReadFile(pki_->ca_file()));
  const std::string chain = pki_->dir() + "/chain.crt";
  std::ofstream(chain) << leaf << ca;  // The CA outlives the leaf.
  CertificateExpiry expiry(chain);
  EXPECT_EQ(Scrape(expiry), static_cast<double>(absl::ToUnixSeconds(leaf_expiry)));
}

TEST_F(CertificateExpiryTest, UnreadableOrUnparsableFileReportsZero) {
  const std::string path = pki_->dir() + "/server.crt";
  CertificateExpiry expiry(path);
  EXPECT_EQ(Scrape(expiry), 0);  // Missing.
  std::ofstream(path) << "not a certificate\n";
  EXPECT_EQ(Scrape(expiry), 0);  // Garbage.
  CRM_ASSERT_OK_AND_ASSIGN(std::string pem, pki::ReadFile(Files().cert_file));
  std::ofstream(path, std::ios::trunc) << pem;
  EXPECT_GT(Scrape(expiry), 0);  // Readable again.
  if (geteuid() != 0) {          // Root reads anything.
    ASSERT_EQ(chmod(path.c_str(), 0), 0);
    EXPECT_EQ(Scrape(expiry), 0);
  }
}

TEST_F(CertificateExpiryTest, IsAGaugeWithTheFileLabel) {
  CertificateExpiry expiry(Files().cert_file, "client");
  std::vector<prometheus::MetricFamily> families = expiry.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, kCertificateExpiryMetric);
  EXPECT_EQ(families[0].type, prometheus::MetricType::Gauge);
  ASSERT_EQ(families[0].metric.size(), 1u);
  ASSERT_EQ(families[0].metric[0].label.size(), 1u);
  EXPECT_EQ(families[0].metric[0].label[0].name, "file");
  EXPECT_EQ(families[0].metric[0].label[0].value, "client");
}

}  // namespace
}  // namespace crm::rpc
