// CertificateExpiry: a Prometheus collectable that reports when the
// certificate a process serves with expires, as the gauge
//
//   crm_tls_certificate_expiry_timestamp_seconds{file="server"} <notAfter, unix seconds>
//
// of the first certificate in a PEM file. The file is read at every scrape,
// so a rotated certificate shows at once. A file that cannot be read or
// parsed reports 0, so that an alert on "expires within N days" fires for it
// too; the failure is logged once (no file content) until the file reads
// again.
//
// ServerRunner registers one for its tls_cert on its metrics endpoint; the
// gateway does the same for its tls_cert.
//
//   auto expiry = std::make_shared<CertificateExpiry>(config.tls.cert_file);
//   exposer.RegisterCollectable(expiry);  // The exposer keeps a weak_ptr.
//
// Thread-safe: Collect may run on several scrape threads at once.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace crm::rpc {

inline constexpr char kCertificateExpiryMetric[] = "crm_tls_certificate_expiry_timestamp_seconds";

class CertificateExpiry final : public prometheus::Collectable {
 public:
  // Reports the first certificate of `cert_file` with label file=`file_label`.
  explicit CertificateExpiry(std::string cert_file, std::string file_label = "server");

  // One gauge family with one sample: notAfter in unix seconds, or 0.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // notAfter of the first certificate of the file now; NOT_FOUND or INTERNAL
  // if it cannot be read, INVALID_ARGUMENT if it does not parse.
  absl::StatusOr<absl::Time> NotAfter() const;

 private:
  const std::string cert_file_;
  const std::string file_label_;
  mutable std::atomic<bool> failing_{false};  // Logged once per failure.
};

}  // namespace crm::rpc
