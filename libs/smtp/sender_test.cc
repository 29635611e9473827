// Sender against the real tools/smtp-sink (aiosmtpd) in a child process, with
// a throwaway CA per test: what arrives, what is refused, how failures are
// classified, and that the connection is kept between sends.
#include "libs/smtp/sender.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/pki/pki.h"
#include "libs/testing/smtp_sink.h"
#include "libs/testing/status_matchers.h"

namespace crm::smtp {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::SinkMessage;
using ::crm::testing::SmtpSink;
using ::crm::testing::SmtpSinkOptions;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::SizeIs;

constexpr char kFrom[] = "newsletter@shop.example";
constexpr char kTo[] = "erika.mustermann@example.org";

// Headers, 8-bit UTF-8, a line starting with '.' and one that is only "..",
// a trailing space, an empty line inside the body: all must arrive as sent.
const std::string& Message() {
  static const std::string* message = new std::string(
      "From: Shop <newsletter@shop.example>\r\n"
      "To: Erika Mustermann <erika.mustermann@example.org>\r\n"
      "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
      "Message-ID: <20261129.1@shop.example>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "Grüße aus Köln.\r\n"
      ".a line starting with a dot\r\n"
      "..\r\n"
      "trailing space \r\n"
      "\r\n"
      "-- \r\n"
      "The shop\r\n");
  return *message;
}

Envelope DefaultEnvelope() { return {.from = kFrom, .recipients = {kTo}}; }

// A temp dir removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "crm-smtp-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class SenderTest : public ::testing::Test {
 protected:
  // Starts a sink (fatal failure if it does not start).
  void StartSink(SmtpSinkOptions options) {
    absl::StatusOr<std::unique_ptr<SmtpSink>> sink = SmtpSink::Start(std::move(options));
    ASSERT_THAT(sink, IsOk());
    sink_ = std::move(*sink);
  }

  // Options for the running sink: its address, its CA, STARTTLS.
  Options SinkOptions() const {
    return {.host = sink_->host(),
            .port = sink_->port(),
            .tls = TlsMode::kStartTls,
            .ca_file = sink_->ca_file(),
            .ehlo_name = "crm-mailing.test",
            .connect_timeout = absl::Seconds(10),
            .timeout = absl::Seconds(20)};
  }

  std::unique_ptr<Sender> MakeSender(Options options) {
    absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(std::move(options));
    EXPECT_THAT(sender, IsOk());
    return sender.ok() ? std::move(*sender) : nullptr;
  }

  std::vector<SinkMessage> Stored() {
    absl::StatusOr<std::vector<SinkMessage>> messages = sink_->Messages();
    EXPECT_THAT(messages, IsOk());
    return messages.ok() ? *messages : std::vector<SinkMessage>{};
  }

  // No address of the envelope in a status message.
  static void ExpectNoAddresses(const absl::Status& status) {
    EXPECT_THAT(status.message(), Not(HasSubstr("@"))) << status;
    EXPECT_THAT(status.message(), Not(HasSubstr("erika"))) << status;
  }

  std::unique_ptr<SmtpSink> sink_;
};

TEST_F(SenderTest, StartTlsDeliversTheMessageByteForByte) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  ASSERT_THAT(sender->Send({.from = kFrom, .recipients = {kTo, "second@example.net"}}, Message()),
              IsOk());

  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].data, Message());
  EXPECT_EQ(stored[0].mail_from, kFrom);
  EXPECT_THAT(stored[0].recipients, ElementsAre(kTo, "second@example.net"));
  EXPECT_EQ(sender->stats().delivered, 1u);
  // The sink logs sizes and file names, never addresses.
  EXPECT_THAT(sink_->Log(),
              HasSubstr(absl::StrCat("stored ", Message().size(), " bytes as ", stored[0].file)));
  EXPECT_THAT(sink_->Log(), Not(HasSubstr("@")));
}

TEST_F(SenderTest, EmptyFromSendsTheNullReversePath) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  ASSERT_THAT(sender->Send({.from = "", .recipients = {kTo}}, Message()), IsOk());

  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].mail_from, "");
  EXPECT_THAT(stored[0].recipients, ElementsAre(kTo));
}

// The sink would take the message in clear: only the client's refusal keeps
// it from being stored.
TEST_F(SenderTest, RelayWithoutStartTlsGetsNothing) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tls = SmtpSinkOptions::Tls::kNone}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STARTTLS")));
  EXPECT_FALSE(IsRetryable(sent));
  EXPECT_EQ(ReplyCode(sent), std::nullopt);
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(sink_->Connections(), 1);  // it did try
}

// Credentials would be accepted in clear by this sink; they must not be sent.
TEST_F(SenderTest, CredentialsNeverGoToARelayWithoutStartTls) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tls = SmtpSinkOptions::Tls::kNone}));
  Options options = SinkOptions();
  options.username = "crm";
  options.password = "relay-secret";
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(sent.message(), Not(HasSubstr("relay-secret")));
  EXPECT_THAT(Stored(), IsEmpty());
}

// Over STARTTLS and implicit TLS alike.
TEST_F(SenderTest, CertificateOfAnotherCaFailsVerification) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  CRM_ASSERT_OK_AND_ASSIGN(
      pki::CertificateAuthority other,
      pki::CertificateAuthority::Create("another CA", absl::Now() - absl::Hours(1),
                                        absl::Now() + absl::Hours(1)));
  const std::string other_ca = dir.path() + "/other-ca.crt";
  std::ofstream(other_ca) << other.cert_pem();
  for (const bool implicit : {false, true}) {
    SCOPED_TRACE(implicit ? "implicit TLS" : "STARTTLS");
    ASSERT_NO_FATAL_FAILURE(StartSink(
        {.tls = implicit ? SmtpSinkOptions::Tls::kImplicit : SmtpSinkOptions::Tls::kStartTls}));
    Options options = SinkOptions();
    options.tls = implicit ? TlsMode::kImplicit : TlsMode::kStartTls;
    options.ca_file = other_ca;
    std::unique_ptr<Sender> sender = MakeSender(options);
    ASSERT_NE(sender, nullptr);

    const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

    EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("certificate")));
    EXPECT_FALSE(IsRetryable(sent));
    EXPECT_THAT(Stored(), IsEmpty());
  }
}

// The sink's certificate names localhost and 127.0.0.1; it listens on
// 127.0.0.2, which the client connects to.
TEST_F(SenderTest, CertificateForAnotherHostFailsVerification) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.host = "127.0.0.2"}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("certificate")));
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, ImplicitTlsDelivers) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tls = SmtpSinkOptions::Tls::kImplicit}));
  Options options = SinkOptions();
  options.tls = TlsMode::kImplicit;
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());

  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].data, Message());
}

// A STARTTLS client against an implicit-TLS port never gets a greeting it
// understands: a failure, not a send in clear.
TEST_F(SenderTest, StartTlsClientAgainstImplicitTlsPortFails) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tls = SmtpSinkOptions::Tls::kImplicit}));
  Options options = SinkOptions();
  options.timeout = absl::Seconds(1);
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  EXPECT_THAT(sender->Send(DefaultEnvelope(), Message()), Not(IsOk()));
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, AuthDelivers) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.auth_user = "crm", .auth_password = "relay-secret"}));
  Options options = SinkOptions();
  options.username = "crm";
  options.password = "relay-secret";
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());

  EXPECT_THAT(Stored(), SizeIs(1));
}

TEST_F(SenderTest, WrongPasswordIsAPermanentFailure) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.auth_user = "crm", .auth_password = "relay-secret"}));
  Options options = SinkOptions();
  options.username = "crm";
  options.password = "wrong-secret";
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("535")));
  EXPECT_FALSE(IsRetryable(sent));
  EXPECT_THAT(ReplyCode(sent), Optional(535));
  EXPECT_THAT(sent.message(), Not(HasSubstr("secret")));
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(sender->stats().permanent_failures, 1u);
}

TEST_F(SenderTest, MissingCredentialsAreAPermanentFailure) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.auth_user = "crm", .auth_password = "relay-secret"}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ReplyCode(sent), Optional(530));
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, TemporaryFailureAtRcptIsRetryableAndTheRetrySucceeds) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tempfail_first = 1}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status first = sender->Send(DefaultEnvelope(), Message());
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("451")));
  EXPECT_TRUE(IsRetryable(first));
  EXPECT_THAT(ReplyCode(first), Optional(451));
  ExpectNoAddresses(first);
  EXPECT_THAT(Stored(), IsEmpty());

  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());
  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].data, Message());
  EXPECT_EQ(sender->stats().temporary_failures, 1u);
  EXPECT_EQ(sender->stats().delivered, 1u);
}

TEST_F(SenderTest, TemporaryFailureAfterDataIsRetryable) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.tempfail_first = 1, .fail_at_data = true}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status first = sender->Send(DefaultEnvelope(), Message());
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ReplyCode(first), Optional(451));
  EXPECT_THAT(Stored(), IsEmpty());

  EXPECT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());
  EXPECT_THAT(Stored(), SizeIs(1));
}

// BeforeEnd runs once, when the relay has the whole message but not yet the
// end of data: the sink has stored nothing at that moment.
TEST_F(SenderTest, BeforeEndRunsOnceJustBeforeTheEndOfData) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  int calls = 0;
  size_t stored_then = 99;
  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message(),
                           [&] {
                             ++calls;
                             stored_then = Stored().size();
                             return absl::OkStatus();
                           }),
              IsOk());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(stored_then, 0u);
  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(1));
  EXPECT_EQ(stored[0].data, Message());
}

// A refusal closes the connection without the dot: the relay discards what it
// had, Send returns the refusal itself, and the next send goes through.
TEST_F(SenderTest, ABeforeEndRefusalLeavesTheRelayWithNothing) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  const absl::Status lost = absl::AbortedError("the queue row is no longer ours");
  EXPECT_EQ(sender->Send(DefaultEnvelope(), Message(), [&] { return lost; }), lost);
  EXPECT_THAT(Stored(), IsEmpty());
  EXPECT_EQ(sender->stats().abandoned_before_end, 1u);
  EXPECT_EQ(sender->stats().delivered, 0u);

  EXPECT_THAT(sender->Send(DefaultEnvelope(), Message(), [] { return absl::OkStatus(); }), IsOk());
  EXPECT_THAT(Stored(), SizeIs(1));
}

// Not before the relay has taken the envelope and DATA; still when it then
// refuses the message after its end (the caller undoes what it recorded).
TEST_F(SenderTest, BeforeEndRunsOnlyOnceTheRelayTookData) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.permfail_first = 1}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  int calls = 0;
  auto count = [&] {
    ++calls;
    return absl::OkStatus();
  };
  EXPECT_THAT(sender->Send(DefaultEnvelope(), Message(), count),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(calls, 0);

  ASSERT_NO_FATAL_FAILURE(StartSink({.tempfail_first = 1, .fail_at_data = true}));
  sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  const absl::Status deferred = sender->Send(DefaultEnvelope(), Message(), count);
  EXPECT_THAT(ReplyCode(deferred), Optional(451));
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, RefusedRecipientIsAPermanentFailureWithoutTheAddress) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.permfail_first = 1}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("550")));
  EXPECT_FALSE(IsRetryable(sent));
  EXPECT_THAT(ReplyCode(sent), Optional(550));
  ExpectNoAddresses(sent);
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, RefusedMessageIsAPermanentFailure) {
  ASSERT_NO_FATAL_FAILURE(StartSink({.permfail_first = 1, .fail_at_data = true}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ReplyCode(sent), Optional(554));
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, SecondSendReusesTheConnection) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);

  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());
  ASSERT_THAT(
      sender->Send({.from = kFrom, .recipients = {"other@example.net"}}, "Subject: 2\r\n\r\nx\r\n"),
      IsOk());

  EXPECT_EQ(sender->stats().connects, 1u);
  EXPECT_EQ(sink_->Connections(), 1);
  const std::vector<SinkMessage> stored = Stored();
  ASSERT_THAT(stored, SizeIs(2));
  EXPECT_EQ(stored[0].data, Message());
  EXPECT_EQ(stored[1].data, "Subject: 2\r\n\r\nx\r\n");
  EXPECT_THAT(stored[1].recipients, ElementsAre("other@example.net"));
}

TEST_F(SenderTest, ReconnectsWhenTheRelayClosedTheConnection) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());

  // Same port. The old sink answers 421 on the kept connection and closes it:
  // curl sees data waiting, not a closed socket, and tries to use it.
  ASSERT_THAT(sink_->Restart(), IsOk());
  ASSERT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());

  EXPECT_EQ(sender->stats().connects, 2u);
  EXPECT_EQ(sender->stats().retried_on_new_connection, 1u);
  EXPECT_THAT(Stored(), SizeIs(2));
}

TEST_F(SenderTest, UnreachableRelayIsRetryable) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  const Options options = SinkOptions();
  ASSERT_THAT(sink_->Stop(), IsOk());
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ReplyCode(sent), std::nullopt);
}

// The kernel accepts the connection, the paused sink never greets.
TEST_F(SenderTest, SilentRelayTimesOutAndIsRetryable) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  Options options = SinkOptions();
  options.timeout = absl::Milliseconds(500);
  std::unique_ptr<Sender> sender = MakeSender(options);
  ASSERT_NE(sender, nullptr);
  ASSERT_THAT(sink_->Pause(), IsOk());

  const absl::Status sent = sender->Send(DefaultEnvelope(), Message());

  EXPECT_THAT(sent, StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(sink_->Resume(), IsOk());
  EXPECT_THAT(sender->Send(DefaultEnvelope(), Message()), IsOk());
}

TEST_F(SenderTest, BadEnvelopesAreRefusedBeforeConnecting) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  struct Case {
    Envelope envelope;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{.from = "a@example.com\r\nRCPT TO:<x@example.com>", .recipients = {kTo}}, "from"},
      {{.from = "a@example.com>", .recipients = {kTo}}, "from"},
      {{.from = "<a@example.com", .recipients = {kTo}}, "from"},
      {{.from = std::string("a@example.com\0x", 15), .recipients = {kTo}}, "from"},
      {{.from = "a@example.com\n", .recipients = {kTo}}, "from"},
      {{.from = kFrom, .recipients = {kTo, "b@example.com\r\nDATA"}}, "recipients[1]"},
      {{.from = kFrom, .recipients = {"b@example.com> NOTIFY=NEVER"}}, "recipients[0]"},
      {{.from = kFrom, .recipients = {"<b@example.com"}}, "recipients[0]"},
      {{.from = kFrom, .recipients = {kTo, ""}}, "recipients[1]"},
      {{.from = kFrom, .recipients = {}}, "recipients"},
  };
  for (const Case& c : cases) {
    const absl::Status sent = sender->Send(c.envelope, Message());
    EXPECT_THAT(sent, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field))) << c.field;
    EXPECT_THAT(sent.message(), Not(HasSubstr("example.com")));
  }
  EXPECT_EQ(sender->stats().sends, 0u);
  EXPECT_EQ(sink_->Connections(), 0);
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST_F(SenderTest, MessagesWithBareLineBreaksOrNulAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartSink({}));
  std::unique_ptr<Sender> sender = MakeSender(SinkOptions());
  ASSERT_NE(sender, nullptr);
  const std::vector<std::string> bad = {
      "",
      "Subject: x\r\n\r\nbare LF\n",
      "Subject: x\r\n\r\nsmuggled\n.\r\nMAIL FROM:<x@example.com>\r\n",
      "Subject: x\r\n\r\nbare CR\r",
      "Subject: x\r\n\r\nbare CR\rhere\r\n",
      std::string("Subject: x\r\n\r\nNUL\0\r\n", 20),
  };
  for (const std::string& message : bad) {
    EXPECT_THAT(sender->Send(DefaultEnvelope(), message),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("message")))
        << absl::CEscape(message);
  }
  EXPECT_EQ(sink_->Connections(), 0);
  EXPECT_THAT(Stored(), IsEmpty());
}

TEST(SenderOptionsTest, BadSettingsAreRefusedNamingThem) {
  struct Case {
    Options options;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{.host = ""}, "host"},
      {{.host = "relay.example.net/evil"}, "host"},
      {{.host = "relay.example.net", .port = 70000}, "port"},
      {{.host = "relay.example.net", .port = -1}, "port"},
      {{.host = "relay.example.net", .ehlo_name = "me\r\nMAIL FROM:<x>"}, "ehlo_name"},
      {{.host = "relay.example.net", .ehlo_name = ""}, "ehlo_name"},
      {{.host = "relay.example.net", .ca_file = "/nonexistent/ca.pem"}, "ca_file"},
      {{.host = "relay.example.net", .password = "pw"}, "password"},
      {{.host = "relay.example.net", .connect_timeout = absl::ZeroDuration()}, "connect_timeout"},
      {{.host = "relay.example.net", .timeout = absl::Seconds(-1)}, "timeout"},
      {{.host = "relay.example.net", .max_idle = absl::Milliseconds(10)}, "max_idle"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(Sender::Create(c.options),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.field;
  }
  EXPECT_THAT(Sender::Create({.host = "relay.example.net"}), IsOk());
  EXPECT_THAT(Sender::Create({.host = "::1", .tls = TlsMode::kImplicit}), IsOk());
}

TEST(ReplyCodeTest, OnlyStatusesFromSendCarryOne) {
  EXPECT_EQ(ReplyCode(absl::OkStatus()), std::nullopt);
  EXPECT_EQ(ReplyCode(absl::UnavailableError("x")), std::nullopt);
}

}  // namespace
}  // namespace crm::smtp
