#include "libs/redis/client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/base/status_macros.h"
#include "libs/log/log.h"

namespace crm::redis {
namespace {

timeval ToTv(absl::Duration d) {
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  return absl::ToTimeval(d);
}

// Redis quotes arguments in some error texts ("unknown command 'x', with
// args beginning with: 'key'"): keep what comes before the first quote.
std::string CutErrorText(absl::string_view text) {
  const size_t quote = text.find_first_of("'\"");
  absl::string_view kept = absl::StripTrailingAsciiWhitespace(text.substr(0, quote));
  if (kept.size() > 120) kept = kept.substr(0, 120);
  return std::string(kept);
}

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_NIL:
      out.type = Reply::Type::kNil;
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str = CutErrorText(absl::string_view(r->str, r->len));
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kError;
      out.str = "ERR unsupported reply type";
  }
  return out;
}

struct ReplyDeleter {
  void operator()(void* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<void, ReplyDeleter>;

// The status for a context whose I/O failed. hiredis reports a timeout as an
// I/O error with EAGAIN.
absl::Status IoErrorStatus(const redisContext* c, absl::Duration timeout) {
  if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return absl::UnavailableError(
        absl::StrCat("redis: no answer within ", absl::FormatDuration(timeout)));
  }
  if (c->err == REDIS_ERR_EOF) {
    return absl::UnavailableError("redis: connection closed by the server");
  }
  return absl::UnavailableError(absl::StrCat("redis: connection error: ", c->errstr));
}

// As for a pooled database connection: an idle connection has nothing to
// read; if it has, the server closed it or sent something unasked.
bool LooksHealthy(const redisContext* c) {
  if (c->err != 0 || c->fd < 0) return false;
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN, .revents = 0};
  return ::poll(&pfd, 1, 0) == 0;
}

}  // namespace

absl::Status ErrorReplyToStatus(const Reply& reply) {
  if (reply.type != Reply::Type::kError) return absl::OkStatus();
  const absl::string_view text = reply.str;
  const absl::string_view code = text.substr(0, text.find(' '));
  const std::string msg = absl::StrCat("redis: ", text);
  if (code == "WRONGPASS" || code == "NOAUTH" || code == "NOPERM" || code == "WRONGTYPE") {
    return absl::FailedPreconditionError(msg);
  }
  if (code == "LOADING" || code == "BUSY" || code == "MASTERDOWN" || code == "TRYAGAIN" ||
      code == "READONLY") {
    return absl::UnavailableError(msg);
  }
  if (code == "OOM") return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

Pipeline& Pipeline::AddArgv(absl::Span<const absl::string_view> args) {
  std::vector<std::string> command;
  command.reserve(args.size());
  for (absl::string_view a : args) command.emplace_back(a);
  commands_.push_back(std::move(command));
  return *this;
}

void Client::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

Client::~Client() {
  {
    absl::MutexLock lock(&async_mu_);
    async_stopping_ = true;
  }
  if (async_thread_.joinable()) {
    WakeLane();
    async_thread_.join();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  absl::MutexLock lock(&mu_);
  idle_.clear();
}

namespace {

// `args` as a RESP array of bulk strings, the form of every command.
std::string EncodeCommand(absl::Span<const absl::string_view> args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (absl::string_view a : args) absl::StrAppend(&out, "$", a.size(), "\r\n", a, "\r\n");
  return out;
}

// Writes all of `data` on blocking socket `fd` (its send timeout set).
bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

void Client::WakeLane() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void Client::CommandArgvAsync(absl::Span<const absl::string_view> args, ReplyCallback done) {
  if (args.empty()) {  // would desynchronise the connection's replies
    done(absl::InvalidArgumentError("redis: empty command"));
    return;
  }
  std::string command = EncodeCommand(args);
  async_commands_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&async_mu_);
  if (!async_thread_.joinable()) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    async_thread_ = std::thread([this] { RunLane(); });
  }
  if (lane_ == nullptr) {
    unsent_.push_back({std::move(command), std::move(done)});
    if (unsent_.size() == 1) WakeLane();
    return;
  }
  Send(std::move(command), std::move(done));
}

void Client::Send(std::string command, ReplyCallback done) {
  absl::StrAppend(&outgoing_, command);
  in_flight_.push_back({std::move(done), absl::Now() + options_.command_timeout});
  // One caller at a time writes; callers that come meanwhile leave their
  // commands for it, so under load commands go out in batches.
  if (writing_) return;
  writing_ = true;
  const int fd = lane_->fd;  // stays open while writing_ (see RunLane)
  while (!outgoing_.empty()) {
    std::string batch;
    batch.swap(outgoing_);
    async_mu_.Unlock();
    const bool sent = SendAll(fd, batch);
    async_mu_.Lock();
    if (!sent) {
      ::shutdown(fd, SHUT_RDWR);  // the reader fails what is in flight
      outgoing_.clear();
    }
  }
  writing_ = false;
}

void Client::CloseLane() {
  // A caller may be writing on the socket: close it only after.
  async_mu_.Await(absl::Condition(
      +[](bool* writing) { return !*writing; }, &writing_));
  lane_.reset();
}

void Client::RunLane() {
  std::unique_ptr<redisReader, void (*)(redisReader*)> parser(nullptr, redisReaderFree);
  char buf[16384];
  while (true) {
    // What to do next: connect for commands waiting, stop, or wait for
    // replies until the oldest command in flight is due.
    int fd = -1;
    bool connect = false;
    absl::Duration wait = options_.command_timeout;
    {
      absl::MutexLock lock(&async_mu_);
      if (async_stopping_ && in_flight_.empty() && unsent_.empty()) {
        CloseLane();
        return;
      }
      connect = lane_ == nullptr && !unsent_.empty();
      if (lane_ != nullptr) fd = lane_->fd;
      if (!in_flight_.empty()) {
        wait = std::max(absl::ZeroDuration(), in_flight_.front().deadline - absl::Now());
      }
    }
    if (connect) {
      absl::StatusOr<Conn> conn = Connect();
      std::vector<Unsent> failed;
      {
        absl::MutexLock lock(&async_mu_);
        if (conn.ok()) {
          lane_ = *std::move(conn);
          parser.reset(redisReaderCreate());
          for (Unsent& u : unsent_) Send(std::move(u.command), std::move(u.done));
          unsent_.clear();
        } else {
          failed.swap(unsent_);
        }
      }
      for (Unsent& u : failed) u.done(conn.status());
      continue;
    }
    struct pollfd fds[2] = {{.fd = wake_fd_, .events = POLLIN, .revents = 0},
                            {.fd = fd, .events = POLLIN, .revents = 0}};
    const int timeout_ms =
        static_cast<int>(absl::ToInt64Milliseconds(wait + absl::Microseconds(999)));
    if (::poll(fds, fd >= 0 ? 2 : 1, timeout_ms) < 0) continue;  // EINTR
    if (fds[0].revents != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof(count));
    }
    // The replies read; `drop` says why the connection is given up, if it is.
    std::vector<Reply> replies;
    absl::Status drop;
    if (fd >= 0 && fds[1].revents != 0) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n == 0) {
        drop = absl::UnavailableError("redis: connection closed by the server");
      } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
        drop = absl::UnavailableError(absl::StrCat("redis: connection error: ", strerror(errno)));
      } else if (n > 0 && redisReaderFeed(parser.get(), buf, static_cast<size_t>(n)) != REDIS_OK) {
        drop = absl::UnavailableError("redis: protocol error");
      }
      while (drop.ok()) {
        void* raw = nullptr;
        if (redisReaderGetReply(parser.get(), &raw) != REDIS_OK) {
          drop = absl::UnavailableError("redis: protocol error");
          break;
        }
        if (raw == nullptr) break;
        ReplyPtr reply(raw);
        replies.push_back(Convert(static_cast<redisReply*>(reply.get())));
      }
    }
    std::vector<ReplyCallback> answered;
    std::deque<InFlight> failed;
    {
      absl::MutexLock lock(&async_mu_);
      if (replies.size() > in_flight_.size()) {
        drop = absl::UnavailableError("redis: a reply nobody asked for");
      } else {
        for (size_t i = 0; i < replies.size(); ++i) {
          answered.push_back(std::move(in_flight_.front().done));
          in_flight_.pop_front();
        }
        if (drop.ok() && !in_flight_.empty() && in_flight_.front().deadline <= absl::Now()) {
          drop = absl::UnavailableError(absl::StrCat(
              "redis: no answer within ", absl::FormatDuration(options_.command_timeout)));
        }
      }
      if (!drop.ok()) {
        failed.swap(in_flight_);
        CloseLane();
      }
    }
    for (size_t i = 0; i < answered.size(); ++i) {
      absl::Status s = ErrorReplyToStatus(replies[i]);
      if (s.ok()) {
        answered[i](std::move(replies[i]));
      } else {
        answered[i](std::move(s));
      }
    }
    if (!drop.ok()) {
      log::Info("redis.connection_dropped",
                {{"reason", log::Literal("async connection failed")}, {"status", drop}});
      absl::MutexLock lock(&mu_);
      ++stats_.discarded;
    }
    for (InFlight& f : failed) f.done(drop);
  }
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(Options options) {
  if (options.port <= 0 || options.port > 65535) {
    return absl::InvalidArgumentError("redis: port out of range");
  }
  if (options.max_size < 1) return absl::InvalidArgumentError("redis: max_size must be >= 1");
  std::unique_ptr<Client> client(new Client(std::move(options)));
  CRM_ASSIGN_OR_RETURN(Conn conn, client->Acquire());
  client->Return(std::move(conn), /*broken=*/false);
  CRM_RETURN_IF_ERROR(client->Ping());
  return client;
}

absl::StatusOr<Client::Conn> Client::Connect() {
  auto fail = [this](absl::Status status) {
    absl::MutexLock lock(&mu_);
    ++stats_.connect_failures;
    return status;
  };
  Conn conn(redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                    ToTv(options_.connect_timeout)));
  if (conn == nullptr) return fail(absl::ResourceExhaustedError("redis: out of memory"));
  if (conn->err != 0) {
    absl::Status s = absl::UnavailableError(absl::StrCat("redis: cannot connect to ", options_.host,
                                                         ":", options_.port, ": ", conn->errstr));
    log::Warn("redis.connect_failed", {{"status", s}});
    return fail(s);
  }
  if (redisSetTimeout(conn.get(), ToTv(options_.command_timeout)) != REDIS_OK) {
    return fail(absl::UnavailableError("redis: cannot set the socket timeout"));
  }
  redisEnableKeepAlive(conn.get());

  auto run = [&](std::vector<absl::string_view> args, absl::string_view what) -> absl::Status {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (absl::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    ReplyPtr reply(
        redisCommandArgv(conn.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (reply == nullptr) return IoErrorStatus(conn.get(), options_.command_timeout);
    const Reply r = Convert(static_cast<redisReply*>(reply.get()));
    if (r.is_error()) {
      absl::Status s = ErrorReplyToStatus(r);
      if (what == "AUTH") {
        return absl::FailedPreconditionError(
            absl::StrCat("redis: AUTH refused: check the configured password (", r.str, ")"));
      }
      return absl::Status(s.code(), absl::StrCat("redis: ", what, " failed: ", r.str));
    }
    return absl::OkStatus();
  };
  if (!options_.password.empty()) {
    absl::Status s = options_.username.empty()
                         ? run({"AUTH", options_.password}, "AUTH")
                         : run({"AUTH", options_.username, options_.password}, "AUTH");
    if (!s.ok()) return fail(s);
  }
  if (options_.db != 0) {
    const std::string db = absl::StrCat(options_.db);
    if (absl::Status s = run({"SELECT", db}, "SELECT"); !s.ok()) return fail(s);
  }
  absl::MutexLock lock(&mu_);
  ++stats_.connects;
  return conn;
}

absl::StatusOr<Client::Conn> Client::Acquire() {
  const absl::Time deadline = absl::Now() + options_.acquire_timeout;
  bool waited = false;
  while (true) {
    Conn conn;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < options_.max_size;
      };
      if (!available()) {
        if (!waited) ++stats_.waited;
        waited = true;
        if (!mu_.AwaitWithDeadline(absl::Condition(&available), deadline)) {
          ++stats_.timed_out;
          return absl::UnavailableError(absl::StrCat("redis: no connection free within ",
                                                     absl::FormatDuration(options_.acquire_timeout),
                                                     " (max_size ", options_.max_size, ")"));
        }
      }
      if (!idle_.empty()) {
        conn = std::move(idle_.back());
        idle_.pop_back();
      } else {
        ++open_;
      }
    }
    if (conn != nullptr) {
      if (LooksHealthy(conn.get())) return conn;
      log::Info("redis.connection_dropped", {{"reason", log::Literal("unhealthy when idle")}});
      Return(std::move(conn), /*broken=*/true);
      continue;
    }
    absl::StatusOr<Conn> fresh = Connect();
    if (!fresh.ok()) {
      absl::MutexLock lock(&mu_);
      --open_;
      return fresh.status();
    }
    return fresh;
  }
}

void Client::Return(Conn conn, bool broken) {
  if (broken || conn->err != 0) {
    conn.reset();
    absl::MutexLock lock(&mu_);
    --open_;
    ++stats_.discarded;
    return;
  }
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(conn));
}

ClientStats Client::Stats() const {
  absl::MutexLock lock(&mu_);
  ClientStats s = stats_;
  s.open = open_;
  s.idle = static_cast<int64_t>(idle_.size());
  s.in_use = open_ - s.idle;
  s.commands += async_commands_.load(std::memory_order_relaxed);
  return s;
}

absl::StatusOr<std::vector<Reply>> Client::RoundTrip(
    const std::vector<std::vector<absl::string_view>>& commands) {
  if (commands.empty()) return absl::InvalidArgumentError("redis: empty pipeline");
  for (const auto& c : commands) {
    if (c.empty()) return absl::InvalidArgumentError("redis: empty command");
  }
  CRM_ASSIGN_OR_RETURN(Conn conn, Acquire());
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& command : commands) {
    argv.clear();
    lens.clear();
    for (absl::string_view a : command) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(conn.get(), static_cast<int>(argv.size()), argv.data(),
                               lens.data()) != REDIS_OK) {
      Return(std::move(conn), /*broken=*/true);
      return absl::ResourceExhaustedError("redis: cannot buffer the command");
    }
  }
  {
    absl::MutexLock lock(&mu_);
    stats_.commands += commands.size();
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(conn.get(), &raw) != REDIS_OK || raw == nullptr) {
      absl::Status s = IoErrorStatus(conn.get(), options_.command_timeout);
      Return(std::move(conn), /*broken=*/true);
      return s;
    }
    ReplyPtr reply(raw);
    replies.push_back(Convert(static_cast<redisReply*>(reply.get())));
  }
  Return(std::move(conn), /*broken=*/false);
  return replies;
}

absl::StatusOr<Reply> Client::CommandArgv(absl::Span<const absl::string_view> args) {
  std::vector<std::vector<absl::string_view>> commands(1);
  commands[0].assign(args.begin(), args.end());
  CRM_ASSIGN_OR_RETURN(std::vector<Reply> replies, RoundTrip(commands));
  CRM_RETURN_IF_ERROR(ErrorReplyToStatus(replies[0]));
  return std::move(replies[0]);
}

absl::StatusOr<std::vector<Reply>> Client::Execute(const Pipeline& pipeline) {
  std::vector<std::vector<absl::string_view>> commands;
  commands.reserve(pipeline.commands_.size());
  for (const auto& owned : pipeline.commands_) {
    commands.emplace_back(owned.begin(), owned.end());
  }
  return RoundTrip(commands);
}

absl::StatusOr<std::optional<std::string>> Client::Get(absl::string_view key) {
  CRM_ASSIGN_OR_RETURN(Reply r, Command("GET", key));
  if (r.is_nil()) return std::nullopt;
  if (r.type != Reply::Type::kString) return absl::InternalError("redis: GET: unexpected reply");
  return std::move(r.str);
}

absl::Status Client::Set(absl::string_view key, absl::string_view value, absl::Duration ttl) {
  if (ttl == absl::InfiniteDuration()) return Command("SET", key, value).status();
  if (ttl < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("redis: SET: ttl must be at least 1ms");
  }
  const std::string ms = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  return Command("SET", key, value, "PX", ms).status();
}

absl::StatusOr<int64_t> Client::Del(absl::Span<const absl::string_view> keys) {
  std::vector<absl::string_view> args = {"DEL"};
  args.insert(args.end(), keys.begin(), keys.end());
  CRM_ASSIGN_OR_RETURN(Reply r, CommandArgv(args));
  if (r.type != Reply::Type::kInteger) return absl::InternalError("redis: DEL: unexpected reply");
  return r.integer;
}

absl::StatusOr<int64_t> Client::Incr(absl::string_view key) {
  CRM_ASSIGN_OR_RETURN(Reply r, Command("INCR", key));
  if (r.type != Reply::Type::kInteger) return absl::InternalError("redis: INCR: unexpected reply");
  return r.integer;
}

absl::StatusOr<bool> Client::Expire(absl::string_view key, absl::Duration ttl) {
  if (ttl < absl::Milliseconds(1) || ttl == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("redis: EXPIRE: ttl must be finite and at least 1ms");
  }
  const std::string ms = absl::StrCat(absl::ToInt64Milliseconds(ttl));
  CRM_ASSIGN_OR_RETURN(Reply r, Command("PEXPIRE", key, ms));
  if (r.type != Reply::Type::kInteger) {
    return absl::InternalError("redis: PEXPIRE: unexpected reply");
  }
  return r.integer == 1;
}

absl::Status Client::Ping() { return Command("PING").status(); }

}  // namespace crm::redis
