#include "tools/crmctl_src/session.h"

#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/crmctl_src/client.h"
#include "tools/crmctl_src/proto_registry.h"

namespace crm::crmctl {
namespace {

using google::protobuf::Message;

constexpr char kRefreshMethod[] = "crm.identity.v1.Identity/RefreshSession";
// An access token this close to its exp counts as expired: it could lapse
// on the way, and the clocks of client and server differ a little.
constexpr absl::Duration kExpirySlack = absl::Seconds(15);

absl::Status FileError(absl::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(errno)));
}

bool Expired(const std::string& access_token) {
  std::optional<absl::Time> exp = TokenExpiry(access_token);
  return exp.has_value() && *exp <= absl::Now() + kExpirySlack;
}

// Creates the missing directories of `dir` with mode 0700.
absl::Status MakeDirs(const std::string& dir) {
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(dir, '/')) {
    if (!prefix.empty() || dir.front() == '/') prefix += '/';
    prefix.append(part.data(), part.size());
    if (part.empty() || part == ".") continue;
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return FileError("create", prefix);
  }
  return absl::OkStatus();
}

// An exclusive flock(2) of a file, held for the object's lifetime.
class FileLock {
 public:
  explicit FileLock(const std::string& path)
      : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) {
    if (fd_ >= 0 && flock(fd_, LOCK_EX) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // Releases the lock.
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

const Message& SubMessage(const Message& m, const char* name) {
  return m.GetReflection()->GetMessage(m, m.GetDescriptor()->FindFieldByName(name));
}
std::string StringField(const Message& m, const char* name) {
  return m.GetReflection()->GetString(m, m.GetDescriptor()->FindFieldByName(name));
}

}  // namespace

std::string SessionFilePath(const std::map<std::string, std::string>& env) {
  auto value = [&](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? "" : it->second;
  };
  if (std::string file = value("CRMCTL_SESSION_FILE"); !file.empty()) return file;
  if (std::string xdg = value("XDG_CONFIG_HOME"); !xdg.empty()) {
    return absl::StrCat(xdg, "/crmctl/session");
  }
  if (std::string home = value("HOME"); !home.empty()) {
    return absl::StrCat(home, "/.config/crmctl/session");
  }
  return "";
}

absl::StatusOr<std::optional<Session>> LoadSession(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return FileError("read", path);
  }
  std::string text;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
  }
  const int read_errno = errno;
  close(fd);
  if (n < 0) {
    errno = read_errno;
    return FileError("read", path);
  }
  Session session;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "access_token") session.access_token = kv.second;
    if (kv.first == "refresh_token") session.refresh_token = kv.second;
    if (kv.first == "user_id") session.user_id = kv.second;
  }
  if (session.access_token.empty() || session.refresh_token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a crmctl session file; remove it and run crmctl login"));
  }
  return session;
}

absl::Status SaveSession(const std::string& path, const Session& session) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirs(path.substr(0, slash)); !s.ok()) return s;
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return FileError("create", tmp);
  const std::string text = absl::StrCat("access_token ", session.access_token, "\nrefresh_token ",
                                        session.refresh_token, "\nuser_id ", session.user_id, "\n");
  bool ok = fchmod(fd, 0600) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    ok = n > 0 || (n < 0 && errno == EINTR);
    if (n > 0) done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status error = FileError("write", path);
    unlink(tmp.c_str());
    return error;
  }
  return absl::OkStatus();
}

absl::Status RemoveSession(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return FileError("remove", path);
  unlink(absl::StrCat(path, ".lock").c_str());
  return absl::OkStatus();
}

std::optional<absl::Time> TokenExpiry(absl::string_view jwt) {
  std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  std::string payload;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[1], &payload)) return std::nullopt;
  google::protobuf::Struct claims;
  if (!google::protobuf::util::JsonStringToMessage(payload, &claims).ok()) return std::nullopt;
  auto exp = claims.fields().find("exp");
  if (exp == claims.fields().end() || !exp->second.has_number_value()) return std::nullopt;
  return absl::FromUnixSeconds(static_cast<int64_t>(exp->second.number_value()));
}

SessionCaller::SessionCaller(std::vector<std::pair<std::string, std::string>> headers,
                             std::string session_path, std::shared_ptr<grpc::Channel> identity,
                             const ProtoRegistry& registry, absl::Duration timeout)
    : headers_(std::move(headers)),
      session_path_(std::move(session_path)),
      identity_(std::move(identity)),
      registry_(registry),
      timeout_(timeout) {
  for (const auto& header : headers_) {
    if (header.first == "authorization") explicit_authorization_ = true;
  }
}

absl::Status SessionCaller::Init() {
  if (explicit_authorization_ || session_path_.empty()) return absl::OkStatus();
  absl::StatusOr<std::optional<Session>> loaded = LoadSession(session_path_);
  if (!loaded.ok()) return loaded.status();
  session_ = *std::move(loaded);
  return absl::OkStatus();
}

bool SessionCaller::uses_session() const {
  return !explicit_authorization_ && session_.has_value();
}

grpc::Status SessionCaller::Call(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& full_method, const std::string& request,
                                 std::string* response, bool retry_unauthenticated) {
  if (!uses_session())
    return UnaryCall(channel, full_method, request, headers_, timeout_, response);
  auto call = [&] {
    std::vector<std::pair<std::string, std::string>> headers = headers_;
    headers.emplace_back("authorization", absl::StrCat("Bearer ", session_->access_token));
    return UnaryCall(channel, full_method, request, headers, timeout_, response);
  };
  bool refreshed = false;
  if (Expired(session_->access_token)) {
    if (grpc::Status s = Refresh(); !s.ok()) return s;
    refreshed = true;
  }
  grpc::Status status = call();
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && retry_unauthenticated &&
      !refreshed) {
    if (grpc::Status s = Refresh(); !s.ok()) return s;
    status = call();
  }
  return status;
}

grpc::Status SessionCaller::StreamHeaders(
    std::vector<std::pair<std::string, std::string>>* headers) {
  *headers = headers_;
  if (!uses_session()) return grpc::Status::OK;
  if (Expired(session_->access_token)) {
    if (grpc::Status s = Refresh(); !s.ok()) return s;
  }
  headers->emplace_back("authorization", absl::StrCat("Bearer ", session_->access_token));
  return grpc::Status::OK;
}

grpc::Status SessionCaller::Refresh() {
  FileLock lock(absl::StrCat(session_path_, ".lock"));
  if (!lock.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("cannot lock ", session_path_, ".lock"));
  }
  // Another crmctl may have renewed the pair since this one read it: its
  // pair is the one that works now.
  absl::StatusOr<std::optional<Session>> on_disk = LoadSession(session_path_);
  if (on_disk.ok() && !on_disk->has_value()) {
    refresh_failed_ = true;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "logged out (the session file is gone)");
  }
  if (on_disk.ok() && (*on_disk)->refresh_token != session_->refresh_token) {
    session_ = **on_disk;
    if (!Expired(session_->access_token)) return grpc::Status::OK;
  }

  absl::StatusOr<const google::protobuf::MethodDescriptor*> method =
      registry_.FindMethod(kRefreshMethod, "");
  if (!method.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(method.status().message()));
  }
  std::unique_ptr<Message> request = registry_.NewMessage((*method)->input_type());
  request->GetReflection()->SetString(request.get(),
                                      request->GetDescriptor()->FindFieldByName("refresh_token"),
                                      session_->refresh_token);
  std::string reply;
  grpc::Status status =
      UnaryCall(identity_, absl::StrCat("/", (*method)->service()->full_name(), "/RefreshSession"),
                request->SerializeAsString(), headers_, timeout_, &reply);
  if (!status.ok()) {
    refresh_failed_ = true;
    return status;
  }
  std::unique_ptr<Message> response = registry_.NewMessage((*method)->output_type());
  if (!response->ParseFromString(reply)) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "RefreshSession: malformed response");
  }
  const Message& tokens = SubMessage(*response, "tokens");
  Session renewed = *session_;
  renewed.access_token = StringField(tokens, "access_token");
  renewed.refresh_token = StringField(tokens, "refresh_token");
  if (renewed.access_token.empty() || renewed.refresh_token.empty()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "RefreshSession: no tokens in the response");
  }
  session_ = renewed;
  // The old refresh token is spent: without the new one stored, the next
  // crmctl would need a new login.
  if (absl::Status s = SaveSession(session_path_, renewed); !s.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, std::string(s.message()));
  }
  return grpc::Status::OK;
}

std::string SessionCaller::Hint(const grpc::Status& status) const {
  if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED || explicit_authorization_) {
    return "";
  }
  if (!session_.has_value()) return "not logged in: run 'crmctl login <username>'";
  if (refresh_failed_) return "the session has ended: run 'crmctl login <username>'";
  return "";
}

}  // namespace crm::crmctl
