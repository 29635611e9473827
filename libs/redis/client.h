// A Redis client for every service: a bounded pool of hiredis connections
// with connect and command timeouts, AUTH, and transparent replacement of
// connections the server closed (restart, CLIENT KILL, idle timeout).
//
//   CRM_ASSIGN_OR_RETURN(auto redis, redis::Client::Create({.host = h, .port = p,
//                                                           .password = pw}));
//   CRM_RETURN_IF_ERROR(redis->Set(absl::StrCat("revoked:", session_id), "1", ttl));
//   CRM_ASSIGN_OR_RETURN(redis::Reply r, redis->Command("HINCRBY", key, "n", "1"));
//
// Arguments are binary-safe (NUL bytes included). Errors: UNAVAILABLE when
// the server cannot be reached or does not answer within command_timeout
// (retry later); a Redis error reply becomes a status by its code (see
// ErrorReplyToStatus). Messages never contain keys or values: Redis error
// texts are cut before the first quote, where Redis quotes arguments.
//
// By project rule Redis holds no personal data in clear: keys are ids or
// HMACs, values are counters, flags and cached decisions.
//
// Thread-safe: any number of threads may share one Client; each call uses its
// own connection from the pool.
//
// For callers that must not block (gRPC callback handlers), CommandArgvAsync
// writes a command on the client's one connection for them (outside the
// pool); the client's own thread reads the replies and hands each to its
// callback, on that thread. The caller's command goes out at once, and only
// its reply wakes a thread.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct redisContext;

namespace crm::redis {

// One RESP2 reply.
struct Reply {
  enum class Type { kNil, kInteger, kString, kArray, kStatus, kError };
  Type type = Type::kNil;
  int64_t integer = 0;          // kInteger
  std::string str;              // kString (binary-safe), kStatus ("OK"), kError (cut, see above)
  std::vector<Reply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
};

// OK unless `reply` is an error reply, which maps by its code:
//   WRONGPASS, NOAUTH, NOPERM, WRONGTYPE           -> FAILED_PRECONDITION
//   LOADING, BUSY, MASTERDOWN, TRYAGAIN, READONLY  -> UNAVAILABLE
//   OOM                                            -> RESOURCE_EXHAUSTED
//   anything else (ERR, EXECABORT, ...)            -> INTERNAL
absl::Status ErrorReplyToStatus(const Reply& reply);

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  // AUTH after connecting, unless empty. `username` (Redis 6 ACL) is optional.
  std::string username;
  std::string password;
  // SELECT after connecting, unless 0.
  int db = 0;
  // Most connections open at once. Default 8.
  int max_size = 8;
  // TCP connect. Default 1 s.
  absl::Duration connect_timeout = absl::Seconds(1);
  // Each socket read/write of a command or pipeline. Default 1 s.
  absl::Duration command_timeout = absl::Seconds(1);
  // Waiting for a free connection when max_size are in use. Default 1 s.
  absl::Duration acquire_timeout = absl::Seconds(1);
};

// Cumulative counters except open/in_use/idle, which count the pool (the async
// connection of CommandArgvAsync is not in them; its connects, commands and
// drops are counted).
// Read by tests; no metric exports them yet.
struct ClientStats {
  int64_t open = 0;
  int64_t in_use = 0;
  int64_t idle = 0;
  uint64_t commands = 0;  // commands sent, pipelined ones included
  uint64_t connects = 0;
  uint64_t connect_failures = 0;  // includes AUTH/SELECT failures
  uint64_t discarded = 0;         // broken connections dropped
  uint64_t waited = 0;            // acquires that had to wait
  uint64_t timed_out = 0;         // acquires that gave up
};

// Commands to send in one round trip. Copies its arguments.
class Pipeline {
 public:
  template <typename... Args>
  requires(std::convertible_to<const Args&, absl::string_view>&&...) Pipeline& Add(
      const Args&... args) {
    commands_.push_back({std::string(absl::string_view(args))...});
    return *this;
  }
  Pipeline& AddArgv(absl::Span<const absl::string_view> args);
  size_t size() const { return commands_.size(); }

 private:
  friend class Client;
  std::vector<std::vector<std::string>> commands_;
};

class Client {
 public:
  // Opens one connection (connect, AUTH, SELECT, PING) to check the settings
  // and keeps it. INVALID_ARGUMENT for a bad port or max_size; UNAVAILABLE if the
  // server cannot be reached or does not answer; FAILED_PRECONDITION if it
  // refused the credentials ("AUTH refused") or wants a password that was
  // not given (NOAUTH).
  static absl::StatusOr<std::unique_ptr<Client>> Create(Options options);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command and returns its reply; an error reply becomes a status
  // (ErrorReplyToStatus). UNAVAILABLE on connection failure or timeout; the
  // connection is then dropped and the next call gets a new one.
  absl::StatusOr<Reply> CommandArgv(absl::Span<const absl::string_view> args);
  template <typename... Args>
  requires(std::convertible_to<const Args&, absl::string_view>&&...) absl::StatusOr<Reply> Command(
      const Args&... args) {
    const absl::string_view argv[] = {absl::string_view(args)...};
    return CommandArgv(argv);
  }

  // Sends one command; `done` gets what CommandArgv would have returned.
  // The command is written on the calling thread, on the client's async
  // connection (one, outside the pool; connected by the client's thread on
  // first use and after a failure, meanwhile commands wait for it). The
  // client's thread reads the replies and calls each `done` on that thread,
  // in the order sent: `done` must be quick and must not block (hand slow
  // work to another thread). No reply within command_timeout (noticed at
  // most command_timeout later) fails every command in flight on that
  // connection with UNAVAILABLE and drops it. A command is always answered,
  // at the latest when the Client is destroyed (which waits for it). An
  // empty command is answered at once, on the caller's thread,
  // INVALID_ARGUMENT.
  using ReplyCallback = std::function<void(absl::StatusOr<Reply>)>;
  void CommandArgvAsync(absl::Span<const absl::string_view> args, ReplyCallback done);

  // Sends every command of `pipeline` and reads as many replies, in order.
  // Error replies stay in the vector (type kError; check each with
  // ErrorReplyToStatus). UNAVAILABLE as for CommandArgv; INVALID_ARGUMENT for
  // an empty pipeline or an empty command.
  absl::StatusOr<std::vector<Reply>> Execute(const Pipeline& pipeline);

  // GET: the value, or nullopt if the key does not exist.
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key);
  // SET, with PX `ttl` unless ttl is infinite. INVALID_ARGUMENT for a ttl
  // under 1 ms.
  absl::Status Set(absl::string_view key, absl::string_view value,
                   absl::Duration ttl = absl::InfiniteDuration());
  // DEL: how many of the keys existed.
  absl::StatusOr<int64_t> Del(absl::Span<const absl::string_view> keys);
  absl::StatusOr<int64_t> Del(absl::string_view key) { return Del(absl::MakeConstSpan(&key, 1)); }
  // INCR: the new value. FAILED_PRECONDITION/INTERNAL if not an integer.
  absl::StatusOr<int64_t> Incr(absl::string_view key);
  // PEXPIRE: true if the key exists (and now expires). INVALID_ARGUMENT for a
  // ttl under 1 ms or infinite.
  absl::StatusOr<bool> Expire(absl::string_view key, absl::Duration ttl);
  // PING: OK if the server answers.
  absl::Status Ping();

  ClientStats Stats() const;

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using Conn = std::unique_ptr<redisContext, ContextDeleter>;
  explicit Client(Options options) : options_(std::move(options)) {}
  absl::StatusOr<Conn> Connect();
  absl::StatusOr<Conn> Acquire();
  void Return(Conn conn, bool broken);
  // Sends `commands` on one connection and reads their replies, in order.
  absl::StatusOr<std::vector<Reply>> RoundTrip(
      const std::vector<std::vector<absl::string_view>>& commands);

  // CommandArgvAsync's connection ("the lane") and the thread that reads it,
  // started by the first call.
  struct InFlight {
    ReplyCallback done;
    absl::Time deadline;
  };
  struct Unsent {
    std::string command;  // RESP-encoded
    ReplyCallback done;
  };
  // Writes `command` on the lane (or leaves it to the caller writing now)
  // and expects its reply; on a write failure shuts the socket down, so the
  // reader fails everything in flight.
  void Send(std::string command, ReplyCallback done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(async_mu_);
  void RunLane();
  // Closes lane_ once no caller is writing on it.
  void CloseLane() ABSL_EXCLUSIVE_LOCKS_REQUIRED(async_mu_);
  void WakeLane();

  const Options options_;
  absl::Mutex async_mu_;
  Conn lane_ ABSL_GUARDED_BY(async_mu_);                       // null until connected
  std::deque<InFlight> in_flight_ ABSL_GUARDED_BY(async_mu_);  // sent on lane_, in order
  std::vector<Unsent> unsent_ ABSL_GUARDED_BY(async_mu_);      // waiting for a connection
  std::string outgoing_ ABSL_GUARDED_BY(async_mu_);            // for the caller writing to send
  bool writing_ ABSL_GUARDED_BY(async_mu_) = false;            // a caller is sending on lane_
  bool async_stopping_ ABSL_GUARDED_BY(async_mu_) = false;
  int wake_fd_ = -1;          // eventfd: the reader has a connection to make or is to stop
  std::thread async_thread_;  // started under async_mu_, joined by ~Client
  std::atomic<uint64_t> async_commands_{0};
  mutable absl::Mutex mu_;
  std::vector<Conn> idle_ ABSL_GUARDED_BY(mu_);
  int64_t open_ ABSL_GUARDED_BY(mu_) = 0;
  ClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crm::redis
