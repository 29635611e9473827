#include "libs/rpc/tls_files.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/pki/pki.h"

namespace crm::rpc {

absl::Status CheckTlsFiles(const TlsFiles& files, absl::string_view setting_prefix) {
  struct Item {
    const std::string* path;
    const char* suffix;
    bool is_key;
  };
  for (const Item& item : {Item{&files.cert_file, "cert", false},
                           Item{&files.key_file, "key", true}, Item{&files.ca_file, "ca", false}}) {
    const std::string setting = absl::StrCat(setting_prefix, item.suffix);
    if (item.path->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(setting, ": required"));
    }
    absl::StatusOr<std::string> pem = pki::ReadFile(*item.path);
    if (!pem.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(setting, ": cannot read ", *item.path, ": ", pem.status().message()));
    }
    const bool looks_right =
        item.is_key ? absl::StrContains(*pem, "PRIVATE KEY-----") : pki::NotAfter(*pem).ok();
    if (!looks_right) {
      return absl::FailedPreconditionError(absl::StrCat(setting, ": ", *item.path, " is not a PEM ",
                                                        item.is_key ? "key" : "certificate"));
    }
  }
  if (files.refresh_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(setting_prefix, "refresh: at least 1s"));
  }
  return absl::OkStatus();
}

}  // namespace crm::rpc
