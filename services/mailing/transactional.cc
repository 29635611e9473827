#include "services/mailing/transactional.h"

#include <algorithm>
#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/base/validate.h"
#include "services/mailing/render.h"

namespace crm::mailing {
namespace {

constexpr absl::string_view kTemplatePrefix = "transactional.";

TransactionalKind Kind(v1::TransactionalKind kind, absl::string_view name,
                       std::vector<std::string> required, std::vector<std::string> optional,
                       std::string subject, std::string text) {
  TransactionalKind k{.kind = kind, .name = name, .required = required};
  k.usable.insert(required.begin(), required.end());
  k.usable.insert(optional.begin(), optional.end());
  k.usable.insert("first_name");
  k.builtin.set_template_id(absl::StrCat(kTemplatePrefix, name));
  k.builtin.set_subject(std::move(subject));
  k.builtin.set_text_body(std::move(text));
  return k;
}

const std::array<TransactionalKind, 6>& Kinds() {
  static const auto* const kinds = new std::array<TransactionalKind, 6>{
      Kind(v1::TRANSACTIONAL_KIND_PASSWORD_CHANGED, "password_changed", {"changed_at"}, {},
           "Your password was changed",
           "Hello,\n\n"
           "the password of your account was changed on {{changed_at}}.\n\n"
           "If you did not change it, tell your administrator at once.\n"),
      Kind(v1::TRANSACTIONAL_KIND_GRANT_EXPIRING, "grant_expiring", {"purpose", "expires_at"}, {},
           "Your consent for {{purpose}} ends on {{expires_at}}",
           "Hello,\n\n"
           "the consent you gave for {{purpose}} ends on {{expires_at}}. If you want it to go "
           "on, renew it in the privacy portal; otherwise there is nothing to do, and we stop "
           "using your data for this purpose on that day.\n"),
      Kind(v1::TRANSACTIONAL_KIND_VERIFICATION_CODE, "verification_code", {"code"}, {},
           "Your verification code",
           "Your verification code for the privacy portal is:\n\n"
           "    {{code}}\n\n"
           "It is valid for a few minutes. If you did not ask for it, ignore this message.\n"),
      Kind(v1::TRANSACTIONAL_KIND_ERASURE_CONFIRMED, "erasure_confirmed",
           {"request_id", "completed_at"}, {"certificate_url"},
           "Your personal data has been erased",
           "Hello,\n\n"
           "your erasure request {{request_id}} is complete: on {{completed_at}} we erased your "
           "personal data from every system that held it, except what the law obliges us to "
           "keep for a time.\n\n"
           "{{certificate_url}}\n\n"
           "This is the last message you get from us about it: we have not kept your address.\n"),
      Kind(v1::TRANSACTIONAL_KIND_ACCESS_READY, "access_ready", {"request_id", "expires_at"},
           {"download_url"}, "A copy of your personal data is ready",
           "Hello,\n\n"
           "the copy of your personal data you asked for (request {{request_id}}) is ready. "
           "It lists what we hold about you, why, where it came from, with whom we share it and "
           "how long we keep it.\n\n"
           "{{download_url}}\n\n"
           "You can fetch it in the privacy portal until {{expires_at}}; then we delete it.\n"),
      Kind(v1::TRANSACTIONAL_KIND_REQUEST_EXTENDED, "request_extended",
           {"request_id", "request_kind", "due_at", "reason"}, {},
           "We need more time for your {{request_kind}} request",
           "Hello,\n\n"
           "we need more time to complete your {{request_kind}} request {{request_id}}. We will "
           "complete it by {{due_at}}.\n\n"
           "Why: {{reason}}\n\n"
           "The law allows this extension for complex or numerous requests (GDPR Art. 12(3)). "
           "If you disagree, you may complain to a supervisory authority.\n"),
  };
  return *kinds;
}

bool IsCodeChar(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool IsKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

}  // namespace

const TransactionalKind* FindTransactionalKind(int kind) {
  for (const TransactionalKind& k : Kinds()) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

std::string TransactionalTemplateId(const TransactionalKind& kind) {
  return absl::StrCat(kTemplatePrefix, kind.name);
}

absl::StatusOr<const absl::flat_hash_set<std::string>*> PlaceholdersOf(
    absl::string_view field, absl::string_view template_id) {
  if (!absl::StartsWith(template_id, kTemplatePrefix)) return &CampaignPlaceholders();
  for (const TransactionalKind& k : Kinds()) {
    if (template_id.substr(kTemplatePrefix.size()) == k.name) return &k.usable;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": \"transactional.\" names a transactional kind's template; ",
      "the kinds are password_changed, grant_expiring, verification_code, erasure_confirmed, "
      "access_ready, request_extended"));
}

std::string PayloadAad(absl::string_view message_id) {
  return absl::StrCat("crm.mailing/send_queue.payload/", message_id);
}

absl::Status ValidateTransactional(const v1::SendTransactionalRequest& req) {
  const TransactionalKind* kind = FindTransactionalKind(req.kind());
  if (kind == nullptr) return absl::InvalidArgumentError("kind: unknown or unspecified");
  switch (req.to_case()) {
    case v1::SendTransactionalRequest::kSubjectId:
      CRM_RETURN_IF_ERROR(base::CanonicalUuid("subject_id", req.subject_id()).status());
      break;
    case v1::SendTransactionalRequest::kAddress:
      CRM_RETURN_IF_ERROR(base::ValidateEmail("address", req.address()));
      break;
    default:
      return absl::InvalidArgumentError("subject_id: a subject id or an address is required");
  }
  if (req.params_size() > 16) return absl::InvalidArgumentError("params: at most 16");
  for (const auto& [name, value] : req.params()) {
    if (!kind->usable.contains(name) || name == "first_name") {
      // Named back only when it is a name (never echo arbitrary bytes).
      const bool plain =
          !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
          });
      return absl::InvalidArgumentError(
          absl::StrCat(plain ? absl::StrCat("params[", name, "]") : std::string("params"),
                       ": not a parameter of ", kind->name, " mail"));
    }
    const std::string field = absl::StrCat("params[", name, "]");
    if (value.size() > 1000)
      return absl::InvalidArgumentError(absl::StrCat(field, ": at most 1,000 bytes"));
    CRM_RETURN_IF_ERROR(base::ValidateUtf8(field, value));
    if (std::any_of(value.begin(), value.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": one line, no control characters"));
    }
  }
  for (const std::string& name : kind->required) {
    auto it = req.params().find(name);
    if (it == req.params().end() || it->second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("params[", name, "]: required for ", kind->name, " mail"));
    }
  }
  if (kind->kind == v1::TRANSACTIONAL_KIND_VERIFICATION_CODE) {
    const std::string& code = req.params().at("code");
    if (code.size() < 4 || code.size() > 12 || !std::all_of(code.begin(), code.end(), IsCodeChar)) {
      return absl::InvalidArgumentError("params[code]: 4..12 of A-Z 0-9");
    }
  }
  const std::string& key = req.dedup_key();
  if (key.empty() || key.size() > 200 || !std::all_of(key.begin(), key.end(), IsKeyChar)) {
    return absl::InvalidArgumentError("dedup_key: 1..200 of A-Z a-z 0-9 . _ : -");
  }
  return absl::OkStatus();
}

}  // namespace crm::mailing
