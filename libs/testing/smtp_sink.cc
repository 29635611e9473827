#include "libs/testing/smtp_sink.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/base/status_macros.h"
#include "libs/pki/pki.h"

namespace crm::testing {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("smtp sink: cannot read ", path));
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

absl::Status WriteWholeFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("smtp sink: cannot write ", path));
  ::chmod(path.c_str(), 0600);
  return absl::OkStatus();
}

// A CA and a certificate for localhost/127.0.0.1 under `dir`.
absl::Status MakeCertificates(const std::string& dir, std::string* ca_file, std::string* cert_file,
                              std::string* key_file) {
  const absl::Time now = absl::Now();
  CRM_ASSIGN_OR_RETURN(pki::CertificateAuthority ca,
                       pki::CertificateAuthority::Create("smtp-sink test CA", now - absl::Hours(1),
                                                         now + absl::Hours(24)));
  CRM_ASSIGN_OR_RETURN(pki::CertAndKey leaf, ca.Issue({.name = "smtp-sink",
                                                       .not_before = now - absl::Hours(1),
                                                       .not_after = now + absl::Hours(24)}));
  *ca_file = dir + "/ca.crt";
  *cert_file = dir + "/sink.crt";
  *key_file = dir + "/sink.key";
  CRM_RETURN_IF_ERROR(WriteWholeFile(*ca_file, ca.cert_pem()));
  return pki::WriteCertAndKey(leaf, *cert_file, *key_file);
}

// "<ns>-<n>" of a stored file name, for ordering; {0, 0} if malformed.
std::pair<uint64_t, uint64_t> OrderOf(absl::string_view stem) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(stem, '-');
  uint64_t ns = 0, n = 0;
  if (!absl::SimpleAtoi(parts.first, &ns) || !absl::SimpleAtoi(parts.second, &n)) return {0, 0};
  return {ns, n};
}

// Parses a .envelope file: "MAIL FROM:<a>" then "RCPT TO:<b>" lines.
void ParseEnvelope(absl::string_view text, SinkMessage* message) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    absl::string_view value;
    if (absl::StartsWith(line, "MAIL FROM:<")) {
      value = line.substr(11);
      absl::ConsumeSuffix(&value, ">");
      message->mail_from = std::string(value);
    } else if (absl::StartsWith(line, "RCPT TO:<")) {
      value = line.substr(9);
      absl::ConsumeSuffix(&value, ">");
      message->recipients.emplace_back(value);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<SmtpSink>> SmtpSink::Start(SmtpSinkOptions options) {
  const char* source_dir = std::getenv("CRMTEST_SOURCE_DIR");
  if (source_dir == nullptr || *source_dir == '\0') {
    return absl::FailedPreconditionError(
        "smtp sink: CRMTEST_SOURCE_DIR is unset (run the test through ctest)");
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string dir =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/crm-smtp-sink-XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) return absl::InternalError("smtp sink: mkdtemp failed");
  std::unique_ptr<SmtpSink> sink(new SmtpSink(std::move(options), dir));
  sink->sink_path_ = absl::StrCat(source_dir, "/tools/smtp-sink");
  sink->mail_dir_ = dir + "/mail";
  sink->log_file_ = dir + "/sink.log";
  SmtpSinkOptions& o = sink->options_;
  if (o.tls != SmtpSinkOptions::Tls::kNone && o.cert_file.empty()) {
    CRM_RETURN_IF_ERROR(MakeCertificates(dir, &sink->ca_file_, &o.cert_file, &o.key_file));
  }
  CRM_RETURN_IF_ERROR(sink->Spawn(0));
  return sink;
}

SmtpSink::~SmtpSink() {
  if (process_ != nullptr && paused_) (void)process_->Signal(SIGCONT);
  process_.reset();  // SIGKILL and reap
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status SmtpSink::Spawn(int port) {
  const std::string port_file = dir_ + "/port";
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  Subprocess::Options sp;
  sp.args = {sink_path_,    "--dir",   mail_dir_, "--port",      absl::StrCat(port),
             "--port-file", port_file, "--host",  options_.host, "--save-envelope"};
  switch (options_.tls) {
    case SmtpSinkOptions::Tls::kStartTls:
      if (options_.require_starttls) sp.args.push_back("--require-starttls");
      break;
    case SmtpSinkOptions::Tls::kNone:
      sp.args.push_back("--no-starttls");
      break;
    case SmtpSinkOptions::Tls::kImplicit:
      sp.args.push_back("--implicit-tls");
      break;
  }
  if (options_.tls != SmtpSinkOptions::Tls::kNone) {
    sp.args.insert(sp.args.end(), {"--cert", options_.cert_file, "--key", options_.key_file});
  }
  if (!options_.auth_user.empty()) {
    const std::string password_file = dir_ + "/auth-password";
    CRM_RETURN_IF_ERROR(WriteWholeFile(password_file, options_.auth_password + "\n"));
    sp.args.insert(sp.args.end(),
                   {"--auth-user", options_.auth_user, "--auth-password-file", password_file});
  }
  if (options_.tempfail_first > 0) {
    sp.args.insert(sp.args.end(), {"--tempfail-first", absl::StrCat(options_.tempfail_first)});
  }
  if (options_.permfail_first > 0) {
    sp.args.insert(sp.args.end(), {"--permfail-first", absl::StrCat(options_.permfail_first)});
  }
  if (options_.fail_at_data) sp.args.insert(sp.args.end(), {"--fail-at", "data"});
  if (options_.reply_delay > absl::ZeroDuration()) {
    sp.args.insert(sp.args.end(), {"--reply-delay",
                                   absl::StrCat(absl::ToInt64Milliseconds(options_.reply_delay))});
  }
  sp.output_file = log_file_;

  CRM_ASSIGN_OR_RETURN(process_, Subprocess::Start(sp));
  paused_ = false;
  // The handshake: the sink writes its port file (atomically) once it listens.
  const bool up =
      PollUntil([&] { return std::filesystem::exists(port_file) || !process_->Running(); },
                absl::Seconds(20));
  if (!up || !process_->Running()) {
    const std::string output = process_->Output();
    process_.reset();
    return absl::InternalError(
        absl::StrCat("smtp sink: did not start (port ", port, "); its output:\n", output));
  }
  CRM_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(port_file));
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port_) || port_ <= 0) {
    return absl::InternalError(absl::StrCat("smtp sink: bad port file: ", text));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SinkMessage>> SmtpSink::Messages() const {
  std::vector<SinkMessage> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(mail_dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("smtp sink: cannot list ", mail_dir_));
  for (const std::filesystem::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".") || !absl::EndsWith(name, ".eml")) continue;
    SinkMessage message;
    message.file = name;
    CRM_ASSIGN_OR_RETURN(message.data, ReadWholeFile(entry.path().string()));
    const std::string stem = name.substr(0, name.size() - 4);
    const std::string envelope_file = absl::StrCat(mail_dir_, "/", stem, ".envelope");
    if (std::filesystem::exists(envelope_file)) {
      CRM_ASSIGN_OR_RETURN(std::string envelope, ReadWholeFile(envelope_file));
      ParseEnvelope(envelope, &message);
    }
    out.push_back(std::move(message));
  }
  std::sort(out.begin(), out.end(), [](const SinkMessage& a, const SinkMessage& b) {
    return OrderOf(absl::string_view(a.file).substr(0, a.file.size() - 4)) <
           OrderOf(absl::string_view(b.file).substr(0, b.file.size() - 4));
  });
  return out;
}

std::string SmtpSink::Log() const {
  absl::StatusOr<std::string> log = ReadWholeFile(log_file_);
  return log.ok() ? *log : "";
}

int SmtpSink::Connections() const {
  int n = 0;
  for (absl::string_view line : absl::StrSplit(Log(), '\n')) {
    if (absl::StartsWith(line, "smtp-sink: connection ") && absl::EndsWith(line, " opened")) ++n;
  }
  return n;
}

absl::Status SmtpSink::Stop() {
  if (process_ == nullptr) return absl::OkStatus();
  if (paused_) (void)process_->Signal(SIGCONT);
  paused_ = false;
  CRM_RETURN_IF_ERROR(process_->Signal(SIGTERM));
  absl::StatusOr<ExitStatus> exit = process_->WaitForExit(absl::Seconds(10));
  const std::string output = process_->Output();
  process_.reset();
  if (!exit.ok()) return absl::InternalError("smtp sink: did not exit within 10 s of SIGTERM");
  if (!exit->exited_with(0)) {
    std::ostringstream how;
    how << *exit;
    return absl::InternalError(
        absl::StrCat("smtp sink: ended with ", how.str(), "; its output:\n", output));
  }
  return absl::OkStatus();
}

absl::Status SmtpSink::Restart() {
  CRM_RETURN_IF_ERROR(Stop());
  return Spawn(port_);
}

absl::Status SmtpSink::Pause() {
  if (process_ == nullptr) return absl::FailedPreconditionError("smtp sink: not running");
  CRM_RETURN_IF_ERROR(process_->Signal(SIGSTOP));
  paused_ = true;
  return absl::OkStatus();
}

absl::Status SmtpSink::Resume() {
  if (process_ == nullptr) return absl::FailedPreconditionError("smtp sink: not running");
  CRM_RETURN_IF_ERROR(process_->Signal(SIGCONT));
  paused_ = false;
  return absl::OkStatus();
}

}  // namespace crm::testing
