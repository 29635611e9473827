#include "tools/crmctl_src/client.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/pki/pki.h"

namespace crm::crmctl {
namespace {

constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";

// What the certificate verification of the gateway connection checks after
// the chain: the SPIFFE id (if `spiffe_id` is set) or the host name.
struct PeerCheck {
  std::string spiffe_id;
  std::string host;
};

bool HasUriSan(X509* cert, const std::string& wanted) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    found = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                        static_cast<size_t>(ASN1_STRING_length(uri))) == wanted;
  }
  GENERAL_NAMES_free(names);
  return found;
}

// SSL_CTX cert-verify callback: the usual chain verification against the CA,
// then the identity of the leaf.
int VerifyGateway(X509_STORE_CTX* store_ctx, void* arg) {
  if (X509_verify_cert(store_ctx) != 1) return 0;
  const auto* check = static_cast<const PeerCheck*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store_ctx);
  bool ok = false;
  if (!check->spiffe_id.empty()) {
    ok = HasUriSan(leaf, check->spiffe_id);
  } else {
    ok = X509_check_ip_asc(leaf, check->host.c_str(), 0) == 1 ||
         X509_check_host(leaf, check->host.c_str(), check->host.size(), 0, nullptr) == 1;
  }
  if (!ok) X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
  return ok ? 1 : 0;
}

std::string FormatHttplibError(httplib::Error error) {
  if (error == httplib::Error::SSLServerVerification || error == httplib::Error::SSLConnection) {
    return absl::StrCat(httplib::to_string(error),
                        " (is it our CA's server with the expected identity?)");
  }
  return httplib::to_string(error);
}

}  // namespace

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

HealthResult CheckGrpcHealth(const rpc::ChannelConfig& config, absl::Duration timeout) {
  HealthResult result;
  const absl::Time start = absl::Now();
  rpc::ChannelConfig no_retries = config;
  no_retries.max_attempts = 1;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(no_retries);
  if (!channel.ok()) {
    result.status = absl::StatusCodeToString(channel.status().code());
    result.detail = std::string(channel.status().message());
    return result;
  }
  std::string reply;
  // HealthCheckRequest{service: ""} serializes to nothing.
  grpc::Status status = UnaryCall(*channel, kHealthCheckMethod, "", {}, timeout, &reply);
  result.latency = absl::Now() - start;
  if (!status.ok()) {
    result.status = CodeName(status.error_code());
    result.detail = status.error_message();
    return result;
  }
  // HealthCheckResponse: field 1, enum ServingStatus (varint).
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(reply.data()),
                                            static_cast<int>(reply.size()));
  uint32_t value = 0;  // UNKNOWN when absent (proto3 default).
  while (uint32_t tag = in.ReadTag()) {
    if (tag == (1 << 3)) {
      if (!in.ReadVarint32(&value)) break;
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  switch (value) {
    case 1:
      result.serving = true;
      result.status = "SERVING";
      break;
    case 2:
      result.status = "NOT_SERVING";
      break;
    case 3:
      result.status = "SERVICE_UNKNOWN";
      break;
    default:
      result.status = "UNKNOWN";
      break;
  }
  return result;
}

HealthResult CheckHttpsHealth(const std::string& address, const rpc::TlsFiles& tls,
                              const std::string& expected_server, absl::Duration timeout) {
  HealthResult result;
  const absl::Time start = absl::Now();
  size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    result.status = "INVALID_ARGUMENT";
    result.detail = "expected host:port";
    return result;
  }
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  PeerCheck check{
      .spiffe_id = expected_server.empty() ? "" : pki::SpiffeId(expected_server),
      .host = host,
  };
  httplib::SSLClient client(host, port, tls.cert_file, tls.key_file);
  if (!client.is_valid()) {
    result.status = "FAILED_PRECONDITION";
    result.detail = "cannot load the client certificate or key";
    return result;
  }
  // httplib's own verification always checks the host name; ours checks the
  // chain and then the SPIFFE id (or the host name), like MakeChannel.
  client.enable_server_certificate_verification(false);
  SSL_CTX* ctx = client.ssl_context();
  if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1) {
    result.status = "FAILED_PRECONDITION";
    result.detail = "cannot load the CA file";
    return result;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, &VerifyGateway, &check);
  const int64_t micros = absl::ToInt64Microseconds(timeout);
  client.set_connection_timeout(micros / 1'000'000, micros % 1'000'000);
  client.set_read_timeout(micros / 1'000'000, micros % 1'000'000);
  client.set_write_timeout(micros / 1'000'000, micros % 1'000'000);
  httplib::Result response = client.Get("/healthz");
  result.latency = absl::Now() - start;
  if (!response) {
    result.status = "UNAVAILABLE";
    result.detail = FormatHttplibError(response.error());
    return result;
  }
  if (response->status == 200) {
    result.serving = true;
    result.status = "SERVING";
  } else {
    result.status = absl::StrCat("HTTP ", response->status);
    result.detail = "GET /healthz did not return 200";
  }
  return result;
}

}  // namespace crm::crmctl
