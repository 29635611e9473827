#include "tools/crmctl_src/erasure_commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/crypto/ed25519.h"
#include "libs/crypto/primitives.h"
#include "tools/crmctl_src/crmctl.h"

namespace crm::crmctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kReasons[] = "subject-request|retention|administrator";
constexpr char kStates[] =
    "received|planned|erasing|verifying|completed|completed-with-retention|needs-attention|"
    "cancelled|exporting|expired";
constexpr char kKinds[] = "erasure|access";
constexpr char kRequestColumns[] =
    "request_id:REQUEST kind state reason received_at:RECEIVED due_at:DUE "
    "completed_at:COMPLETED";

// ListErasures: the largest page the service gives, and at most this many
// of them.
constexpr char kListPageSize[] = "500";
constexpr int kMaxListPages = 1000;
// verify reads at most this many bytes of a certificate, signature or key
// file (a certificate of many targets is a few KiB).
constexpr size_t kMaxFileBytes = size_t{1} << 20;
// The file name the printed verification commands use for the public key.
constexpr char kKeyFile[] = "erasure.pub.pem";

// Message field `field` of `m`, set (created if it was not).
Message* Mutable(Message* m, const char* field) {
  return m->GetReflection()->MutableMessage(m, m->GetDescriptor()->FindFieldByName(field));
}

// Positional argument `n` of the command (0: the first after its words);
// ApplyArgs has checked that it is there.
const std::string& PositionalArg(const Invocation& inv, size_t n) {
  return inv.options.args.at(inv.command.words.size() - 1 + n);
}

// The first 16 hex digits of the SHA-256 of the raw key, as the
// certificate's key_id (docs/erasure.md).
std::string KeyId(const crypto::Ed25519PublicKey& key) {
  return absl::BytesToHexString(crypto::Sha256(key.Raw())).substr(0, 16);
}

// The key_id a certificate names; empty if it names none.
std::string NamedKeyId(absl::string_view certificate) {
  constexpr absl::string_view kField = "\"key_id\":\"";
  const size_t start = certificate.find(kField);
  if (start == absl::string_view::npos) return "";
  absl::string_view rest = certificate.substr(start + kField.size());
  const size_t end = rest.find('"');
  return end == absl::string_view::npos ? "" : std::string(rest.substr(0, end));
}

// `s` as one word of a POSIX shell: unchanged if it has only characters no
// shell treats specially, else in single quotes.
std::string ShellWord(absl::string_view s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("_./:=+-@,%").find(c) != absl::string_view::npos;
  });
  if (plain) return std::string(s);
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

// The bytes of file `path` (at most kMaxFileBytes). FAILED_PRECONDITION
// naming the path if it cannot be read or is larger.
absl::StatusOr<std::string> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  }
  std::string bytes(kMaxFileBytes + 1, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (bytes.size() > kMaxFileBytes) {
    return absl::FailedPreconditionError(absl::StrCat(path, " has more than 1 MiB"));
  }
  return bytes;
}

// A file that appears whole or not at all: written to a temporary file
// (mode 0600) in the same directory, which Commit renames over the file
// (`replace`) or links to it (else; an existing file is then left alone).
// The temporary file is removed on any error and when the object goes
// before Commit. Every error is FAILED_PRECONDITION naming the file.
class PendingFile {
 public:
  explicit PendingFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".XXXXXX") {}
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile() { Discard(); }

  // Creates the temporary file.
  absl::Status Create() {
    fd_ = mkstemp(tmp_.data());
    if (fd_ < 0) return Error(errno);
    created_ = true;
    return absl::OkStatus();
  }

  // Appends `bytes` to the temporary file.
  absl::Status Append(absl::string_view bytes) {
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Fail(errno);
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  // Gives the temporary file `mode`, syncs it and puts it in place.
  absl::Status Commit(mode_t mode, bool replace) {
    if (fchmod(fd_, mode) != 0 || fsync(fd_) != 0) return Fail(errno);
    const int closed = close(fd_);
    fd_ = -1;
    if (closed != 0) return Fail(errno);
    if (replace) {
      if (rename(tmp_.c_str(), path_.c_str()) != 0) return Fail(errno);
    } else {
      if (link(tmp_.c_str(), path_.c_str()) != 0) return Fail(errno);
      unlink(tmp_.c_str());
    }
    created_ = false;
    return absl::OkStatus();
  }

 private:
  void Discard() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    if (created_) unlink(tmp_.c_str());
    created_ = false;
  }
  absl::Status Error(int error) const {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", path_, ": ", strerror(error)));
  }
  absl::Status Fail(int error) {
    Discard();
    return Error(error);
  }

  const std::string path_;
  std::string tmp_;  // The template until Create, then the temporary file.
  int fd_ = -1;
  bool created_ = false;  // The temporary file exists.
};

// Writes `bytes` to `path` with mode 0644 as a PendingFile, so that nobody
// sees half a file. FAILED_PRECONDITION naming `path` on any error.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes, bool replace) {
  PendingFile file(path);
  if (absl::Status s = file.Create(); !s.ok()) return s;
  if (absl::Status s = file.Append(bytes); !s.ok()) return s;
  return file.Commit(0644, replace);
}

// Refuses (a usage error naming --out) any of `paths` that exists, unless
// --force is given; kContinue otherwise.
int RefuseExisting(Invocation& inv, const std::vector<std::string>& paths) {
  if (inv.flags.count("force") > 0) return kContinue;
  for (const std::string& path : paths) {
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      return TableUsageError(
          inv.err, absl::StrCat("--out: ", path, " exists (--force replaces it)"), inv.Topic());
    }
  }
  return kContinue;
}

// certificate: --out FILE and FILE.sig must not exist (unless --force).
int CheckCertificateOut(Invocation& inv) {
  const std::string& path = inv.flags.at("out")[0];
  return RefuseExisting(inv, {path, path + ".sig"});
}

// key, export: --force only with --out, whose file must not exist (unless
// --force).
int CheckOptionalOut(Invocation& inv) {
  auto out = inv.flags.find("out");
  if (out == inv.flags.end()) {
    if (inv.flags.count("force") == 0) return kContinue;
    return TableUsageError(inv.err, "--force: only with --out", inv.Topic());
  }
  return RefuseExisting(inv, {out->second[0]});
}

// ls: --due-within as due_before, that long from now.
int ParseDueWithin(Invocation& inv) {
  auto given = inv.flags.find("due-within");
  if (given == inv.flags.end()) return kContinue;
  absl::Duration within;
  if (absl::Status s = ParseDurationArg(given->second[0], &within); !s.ok()) {
    return TableUsageError(inv.err, absl::StrCat("--due-within: ", s.message()), inv.Topic());
  }
  SetTime(Mutable(inv.request.get(), "due_before"), absl::Now() + within);
  return kContinue;
}

// extend: --months is 1 or 2 (the service would refuse anything else too,
// but after a round trip and with the field's name, not the flag's).
int CheckMonths(Invocation& inv) {
  const int32_t months = GetInt32(*inv.request, "months");
  if (months == 1 || months == 2) return kContinue;
  return TableUsageError(
      inv.err, absl::StrCat("--months: expected 1 or 2, got \"", inv.flags.at("months")[0], "\""),
      inv.Topic());
}

// The fields of an ErasureRequest as "field value" lines (its kind right
// after its id; expires_at after completed_at, and only when set;
// extension_notice_pending last, and only when set), then a blank line and
// the table of its targets: service, state, failed calls since the last
// success, the last error, the next try, and how many categories the last
// Erase reported erased and retained. A pending extension notice is also
// explained on `err`.
void PrintRequest(std::ostream& out, std::ostream& err, const Message& request) {
  std::unique_ptr<Message> fields(request.New());
  fields->CopyFrom(request);
  const FieldDescriptor* targets = request.GetDescriptor()->FindFieldByName("targets");
  fields->GetReflection()->ClearField(fields.get(), targets);
  const std::string expires_at = FieldText(request, "expires_at");
  const bool notice_pending = GetBool(request, "extension_notice_pending");
  std::vector<std::vector<std::string>> rows;
  for (std::vector<std::string>& row : FieldRows(*fields)) {
    const std::string name = row[0];
    if (name == "targets" || name == "kind" || name == "expires_at" ||
        name == "extension_notice_pending") {
      continue;
    }
    rows.push_back(std::move(row));
    if (name == "request_id") rows.push_back({"kind", FieldText(request, "kind")});
    if (name == "completed_at" && expires_at != "-") rows.push_back({"expires_at", expires_at});
  }
  if (notice_pending) rows.push_back({"extension_notice_pending", "yes"});
  PrintColumns(out, rows);

  std::vector<std::vector<std::string>> table = {
      {"SERVICE", "STATE", "FAILURES", "LAST_ERROR", "NEXT_ATTEMPT", "ERASED", "RETAINED"}};
  const Reflection* r = request.GetReflection();
  for (int i = 0; i < r->FieldSize(request, targets); ++i) {
    const Message& t = r->GetRepeatedMessage(request, targets, i);
    table.push_back({FieldText(t, "service"), FieldText(t, "state"), FieldText(t, "failures"),
                     FieldText(t, "last_error"), FieldText(t, "next_attempt_at"),
                     absl::StrCat(FieldSize(t, "erased")), absl::StrCat(FieldSize(t, "retained"))});
  }
  out << "\n";
  PrintColumns(out, table);
  if (notice_pending) {
    err << "crmctl: the subject is still to be told of the extension: the notice goes out when "
           "the request is planned\n";
  }
}

// submit, access: the request's id, state and due date, and whether it was
// created (no: the subject already had an open request of that kind, which
// is the one shown).
int RunSubmit(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  if (inv.options.json) return PrintResponse(inv, *response);
  const Message& request = GetMessage(*response, "request");
  const bool created = GetBool(*response, "created");
  PrintColumns(inv.out, {{"request_id", FieldText(request, "request_id")},
                         {"state", FieldText(request, "state")},
                         {"due_at", FieldText(request, "due_at")},
                         {"created", created ? "yes" : "no"}});
  if (!created) {
    const bool access = absl::string_view(inv.command.rpc) == "SubmitAccess";
    inv.err << "crmctl: the subject already has an open " << (access ? "access" : "erasure")
            << " request: the one shown; nothing new was submitted\n";
  }
  return kExitOk;
}

// show, cancel, extend: the request of the response with its targets.
int RunRequest(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  if (inv.options.json) return PrintResponse(inv, *response);
  PrintRequest(inv.out, inv.err, GetMessage(*response, "request"));
  return kExitOk;
}

// ls: every page (ListErasures has page_token and next_page_token of its
// own) into one table.
int RunList(Invocation& inv) {
  return RunOwnPagedList(inv, kMaxListPages, kListPageSize, "requests");
}

// export: the chunks of the stream, in order, to --out FILE (mode 0600; a
// PendingFile, so that only a complete stream leaves a file) or to stdout,
// then with --out its path and size. The document is the subject's personal
// data: it goes there and nowhere else, and no message quotes it.
int RunExport(Invocation& inv) {
  auto out = inv.flags.find("out");
  std::optional<PendingFile> file;
  if (out != inv.flags.end()) {
    // Before the call: a download is audited, and one that cannot be kept
    // should not be made.
    file.emplace(out->second[0]);
    if (absl::Status s = file->Create(); !s.ok()) {
      inv.err << "crmctl: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  int64_t bytes = 0;
  absl::Status stopped;
  const grpc::Status status = inv.ReadStream(
      inv.method, *inv.request,
      [&](const Message& chunk) -> absl::Status {
        const std::string data = GetString(chunk, "data");
        if (file.has_value()) {
          if (absl::Status s = file->Append(data); !s.ok()) return s;
        } else if (!inv.out.write(data.data(), static_cast<std::streamsize>(data.size()))) {
          return absl::FailedPreconditionError("cannot write to stdout");
        }
        bytes += static_cast<int64_t>(data.size());
        return absl::OkStatus();
      },
      &stopped);
  if (!stopped.ok() || !status.ok()) {
    if (!stopped.ok()) {
      inv.err << "crmctl: " << stopped.message() << "\n";
    } else {
      TableRpcError(inv, status);
    }
    if (!file.has_value() && bytes > 0) {
      inv.err << "crmctl: the export on stdout is incomplete (" << bytes << " bytes)\n";
    }
    return kExitFailure;  // `file` goes, and its temporary file with it.
  }
  if (!file.has_value()) {
    if (!inv.out.flush()) {
      inv.err << "crmctl: cannot write to stdout\n";
      return kExitFailure;
    }
    return kExitOk;
  }
  if (absl::Status s = file->Commit(0600, inv.flags.count("force") > 0); !s.ok()) {
    inv.err << "crmctl: " << s.message() << "\n";
    return kExitFailure;
  }
  PrintColumns(inv.out, {{"export", absl::StrCat(out->second[0], " (", bytes, " bytes)")}});
  return kExitOk;
}

// certificate: the certificate to --out FILE and the signature to
// FILE.sig (neither, if either cannot be written), then how to verify them
// offline (--json: the response).
int RunCertificate(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  const std::string path = inv.flags.at("out")[0];
  const std::string sig_path = path + ".sig";
  const bool replace = inv.flags.count("force") > 0;
  const std::string certificate = GetString(*response, "certificate");
  const std::string signature = GetString(*response, "signature");
  if (absl::Status s = WriteFileAtomically(path, certificate, replace); !s.ok()) {
    inv.err << "crmctl: " << s.message() << "\n";
    return kExitFailure;
  }
  if (absl::Status s = WriteFileAtomically(sig_path, signature, replace); !s.ok()) {
    // A certificate without its signature is no use; one that was there
    // before (--force) is gone already.
    unlink(path.c_str());
    inv.err << "crmctl: " << s.message() << "\n";
    return kExitFailure;
  }
  if (inv.options.json) return PrintResponse(inv, *response);
  PrintColumns(inv.out, {{"certificate", absl::StrCat(path, " (", certificate.size(), " bytes)")},
                         {"signature", absl::StrCat(sig_path, " (", signature.size(), " bytes)")}});
  inv.out << "\nVerify it offline with erasure's public key ('crmctl erasure key --out " << kKeyFile
          << "'):\n"
          << "  crmctl erasure verify " << ShellWord(path) << " --key " << kKeyFile << "\n"
          << "  openssl pkeyutl -verify -pubin -inkey " << kKeyFile << " -rawin -in "
          << ShellWord(path) << " -sigfile " << ShellWord(sig_path) << "\n";
  return kExitOk;
}

// key: the PEM on stdout, or to --out FILE with its key_id (--json: the
// response, also with --out).
int RunKey(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  const std::string pem = GetString(*response, "public_key_pem");
  auto out = inv.flags.find("out");
  if (out != inv.flags.end()) {
    if (absl::Status s = WriteFileAtomically(out->second[0], pem, inv.flags.count("force") > 0);
        !s.ok()) {
      inv.err << "crmctl: " << s.message() << "\n";
      return kExitFailure;
    }
  }
  if (inv.options.json) return PrintResponse(inv, *response);
  if (out == inv.flags.end()) {
    inv.out << pem << (pem.empty() || pem.back() != '\n' ? "\n" : "");
    return kExitOk;
  }
  absl::StatusOr<crypto::Ed25519PublicKey> key = crypto::Ed25519PublicKey::FromPem(pem);
  PrintColumns(inv.out, {{"public_key", out->second[0]}, {"key_id", key.ok() ? KeyId(*key) : "-"}});
  return kExitOk;
}

// verify: FILE and FILE.sig into `certificate` and `signature`; kContinue,
// or the exit code of a usage error naming FILE.
int ReadSigned(Invocation& inv, std::string* certificate, std::string* signature) {
  const std::string& path = PositionalArg(inv, 0);
  absl::StatusOr<std::string> bytes = ReadFileBytes(path);
  if (!bytes.ok()) {
    return TableUsageError(inv.err, absl::StrCat("FILE: ", bytes.status().message()), inv.Topic());
  }
  *certificate = *std::move(bytes);
  bytes = ReadFileBytes(path + ".sig");
  if (!bytes.ok()) {
    return TableUsageError(inv.err,
                           absl::StrCat("FILE: ", bytes.status().message(),
                                        " (its signature, as 'crmctl erasure certificate' "
                                        "writes it)"),
                           inv.Topic());
  }
  *signature = *std::move(bytes);
  return kContinue;
}

// verify: the verdict on FILE by the public key `pem`, from the file
// `key_path` (--key) or, if that is empty, from the service. Exit 0
// "certificate verified", 1 "certificate NOT valid".
int Verdict(Invocation& inv, const std::string& pem, const std::string& key_path) {
  std::string certificate;
  std::string signature;
  if (int rc = ReadSigned(inv, &certificate, &signature); rc != kContinue) return rc;
  absl::StatusOr<crypto::Ed25519PublicKey> key = crypto::Ed25519PublicKey::FromPem(pem);
  if (!key.ok() && !key_path.empty()) {
    return TableUsageError(
        inv.err,
        absl::StrCat("--key: ", key_path, " is not an Ed25519 public key in PEM (",
                     key.status().message(), ")"),
        inv.Topic());
  }
  if (!key.ok()) {
    inv.err << "ERROR INTERNAL: the service's verification key is not an Ed25519 public key: "
            << key.status().message() << "\n";
    return kExitFailure;
  }
  const bool valid = key->Verify(certificate, signature);
  const std::string id = KeyId(*key);
  const std::string& path = PositionalArg(inv, 0);
  if (inv.options.json) {
    inv.out << "{\n  \"verified\": " << (valid ? "true" : "false") << ",\n  \"key_id\": \"" << id
            << "\"\n}\n";
  } else if (valid) {
    inv.out << "certificate verified: " << path << " is signed by key_id " << id << "\n";
  } else {
    inv.err << "certificate NOT valid: " << path << ".sig is not a signature of " << path
            << " by key_id " << id;
    if (const std::string named = NamedKeyId(certificate); !named.empty() && named != id) {
      inv.err << " (the certificate names key_id " << named << ")";
    }
    inv.err << "\n";
  }
  return valid ? kExitOk : kExitFailure;
}

// verify, before anything else: FILE and FILE.sig must be readable; with
// --key the verdict, without any server.
int VerifyOffline(Invocation& inv) {
  std::string certificate;
  std::string signature;
  if (int rc = ReadSigned(inv, &certificate, &signature); rc != kContinue) return rc;
  auto key = inv.flags.find("key");
  if (key == inv.flags.end()) return kContinue;  // RunVerify asks the service.
  absl::StatusOr<std::string> pem = ReadFileBytes(key->second[0]);
  if (!pem.ok()) {
    return TableUsageError(inv.err, absl::StrCat("--key: ", pem.status().message()), inv.Topic());
  }
  return Verdict(inv, *pem, key->second[0]);
}

// verify without --key: with the key the service gives.
int RunVerify(Invocation& inv) {
  std::unique_ptr<Message> response = inv.registry.NewMessage(inv.method->output_type());
  if (grpc::Status s = inv.Call(inv.method, *inv.request, response.get()); !s.ok()) {
    return TableRpcError(inv, s);
  }
  return Verdict(inv, GetString(*response, "public_key_pem"), "");
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {.words = {"erasure", "submit"},
       .rpc = "SubmitErasure",
       .args = {Positional("SUBJECT_ID", "subject_id"), RequiredFlag("reason", "reason", kReasons)},
       .summary = "open an erasure request for a subject (subject-request: Art. 17; retention: "
                  "its retention period ended); prints its request_id, state and due date (one "
                  "calendar month after receipt) and created yes, or no when the subject already "
                  "had an open request (that one is shown); needs dsr.manage",
       .show = "request",
       .run = RunSubmit},
      {.words = {"erasure", "submit-email"},
       .rpc = "SubmitErasure",
       .args = {Positional("EMAIL", "email"), RequiredFlag("reason", "reason", kReasons)},
       .summary = "the same for the subject with this e-mail address, which the orchestrator "
                  "looks up in contacts (NOT_FOUND when no person has it; the address is not "
                  "stored); needs dsr.manage",
       .show = "request",
       .run = RunSubmit},
      {.words = {"erasure", "access"},
       .rpc = "SubmitAccess",
       .args = {Positional("SUBJECT_ID", "subject_id")},
       .summary = "open an access request for a subject (Art. 15 and 20): every service's data "
                  "on the subject, assembled into one JSON document for 'erasure export' once "
                  "completed; prints its request_id, state and due date (one calendar month "
                  "after receipt) and created yes, or no when the subject already had an open "
                  "access request (that one is shown); needs dsr.manage",
       .show = "request",
       .run = RunSubmit},
      {.words = {"erasure", "access-email"},
       .rpc = "SubmitAccess",
       .args = {Positional("EMAIL", "email")},
       .summary = "the same for the subject with this e-mail address, looked up in contacts like "
                  "submit-email's (NOT_FOUND when no person has it; the address is not stored); "
                  "needs dsr.manage",
       .show = "request",
       .run = RunSubmit},
      {.words = {"erasure", "show"},
       .rpc = "GetErasure",
       .args = {Positional("REQUEST_ID", "request_id")},
       .summary = "a request: its fields (kind, state, due date, extension, rounds, why it "
                  "needs attention; for an access request when its export expires; whether the "
                  "subject is still to be told of an extension), then a table of its targets: "
                  "state, failed calls since the last success, the last error, the next try, and "
                  "how many categories were erased and retained; needs dsr.manage",
       .show = "request",
       .run = RunRequest},
      {.words = {"erasure", "ls"},
       .rpc = "ListErasures",
       .args = {Flag("state", "state", kStates), Flag("kind", "kind", kKinds),
                Flag("due-within", nullptr, "DURATION"), Const("page_size", kListPageSize)},
       .summary = "requests, oldest due first (all pages; --state: only those in it, else "
                  "every state, finished ones too; --kind: only erasure or only access "
                  "requests, else both; --due-within 7d: only those due before 7 days from now, "
                  "overdue ones included): id, kind, state, reason, received, due, completed; "
                  "needs dsr.manage",
       .show = "requests",
       .columns = kRequestColumns,
       .prepare = ParseDueWithin,
       .run = RunList},
      {.words = {"erasure", "cancel"},
       .rpc = "CancelErasure",
       .args = {Positional("REQUEST_ID", "request_id")},
       .summary = "cancel a request still in its cancel window (state received); "
                  "FAILED_PRECONDITION once erasing has begun; prints it like show; needs "
                  "dsr.manage",
       .show = "request",
       .run = RunRequest},
      {.words = {"erasure", "extend"},
       .rpc = "ExtendErasure",
       .args = {Positional("REQUEST_ID", "request_id"), RequiredFlag("months", "months", "1|2"),
                RequiredFlag("reason", "reason", "TEXT")},
       .summary = "move the due date by one or two months (Art. 12(3); at most two in all), "
                  "recording the reason (1..500 characters, no personal data); "
                  "FAILED_PRECONDITION for a finished request or one already extended by two "
                  "months; prints it like show; needs dsr.manage",
       .show = "request",
       .prepare = CheckMonths,
       .run = RunRequest},
      {.words = {"erasure", "certificate"},
       .rpc = "GetCertificate",
       .args = {Positional("REQUEST_ID", "request_id"), RequiredFlag("out", nullptr, "FILE"),
                Switch("force", nullptr)},
       .summary = "the signed certificate of a completed request (JSON without personal data) "
                  "to FILE and its Ed25519 signature to FILE.sig, mode 0644 (existing files "
                  "only with --force), and the commands that verify it offline; "
                  "FAILED_PRECONDITION before completion; needs dsr.manage",
       .prepare = CheckCertificateOut,
       .run = RunCertificate},
      {.words = {"erasure", "export"},
       .rpc = "GetAccessExport",
       .args = {Positional("REQUEST_ID", "request_id"), Flag("out", nullptr, "FILE"),
                Switch("force", nullptr)},
       .summary = "the export of a completed access request, one JSON document of the "
                  "subject's personal data, streamed to stdout or to --out FILE (mode 0600, put "
                  "in place only once the whole document has come; an existing file only with "
                  "--force); --timeout bounds the whole download; every download is audited; "
                  "FAILED_PRECONDITION before the export is ready and once it has expired; "
                  "needs dsr.manage",
       .prepare = CheckOptionalOut,
       .run = RunExport},
      {.words = {"erasure", "key"},
       .rpc = "GetVerificationKey",
       .args = {Flag("out", nullptr, "FILE"), Switch("force", nullptr)},
       .summary = "the public key certificates verify with (PEM) on stdout, or to --out FILE "
                  "(mode 0644; an existing file only with --force) with its key_id; any "
                  "authenticated caller",
       .prepare = CheckOptionalOut,
       .run = RunKey},
      {.words = {"erasure", "verify"},
       .rpc = "GetVerificationKey",
       .args = {Positional("FILE", nullptr), Flag("key", nullptr, "PEM_FILE")},
       .summary = "check the certificate FILE against its signature FILE.sig: with the public "
                  "key of --key PEM_FILE offline (no server, certificate or session needed), "
                  "else with the one the service gives (any authenticated caller); exit 0 "
                  "\"certificate verified\", 1 \"certificate NOT valid\"",
       .run = RunVerify,
       .offline = VerifyOffline},
      {.words = {"erasure", "reapply"},
       .rpc = "ReapplyErasures",
       .args = {RequiredFlag("since", "completed_since", "RFC3339")},
       .summary = "after a database restore: submit again (reason administrator) the erasure "
                  "of every subject whose request completed at or after --since (the backup's "
                  "time); prints submitted (new requests) and already_open (subjects skipped); "
                  "needs dsr.manage"},
  };
  return *commands;
}

}  // namespace

const CommandTable& ErasureCommandTable() {
  static const auto* table = new CommandTable{
      .service = "crm.erasure.v1.Erasure",
      .service_name = "erasure",
      .commands = &Commands(),
      .usage_title = "Erasure",
      .usage_footer =
          "Calls carry the session of 'crmctl login' (renewed at the identity service when it\n"
          "expires), unless --header authorization=... is given. Output: a table or \"field\n"
          "value\" lines; --json prints the response as JSON. Enum values are given and shown\n"
          "without their prefix and with '-' for '_' (subject-request, needs-attention).\n"
          "Durations: 12h, 7d, 1d12h. Times: RFC 3339 (2026-11-01T00:00:00Z).\n"
          "For 'erasure verify', --key is the public key to verify with; the operator's own\n"
          "key then comes from $CRM_PKI_DIR (else <repo>/.run/pki).\n"
          "'erasure export' writes the subject's personal data as it is streamed: to stdout,\n"
          "or with --out to a file of mode 0600 that appears only once the whole document has\n"
          "come (--json changes nothing: the document is JSON); --timeout bounds the whole\n"
          "download.\n"
          "Other flags: --erasure H:P (or --addr/--server-identity), --identity H:P, --timeout,\n"
          "--cert --key --ca (see crmctl --help).\n"};
  return *table;
}

absl::Status CheckErasureCommands(const ProtoRegistry& registry) {
  return CheckCommandTable(registry, ErasureCommandTable());
}

}  // namespace crm::crmctl
