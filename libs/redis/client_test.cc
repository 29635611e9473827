#include "libs/redis/client.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/private_redis.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/test_env.h"

namespace crm::redis {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::PrivateRedisServer;
using ::crm::testing::RedisTestServer;
using ::crm::testing::StatusIs;
using ::crm::testing::TestEnv;
using ::testing::AllOf;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::Not;
using ::testing::Optional;

Options OptionsFor(const RedisTestServer& server) {
  return {.host = server.host, .port = server.port, .password = server.password};
}

// Waits (bounded) until `done` holds; for states reached by the server.
template <typename F>
bool PollUntil(F done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(env_, TestEnv::Load());
    CRM_ASSERT_OK_AND_ASSIGN(client_, Client::Create(OptionsFor(env_.redis())));
    absl::BitGen gen;
    prefix_ = absl::StrCat("test:", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                           ":", absl::Uniform<uint64_t>(gen), ":");
  }
  std::string Key(absl::string_view name) const { return absl::StrCat(prefix_, name); }

  TestEnv env_;
  std::unique_ptr<Client> client_;
  std::string prefix_;
};

TEST_F(RedisClientTest, SetGetDel) {
  EXPECT_THAT(client_->Get(Key("a")), IsOkAndHolds(std::nullopt));
  ASSERT_THAT(client_->Set(Key("a"), "value"), IsOk());
  EXPECT_THAT(client_->Get(Key("a")), IsOkAndHolds(Optional(std::string("value"))));
  EXPECT_THAT(client_->Del(Key("a")), IsOkAndHolds(1));
  EXPECT_THAT(client_->Del(Key("a")), IsOkAndHolds(0));
  EXPECT_THAT(client_->Get(Key("a")), IsOkAndHolds(std::nullopt));
}

TEST_F(RedisClientTest, SetWithTtlAndExpireSetTheTtl) {
  ASSERT_THAT(client_->Set(Key("t"), "v", absl::Seconds(60)), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(Reply pttl, client_->Command("PTTL", Key("t")));
  EXPECT_THAT(pttl.integer, AllOf(Gt(0), Le(60'000)));

  ASSERT_THAT(client_->Set(Key("p"), "v"), IsOk());
  CRM_ASSERT_OK_AND_ASSIGN(Reply none, client_->Command("PTTL", Key("p")));
  EXPECT_EQ(none.integer, -1);  // no expiry
  EXPECT_THAT(client_->Expire(Key("p"), absl::Seconds(5)), IsOkAndHolds(true));
  CRM_ASSERT_OK_AND_ASSIGN(Reply some, client_->Command("PTTL", Key("p")));
  EXPECT_THAT(some.integer, AllOf(Gt(0), Le(5'000)));
  EXPECT_THAT(client_->Expire(Key("missing"), absl::Seconds(5)), IsOkAndHolds(false));
  EXPECT_THAT(client_->Set(Key("z"), "v", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RedisClientTest, BinaryKeysAndValuesSurviveNulBytes) {
  const std::string key = Key(std::string("k\0ey", 4));
  const std::string value("\0a\xff\0b\r\n", 7);
  ASSERT_THAT(client_->Set(key, value), IsOk());
  EXPECT_THAT(client_->Get(key), IsOkAndHolds(Optional(value)));
  EXPECT_THAT(client_->Get(Key("k")), IsOkAndHolds(std::nullopt));
}

TEST_F(RedisClientTest, IncrCounts) {
  EXPECT_THAT(client_->Incr(Key("n")), IsOkAndHolds(1));
  EXPECT_THAT(client_->Incr(Key("n")), IsOkAndHolds(2));
  ASSERT_THAT(client_->Set(Key("s"), "grace-not-a-number"), IsOk());
  EXPECT_THAT(client_->Incr(Key("s")),
              StatusIs(absl::StatusCode::kInternal, Not(HasSubstr("grace"))));
}

TEST_F(RedisClientTest, WrongTypeIsFailedPrecondition) {
  ASSERT_THAT(client_->Command("LPUSH", Key("l"), "x"), IsOk());
  EXPECT_THAT(client_->Get(Key("l")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("WRONGTYPE")));
}

TEST_F(RedisClientTest, ErrorMessagesDoNotQuoteArguments) {
  auto r = client_->Command("NOSUCHCOMMAND", "heidi@example.com");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInternal,
                          AllOf(HasSubstr("unknown command"), Not(HasSubstr("heidi")))));
}

TEST_F(RedisClientTest, PipelineRepliesComeInOrder) {
  Pipeline p;
  for (int i = 0; i < 50; ++i) p.Add("INCR", Key("c"));
  p.Add("GET", Key("c"));
  p.Add("GET", Key("none"));
  p.Add("LPUSH", Key("c"), "x");  // WRONGTYPE: stays in the vector
  p.AddArgv({"PING"});
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<Reply> replies, client_->Execute(p));
  ASSERT_EQ(replies.size(), 54u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(replies[i].type, Reply::Type::kInteger);
    EXPECT_EQ(replies[i].integer, i + 1);
  }
  EXPECT_EQ(replies[50].str, "50");
  EXPECT_TRUE(replies[51].is_nil());
  EXPECT_THAT(ErrorReplyToStatus(replies[52]), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(replies[53].type, Reply::Type::kStatus);
  EXPECT_EQ(replies[53].str, "PONG");
  EXPECT_THAT(client_->Execute(Pipeline()), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RedisClientTest, WrongPasswordIsAClearError) {
  Options options = OptionsFor(env_.redis());
  options.password = "wrong";
  EXPECT_THAT(Client::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("AUTH refused")));
  options.password = "";
  EXPECT_THAT(Client::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("NOAUTH")));
}

TEST_F(RedisClientTest, ReconnectsAfterClientKill) {
  Options options = OptionsFor(env_.redis());
  options.max_size = 1;
  CRM_ASSERT_OK_AND_ASSIGN(auto victim, Client::Create(options));
  CRM_ASSERT_OK_AND_ASSIGN(Reply id, victim->Command("CLIENT", "ID"));
  const std::string id_text = absl::StrCat(id.integer);
  ASSERT_THAT(client_->Command("CLIENT", "KILL", "ID", id_text), IsOk());
  ASSERT_TRUE(PollUntil([&] {
    auto list = client_->Command("CLIENT", "LIST", "ID", id_text);
    return list.ok() && list->str.empty();
  }));
  CRM_ASSERT_OK_AND_ASSIGN(Reply new_id, victim->Command("CLIENT", "ID"));
  EXPECT_NE(new_id.integer, id.integer);
  EXPECT_EQ(victim->Stats().discarded, 1u);
}

// Collects the answers of CommandArgvAsync calls; Wait blocks until `n` came.
class Answers {
 public:
  Client::ReplyCallback At(size_t i) {
    absl::MutexLock l(&mu_);
    if (answers_.size() <= i) answers_.resize(i + 1, absl::UnknownError("no answer"));
    return [this, i](absl::StatusOr<Reply> r) {
      absl::MutexLock l(&mu_);
      answers_[i] = std::move(r);
      order_.push_back(i);
      threads_.push_back(std::this_thread::get_id());
    };
  }
  void Wait(size_t n) {
    absl::MutexLock l(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return order_.size() >= n; };
    mu_.Await(absl::Condition(&enough));
  }
  absl::StatusOr<Reply> operator[](size_t i) {
    absl::MutexLock l(&mu_);
    return answers_[i];
  }
  std::vector<size_t> order() {
    absl::MutexLock l(&mu_);
    return order_;
  }
  std::vector<std::thread::id> threads() {
    absl::MutexLock l(&mu_);
    return threads_;
  }

 private:
  absl::Mutex mu_;
  std::vector<absl::StatusOr<Reply>> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> order_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RedisClientTest, AsyncCommandsAreAnsweredInOrderOnTheClientsThread) {
  ASSERT_THAT(client_->Set(Key("a"), "1"), IsOk());
  Answers answers;
  const std::string a = Key("a"), b = Key("b");
  client_->CommandArgvAsync({"GET", a}, answers.At(0));
  client_->CommandArgvAsync({"GET", b}, answers.At(1));
  client_->CommandArgvAsync({"INCR", a}, answers.At(2));
  client_->CommandArgvAsync({"HGET", a, "f"}, answers.At(3));  // wrong type
  answers.Wait(4);
  EXPECT_EQ(answers.order(), (std::vector<size_t>{0, 1, 2, 3}));
  CRM_ASSERT_OK_AND_ASSIGN(Reply got, answers[0]);
  EXPECT_EQ(got.str, "1");
  CRM_ASSERT_OK_AND_ASSIGN(Reply none, answers[1]);
  EXPECT_TRUE(none.is_nil());
  CRM_ASSERT_OK_AND_ASSIGN(Reply incr, answers[2]);
  EXPECT_EQ(incr.integer, 2);
  EXPECT_THAT(answers[3], StatusIs(absl::StatusCode::kFailedPrecondition));
  for (std::thread::id t : answers.threads()) EXPECT_NE(t, std::this_thread::get_id());
}

TEST_F(RedisClientTest, AnEmptyAsyncCommandIsRefusedAtOnce) {
  Answers answers;
  client_->CommandArgvAsync({}, answers.At(0));
  EXPECT_EQ(answers.threads(), std::vector<std::thread::id>{std::this_thread::get_id()});
  EXPECT_THAT(answers[0], StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RedisClientTest, AsyncCommandsFromManyThreadsEachGetTheirOwnReply) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 200;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_THAT(client_->Set(Key(absl::StrCat("t", t)), absl::StrCat("value of ", t)), IsOk());
  }
  Answers answers;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = Key(absl::StrCat("t", t));
      for (int i = 0; i < kCalls; ++i) {
        client_->CommandArgvAsync({"GET", key}, answers.At(static_cast<size_t>(t * kCalls + i)));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  answers.Wait(kThreads * kCalls);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kCalls; ++i) {
      absl::StatusOr<Reply> r = answers[static_cast<size_t>(t * kCalls + i)];
      ASSERT_THAT(r, IsOk());
      ASSERT_EQ(r->str, absl::StrCat("value of ", t)) << t << " " << i;
    }
  }
}

TEST_F(RedisClientTest, DestroyingTheClientAnswersWhatIsQueued) {
  Answers answers;
  {
    CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(OptionsFor(env_.redis())));
    for (size_t i = 0; i < 100; ++i) client->CommandArgvAsync({"PING"}, answers.At(i));
  }
  EXPECT_EQ(answers.order().size(), 100u);
  CRM_ASSERT_OK_AND_ASSIGN(Reply pong, answers[99]);
  EXPECT_EQ(pong.str, "PONG");
}

TEST_F(RedisClientTest, AnAsyncConnectionTheServerClosesIsReplaced) {
  CRM_ASSERT_OK_AND_ASSIGN(auto victim, Client::Create(OptionsFor(env_.redis())));
  Answers answers;
  victim->CommandArgvAsync({"CLIENT", "ID"}, answers.At(0));
  answers.Wait(1);
  CRM_ASSERT_OK_AND_ASSIGN(Reply id, answers[0]);
  const std::string id_text = absl::StrCat(id.integer);
  ASSERT_THAT(client_->Command("CLIENT", "KILL", "ID", id_text), IsOk());
  // The client's thread notices the closed connection by itself.
  ASSERT_TRUE(PollUntil([&] { return victim->Stats().discarded == 1; }));
  victim->CommandArgvAsync({"CLIENT", "ID"}, answers.At(1));
  victim->CommandArgvAsync({"PING"}, answers.At(2));
  answers.Wait(3);
  CRM_ASSERT_OK_AND_ASSIGN(Reply new_id, answers[1]);
  EXPECT_NE(new_id.integer, id.integer);
  CRM_ASSERT_OK_AND_ASSIGN(Reply pong, answers[2]);
  EXPECT_EQ(pong.str, "PONG");
  EXPECT_EQ(victim->Stats().discarded, 1u);
}

class PrivateRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CRM_ASSERT_OK_AND_ASSIGN(server_, PrivateRedisServer::Start("private-pw"));
    options_ = OptionsFor(server_->info());
    options_.command_timeout = absl::Milliseconds(200);
    options_.connect_timeout = absl::Milliseconds(200);
    options_.max_size = 2;
  }
  std::unique_ptr<PrivateRedisServer> server_;
  Options options_;
};

TEST_F(PrivateRedisTest, PausedServerFailsWithUnavailableInsteadOfHanging) {
  CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options_));
  ASSERT_THAT(client->Set("k", "v"), IsOk());
  ASSERT_THAT(server_->Pause(), IsOk());
  EXPECT_THAT(client->Get("k"), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no answer")));
  EXPECT_THAT(Client::Create(options_), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(server_->Resume(), IsOk());
  EXPECT_THAT(client->Get("k"), IsOkAndHolds(Optional(std::string("v"))));
}

TEST_F(PrivateRedisTest, ReconnectsAfterServerRestart) {
  CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options_));
  ASSERT_THAT(client->Set("k", "v"), IsOk());
  ASSERT_THAT(server_->Restart(), IsOk());
  EXPECT_THAT(client->Get("k"), IsOkAndHolds(std::nullopt));  // no persistence
  EXPECT_GE(client->Stats().discarded, 1u);
}

TEST_F(PrivateRedisTest, AsyncCommandsOfAPausedServerTimeOutAndTheNextOnesWork) {
  CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options_));
  ASSERT_THAT(client->Set("k", "v"), IsOk());
  ASSERT_THAT(server_->Pause(), IsOk());
  Answers answers;
  for (size_t i = 0; i < 3; ++i) client->CommandArgvAsync({"GET", "k"}, answers.At(i));
  answers.Wait(3);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_THAT(answers[i], StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no answer")));
  }
  ASSERT_THAT(server_->Resume(), IsOk());
  client->CommandArgvAsync({"GET", "k"}, answers.At(3));
  answers.Wait(4);
  CRM_ASSERT_OK_AND_ASSIGN(Reply v, answers[3]);
  EXPECT_EQ(v.str, "v");
}

TEST_F(PrivateRedisTest, AsyncCommandsOfAStoppedServerAreUnavailable) {
  CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options_));
  ASSERT_THAT(server_->Kill(), IsOk());
  Answers answers;
  client->CommandArgvAsync({"GET", "k"}, answers.At(0));
  answers.Wait(1);
  EXPECT_THAT(answers[0], StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(PrivateRedisTest, StoppedServerIsUnavailable) {
  CRM_ASSERT_OK_AND_ASSIGN(auto client, Client::Create(options_));
  ASSERT_THAT(server_->Kill(), IsOk());
  EXPECT_THAT(client->Ping(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Client::Create(options_), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace crm::redis
