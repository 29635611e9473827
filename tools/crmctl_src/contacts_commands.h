// The contacts commands of crmctl: person create, get, update, list,
// lookup, restrict, unrestrict, assign and import; company create, get,
// update and list; history add and list; invoice record and list;
// retention due; and catalogue. One table
// (contacts_commands.cc) mapping command words, positional arguments and
// flags to the fields of a crm.contacts.v1.Contacts request, run by the
// generic implementation of table_commands.h, as the operator of
// `crmctl login`. See docs/crmctl.md, "Contacts".
//
// Thread-safety: the table is immutable.
#pragma once

#include "absl/status/status.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The contacts command table.
const CommandTable& ContactsCommandTable();

// CheckCommandTable of the contacts table. For tests.
absl::Status CheckContactsCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
