// The identity administration commands of crmctl: login, logout, passwd,
// user, role, grant, team, totp, service-account and keys. All are one table
// (identity_commands.cc) mapping command words, positional arguments and
// flags to the fields of a crm.identity.v1.Identity request, run by the
// generic implementation of table_commands.h; login, logout and passwd
// replace its call with their own code, and grant add/extend derive fields
// before it. See docs/crmctl.md, "Identity administration".
//
// Thread-safety: the table is immutable.
#pragma once

#include "absl/status/status.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The identity command table.
const CommandTable& IdentityCommandTable();

// CheckCommandTable of the identity table. For tests.
absl::Status CheckIdentityCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
