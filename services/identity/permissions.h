// The permission catalogue of the CRM and the roles that bundle permissions.
// identity uses it to validate custom roles, to seed the built-in roles and to
// compute the permissions an access token carries (grants.h); services check
// the permission names (kContactsRead, ...) found in a token.
//
// A permission is a fixed name from the catalogue below; services never see a
// role, only the permissions it expands to. `sensitive` marks permissions that
// reach beyond a user's own assigned records or change who may see data
// (all records, sensitive fields, the audit log, data-subject requests,
// identity administration); admins should require MFA for roles carrying one
// (RoleHasSensitivePermission), and the admin console flags them.
//
// Built-in roles and why they hold what they hold:
//   admin     every permission. The no-escalation rule (grants.h, CanGrant)
//             lets an actor grant only roles whose permissions it holds, so
//             the role that hands out every other role must hold them all.
//   dpo       audit.read, dsr.manage, contacts.read, contacts.read.all,
//             contacts.read.sensitive, consent.read: answers access and
//             erasure requests for any subject (Art. 15-20), which needs
//             every record incl. sensitive fields, the consent proof and the
//             audit trail; changes data only through the erasure and
//             rectification flows of dsr.manage, so no contacts.write.
//   sales     contacts.read, contacts.write, consent.read, mailing.send: works
//             on assigned records only (no contacts.read.all), checks consent
//             before mailing, never sees sensitive fields.
//   marketing contacts.read, consent.read, consent.check, mailing.send,
//             mailing.manage: runs lists and campaigns and checks whether a
//             subject may be mailed for a purpose; may not edit records or
//             consent.
//   support   contacts.read, contacts.write, consent.read, consent.write:
//             fixes records and records consent changes a customer asks for
//             on the phone; no mailing, no sensitive fields.
//   auditor   audit.read, contacts.read, contacts.read.all: reviews the audit
//             log and the records it refers to across all subjects, read-only;
//             sensitive fields stay hidden (contacts.read.sensitive is not
//             needed to check who did what).
// The lists follow the identity issue unchanged.
//
// Pure data and functions: thread-safe.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace crm::identity {

inline constexpr absl::string_view kContactsRead = "contacts.read";
inline constexpr absl::string_view kContactsReadAll = "contacts.read.all";
inline constexpr absl::string_view kContactsReadSensitive = "contacts.read.sensitive";
inline constexpr absl::string_view kContactsWrite = "contacts.write";
inline constexpr absl::string_view kConsentRead = "consent.read";
inline constexpr absl::string_view kConsentWrite = "consent.write";
inline constexpr absl::string_view kConsentCheck = "consent.check";
inline constexpr absl::string_view kConsentAdmin = "consent.admin";
inline constexpr absl::string_view kMailingSend = "mailing.send";
inline constexpr absl::string_view kMailingManage = "mailing.manage";
inline constexpr absl::string_view kAuditRead = "audit.read";
inline constexpr absl::string_view kDsrManage = "dsr.manage";
inline constexpr absl::string_view kIdentityAdmin = "identity.admin";

inline constexpr absl::string_view kRoleAdmin = "admin";
inline constexpr absl::string_view kRoleDpo = "dpo";
inline constexpr absl::string_view kRoleSales = "sales";
inline constexpr absl::string_view kRoleMarketing = "marketing";
inline constexpr absl::string_view kRoleSupport = "support";
inline constexpr absl::string_view kRoleAuditor = "auditor";

// One row of the catalogue.
struct PermissionInfo {
  absl::string_view name;
  absl::string_view description;
  bool sensitive;
};

// A set of permission names, ordered so tokens and comparisons are stable.
using PermissionSet = std::set<std::string, std::less<>>;

struct Role {
  // Lower-case name, see ValidateRoleName.
  std::string name;
  // Names from the catalogue.
  PermissionSet permissions;
  // Built-in roles are seeded by identity and cannot be edited or deleted.
  bool builtin = false;
  // A user whose active grants include this role must pass a second factor
  // (TOTP or a recovery code) to obtain tokens. Set by admins; default off.
  bool require_mfa = false;
  // Free text for admins (custom roles; built-ins have none). Not personal.
  std::string description;
};

// Every permission, in a fixed order.
absl::Span<const PermissionInfo> PermissionCatalogue();

// The catalogue row of `name`, or nullptr if there is none.
const PermissionInfo* FindPermission(absl::string_view name);

// True if `name` is in the catalogue (exact, case-sensitive match).
bool IsKnownPermission(absl::string_view name);

// Every catalogue name.
PermissionSet AllPermissions();

// The six built-in roles described above, builtin = true, require_mfa = false.
std::vector<Role> BuiltinRoles();

// True if `name` is one of the built-in role names.
bool IsBuiltinRoleName(absl::string_view name);

// True if `role` carries a permission marked sensitive in the catalogue.
bool RoleHasSensitivePermission(const Role& role);

// OK if `name` is a well-formed role name: 2..64 characters of a-z, 0-9, '_'
// and '-', starting with a letter. Otherwise INVALID_ARGUMENT naming `field`.
// Built-in names are well-formed; ValidateCustomRole refuses them.
absl::Status ValidateRoleName(absl::string_view field, absl::string_view name);

// The permissions of a role as a set. INVALID_ARGUMENT naming the element
// ("<field>[2]: unknown permission") for a name not in the catalogue or a
// duplicate, and naming `field` if the list is empty. Messages never repeat
// the offending name.
absl::StatusOr<PermissionSet> ValidatePermissionList(absl::string_view field,
                                                     absl::Span<const std::string> permissions);

// A custom (non-built-in) role from an admin's request; the fields are called
// `name` and `permissions` in messages. INVALID_ARGUMENT if the name is
// malformed or reserved for a built-in role, or the list is invalid (as
// ValidatePermissionList).
absl::StatusOr<Role> MakeCustomRole(absl::string_view name,
                                    absl::Span<const std::string> permissions, bool require_mfa);

// The role called `name` in `roles`, or nullptr.
const Role* FindRole(absl::Span<const Role> roles, absl::string_view name);

}  // namespace crm::identity
