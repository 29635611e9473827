#include "services/identity/permissions.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"

namespace crm::identity {
namespace {

constexpr std::array<PermissionInfo, 13> kCatalogue = {{
    {kContactsRead, "read the contact records assigned to the user", false},
    {kContactsReadAll, "read every contact record, not only assigned ones", true},
    {kContactsReadSensitive, "see fields marked sensitive (e.g. date of birth, tax id)", true},
    {kContactsWrite, "create and edit contact records the user may read", false},
    {kConsentRead, "read consent, withdrawal and objection records", false},
    {kConsentWrite, "record consent, withdrawal and objection on a subject's behalf", false},
    {kConsentCheck, "ask whether a subject's data may be processed for a purpose", false},
    {kConsentAdmin, "define purposes and publish consent notices", true},
    {kMailingSend, "send transactional mail and campaigns to consenting subjects", false},
    {kMailingManage, "manage mailing lists, templates and campaigns", false},
    {kAuditRead, "read the audit log and activity and login reports", true},
    {kDsrManage, "handle data-subject requests: access exports, erasure, rectification", true},
    {kIdentityAdmin, "manage users, roles, grants and MFA requirements", true},
}};

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

Role MakeBuiltin(absl::string_view name, std::initializer_list<absl::string_view> permissions) {
  Role role;
  role.name = std::string(name);
  for (absl::string_view p : permissions) role.permissions.emplace(p);
  role.builtin = true;
  return role;
}

}  // namespace

absl::Span<const PermissionInfo> PermissionCatalogue() { return kCatalogue; }

const PermissionInfo* FindPermission(absl::string_view name) {
  for (const PermissionInfo& info : kCatalogue) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

bool IsKnownPermission(absl::string_view name) { return FindPermission(name) != nullptr; }

PermissionSet AllPermissions() {
  PermissionSet all;
  for (const PermissionInfo& info : kCatalogue) all.emplace(info.name);
  return all;
}

std::vector<Role> BuiltinRoles() {
  Role admin;
  admin.name = std::string(kRoleAdmin);
  admin.permissions = AllPermissions();
  admin.builtin = true;
  return {
      std::move(admin),
      MakeBuiltin(kRoleDpo, {kAuditRead, kDsrManage, kContactsRead, kContactsReadAll,
                             kContactsReadSensitive, kConsentRead}),
      MakeBuiltin(kRoleSales, {kContactsRead, kContactsWrite, kConsentRead, kMailingSend}),
      MakeBuiltin(kRoleMarketing,
                  {kContactsRead, kConsentRead, kConsentCheck, kMailingSend, kMailingManage}),
      MakeBuiltin(kRoleSupport, {kContactsRead, kContactsWrite, kConsentRead, kConsentWrite}),
      MakeBuiltin(kRoleAuditor, {kAuditRead, kContactsRead, kContactsReadAll}),
  };
}

bool IsBuiltinRoleName(absl::string_view name) {
  for (absl::string_view builtin :
       {kRoleAdmin, kRoleDpo, kRoleSales, kRoleMarketing, kRoleSupport, kRoleAuditor}) {
    if (name == builtin) return true;
  }
  return false;
}

bool RoleHasSensitivePermission(const Role& role) {
  for (const std::string& p : role.permissions) {
    const PermissionInfo* info = FindPermission(p);
    if (info != nullptr && info->sensitive) return true;
  }
  return false;
}

absl::Status ValidateRoleName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return Invalid(field, "required");
  if (name.size() < 2 || name.size() > 64) return Invalid(field, "must be 2 to 64 characters");
  if (!absl::ascii_islower(static_cast<unsigned char>(name.front()))) {
    return Invalid(field, "must start with a lower-case letter a-z");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (!absl::ascii_islower(u) && !absl::ascii_isdigit(u) && c != '_' && c != '-') {
      return Invalid(field, "may contain only a-z, 0-9, '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PermissionSet> ValidatePermissionList(absl::string_view field,
                                                     absl::Span<const std::string> permissions) {
  if (permissions.empty()) return Invalid(field, "at least one permission is required");
  PermissionSet set;
  for (size_t i = 0; i < permissions.size(); ++i) {
    const std::string element = absl::StrCat(field, "[", i, "]");
    if (!IsKnownPermission(permissions[i])) return Invalid(element, "unknown permission");
    if (!set.insert(permissions[i]).second) return Invalid(element, "duplicate permission");
  }
  return set;
}

absl::StatusOr<Role> MakeCustomRole(absl::string_view name,
                                    absl::Span<const std::string> permissions, bool require_mfa) {
  CRM_RETURN_IF_ERROR(ValidateRoleName("name", name));
  if (IsBuiltinRoleName(name)) return Invalid("name", "is reserved for a built-in role");
  Role role;
  CRM_ASSIGN_OR_RETURN(role.permissions, ValidatePermissionList("permissions", permissions));
  role.name = std::string(name);
  role.builtin = false;
  role.require_mfa = require_mfa;
  return role;
}

const Role* FindRole(absl::Span<const Role> roles, absl::string_view name) {
  for (const Role& role : roles) {
    if (role.name == name) return &role;
  }
  return nullptr;
}

}  // namespace crm::identity
