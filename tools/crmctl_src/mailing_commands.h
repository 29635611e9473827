// The mailing commands of crmctl: mailing list create and ls; subscribe and
// subscriptions; template put and get; campaign create, schedule, pause,
// resume, cancel and show. One table (mailing_commands.cc) mapping command
// words, positional arguments and flags to the fields of a
// crm.mailing.v1.Mailing request, run by the generic implementation of
// table_commands.h, as the operator of `crmctl login`; template put reads
// the bodies from files before the call, campaign schedule takes --at now,
// and subscriptions follows the pages of ListSubscriptions (its own
// page_token fields, not crm.common.v1.PageRequest) into one table. See
// docs/crmctl.md, "Mailing".
//
// Thread-safety: the table is immutable.
#pragma once

#include "absl/status/status.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The mailing command table.
const CommandTable& MailingCommandTable();

// CheckCommandTable of the mailing table. For tests.
absl::Status CheckMailingCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
