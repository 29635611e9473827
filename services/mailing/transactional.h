// Transactional mail (crm.mailing.v1.Mailing/SendTransactional): the kinds,
// their placeholders and built-in templates, and the request's validation.
//
// Each kind has a built-in template (English, plain text). An operator
// replaces it by storing a template named "transactional.<kind>" with
// PutTemplate (e.g. "transactional.verification_code"); the newest version is
// used at send time. Such a template may use only its kind's placeholders
// (and first_name, filled from contacts when the mail goes to a subject).
//
// Transactional mail is not consent-gated and carries no unsubscribe link:
// each kind is needed to run the service or by the law (Art. 6(1)(b), (c)).
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crm/mailing/v1/mailing.pb.h"

namespace crm::mailing {

struct TransactionalKind {
  v1::TransactionalKind kind;
  absl::string_view name;                   // "verification_code"
  std::vector<std::string> required;        // params the caller must give
  absl::flat_hash_set<std::string> usable;  // what its template may use
  v1::Template builtin;
};

// The kind's description; null for an unknown or unspecified kind.
const TransactionalKind* FindTransactionalKind(int kind);

// "transactional.<name>": the id of the template that replaces the built-in one.
std::string TransactionalTemplateId(const TransactionalKind& kind);

// The placeholders a template stored under `template_id` may use: its kind's
// for "transactional.<name>", a campaign template's otherwise.
// INVALID_ARGUMENT naming `field` for "transactional.<unknown>".
absl::StatusOr<const absl::flat_hash_set<std::string>*> PlaceholdersOf(
    absl::string_view field, absl::string_view template_id);

// Everything but the caller's permission: the kind, whom to (a subject id or
// an address), the params (known names, required ones present, each value
// one line of at most 1,000 bytes of UTF-8; a verification code 4..12 of
// A-Z 0-9) and the dedup key. INVALID_ARGUMENT naming the field.
absl::Status ValidateTransactional(const v1::SendTransactionalRequest& req);

// The associated data binding a queued message's encrypted payload to its row.
std::string PayloadAad(absl::string_view message_id);

}  // namespace crm::mailing
