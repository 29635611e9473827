#include "services/identity/permissions.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/testing/status_matchers.h"

namespace crm::identity {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

PermissionSet Set(std::initializer_list<const char*> names) {
  PermissionSet s;
  for (const char* n : names) s.emplace(n);
  return s;
}

TEST(PermissionCatalogueTest, HoldsEveryPermissionTheIssueNames) {
  for (const char* name : {"contacts.read", "contacts.read.all", "contacts.read.sensitive",
                           "contacts.write", "consent.read", "consent.write", "mailing.send",
                           "mailing.manage", "audit.read", "dsr.manage", "identity.admin"}) {
    EXPECT_TRUE(IsKnownPermission(name)) << name;
  }
  EXPECT_EQ(PermissionCatalogue().size(), 13u);
  EXPECT_EQ(AllPermissions().size(), 13u);
}

TEST(PermissionCatalogueTest, EveryRowHasADescriptionAndAUniqueName) {
  PermissionSet seen;
  for (const PermissionInfo& info : PermissionCatalogue()) {
    EXPECT_FALSE(info.description.empty()) << info.name;
    EXPECT_TRUE(seen.emplace(info.name).second) << info.name;
  }
}

TEST(PermissionCatalogueTest, UnknownAndNearMissNamesAreNotPermissions) {
  EXPECT_FALSE(IsKnownPermission(""));
  EXPECT_FALSE(IsKnownPermission("contacts"));
  EXPECT_FALSE(IsKnownPermission("Contacts.Read"));
  EXPECT_FALSE(IsKnownPermission("contacts.read "));
  EXPECT_FALSE(IsKnownPermission("contacts.*"));
  EXPECT_EQ(FindPermission("nope"), nullptr);
}

TEST(PermissionCatalogueTest, MarksBroadAndAdministrativePermissionsSensitive) {
  for (const char* name : {"contacts.read.all", "contacts.read.sensitive", "audit.read",
                           "dsr.manage", "identity.admin"}) {
    ASSERT_NE(FindPermission(name), nullptr) << name;
    EXPECT_TRUE(FindPermission(name)->sensitive) << name;
  }
  for (const char* name : {"contacts.read", "contacts.write", "consent.read", "consent.write",
                           "mailing.send", "mailing.manage"}) {
    ASSERT_NE(FindPermission(name), nullptr) << name;
    EXPECT_FALSE(FindPermission(name)->sensitive) << name;
  }
}

TEST(BuiltinRolesTest, BundleTheDocumentedPermissions) {
  const std::vector<Role> roles = BuiltinRoles();
  ASSERT_EQ(roles.size(), 6u);
  const Role* admin = FindRole(roles, "admin");
  ASSERT_NE(admin, nullptr);
  EXPECT_EQ(admin->permissions, AllPermissions());
  ASSERT_NE(FindRole(roles, "dpo"), nullptr);
  EXPECT_EQ(FindRole(roles, "dpo")->permissions,
            Set({"audit.read", "dsr.manage", "contacts.read", "contacts.read.all",
                 "contacts.read.sensitive", "consent.read"}));
  ASSERT_NE(FindRole(roles, "sales"), nullptr);
  EXPECT_EQ(FindRole(roles, "sales")->permissions,
            Set({"contacts.read", "contacts.write", "consent.read", "mailing.send"}));
  ASSERT_NE(FindRole(roles, "marketing"), nullptr);
  EXPECT_EQ(
      FindRole(roles, "marketing")->permissions,
      Set({"contacts.read", "consent.read", "consent.check", "mailing.send", "mailing.manage"}));
  ASSERT_NE(FindRole(roles, "support"), nullptr);
  EXPECT_EQ(FindRole(roles, "support")->permissions,
            Set({"contacts.read", "contacts.write", "consent.read", "consent.write"}));
  ASSERT_NE(FindRole(roles, "auditor"), nullptr);
  EXPECT_EQ(FindRole(roles, "auditor")->permissions,
            Set({"audit.read", "contacts.read", "contacts.read.all"}));
}

TEST(BuiltinRolesTest, AreMarkedBuiltinUseOnlyCataloguePermissionsAndDoNotRequireMfaByDefault) {
  for (const Role& role : BuiltinRoles()) {
    EXPECT_TRUE(role.builtin) << role.name;
    EXPECT_FALSE(role.require_mfa) << role.name;
    EXPECT_TRUE(IsBuiltinRoleName(role.name)) << role.name;
    EXPECT_THAT(ValidateRoleName("name", role.name), IsOk());
    for (const std::string& p : role.permissions) EXPECT_TRUE(IsKnownPermission(p)) << p;
  }
  EXPECT_FALSE(IsBuiltinRoleName("Admin"));
  EXPECT_FALSE(IsBuiltinRoleName("helpdesk"));
}

TEST(BuiltinRolesTest, OnlyAdminHoldsIdentityAdminAndOnlyDpoSeesSensitiveFieldsBesidesAdmin) {
  for (const Role& role : BuiltinRoles()) {
    EXPECT_EQ(role.permissions.contains(kIdentityAdmin), role.name == "admin") << role.name;
    EXPECT_EQ(role.permissions.contains(kContactsReadSensitive),
              role.name == "admin" || role.name == "dpo")
        << role.name;
  }
}

TEST(BuiltinRolesTest, SensitiveFlagFollowsThePermissions) {
  const std::vector<Role> roles = BuiltinRoles();
  EXPECT_TRUE(RoleHasSensitivePermission(*FindRole(roles, "admin")));
  EXPECT_TRUE(RoleHasSensitivePermission(*FindRole(roles, "dpo")));
  EXPECT_TRUE(RoleHasSensitivePermission(*FindRole(roles, "auditor")));
  EXPECT_FALSE(RoleHasSensitivePermission(*FindRole(roles, "sales")));
  EXPECT_FALSE(RoleHasSensitivePermission(*FindRole(roles, "marketing")));
  EXPECT_FALSE(RoleHasSensitivePermission(*FindRole(roles, "support")));
}

TEST(ValidateRoleNameTest, AcceptsLowerCaseNamesWithDigitsUnderscoresAndDashes) {
  EXPECT_THAT(ValidateRoleName("name", "helpdesk"), IsOk());
  EXPECT_THAT(ValidateRoleName("name", "field_sales-2"), IsOk());
  EXPECT_THAT(ValidateRoleName("name", "ab"), IsOk());
  EXPECT_THAT(ValidateRoleName("name", std::string(64, 'a')), IsOk());
}

TEST(ValidateRoleNameTest, RejectsMalformedNamesNamingTheField) {
  for (const std::string& bad :
       {std::string(""), std::string("a"), std::string(65, 'a'), std::string("Sales"),
        std::string("1st-line"), std::string("_x"), std::string("sales team"),
        std::string("sales.eu"), std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    EXPECT_THAT(ValidateRoleName("role", bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("role: ")))
        << bad;
  }
}

TEST(ValidatePermissionListTest, ReturnsTheSet) {
  CRM_ASSERT_OK_AND_ASSIGN(
      PermissionSet set,
      ValidatePermissionList("permissions",
                             std::vector<std::string>{"mailing.send", "contacts.read"}));
  EXPECT_THAT(set, ElementsAre("contacts.read", "mailing.send"));
}

TEST(ValidatePermissionListTest, RejectsEmptyUnknownAndDuplicateNamingTheElement) {
  EXPECT_THAT(ValidatePermissionList("permissions", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permissions: ")));
  EXPECT_THAT(ValidatePermissionList("permissions",
                                     std::vector<std::string>{"contacts.read", "contacts.delete"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("permissions[1]: unknown permission")));
  EXPECT_THAT(
      ValidatePermissionList(
          "permissions", std::vector<std::string>{"consent.read", "mailing.send", "consent.read"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permissions[2]: duplicate")));
}

TEST(ValidatePermissionListTest, MessageDoesNotRepeatTheOffendingValue) {
  absl::StatusOr<PermissionSet> r =
      ValidatePermissionList("permissions", std::vector<std::string>{"jane.doe@example.com"});
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("jane")));
}

TEST(MakeCustomRoleTest, BuildsANonBuiltinRole) {
  CRM_ASSERT_OK_AND_ASSIGN(
      Role role,
      MakeCustomRole("helpdesk", std::vector<std::string>{"contacts.read", "consent.read"}, true));
  EXPECT_EQ(role.name, "helpdesk");
  EXPECT_THAT(role.permissions, UnorderedElementsAre("contacts.read", "consent.read"));
  EXPECT_FALSE(role.builtin);
  EXPECT_TRUE(role.require_mfa);
}

TEST(MakeCustomRoleTest, RefusesBuiltinNamesBadNamesAndBadPermissions) {
  const std::vector<std::string> ok_perms = {"contacts.read"};
  EXPECT_THAT(MakeCustomRole("admin", ok_perms, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name: is reserved")));
  EXPECT_THAT(MakeCustomRole("Help Desk", ok_perms, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name: ")));
  EXPECT_THAT(MakeCustomRole("helpdesk", std::vector<std::string>{"root"}, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permissions[0]: ")));
  EXPECT_THAT(MakeCustomRole("helpdesk", {}, false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permissions: ")));
}

}  // namespace
}  // namespace crm::identity
