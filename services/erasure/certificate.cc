#include "services/erasure/certificate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "libs/crypto/primitives.h"
#include "libs/json/json.h"
#include "libs/rpc/handler.h"

namespace crm::erasure {
namespace {

std::string Time(const google::protobuf::Timestamp& ts) {
  return json::Quote(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", rpc::ToTime(ts), absl::UTCTimeZone()));
}

// "subject_request" for ERASURE_REASON_SUBJECT_REQUEST.
std::string ReasonName(v1::ErasureReason r) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::ErasureReason_Name(r), "ERASURE_REASON_"));
}

std::string Categories(const google::protobuf::RepeatedPtrField<subject::v1::DataCategory>& cs,
                       bool retained) {
  std::string out = "[";
  for (int i = 0; i < cs.size(); ++i) {
    const subject::v1::DataCategory& c = cs[i];
    if (i > 0) out += ",";
    absl::StrAppend(&out, "{\"category\":", json::Quote(c.category()),
                    ",\"records\":", c.record_count());
    if (retained) {
      absl::StrAppend(&out, ",\"basis\":", json::Quote(c.retention_basis()));
      if (c.has_purge_after()) absl::StrAppend(&out, ",\"purge_after\":", Time(c.purge_after()));
    }
    out += "}";
  }
  return out + "]";
}

}  // namespace

std::string CertificateJson(const v1::ErasureRequest& r, absl::string_view key_id) {
  std::string out = absl::StrCat(
      "{\"format\":\"crm.erasure.certificate.v1\",\"issuer\":\"crm-erasure\",\"key_id\":",
      json::Quote(key_id), ",\"request_id\":", json::Quote(r.request_id()),
      ",\"reason\":", json::Quote(ReasonName(r.reason())), ",\"outcome\":",
      json::Quote(r.state() == v1::STATE_COMPLETED_WITH_RETENTION ? "completed_with_retention"
                                                                  : "completed"),
      ",\"received_at\":", Time(r.received_at()), ",\"due_at\":", Time(r.due_at()),
      ",\"completed_at\":", Time(r.completed_at()), ",\"rounds\":", r.rounds(), ",\"targets\":[");
  for (int i = 0; i < r.targets_size(); ++i) {
    const v1::Target& t = r.targets(i);
    if (i > 0) out += ",";
    absl::StrAppend(&out, "{\"service\":", json::Quote(t.service()),
                    ",\"found\":", Categories(t.planned(), false),
                    ",\"erased\":", Categories(t.erased(), false),
                    ",\"retained\":", Categories(t.retained(), true),
                    ",\"erased_at\":", Time(t.erased_at()),
                    ",\"verified_at\":", Time(t.verified_at()), "}");
  }
  return out + "]}";
}

std::string KeyId(const crypto::Ed25519PublicKey& key) {
  return absl::BytesToHexString(crypto::Sha256(key.Raw())).substr(0, 16);
}

}  // namespace crm::erasure
