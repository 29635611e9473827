// ServingCertificate: the gateway's HTTPS certificate and key, re-read from
// their files while the server runs, so that a rotated pair (cert-manager
// rewriting a Kubernetes Secret volume, an atomic symlink swap) is served to
// new connections without a restart.
//
// Install() sets a certificate callback on the server's SSL_CTX
// (SSL_CTX_set_cert_cb) that puts the current chain and key on every
// handshake. StartRefresh() re-reads both files every `interval` on a thread
// of its own. A changed pair is taken only whole and sound: both files read,
// the certificate (chain) and key parse, and the key matches the
// certificate; otherwise the pair in use stays and `tls.reload_failed` is
// logged (once per change of the files' content, with the reason but never
// the files' content); a new pair taken logs `tls.reloaded`. Established
// connections keep the certificate they began with.
//
// Thread-safe: the callback runs on the server's worker threads, the refresh
// on its own; the current pair is swapped under a mutex.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace crm::gateway {

class ServingCertificate {
 public:
  // Loads the pair. FAILED_PRECONDITION naming tls_cert or tls_key if a file
  // cannot be read or parsed, or the key does not match the certificate.
  static absl::StatusOr<std::unique_ptr<ServingCertificate>> Load(std::string cert_file,
                                                                  std::string key_file);
  // Stops the refresh (see StopRefresh).
  ~ServingCertificate();
  ServingCertificate(const ServingCertificate&) = delete;
  ServingCertificate& operator=(const ServingCertificate&) = delete;

  // Makes every handshake of `ctx` use the pair current at that moment.
  // This object must outlive every use of `ctx`.
  void Install(SSL_CTX* ctx);

  // Re-reads the files now. OK if they are unchanged or the new pair was
  // taken; otherwise the reason (FAILED_PRECONDITION naming the file), and
  // the pair in use stays.
  absl::Status Reload();

  // Calls Reload every `interval` on a background thread until StopRefresh.
  // Once only.
  void StartRefresh(absl::Duration interval);
  // Stops and joins the background thread. Idempotent; from one thread at
  // a time.
  void StopRefresh();

  // The serial number of the certificate in use, upper-case hex (as
  // BN_bn2hex writes it). For tests and logs.
  std::string serial() const;

 private:
  struct Pair;
  using Digest = std::array<unsigned char, 32>;  // SHA-256 of both files' bytes.

  ServingCertificate(std::string cert_file, std::string key_file)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}
  // Reads and checks the pair of files, and the digest of their bytes.
  absl::StatusOr<std::shared_ptr<const Pair>> Read(Digest* digest) const;
  std::shared_ptr<const Pair> Current() const;
  static int OnHandshake(SSL* ssl, void* arg);

  const std::string cert_file_;
  const std::string key_file_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Pair> current_ ABSL_GUARDED_BY(mu_);
  // Of the files as last read, taken or not: a change is tried (and a bad
  // one logged) once.
  Digest last_seen_ ABSL_GUARDED_BY(mu_){};
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread refresher_;
};

}  // namespace crm::gateway
