// The whole suite as processes, for the system tests that need every part at
// once (example_shop_test.cc, browser_test.cc, and stack_bench): identity, contacts, consent,
// mailing (with a real SMTP sink), audit and the erasure orchestrator on fresh
// databases of the shared test PostgreSQL and the shared Redis, the HTTPS
// gateway over all of them, mutual TLS from a throwaway PKI (clients
// operator, shop, clerk, stranger; "echo" for a benchmark's echo servers,
// tools/bench_src/stack_bench.cc), the bootstrap administrator's first login
// and password change with the real crmctl (password kAdminPassword), and the
// first run of tools/example_shop/setup.
//
// Starting takes a few seconds (Argon2, migrations, key fetches), so a test
// suite starts one Stack in SetUpTestSuite and shares it.
//
// Not thread-safe: one test thread drives it.
#pragma once

#include <httplib.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/rpc/testing/test_pki.h"
#include "libs/testing/pg_test_database.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/subprocess.h"
#include "tests/system/service_processes.h"

namespace crm::system_test {

// The administrator's password once Stack::Create has changed the bootstrap one.
inline constexpr char kAdminPassword[] = "example shop test: blue kettle 42 sings";
// A command (crmctl, the set-up script with its crmctl calls, the example)
// finishes well within this; only waited for in full when one hangs.
inline constexpr absl::Duration kCommandBound = absl::Seconds(60);

// What a command did: how it ended and its stdout and stderr, interleaved.
struct Outcome {
  testing::ExitStatus exit;
  std::string output;
};

struct StackOptions {
  // The gateway's setting static_dir (its /static/, /console and /portal);
  // empty: none.
  std::string static_dir;
  // Whether identity, contacts, consent, mailing and erasure relay their
  // audit events to audit (setting audit_addr), so that audit's reports show
  // them. Default off: their outboxes keep the events.
  bool relay_audit = false;
  // Settings added to a service's own (and winning over them), by service
  // name, e.g. {"identity", {{"CRM_LOGIN_THROTTLE_ATTEMPTS", "1000"}}}.
  std::map<std::string, std::map<std::string, std::string>> service_env;
  // The SMTP sink mailing sends to.
  testing::SmtpSinkOptions sink;
};

struct Stack {
  // Starts every service and the gateway, logs the administrator in with
  // crmctl, changes the bootstrap password to kAdminPassword and runs
  // tools/example_shop/setup once (first_setup; its failure is for a test
  // to report). An error names the step that failed, with the process's
  // output where there is one.
  static absl::StatusOr<std::unique_ptr<Stack>> Create(const StackOptions& options = {});

  // Stops every service with SIGTERM (the gateway too) and waits for each;
  // an error names each that did not exit with 0, with its output.
  absl::Status Shutdown();

  TempDir dir;
  std::unique_ptr<rpc::testing::TestPki> pki;
  std::vector<std::unique_ptr<testing::PgTestDatabase>> dbs;
  std::map<std::string, int> ports;
  std::vector<std::unique_ptr<testing::Subprocess>> services;
  // How each service was started (for Launch) and where it is in `services`.
  std::map<std::string, testing::Subprocess::Options> launched;
  std::map<std::string, size_t> position;
  std::unique_ptr<testing::SmtpSink> sink;
  std::unique_ptr<testing::Subprocess> gateway;
  int campaigns_sent = 0;  // CampaignMailTo names them "Campaign <n>"
  int commands = 0;
  bool relay_audit = false;  // StackOptions::relay_audit
  std::map<std::string, std::map<std::string, std::string>>
      service_env;  // StackOptions::service_env
  Outcome first_setup;

  std::string Addr(const std::string& service) {
    return absl::StrCat("127.0.0.1:", ports[service]);
  }

  // Runs `args` to its end (killed after `bound`) with `env` plus what
  // crmctl needs (the services' addresses, the operator certificate, the
  // session file).
  Outcome Run(std::vector<std::string> args, std::map<std::string, std::string> env = {},
              absl::Duration bound = kCommandBound);

  // crm-example-shop with the shop's certificate (or `as`'s) and `flags`.
  Outcome RunExample(std::vector<std::string> flags, const std::string& as = "shop");

  // tools/example_shop/setup as the administrator.
  Outcome RunSetup();

  // tools/platform-accounts as the administrator: the service accounts of
  // mailing (calls consent), erasure (calls mailing and contacts), identity
  // (calls contacts and mailing) and contacts (calls erasure). Idempotent.
  Outcome RunPlatformAccounts();

  // A mailing list `list_id` (purpose newsletter, single opt-in) with the
  // template `template_id` ("Hello {{first_name}}"), and a new person
  // `given_name` with `email` subscribed to it. Their subject id; "" if a
  // step failed.
  std::string SubscribedCustomer(const std::string& list_id, const std::string& template_id,
                                 const std::string& given_name, const std::string& email);
  // Sends a new campaign of `template_id` to `list_id` and waits until it is
  // done; the raw messages it delivered to `email`.
  std::vector<std::string> CampaignMailTo(const std::string& list_id,
                                          const std::string& template_id, const std::string& email);

  // The 6-digit privacy-portal code in the newest verification mail to
  // `address` (polled for 10 s), or "".
  std::string MailedCode(const std::string& address);
  // The erasure request's JSON (crmctl GetErasure) once its state is one of
  // `states` (polled), or the last answer when `bound` has passed.
  std::string AwaitErasure(const std::string& request_id, const std::vector<std::string>& states,
                           absl::Duration bound = absl::Seconds(60));

  // `crmctl ARGS...` with the administrator's session.
  Outcome Crmctl(const std::vector<std::string>& args);

  // `crmctl COMMAND --password-stdin` reading `first` and `second` (if not
  // empty) as lines of its stdin.
  Outcome CrmctlWithInput(const std::string& command, const std::string& first,
                          const std::string& second = "");

  // Starts `service` on a fresh database with `extra_env` added to its
  // settings, and waits until it serves.
  absl::Status Start(const std::string& service, std::map<std::string, std::string> extra_env);

  // Starts `service` as Start() did the first time (same port, database and
  // settings) and waits until it serves.
  absl::Status Launch(const std::string& service);

  // The gateway, with its JSON API over every service; waits for /healthz.
  // (Re)starts the gateway on a new port with `static_dir` and the per-client
  // limit (0: none, as the tests call it often from one address).
  absl::Status StartGateway(const std::string& static_dir, int rate_limit_per_minute = 0);

  // An HTTPS client of the gateway that verifies its certificate with the
  // test CA.
  std::unique_ptr<httplib::SSLClient> Https();

  // SIGKILL: no draining, no clean shutdown (a crash).
  absl::Status Kill(const std::string& service);

  // Where any of `needles` (case-insensitive) is kept: every row of every
  // table of every service database ("<db>.<table>"), every key and value of
  // the test Redis ("redis <key>"), and every line of the services' and the
  // gateway's logs ("log <file>: <line number>"). Not the mail the SMTP sink
  // received, nor the output of commands (crmctl prints what it is asked
  // for). A place that cannot be read is reported as a finding, so an empty
  // answer always means "looked everywhere, found nothing".
  std::vector<std::string> Traces(const std::vector<std::string>& needles);
};

// The value of the first `"key": "..."` in crmctl's JSON output, or "".
std::string JsonString(const std::string& json, const std::string& key);

}  // namespace crm::system_test
