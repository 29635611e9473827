#include "services/consent/ledger_chain.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/crypto/primitives.h"

namespace crm::consent {
namespace {

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1'000;
}

// "<length>:<bytes>" so that no two field lists encode alike.
void Field(std::string& out, absl::string_view value) {
  absl::StrAppend(&out, value.size(), ":", value);
}

void Field(std::string& out, int64_t value) { Field(out, absl::StrCat(value)); }

}  // namespace

std::string CanonicalEntry(const v1::LedgerEntry& e) {
  std::string out = "crm.consent.v1.entry";
  Field(out, e.previous_hash());
  Field(out, e.sequence());
  Field(out, e.subject_id());
  Field(out, e.purpose_id());
  Field(out, static_cast<int64_t>(e.action()));
  Field(out, e.notice_version());
  Field(out, static_cast<int64_t>(e.method()));
  Field(out, e.source());
  Field(out, e.actor());
  Field(out, Micros(e.given_at()));
  Field(out, Micros(e.recorded_at()));
  Field(out, e.has_expires_at() ? Micros(e.expires_at()) : int64_t{0});
  Field(out, e.has_expires_at() ? 1 : 0);
  Field(out, e.has_evidence() ? 1 : 0);
  return out;
}

std::string EntryHash(const v1::LedgerEntry& e) {
  return absl::BytesToHexString(crypto::Sha256(CanonicalEntry(e)));
}

void Link(v1::LedgerEntry& e, const v1::LedgerEntry* previous) {
  e.set_sequence(previous == nullptr ? 1 : previous->sequence() + 1);
  e.set_previous_hash(previous == nullptr ? "" : previous->entry_hash());
  e.set_entry_hash(EntryHash(e));
}

int64_t FirstBroken(absl::Span<const v1::LedgerEntry> entries) {
  const v1::LedgerEntry* previous = nullptr;
  for (const v1::LedgerEntry& e : entries) {
    const int64_t expected = previous == nullptr ? 1 : previous->sequence() + 1;
    const std::string& link = previous == nullptr ? std::string() : previous->entry_hash();
    if (e.sequence() != expected || e.previous_hash() != link || e.entry_hash() != EntryHash(e)) {
      return expected;
    }
    previous = &e;
  }
  return 0;
}

}  // namespace crm::consent
