#include "libs/rpc/request_id.h"

#include "libs/base/uuid.h"

namespace crm::rpc {
namespace {

thread_local const std::string* current_request_id = nullptr;

}  // namespace

bool IsValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string RequestId(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find(kRequestIdHeader);
  if (it == md.end()) return "";
  absl::string_view id(it->second.data(), it->second.size());
  return IsValidRequestId(id) ? std::string(id) : "";
}

absl::string_view CurrentRequestId() {
  return current_request_id == nullptr ? absl::string_view() : *current_request_id;
}

RequestIdScope::RequestIdScope(std::string id)
    : id_(IsValidRequestId(id) ? std::move(id) : std::string()), previous_(current_request_id) {
  current_request_id = id_.empty() ? nullptr : &id_;
}

RequestIdScope::~RequestIdScope() { current_request_id = previous_; }

}  // namespace crm::rpc
