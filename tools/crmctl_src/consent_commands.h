// The consent commands of crmctl: purpose list and define; notice publish;
// consent grant, withdraw, object, check, history, restrict and unrestrict.
// One table (consent_commands.cc) mapping command words, positional
// arguments and flags to the fields of a crm.consent.v1.Consent request, run
// by the generic implementation of table_commands.h, as the operator of
// `crmctl login`; notice publish reads --file before the call, purpose list
// and consent history shorten notice versions in their tables, and consent
// history also reports the state of the ledger's hash chain. See
// docs/crmctl.md, "Consent".
//
// Thread-safety: the table is immutable.
#pragma once

#include "absl/status/status.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The consent command table.
const CommandTable& ConsentCommandTable();

// CheckCommandTable of the consent table. For tests.
absl::Status CheckConsentCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
