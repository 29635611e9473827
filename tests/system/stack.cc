#include "tests/system/stack.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/pki/pki.h"
#include "libs/redis/client.h"
#include "libs/rpc/channel.h"
#include "libs/testing/test_env.h"

namespace crm::system_test {

using ::crm::rpc::testing::TestPki;
using ::crm::testing::ExitStatus;
using ::crm::testing::PgTestDatabase;
using ::crm::testing::Subprocess;
using ::crm::testing::TestEnv;

namespace {

std::string SourceDir() {
  const char* dir = std::getenv("CRMTEST_SOURCE_DIR");
  return dir == nullptr ? "" : dir;
}

}  // namespace

Outcome Stack::Run(std::vector<std::string> args, std::map<std::string, std::string> env,
                   absl::Duration bound) {
  env.insert({{"CRM_PKI_DIR", pki->dir()},
              {"CRMCTL_IDENTITY_ADDR", Addr("identity")},
              {"CRMCTL_CONTACTS_ADDR", Addr("contacts")},
              {"CRMCTL_CONSENT_ADDR", Addr("consent")},
              {"CRMCTL_MAILING_ADDR", Addr("mailing")},
              {"CRMCTL_ERASURE_ADDR", Addr("erasure")},
              {"CRMCTL_SESSION_FILE", dir.path() + "/crmctl_session"},
              {"CRMCTL", CRMCTL_BINARY}});
  Subprocess::Options options;
  options.args = std::move(args);
  options.env = std::move(env);
  options.output_file = absl::StrCat(dir.path(), "/command_", ++commands, ".log");
  Outcome outcome;
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(options);
  if (!process.ok()) {
    outcome.output = std::string(process.status().message());
    return outcome;
  }
  absl::StatusOr<ExitStatus> exit = (*process)->WaitForExit(bound);
  if (!exit.ok()) {  // hung: killed, so that a test's failure is reported, not its timeout
    (void)(*process)->Signal(SIGKILL);
    exit = (*process)->WaitForExit(kCommandBound);
  }
  outcome.output = (*process)->Output();
  if (exit.ok()) outcome.exit = *exit;
  return outcome;
}

Outcome Stack::RunExample(std::vector<std::string> flags, const std::string& as) {
  const rpc::TlsFiles tls = pki->Files(as);
  std::vector<std::string> args = {
      CRM_EXAMPLE_SHOP_BINARY,
      absl::StrCat("--identity_addr=", Addr("identity")),
      absl::StrCat("--contacts_addr=", Addr("contacts")),
      absl::StrCat("--consent_addr=", Addr("consent")),
      absl::StrCat("--tls_cert=", tls.cert_file),
      absl::StrCat("--tls_key=", tls.key_file),
      absl::StrCat("--tls_ca=", tls.ca_file),
  };
  args.insert(args.end(), flags.begin(), flags.end());
  return Run(args);
}

Outcome Stack::RunSetup() { return Run({SourceDir() + "/tools/example_shop/setup"}); }

Outcome Stack::RunPlatformAccounts() { return Run({SourceDir() + "/tools/platform-accounts"}); }

Outcome Stack::Crmctl(const std::vector<std::string>& args) {
  std::vector<std::string> all = {CRMCTL_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  return Run(all);
}

Outcome Stack::CrmctlWithInput(const std::string& command, const std::string& first,
                               const std::string& second) {
  return Run({"/bin/bash", "-c",
              absl::StrCat("printf '%s\\n' \"$FIRST\" ", second.empty() ? "" : "\"$SECOND\" ",
                           "| \"$CRMCTL\" ", command, " --password-stdin")},
             {{"FIRST", first}, {"SECOND", second}});
}

absl::Status Stack::Start(const std::string& service,
                          std::map<std::string, std::string> extra_env) {
  auto db = PgTestDatabase::Create(service);
  if (!db.ok()) return db.status();
  CRM_ASSIGN_OR_RETURN(TestEnv env, TestEnv::Load());
  std::map<std::string, std::string> vars =
      ServiceEnv({.service = service,
                  .tls = pki->Files(service),
                  .grpc_port = ports[service],
                  .metrics_port = FreePort(),
                  .db_url = (*db)->conninfo(),
                  .migrations_dir = absl::StrCat(SourceDir(), "/services/", service, "/migrations"),
                  .secrets_dir = dir.path(),
                  .redis = env.redis(),
                  .identity_addr = service == "identity" ? "" : Addr("identity")});
  if (relay_audit && service != "audit") vars["CRM_AUDIT_ADDR"] = Addr("audit");
  for (const auto& [name, value] : service_env[service]) vars[name] = value;
  vars.merge(extra_env);
  dbs.push_back(*std::move(db));
  Subprocess::Options options;
  options.args = {Binary(service)};
  options.env = vars;
  options.output_file = absl::StrCat(dir.path(), "/", service, ".log");
  launched[service] = options;
  position[service] = services.size();
  services.emplace_back();
  return Launch(service);
}

absl::Status Stack::Launch(const std::string& service) {
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process, Subprocess::Start(launched[service]));
  rpc::ChannelConfig config;
  config.target = Addr(service);
  config.tls = pki->Files("operator");
  config.expected_server = service;
  config.max_attempts = 1;
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, rpc::MakeChannel(config));
  CRM_RETURN_IF_ERROR(WaitUntilServing(*process, channel));
  services[position[service]] = std::move(process);
  return absl::OkStatus();
}

absl::Status Stack::StartGateway(const std::string& static_dir, int rate_limit_per_minute) {
  gateway.reset();  // a running one stops first
  ports["gateway"] = FreePort();
  const rpc::TlsFiles tls = pki->Files("gateway");
  Subprocess::Options options;
  options.args = {Binary("gateway")};
  options.env = {
      {"CRM_HTTPS_LISTEN", Addr("gateway")},
      {"CRM_METRICS_LISTEN", ""},
      {"CRM_TLS_CERT", tls.cert_file},
      {"CRM_TLS_KEY", tls.key_file},
      {"CRM_TLS_CA", tls.ca_file},
      {"CRM_STATIC_DIR", static_dir},
      {"CRM_RATE_LIMIT_PER_MINUTE", absl::StrCat(rate_limit_per_minute)},
      {"CRM_SERVICES", absl::StrCat("identity=", Addr("identity"), ",contacts=", Addr("contacts"),
                                    ",consent=", Addr("consent"), ",audit=", Addr("audit"),
                                    ",mailing=", Addr("mailing"), ",erasure=", Addr("erasure"))}};
  options.output_file = absl::StrCat(dir.path(), "/gateway.log");
  CRM_ASSIGN_OR_RETURN(gateway, Subprocess::Start(options));
  for (int i = 0; i < 200; ++i) {
    if (httplib::Result r = Https()->Get("/healthz"); r && r->status == 200) {
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::UnavailableError(absl::StrCat("the gateway did not start: ", gateway->Output()));
}

std::unique_ptr<httplib::SSLClient> Stack::Https() {
  auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", ports["gateway"]);
  client->set_ca_cert_path(pki->Files("gateway").ca_file.c_str());
  client->enable_server_certificate_verification(true);
  return client;
}

absl::Status Stack::Kill(const std::string& service) {
  Subprocess& process = *services[position[service]];
  CRM_RETURN_IF_ERROR(process.Signal(SIGKILL));
  return process.WaitForExit(kCommandBound).status();
}

absl::StatusOr<std::unique_ptr<Stack>> Stack::Create(const StackOptions& options) {
  auto stack = std::make_unique<Stack>();
  if (stack->dir.path().empty()) return absl::InternalError("no temp dir");
  stack->relay_audit = options.relay_audit;
  stack->service_env = options.service_env;
  CRM_ASSIGN_OR_RETURN(TestPki pki, TestPki::Create({"identity", "contacts", "consent", "mailing",
                                                     "audit", "erasure", "gateway", "operator",
                                                     "shop", "clerk", "stranger", "echo"}));
  stack->pki = std::make_unique<TestPki>(std::move(pki));
  CRM_ASSIGN_OR_RETURN(TestEnv env, TestEnv::Load());
  CRM_RETURN_IF_ERROR(WriteServiceSecrets(stack->dir.path(), env.redis()));
  for (const char* service : {"identity", "contacts", "consent", "mailing", "audit", "erasure"}) {
    stack->ports[service] = FreePort();
    if (stack->ports[service] <= 0) return absl::UnavailableError("no free port");
  }
  const std::string admin_password_file = stack->dir.path() + "/admin_password";
  CRM_RETURN_IF_ERROR(
      stack->Start("identity", {{"CRM_BOOTSTRAP_ADMIN_PASSWORD_FILE", admin_password_file},
                                {"CRM_CONTACTS_ADDR", stack->Addr("contacts")},
                                {"CRM_MAILING_ADDR", stack->Addr("mailing")}}));
  CRM_RETURN_IF_ERROR(stack->Start("contacts", {{"CRM_ERASURE_ADDR", stack->Addr("erasure")}}));
  CRM_RETURN_IF_ERROR(stack->Start("consent", {}));
  CRM_ASSIGN_OR_RETURN(stack->sink, testing::SmtpSink::Start(options.sink));
  CRM_RETURN_IF_ERROR(
      stack->Start("mailing", {{"CRM_CONSENT_ADDR", stack->Addr("consent")},
                               {"CRM_CONTACTS_ADDR", stack->Addr("contacts")},
                               {"CRM_SMTP_HOST", "127.0.0.1"},
                               {"CRM_SMTP_PORT", absl::StrCat(stack->sink->port())},
                               {"CRM_SMTP_CA_FILE", stack->sink->ca_file()},
                               {"CRM_MAIL_FROM", "Shop News <news@shop.example>"},
                               {"CRM_MESSAGE_DOMAIN", "shop.example"},
                               {"CRM_UNSUBSCRIBE_BASE", "https://crm.shop.example/u/"},
                               {"CRM_SEND_INTERVAL", "200ms"}}));
  CRM_RETURN_IF_ERROR(stack->Start("audit", {}));
  CRM_RETURN_IF_ERROR(stack->Start(
      "erasure",
      {{"CRM_TARGETS",
        absl::StrCat("audit=", stack->Addr("audit"), ",consent=", stack->Addr("consent"),
                     ",contacts=", stack->Addr("contacts"), ",mailing=", stack->Addr("mailing"))},
       {"CRM_MAILING_ADDR", stack->Addr("mailing")},
       {"CRM_CONTACTS_ADDR", stack->Addr("contacts")},
       {"CRM_PROCESSING_RECORD_FILE", SourceDir() + "/deploy/processing-record.json"},
       {"CRM_WORK_INTERVAL", "100ms"},
       {"CRM_CALL_DEADLINE", "2s"},
       {"CRM_LEASE", "5s"}}));
  CRM_RETURN_IF_ERROR(stack->StartGateway(options.static_dir));

  // The first administrator's first login allows only the password change.
  CRM_ASSIGN_OR_RETURN(std::string bootstrap, pki::ReadFile(admin_password_file));
  bootstrap = std::string(absl::StripAsciiWhitespace(bootstrap));
  const Outcome login = stack->CrmctlWithInput("login admin", bootstrap);
  if (!login.exit.exited_with(0)) {
    return absl::InternalError(absl::StrCat("crmctl login admin: ", login.output));
  }
  const Outcome passwd = stack->CrmctlWithInput("passwd", bootstrap, kAdminPassword);
  if (!passwd.exit.exited_with(0)) {
    return absl::InternalError(absl::StrCat("crmctl passwd: ", passwd.output));
  }
  stack->first_setup = stack->RunSetup();
  return stack;
}

absl::Status Stack::Shutdown() {
  std::string problems;
  auto stop = [&](const std::string& name, Subprocess* process) {
    if (process == nullptr) return;  // never started
    if (absl::Status s = process->Signal(SIGTERM); !s.ok()) {
      absl::StrAppend(&problems, name, ": ", s.message(), "\n");
      return;
    }
    absl::StatusOr<ExitStatus> exit = process->WaitForExit(kProcessBound);
    if (!exit.ok() || !exit->exited_with(0)) {
      absl::StrAppend(&problems, name, " did not exit with 0:\n", process->Output(), "\n");
    }
  };
  // The gateway first (it calls everyone), then in reverse order of start,
  // audit last (the others relay their audit events to it).
  stop("gateway", gateway.get());
  std::vector<std::pair<size_t, std::string>> order;
  for (const auto& [name, at] : position) order.emplace_back(at, name);
  std::sort(order.rbegin(), order.rend());
  std::stable_partition(order.begin(), order.end(),
                        [](const auto& p) { return p.second != "audit"; });
  for (const auto& [at, name] : order) stop(name, services[at].get());
  if (problems.empty()) return absl::OkStatus();
  return absl::InternalError(problems);
}

std::string Stack::SubscribedCustomer(const std::string& list_id, const std::string& template_id,
                                      const std::string& given_name, const std::string& email) {
  auto ok = [](const Outcome& o) { return o.exit.exited_with(0); };
  if (!ok(Crmctl({"call", "mailing", "CreateList",
                  absl::StrCat(R"({"list": {"listId": ")", list_id,
                               R"(", "purposeId": "newsletter", "optIn": "OPT_IN_SINGLE"}})")})) ||
      !ok(Crmctl({"call", "mailing", "PutTemplate",
                  absl::StrCat(R"({"template": {"templateId": ")", template_id,
                               R"(", "subject": "News for {{first_name}}", )",
                               R"("textBody": "Hello {{first_name}}"}})")}))) {
    return "";
  }
  const Outcome person =
      Crmctl({"call", "contacts", "CreatePerson",
              absl::StrCat(R"({"person": {"givenName": ")", given_name,
                           R"(", "familyName": "Test", "emails": [{"address": ")", email,
                           R"(", "primary": true}], "registration": {"channel": "web"}}})")});
  const std::string subject = JsonString(person.output, "subject_id");
  const std::string notice =
      JsonString(Crmctl({"call", "consent", "ListPurposes", "{}"}).output, "en");
  if (subject.empty() ||
      !ok(Crmctl({"call", "mailing", "Subscribe",
                  absl::StrCat(R"({"listId": ")", list_id, R"(", "subjectId": ")", subject,
                               R"(", "source": "shop", "noticeVersion": ")", notice, R"("})")}))) {
    return "";
  }
  return subject;
}

std::vector<std::string> Stack::CampaignMailTo(const std::string& list_id,
                                               const std::string& template_id,
                                               const std::string& email) {
  const Outcome created = Crmctl(
      {"call", "mailing", "CreateCampaign",
       absl::StrCat(R"({"campaign": {"name": "Campaign )", ++campaigns_sent, R"(", "listId": ")",
                    list_id, R"(", "templateId": ")", template_id, R"("}})")});
  const std::string id = JsonString(created.output, "campaign_id");
  const size_t before = sink->Messages().value_or(std::vector<crm::testing::SinkMessage>{}).size();
  (void)Crmctl(
      {"call", "mailing", "ScheduleCampaign", absl::StrCat(R"({"campaignId": ")", id, R"("})")});
  for (int i = 0; i < 150; ++i) {
    const Outcome got = Crmctl(
        {"call", "mailing", "GetCampaign", absl::StrCat(R"({"campaignId": ")", id, R"("})")});
    if (absl::StrContains(got.output, "CAMPAIGN_STATE_DONE")) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::vector<std::string> out;
  const std::vector<crm::testing::SinkMessage> all =
      sink->Messages().value_or(std::vector<crm::testing::SinkMessage>{});
  for (size_t i = before; i < all.size(); ++i) {
    if (all[i].recipients == std::vector<std::string>{email}) out.push_back(all[i].data);
  }
  return out;
}

std::string Stack::MailedCode(const std::string& address) {
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::vector<crm::testing::SinkMessage>> mail = sink->Messages();
    if (!mail.ok()) return "";
    for (auto m = mail->rbegin(); m != mail->rend(); ++m) {
      if (m->recipients.size() != 1 || m->recipients[0] != address) continue;
      const std::string kIntro = "Your verification code for the privacy portal is:";
      const size_t at = m->data.find(kIntro);
      if (at == std::string::npos) continue;
      std::string code;
      for (size_t j = at + kIntro.size(); j < m->data.size() && code.size() < 6; ++j) {
        if (absl::ascii_isdigit(m->data[j])) code += m->data[j];
      }
      return code;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return "";
}

std::string Stack::AwaitErasure(const std::string& request_id,
                                const std::vector<std::string>& states, absl::Duration bound) {
  std::string last;
  const absl::Time end = absl::Now() + bound;
  while (absl::Now() < end) {
    last = Crmctl({"call", "erasure", "GetErasure",
                   absl::StrCat(R"({"requestId": ")", request_id, R"("})")})
               .output;
    for (const std::string& s : states) {
      if (absl::StrContains(last, absl::StrCat(R"("state": ")", s, R"(")"))) return last;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return last;
}

std::vector<std::string> Stack::Traces(const std::vector<std::string>& needles) {
  std::vector<std::string> found;
  auto holds = [&](absl::string_view text) {
    const std::string lower = absl::AsciiStrToLower(text);
    for (const std::string& n : needles) {
      if (absl::StrContains(lower, absl::AsciiStrToLower(n))) return true;
    }
    return false;
  };
  for (const auto& db : dbs) {
    try {
      pqxx::connection c(db->conninfo());
      pqxx::nontransaction tx(c);
      for (const pqxx::row& t : tx.exec(
               "SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = "
               "'public' AND table_type = 'BASE TABLE'")) {
        const std::string table = t[0].as<std::string>();
        for (const pqxx::row& r : tx.exec(absl::StrCat("SELECT x::text FROM ", table, " x"))) {
          if (holds(r[0].as<std::string>())) found.push_back(absl::StrCat(c.dbname(), ".", table));
        }
      }
    } catch (const std::exception& e) {
      found.push_back(absl::StrCat("database unreadable: ", e.what()));
    }
  }

  absl::StatusOr<TestEnv> env = TestEnv::Load();
  if (!env.ok()) return {"redis: no test environment"};
  absl::StatusOr<std::unique_ptr<redis::Client>> client = redis::Client::Create(
      {.host = env->redis().host, .port = env->redis().port, .password = env->redis().password});
  if (!client.ok()) return {"redis: unreachable"};
  std::string cursor = "0";
  do {
    absl::StatusOr<redis::Reply> page = (*client)->Command("SCAN", cursor, "COUNT", "1000");
    if (!page.ok() || page->elements.size() != 2) return {"redis: SCAN failed"};
    cursor = page->elements[0].str;
    for (const redis::Reply& key : page->elements[1].elements) {
      // Values read as what they are (DUMP would hide text in LZF).
      absl::StatusOr<redis::Reply> type = (*client)->Command("TYPE", key.str);
      if (!type.ok()) continue;  // expired meanwhile
      absl::StatusOr<redis::Reply> value =
          type->str == "string" ? (*client)->Command("GET", key.str)
          : type->str == "hash" ? (*client)->Command("HGETALL", key.str)
          : type->str == "set"  ? (*client)->Command("SMEMBERS", key.str)
          : type->str == "zset" ? (*client)->Command("ZRANGE", key.str, "0", "-1")
          : type->str == "list" ? (*client)->Command("LRANGE", key.str, "0", "-1")
                                : (*client)->Command("DUMP", key.str);
      bool hit = holds(key.str);
      if (value.ok()) {
        hit = hit || holds(value->str);
        for (const redis::Reply& e : value->elements) hit = hit || holds(e.str);
      }
      if (hit) found.push_back(absl::StrCat("redis ", key.str));
    }
  } while (cursor != "0");

  std::vector<std::string> logs = {dir.path() + "/gateway.log"};
  for (const auto& [service, options] : launched) logs.push_back(options.output_file);
  for (const std::string& file : logs) {
    std::ifstream in(file);
    if (!in) {
      found.push_back(absl::StrCat("log unreadable: ", file));
      continue;
    }
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (holds(line)) found.push_back(absl::StrCat("log ", file, ": ", n));
    }
  }
  return found;
}

std::string JsonString(const std::string& json, const std::string& key) {
  const std::string marker = absl::StrCat("\"", key, "\": \"");
  const size_t at = json.find(marker);
  if (at == std::string::npos) return "";
  const size_t end = json.find('"', at + marker.size());
  return end == std::string::npos ? "" : json.substr(at + marker.size(), end - at - marker.size());
}

}  // namespace crm::system_test
