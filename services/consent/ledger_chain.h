// The hash chain of a subject's consent ledger: each entry's hash covers its
// fields and the previous entry's hash, so that an edited, removed, inserted
// or reordered entry is detectable by anyone re-reading the chain.
//
//   entry_hash = hex(SHA-256("crm.consent.v1.entry" || previous_hash ||
//                            every field, length-prefixed, in a fixed order))
//
// The encoding is this file's own (not protobuf serialization, which does not
// promise stable bytes), so that the hashes stay valid across library
// versions. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/types/span.h"
#include "crm/consent/v1/consent.pb.h"

namespace crm::consent {

// The bytes hashed for `e` (its entry_hash excluded, its previous_hash
// included).
std::string CanonicalEntry(const v1::LedgerEntry& e);

// hex SHA-256 of CanonicalEntry(e).
std::string EntryHash(const v1::LedgerEntry& e);

// Links `e` after `previous` (nullptr for the subject's first entry): sets
// sequence, previous_hash and entry_hash.
void Link(v1::LedgerEntry& e, const v1::LedgerEntry* previous);

// The sequence number at which `entries` (one subject's, oldest first) stop
// being a chain: the first entry whose sequence is not the next, whose
// previous_hash is not its predecessor's hash, or whose own hash does not
// match its fields. 0 if the chain is intact.
int64_t FirstBroken(absl::Span<const v1::LedgerEntry> entries);

}  // namespace crm::consent
