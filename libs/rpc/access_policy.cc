#include "libs/rpc/access_policy.h"

#include <google/protobuf/descriptor.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/pki/pki.h"

namespace crm::rpc {
namespace {

constexpr absl::string_view kHealthService = "grpc.health.v1.Health";
constexpr absl::string_view kReflectionService = "grpc.reflection.v1alpha.ServerReflection";

}  // namespace

AccessPolicy& AccessPolicy::Allow(absl::string_view full_method,
                                  std::initializer_list<absl::string_view> callers) {
  std::vector<std::string> v(callers.begin(), callers.end());
  return Allow(full_method, v);
}

AccessPolicy& AccessPolicy::Allow(absl::string_view full_method,
                                  const std::vector<std::string>& callers) {
  absl::Status valid = ValidateMethodName(full_method);
  if (!valid.ok()) {
    if (error_.ok()) error_ = valid;
    return *this;
  }
  if (callers.empty() && error_.ok()) {
    error_ = absl::InvalidArgumentError(
        absl::StrCat("access policy for ", full_method, ": empty caller list"));
  }
  Entry& entry = entries_[full_method];
  for (const std::string& caller : callers) AddCaller(&entry, caller);
  return *this;
}

AccessPolicy& AccessPolicy::AllowService(absl::string_view service_full_name,
                                         const std::vector<std::string>& callers) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(service_full_name));
  if (service == nullptr) {
    if (error_.ok()) {
      error_ = absl::InvalidArgumentError(
          absl::StrCat("service ", service_full_name, " is not linked in"));
    }
    return *this;
  }
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string method =
        absl::StrCat("/", service->full_name(), "/", service->method(i)->name());
    if (callers.empty()) {
      AllowAnyPeer(method);
    } else {
      Allow(method, callers);
    }
  }
  return *this;
}

AccessPolicy& AccessPolicy::AllowAnyPeer(absl::string_view full_method) {
  absl::Status valid = ValidateMethodName(full_method);
  if (!valid.ok()) {
    if (error_.ok()) error_ = valid;
    return *this;
  }
  entries_[full_method].any_peer = true;
  return *this;
}

void AccessPolicy::AddCaller(Entry* entry, absl::string_view caller) {
  std::string id =
      absl::StartsWith(caller, "spiffe://") ? std::string(caller) : pki::SpiffeId(caller);
  if (pki::NameFromSpiffeId(id).empty()) {
    if (error_.ok()) {
      error_ = absl::InvalidArgumentError(
          "access policy: caller must be a name of [a-z0-9-] or spiffe://crm.local/<name>");
    }
    return;
  }
  entry->callers.insert(std::move(id));
}

absl::Status AccessPolicy::Check(absl::string_view full_method,
                                 absl::string_view peer_identity) const {
  if (IsInfrastructureMethod(full_method)) return absl::OkStatus();
  auto it = entries_.find(full_method);
  if (it == entries_.end()) {
    return absl::PermissionDeniedError("no access policy for this method");
  }
  if (it->second.any_peer) return absl::OkStatus();
  if (!peer_identity.empty() && it->second.callers.contains(peer_identity)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError("caller is not allowed to call this method");
}

bool AccessPolicy::Covers(absl::string_view full_method) const {
  return IsInfrastructureMethod(full_method) || entries_.contains(full_method);
}

bool AccessPolicy::IsInfrastructureMethod(absl::string_view full_method) {
  if (full_method.empty() || full_method[0] != '/') return false;
  absl::string_view rest = full_method.substr(1);
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash + 1 >= rest.size()) return false;
  if (rest.find('/', slash + 1) != absl::string_view::npos) return false;
  return IsInfrastructureService(rest.substr(0, slash));
}

bool AccessPolicy::IsInfrastructureService(absl::string_view service_name) {
  return service_name == kHealthService || service_name == kReflectionService;
}

absl::Status AccessPolicy::ValidateMethodName(absl::string_view full_method) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat("access policy: '", full_method,
                                                   "' is not of the form /package.Service/Method"));
  };
  if (full_method.size() < 4 || full_method[0] != '/') return bad();
  absl::string_view rest = full_method.substr(1);
  const size_t slash = rest.find('/');
  if (slash == 0 || slash == absl::string_view::npos || slash + 1 >= rest.size()) return bad();
  for (char c : rest) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '/';
    if (!ok) return bad();
  }
  if (rest.find('/', slash + 1) != absl::string_view::npos) return bad();
  return absl::OkStatus();
}

absl::Status AccessPolicy::Validate() const { return error_; }

}  // namespace crm::rpc
