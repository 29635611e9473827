// The erasure commands of crmctl: erasure submit, submit-email, access,
// access-email, show, ls, cancel, extend, certificate, export, key, verify
// and reapply. One table (erasure_commands.cc) mapping command words,
// positional arguments and flags to the fields of a crm.erasure.v1.Erasure
// request, run by the generic implementation of table_commands.h, as the
// operator of `crmctl login`; submit and access (and their -email forms)
// open an erasure or an access request; show, cancel and extend print the
// request's fields and a table of its targets; ls follows the pages of
// ListErasures (its own page_token fields, not crm.common.v1.PageRequest)
// into one table, --due-within as due_before = now + the duration;
// certificate writes the certificate and its signature to files (never over
// existing ones without --force); export streams an access request's
// document (GetAccessExport) to stdout or to a file of mode 0600 that only
// appears once the whole stream has come; key prints or writes the public
// key; verify checks a certificate file against its signature with
// libs/crypto/ed25519.h, offline with --key PEM_FILE (no certificate,
// session or server needed) or with the key the service gives. See
// docs/crmctl.md, "Erasure".
//
// Thread-safety: the table is immutable.
#pragma once

#include "absl/status/status.h"
#include "tools/crmctl_src/proto_registry.h"
#include "tools/crmctl_src/table_commands.h"

namespace crm::crmctl {

// The erasure command table.
const CommandTable& ErasureCommandTable();

// CheckCommandTable of the erasure table. For tests.
absl::Status CheckErasureCommands(const ProtoRegistry& registry);

}  // namespace crm::crmctl
