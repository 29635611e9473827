// The operator's identity session in crmctl: the token pair of
// `crmctl login`, kept in a file only its owner can read, and the caller
// that puts the access token on every call ("authorization: Bearer <jwt>")
// and renews the pair with Identity/RefreshSession when the access token has
// expired (its exp, read without verifying) or a call is refused with
// UNAUTHENTICATED. Refresh tokens rotate, so the new pair is always stored,
// under an exclusive lock of <file>.lock: two crmctl processes refreshing at
// once would otherwise present the same refresh token twice, which the
// server treats as a replay and answers by revoking the session.
//
// File: $CRMCTL_SESSION_FILE, else $XDG_CONFIG_HOME/crmctl/session, else
// $HOME/.config/crmctl/session; mode 0600 in a directory created 0700;
// written to a temporary file and renamed into place. Lines "key value":
// access_token, refresh_token, user_id.
//
// Thread-safety: SessionCaller is for one thread; the free functions are
// thread-safe.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::crmctl {

class ProtoRegistry;

struct Session {
  std::string access_token;
  std::string refresh_token;
  std::string user_id;
};

// Where the session file is; empty if neither $CRMCTL_SESSION_FILE,
// $XDG_CONFIG_HOME nor $HOME is set.
std::string SessionFilePath(const std::map<std::string, std::string>& env);

// The session in `path`; nullopt if there is no such file. INVALID_ARGUMENT
// naming the file if it is malformed (no tokens); FAILED_PRECONDITION if it
// cannot be read.
absl::StatusOr<std::optional<Session>> LoadSession(const std::string& path);

// Replaces `path` with `session` (mode 0600; a missing directory is created
// 0700). FAILED_PRECONDITION naming the path on failure.
absl::Status SaveSession(const std::string& path, const Session& session);

// Deletes `path` (and its lock file); a missing file is OK.
absl::Status RemoveSession(const std::string& path);

// The "exp" claim of a JWT, read without verifying anything; nullopt if the
// token is not a JWT with a numeric exp.
std::optional<absl::Time> TokenExpiry(absl::string_view jwt);

// Makes unary calls as the operator: with the session's bearer token unless
// the headers already carry an authorization entry (then the headers go
// unchanged, as without a session).
class SessionCaller {
 public:
  // `headers`: the --header metadata. `session_path`: the session file (may
  // be empty: no session). `identity`: a channel to the identity service,
  // used for RefreshSession. `registry` must outlive the caller.
  SessionCaller(std::vector<std::pair<std::string, std::string>> headers, std::string session_path,
                std::shared_ptr<grpc::Channel> identity, const ProtoRegistry& registry,
                absl::Duration timeout);

  // Reads the session file, if there is one. Errors of LoadSession.
  absl::Status Init();

  // Like UnaryCall (client.h) with the bearer token of the session: renews
  // the pair first if the access token has expired, and once more (then
  // retries the call once) if the call answers UNAUTHENTICATED and
  // `retry_unauthenticated` is set. A failed renewal is returned as the
  // call's status.
  grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& full_method,
                    const std::string& request, std::string* response,
                    bool retry_unauthenticated = true);

  // The metadata of a call that cannot be retried (a stream): the
  // --header entries plus the session's bearer token, renewing the pair
  // first if the access token has expired. A failed renewal is returned.
  grpc::Status StreamHeaders(std::vector<std::pair<std::string, std::string>>* headers);

  // Whether calls carry the session's token (a session exists and no
  // explicit authorization header was given).
  bool uses_session() const;
  const std::optional<Session>& session() const { return session_; }
  const std::string& session_path() const { return session_path_; }

  // For an UNAUTHENTICATED `status`: what the operator should do ("run
  // crmctl login ..."), or empty when calls use an explicit header.
  std::string Hint(const grpc::Status& status) const;

 private:
  grpc::Status Refresh();

  std::vector<std::pair<std::string, std::string>> headers_;
  std::string session_path_;
  std::shared_ptr<grpc::Channel> identity_;
  const ProtoRegistry& registry_;
  absl::Duration timeout_;
  bool explicit_authorization_ = false;
  std::optional<Session> session_;
  bool refresh_failed_ = false;
};

}  // namespace crm::crmctl
