// crm-loadgen: load on one method of a running suite (tools/dev up, or a
// cluster) over mutual TLS, from the command line. The engine is load.h's,
// the one stack_bench uses.
//
//   crm-loadgen --target=127.0.0.1:50053 --server=consent
//       --tls_cert=.run/pki/operator.crt --tls_key=.run/pki/operator.key --tls_ca=.run/pki/ca.crt
//       --method=/crm.consent.v1.Consent/Check --requests=checks.jsonl --token_file=token
//       --concurrency=8 [--rate=2000] --warmup=2s --duration=10s --watch_pid=1234,1240
//       [--out=r.json]
// (one command line).
//
// --requests: a file of request messages in protobuf's JSON mapping, one per
// line, sent in turn. --rate 0 (the default) keeps --concurrency calls in
// flight; otherwise calls start at that rate, at most --concurrency at once.
// Prints the result as JSON (load.h's ToJson) to stdout, or to --out.
// Exit 0 when the run completed (failed calls are counted in the result),
// 2 for a bad setting or request (naming it), 1 otherwise.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "crm/audit/v1/audit.pb.h"
#include "crm/audit/v1/ingest.pb.h"
#include "crm/consent/v1/consent.pb.h"
#include "crm/contacts/v1/contacts.pb.h"
#include "crm/erasure/v1/erasure.pb.h"
#include "crm/identity/v1/identity.pb.h"
#include "crm/mailing/v1/mailing.pb.h"
#include "crm/subject/v1/subject_data.pb.h"
#include "crm/testing/v1/echo.pb.h"
#include "libs/config/config.h"
#include "libs/crypto/key_file.h"
#include "libs/rpc/channel.h"
#include "tools/bench_src/load.h"

extern char** environ;

namespace {

// The request types of every service the suite serves, so that their
// descriptors are linked in and known to the generated pool.
void LinkDescriptors() {
  (void)crm::audit::v1::AppendEventsRequest::descriptor();
  (void)crm::audit::v1::QueryEventsRequest::descriptor();
  (void)crm::consent::v1::CheckRequest::descriptor();
  (void)crm::contacts::v1::CreatePersonRequest::descriptor();
  (void)crm::erasure::v1::ErasureRequest::descriptor();
  (void)crm::identity::v1::LoginRequest::descriptor();
  (void)crm::mailing::v1::CreateListRequest::descriptor();
  (void)crm::subject::v1::DescribeSubjectDataRequest::descriptor();
  (void)crm::testing::v1::EchoRequest::descriptor();
}

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "crm-loadgen: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  LinkDescriptors();
  crm::rpc::ChannelConfig channel;
  std::string method, requests_file, token_file, rate = "0", out;
  int concurrency = 8;
  absl::Duration warmup = absl::Seconds(2), duration = absl::Seconds(10);
  std::vector<std::string> watch;
  crm::config::Settings settings("crm-loadgen");
  settings.Add("target", &channel.target, "host:port of the server");
  settings.Add("server", &channel.expected_server,
               "the server's identity (short name, e.g. consent); empty: check the host name");
  settings.Add("tls_cert", &channel.tls.cert_file, "client certificate (PEM)");
  settings.Add("tls_key", &channel.tls.key_file, "its private key (PEM, mode 0600)");
  settings.Add("tls_ca", &channel.tls.ca_file, "the CA bundle (PEM)");
  settings.Add("method", &method, "full method name, /package.Service/Method");
  settings.Add("requests", &requests_file, "file of JSON requests, one per line");
  settings.Add("token_file", &token_file, "file holding an access token (Bearer), optional");
  settings.Add("concurrency", &concurrency, "most calls in flight", 1, 10000);
  settings.Add("rate", &rate, "calls started per second; 0: closed loop");
  settings.Add("warmup", &warmup, "calls before the measured window");
  settings.Add("duration", &duration, "the measured window");
  settings.Add("watch_pid", &watch, "server processes whose CPU and memory to report");
  settings.Add("out", &out, "write the JSON result here instead of stdout");
  crm::config::ParseOrExit(settings, argc, argv, environ);

  crm::bench::LoadOptions options;
  options.concurrency = concurrency;
  options.warmup = warmup;
  options.duration = duration;
  if (!absl::SimpleAtod(rate, &options.rate) || options.rate < 0) {
    return Fail(2, "rate: must be a number >= 0");
  }
  for (const std::string& pid : watch) {
    int value = 0;
    if (!absl::SimpleAtoi(pid, &value) || value <= 0) return Fail(2, "watch_pid: not a pid");
    options.watch.push_back(value);
  }

  crm::bench::Workload workload;
  workload.method = method;
  // "/crm.consent.v1.Consent/Check" -> "crm.consent.v1.Consent.Check".
  std::string dotted(absl::StripPrefix(method, "/"));
  const size_t slash = dotted.find('/');
  if (slash == std::string::npos || slash == 0) {
    return Fail(2, "method: must be /package.Service/Method");
  }
  dotted[slash] = '.';
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(dotted);
  if (descriptor == nullptr) return Fail(2, absl::StrCat("method: no method ", method));
  if (descriptor->client_streaming() || descriptor->server_streaming()) {
    return Fail(2, "method: only unary methods");
  }
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor->input_type());
  std::ifstream in(requests_file);
  if (!in) return Fail(2, "requests: cannot read the file");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::unique_ptr<google::protobuf::Message> request(prototype->New());
    if (auto s = google::protobuf::util::JsonStringToMessage(line, request.get()); !s.ok()) {
      return Fail(
          2, absl::StrCat("requests: line ", n, " is not a ", descriptor->input_type()->full_name(),
                          ": ", std::string(s.message())));
    }
    workload.requests.push_back(request->SerializeAsString());
  }
  if (workload.requests.empty()) return Fail(2, "requests: the file holds none");
  if (!token_file.empty()) {
    absl::StatusOr<crm::crypto::SecretBytes> token = crm::crypto::ReadKeyFile(token_file);
    if (!token.ok()) return Fail(2, absl::StrCat("token_file: ", token.status().message()));
    workload.metadata.emplace_back(
        "authorization", absl::StrCat("Bearer ", absl::StripAsciiWhitespace(token->view())));
  }

  absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = crm::rpc::MakeChannel(channel);
  if (!ch.ok()) return Fail(2, std::string(ch.status().message()));
  absl::StatusOr<crm::bench::LoadResult> result = crm::bench::RunLoad(*ch, workload, options);
  if (!result.ok()) {
    return Fail(result.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1,
                std::string(result.status().message()));
  }
  const std::string json = crm::bench::ToJson(*result) + "\n";
  if (out.empty()) {
    std::fputs(json.c_str(), stdout);
  } else if (!(std::ofstream(out) << json)) {
    return Fail(1, "out: cannot write the file");
  }
  return 0;
}
