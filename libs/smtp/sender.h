// Sends mail to one configured SMTP relay (submission), over TLS only. The
// mailing service formats messages (RFC 5322, CRLF line endings) and hands
// them, with their envelope, to a Sender:
//
//   CRM_ASSIGN_OR_RETURN(std::unique_ptr<smtp::Sender> sender,
//                        smtp::Sender::Create({.host = "relay.example.net", .port = 587,
//                                              .ca_file = "/etc/crm/relay-ca.pem",
//                                              .username = "crm", .password = pw}));
//   absl::Status sent = sender->Send({.from = "news@example.com", .recipients = {to}}, message);
//   if (smtp::IsRetryable(sent)) ... try again later ...
//
// What it guarantees:
//   - Never in clear. kStartTls requires STARTTLS (curl's CURLUSESSL_ALL): a
//     relay that does not offer it, or refuses it, gets neither credentials,
//     envelope nor message; kImplicit speaks TLS from the first byte (smtps).
//     TLS 1.2 or newer.
//   - The relay's certificate is verified, always: it must chain to ca_file
//     (only that bundle when given, else the system's) and name the host
//     (DNS or IP SAN).
//   - The message goes out byte for byte (curl dot-stuffs lines starting with
//     '.', the relay undoes it). Bare CR, bare LF and NUL are refused, so a
//     message cannot smuggle an end-of-data ("\n.\r\n") past a relay.
//   - Envelope addresses with CR, LF, NUL, other control characters, '<' or
//     '>' are refused: no command or parameter can be injected.
//   - Failures are classified by what the caller should do (below); status
//     messages carry the relay's host:port and reply code, never addresses,
//     message content or credentials. Nothing is logged.
//
// Results of Send:
//   OK                   the relay accepted the message (250 after DATA) for
//                        every recipient.
//   UNAVAILABLE          temporary: a 4xx reply, no connection, a timeout, a
//                        broken connection or TLS handshake. Retry later
//                        (IsRetryable). The message may have been delivered
//                        only if the connection broke after the final dot
//                        and before the 250 arrived (SMTP cannot tell).
//   FAILED_PRECONDITION  permanent: a 5xx reply (recipient or message
//                        refused, authentication refused, relay requires
//                        AUTH), or the relay offers no STARTTLS, or its
//                        certificate does not verify. Retrying the same send
//                        fails the same way; fix the message, the address or
//                        the settings.
//   INVALID_ARGUMENT     bad envelope or message, naming the field ("from",
//                        "recipients[2]", "message"); nothing was sent.
// And when the caller's BeforeEnd (see Send) refuses, its status unchanged,
// whatever the code: the relay got no end of data, nothing was sent.
// ReplyCode(status) gives the relay's reply code when it refused.
// One refused recipient fails the whole send (nothing is sent to the others).
//
// Connections: a Sender keeps its connection (one curl easy handle) open
// between sends, so consecutive sends skip TCP, TLS and AUTH; a connection
// idle longer than Options::max_idle, or seen closed, is replaced
// before the next send. A kept connection the relay closed in a way curl
// cannot see in advance (TLS close_notify, "421" before closing) fails
// before the relay has seen the message; such a send is tried once more on
// a new connection, which cannot deliver twice. After a failed send the next
// one uses a new connection.
//
// Thread-compatible: a Sender must not be used by two threads at once; give
// each sending thread its own (one connection each). Creating Senders from
// several threads is safe (curl_global_init runs once). libcurl is told not
// to use signals (CURLOPT_NOSIGNAL); the process should ignore SIGPIPE, as
// gRPC servers do.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct curl_slist;

namespace crm::smtp {

enum class TlsMode {
  // Plain TCP, then STARTTLS, which must succeed before anything else is
  // sent (submission, port 587).
  kStartTls,
  // TLS from the first byte (smtps, port 465).
  kImplicit,
};

struct Options {
  // The relay's DNS name or IP address. Required; the certificate must name it.
  std::string host;
  // TCP port. 0: 587 for kStartTls, 465 for kImplicit.
  int port = 0;
  TlsMode tls = TlsMode::kStartTls;
  // PEM file of the CA certificate(s) to verify the relay with; only these are
  // trusted then. Empty: the system's store (/etc/ssl/certs).
  std::string ca_file;
  // AUTH (PLAIN or LOGIN, as the relay offers; only ever under TLS) when
  // username is not empty. A relay that offers no AUTH gets none.
  std::string username;
  std::string password;
  // The name we give in EHLO: a host name (letters, digits, '-', '.').
  // Default "localhost".
  std::string ehlo_name = "localhost";
  // TCP connect plus TLS handshake. Default 10 s.
  absl::Duration connect_timeout = absl::Seconds(10);
  // One whole send, connecting included. Default 60 s.
  absl::Duration timeout = absl::Seconds(60);
  // A connection idle longer than this is closed before the next send and a
  // new one opened (relays drop idle sessions, commonly after 60-300 s).
  // Default 50 s; at least 1 s.
  absl::Duration max_idle = absl::Seconds(50);
};

struct Envelope {
  // The reverse-path (MAIL FROM), e.g. a bounce address. Empty: the null
  // reverse-path "<>" (for notifications that must not bounce).
  std::string from;
  // RCPT TO, at least one, none empty.
  std::vector<std::string> recipients;
};

// Counters since Create.
struct SenderStats {
  uint64_t sends = 0;               // calls that got past validation
  uint64_t delivered = 0;           // OK
  uint64_t temporary_failures = 0;  // UNAVAILABLE
  uint64_t permanent_failures = 0;  // FAILED_PRECONDITION
  uint64_t connects = 0;            // connections opened (the rest reused one)
  // Sends whose kept connection turned out dead before the relay saw the
  // message, tried once more on a new connection (see Send).
  uint64_t retried_on_new_connection = 0;
  // Sends whose BeforeEnd refused: the relay got no end of data.
  uint64_t abandoned_before_end = 0;
};

// The relay's refusal (a 4xx or 5xx reply code, e.g. 451, 535, 550) that made
// Send fail with `status`, or nullopt if the failure was not a refusal (no
// connection, timeout, no STARTTLS, certificate) or `status` is OK.
std::optional<int> ReplyCode(const absl::Status& status);

// True for the statuses Send returns when trying again later may succeed
// (UNAVAILABLE).
inline bool IsRetryable(const absl::Status& status) { return absl::IsUnavailable(status); }

class Sender {
 public:
  // Checks the options and prepares the connection settings; does not connect
  // (the first Send does). INVALID_ARGUMENT naming the setting ("host",
  // "port", "ehlo_name", "ca_file", timeouts, "password" without "username");
  // INTERNAL if libcurl cannot be initialised.
  static absl::StatusOr<std::unique_ptr<Sender>> Create(Options options);

  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Called once the relay has accepted DATA and has been given the whole
  // message, just before the end of data (the final dot, which is what makes
  // the relay take it). OK: the dot goes out. Anything else: the connection
  // is closed without it, so the relay discards the message, and Send
  // returns that status unchanged. A caller records here that the message is
  // about to be handed off, so a crash while the relay answers is not taken
  // for a message the relay never had (see services/mailing/sender.cc).
  using BeforeEnd = std::function<absl::Status()>;

  // Sends `message` (RFC 5322 bytes, CRLF line endings, headers included) to
  // every recipient of `envelope`; returns once the relay has answered the
  // end of data, or on failure. Results: see the top of this file;
  // `before_end`, when given, as above.
  absl::Status Send(const Envelope& envelope, absl::string_view message,
                    const BeforeEnd& before_end = nullptr);

  const SenderStats& stats() const { return stats_; }

 private:
  struct Handle;
  // What one curl_easy_perform did.
  struct Attempt {
    int rc = 0;                       // CURLcode
    long reply_code = 0;              // the relay's last reply in this transfer, 0 if none
    long connects = 0;                // connections opened for it
    bool message_started = false;     // curl read (part of) the message: DATA was accepted
    absl::Status refused_before_end;  // what BeforeEnd answered, if not OK
  };
  Sender(Options options, std::unique_ptr<Handle> handle);
  Attempt Perform(const Envelope& envelope, curl_slist* recipients, absl::string_view message,
                  const BeforeEnd& before_end, bool fresh_connection);

  const Options options_;
  std::unique_ptr<Handle> handle_;
  // The last send succeeded, so curl kept its connection for the next.
  bool kept_connection_ = false;
  SenderStats stats_;
};

// OK if `address` can go into MAIL FROM / RCPT TO: no CR, LF, NUL or other
// control character, no '<' or '>', at most 320 bytes. Otherwise
// INVALID_ARGUMENT naming `field` (the address is never quoted). Empty is not
// checked here (Send decides where it is allowed).
absl::Status ValidateEnvelopeAddress(absl::string_view address, absl::string_view field);

// OK if `message` is not empty and every CR is followed by LF and every LF
// preceded by CR, with no NUL byte. Otherwise INVALID_ARGUMENT ("message: ...",
// with the byte offset).
absl::Status ValidateMessage(absl::string_view message);

}  // namespace crm::smtp
