// A real SMTP server of a test's own: runs tools/smtp-sink (Python,
// aiosmtpd) as a child process on an ephemeral port of 127.0.0.1, with a
// certificate from a throwaway CA, and reads back the messages it stored. For
// tests of libs/smtp and of the mailing service.
//
//   CRM_ASSERT_OK_AND_ASSIGN(std::unique_ptr<SmtpSink> sink, SmtpSink::Start({}));
//   ... send to 127.0.0.1:sink->port(), trusting sink->ca_file() ...
//   CRM_ASSERT_OK_AND_ASSIGN(std::vector<SinkMessage> got, sink->Messages());
//
// Start returns once the sink listens (it writes its port to a file after
// binding). The sink stores a message before it answers 250, so messages a
// client was told are accepted are already visible to Messages().
//
// Everything lives in a fresh directory under $TMPDIR (or /tmp) that the
// destructor removes after killing the sink. The sink is found at
// $CRMTEST_SOURCE_DIR/tools/smtp-sink (ctest sets the variable for every
// crm_cc_test) and needs python3-aiosmtpd (tools/dev deps).
//
// Not thread-safe: one test thread controls it (clients in other threads may
// talk to the server, of course).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/testing/subprocess.h"

namespace crm::testing {

struct SmtpSinkOptions {
  enum class Tls {
    kStartTls,  // STARTTLS offered (and required before MAIL if require_starttls)
    kNone,      // plain SMTP only: no STARTTLS offered (--no-starttls)
    kImplicit,  // TLS from the first byte (--implicit-tls)
  };
  Tls tls = Tls::kStartTls;
  // kStartTls only: refuse MAIL (530) before STARTTLS. Default true.
  bool require_starttls = true;
  // Require AUTH (PLAIN/LOGIN, offered only under TLS) as this user when not empty.
  std::string auth_user;
  std::string auth_password;
  // Answer the first N RCPT TO (or, with fail_at_data, the first N ends of
  // DATA) with 451; then the next permfail_first with 550 (RCPT) / 554 (DATA).
  int tempfail_first = 0;
  int permfail_first = 0;
  bool fail_at_data = false;
  // Between storing a message and answering 250 (whole milliseconds): a slow
  // relay, so a client can be killed with its message taken but unanswered.
  absl::Duration reply_delay = absl::ZeroDuration();
  // The sink's certificate and key (PEM files). Empty: Start issues one for
  // "localhost" and 127.0.0.1 under a fresh CA, whose certificate is ca_file().
  std::string cert_file;
  std::string key_file;
  // Where to listen. Another loopback address (127.0.0.2) makes a relay whose
  // certificate does not name the address.
  std::string host = "127.0.0.1";
};

// One stored message.
struct SinkMessage {
  std::string file;                     // "<unix time ns>-<n>.eml"
  std::string data;                     // the bytes received in DATA
  std::string mail_from;                // MAIL FROM address ("" for <>)
  std::vector<std::string> recipients;  // RCPT TO addresses, in order
};

class SmtpSink {
 public:
  // Makes the directory (and certificates), starts the sink and waits (20 s at
  // most) for its port file. INTERNAL if anything fails (the sink's output is
  // in the message); FAILED_PRECONDITION if $CRMTEST_SOURCE_DIR is unset.
  static absl::StatusOr<std::unique_ptr<SmtpSink>> Start(SmtpSinkOptions options);
  // Kills the sink and removes its directory.
  ~SmtpSink();
  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  const std::string& host() const { return options_.host; }
  int port() const { return port_; }
  // Where the .eml files go.
  const std::string& mail_dir() const { return mail_dir_; }
  // The CA that issued the sink's certificate; empty if the options gave one.
  const std::string& ca_file() const { return ca_file_; }
  bool running() const { return process_ != nullptr; }

  // Every stored message, oldest first. INTERNAL if the directory or a file
  // cannot be read.
  absl::StatusOr<std::vector<SinkMessage>> Messages() const;
  // What the sink wrote to stderr so far (one line per connection and per
  // stored message).
  std::string Log() const;
  // How many connections the sink has accepted since it (re)started.
  int Connections() const;

  // SIGTERM and wait for exit. INTERNAL unless it exits with code 0 within
  // 10 s (it is killed then). OK if not running.
  absl::Status Stop();
  // Stops the sink if running, then starts it again on the same port with the
  // same directory. INTERNAL if it cannot be started.
  absl::Status Restart();
  // SIGSTOP / SIGCONT: the kernel still accepts connections, but the sink
  // answers nothing while paused. FAILED_PRECONDITION if not running.
  absl::Status Pause();
  absl::Status Resume();

 private:
  SmtpSink(SmtpSinkOptions options, std::string dir)
      : options_(std::move(options)), dir_(std::move(dir)) {}
  // Starts the sink on `port` (0: ephemeral) and waits for its port file.
  absl::Status Spawn(int port);

  SmtpSinkOptions options_;
  std::string dir_;
  std::string mail_dir_;
  std::string ca_file_;
  std::string sink_path_;
  std::string log_file_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  bool paused_ = false;
};

}  // namespace crm::testing
