// The three PEM files of a mutual-TLS identity, shared by ServerConfig and
// ChannelConfig: a service usually calls others with the certificate it
// serves with. Files are re-read by gRPC's file watcher every
// `refresh_interval`, so rotating them on disk (atomic rename) needs no
// restart. Plain data; not synchronized.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace crm::rpc {

struct TlsFiles {
  // PEM certificate (chain) of this process. Default: none (required).
  std::string cert_file;
  // PEM private key matching cert_file, mode 0600. Default: none (required).
  std::string key_file;
  // PEM bundle of the CA(s) whose certificates peers must present. Default:
  // none (required).
  std::string ca_file;
  // How often the files are re-read. Default 60 s; at least 1 s.
  absl::Duration refresh_interval = absl::Seconds(60);
};

// OK if all three paths are set and readable PEM certificate/key files;
// otherwise INVALID_ARGUMENT (empty path) or FAILED_PRECONDITION (unreadable or
// unparsable), naming the setting (`<prefix>cert`, `<prefix>key`,
// `<prefix>ca`).
absl::Status CheckTlsFiles(const TlsFiles& files, absl::string_view setting_prefix);

}  // namespace crm::rpc
