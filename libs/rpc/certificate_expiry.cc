#include "libs/rpc/certificate_expiry.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_type.h>

#include "libs/base/status_macros.h"
#include "libs/log/log.h"
#include "libs/pki/pki.h"

namespace crm::rpc {

CertificateExpiry::CertificateExpiry(std::string cert_file, std::string file_label)
    : cert_file_(std::move(cert_file)), file_label_(std::move(file_label)) {}

absl::StatusOr<absl::Time> CertificateExpiry::NotAfter() const {
  CRM_ASSIGN_OR_RETURN(std::string pem, pki::ReadFile(cert_file_));
  return pki::NotAfter(pem);
}

std::vector<prometheus::MetricFamily> CertificateExpiry::Collect() const {
  const absl::StatusOr<absl::Time> not_after = NotAfter();
  if (!not_after.ok()) {
    if (!failing_.exchange(true)) {
      // The status names the file or the parse error, never its content.
      crm::log::Warn("tls.certificate_unreadable",
                     {{"file", crm::log::Id(file_label_)}, {"status", not_after.status()}});
    }
  } else {
    failing_.store(false);
  }
  prometheus::ClientMetric sample;
  sample.label.push_back({"file", file_label_});
  sample.gauge.value = not_after.ok() ? static_cast<double>(absl::ToUnixSeconds(*not_after)) : 0.0;
  prometheus::MetricFamily family;
  family.name = kCertificateExpiryMetric;
  family.help = "notAfter of the first certificate in the file, unix seconds; 0 if unreadable";
  family.type = prometheus::MetricType::Gauge;
  family.metric.push_back(std::move(sample));
  return {std::move(family)};
}

}  // namespace crm::rpc
