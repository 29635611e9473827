#include "services/audit/audit_log.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/base64url.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/primitives.h"
#include "libs/rpc/handler.h"
#include "services/audit/merkle.h"

namespace crm::audit {

namespace {

using crm::audit::v1::Event;
using crm::audit::v1::LogEntry;
using rpc::SetTime;

std::string KeyAad(absl::string_view key_id) {
  return absl::StrCat("crm.audit.checkpoint_key.v1:", key_id);
}

}  // namespace

absl::StatusOr<AppendResult> AuditLog::Ingest(absl::Span<const Event* const> events) {
  std::vector<std::string> ids;
  ids.reserve(events.size());
  std::vector<std::string> scopes;
  for (size_t i = 0; i < events.size(); ++i) {
    CRM_RETURN_IF_ERROR(ValidateEvent(*events[i], i));
    ids.push_back(absl::AsciiStrToLower(events[i]->event_id()));
    if (HasPersonalPart(*events[i])) scopes.push_back(KeyScopeOf(*events[i]));
  }
  absl::flat_hash_map<std::string, DataKey> keys;
  if (!scopes.empty()) {
    CRM_ASSIGN_OR_RETURN(keys, keys_.GetOrCreate(scopes));
  }
  // Split and sealed inside the append, so PostgreSQL stores the first
  // events while the later ones are prepared (ingest_bench).
  return store_.Append(ids, clock_.Now(), [&](size_t i) -> absl::StatusOr<LeafRecord> {
    SplitResult s = Split(*events[i]);
    if (s.personal_plaintext.has_value()) {
      auto key = keys.find(s.record.key_scope);
      if (key == keys.end()) {
        return absl::InternalError(absl::StrCat("events[", i, "]: no data key for its scope"));
      }
      // An erased subject's key is gone for good: its new events keep no
      // personal part at all.
      if (key->second != nullptr) {
        CRM_ASSIGN_OR_RETURN(s.record.sealed, crypto::Seal(*key->second, *s.personal_plaintext,
                                                           SealAad(s.record.event_id)));
      }
    }
    return std::move(s.record);
  });
}

absl::StatusOr<LogEntry> AuditLog::Open(const StoredEntry& entry) {
  LogEntry out;
  out.set_index(entry.index);
  SetTime(entry.ingested_at, out.mutable_ingested_at());
  std::string personal;
  if (entry.content_expired) {
    out.set_redacted("expired");
  } else if (!entry.record.sealed.empty()) {
    CRM_ASSIGN_OR_RETURN(DataKey key, keys_.Get(entry.record.key_scope));
    if (key == nullptr) {
      out.set_redacted("erased");
    } else {
      absl::StatusOr<std::string> opened =
          crypto::Open(*key, entry.record.sealed, SealAad(entry.record.event_id));
      if (!opened.ok()) {
        return absl::DataLossError(
            absl::StrCat("entry ", entry.index, ": personal part does not open"));
      }
      personal = *std::move(opened);
    }
  }
  *out.mutable_event() = Join(entry.record, personal);
  return out;
}

std::string CheckpointText(uint64_t tree_size, absl::string_view root, absl::Time signed_at) {
  return absl::StrCat("crm-audit-checkpoint/v1\n", tree_size, "\n", absl::Base64Escape(root), "\n",
                      absl::ToUnixMicros(signed_at), "\n");
}

absl::StatusOr<std::unique_ptr<Checkpointer>> Checkpointer::Create(LogStore& store,
                                                                   const crypto::KeyRing& ring,
                                                                   const base::Clock& clock,
                                                                   int64_t every_entries,
                                                                   absl::Duration every_interval) {
  if (every_entries < 1) return absl::InvalidArgumentError("checkpoint_every_entries: at least 1");
  if (every_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("checkpoint_interval: must be positive");
  }
  // A candidate key; the first replica's insert wins and everyone uses that.
  const std::string seed = crypto::RandomBytes(crypto::kEd25519SeedSize);
  CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey candidate,
                       crypto::Ed25519PrivateKey::FromSeed(seed));
  CheckpointKeyRow row;
  row.key_id = auth::Base64UrlEncode(crypto::RandomBytes(12));
  row.public_key = candidate.PublicKey().Raw();
  CRM_ASSIGN_OR_RETURN(row.private_wrapped, ring.Wrap(seed, KeyAad(row.key_id)));
  row.created_at = clock.Now();
  CRM_ASSIGN_OR_RETURN(CheckpointKeyRow stored, store.EnsureCheckpointKey(row));
  absl::StatusOr<crypto::SecretBytes> stored_seed =
      ring.UnwrapSecret(stored.private_wrapped, KeyAad(stored.key_id));
  if (!stored_seed.ok()) {
    return absl::Status(stored_seed.status().code(),
                        absl::StrCat("checkpoint key ", stored.key_id,
                                     " does not unwrap: ", stored_seed.status().message()));
  }
  CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                       crypto::Ed25519PrivateKey::FromSeed(stored_seed->view()));
  if (key.PublicKey().Raw() != stored.public_key) {
    return absl::DataLossError(
        absl::StrCat("checkpoint key ", stored.key_id, ": public key does not match"));
  }
  return std::unique_ptr<Checkpointer>(
      new Checkpointer(store, clock, std::move(key), stored.key_id, every_entries, every_interval));
}

absl::StatusOr<std::optional<Checkpoint>> Checkpointer::MaybeCheckpoint(bool force) {
  absl::MutexLock lock(&mu_);
  CRM_ASSIGN_OR_RETURN(uint64_t size, store_.Size());
  if (size == 0) return std::optional<Checkpoint>();
  CRM_ASSIGN_OR_RETURN(std::optional<Checkpoint> last, store_.LatestCheckpoint());
  const absl::Time now = clock_.Now();
  if (last.has_value()) {
    if (last->tree_size >= size) return std::optional<Checkpoint>();
    const bool due = static_cast<int64_t>(size - last->tree_size) >= every_entries_ ||
                     now - last->signed_at >= every_interval_;
    if (!due && !force) return std::optional<Checkpoint>();
  }
  CRM_ASSIGN_OR_RETURN(std::vector<merkle::NodeId> ids, merkle::RootNodes(size));
  CRM_ASSIGN_OR_RETURN(merkle::NodeMap nodes, store_.FetchNodes(ids));
  CRM_ASSIGN_OR_RETURN(std::string root, merkle::RootHash(size, nodes));
  Checkpoint c{.tree_size = size, .root_hash = root, .signed_at = now, .key_id = key_id_};
  CRM_ASSIGN_OR_RETURN(c.signature, key_.Sign(CheckpointText(size, root, now)));
  CRM_RETURN_IF_ERROR(store_.InsertCheckpoint(c));
  return std::optional<Checkpoint>(std::move(c));
}

absl::StatusOr<int64_t> ExpireContent(LogStore& store, absl::Time cutoff, int batch) {
  if (batch < 1) return absl::InvalidArgumentError("batch: at least 1");
  int64_t total = 0;
  while (true) {
    CRM_ASSIGN_OR_RETURN(int64_t expired, store.ExpireBefore(cutoff, batch));
    total += expired;
    if (expired < batch) return total;
  }
}

absl::StatusOr<VerifyReport> VerifyLog(LogStore& store,
                                       const std::vector<std::string>& pinned_public_keys) {
  VerifyReport report;
  auto fail = [&](int64_t index, std::string problem) {
    if (!report.ok) return;
    report.ok = false;
    report.first_bad_index = index;
    report.problem = std::move(problem);
  };
  CRM_ASSIGN_OR_RETURN(std::vector<CheckpointKeyRow> key_rows, store.CheckpointKeys());
  absl::flat_hash_map<std::string, crypto::Ed25519PublicKey> keys;
  for (const CheckpointKeyRow& k : key_rows) {
    if (!pinned_public_keys.empty() &&
        std::find(pinned_public_keys.begin(), pinned_public_keys.end(), k.public_key) ==
            pinned_public_keys.end()) {
      continue;  // not a pinned key: checkpoints signed with it fail below
    }
    CRM_ASSIGN_OR_RETURN(crypto::Ed25519PublicKey pub,
                         crypto::Ed25519PublicKey::FromRaw(k.public_key));
    keys.emplace(k.key_id, std::move(pub));
  }
  CRM_ASSIGN_OR_RETURN(std::vector<Checkpoint> checkpoints, store.Checkpoints());
  for (const Checkpoint& c : checkpoints) {
    auto key = keys.find(c.key_id);
    if (key == keys.end() ||
        !key->second.Verify(CheckpointText(c.tree_size, c.root_hash, c.signed_at), c.signature)) {
      fail(-1, absl::StrCat("checkpoint ", c.tree_size, ": signature does not verify"));
      return report;
    }
  }

  merkle::TreeBuilder tree;
  size_t next_checkpoint = 0;
  uint64_t covered = 0;  // entries covered by the last good checkpoint
  // Recomputed subtrees (level >= 1) not yet compared with the stored ones.
  merkle::NodeMap pending;
  // Compares `pending` with the stored subtrees and empties it. Returns the
  // differing (or missing) stored subtree that starts first among those not
  // explained by a differing child: its first leaf is the first one that
  // differs from what the stored tree was built from.
  auto first_differing = [&]() -> absl::StatusOr<std::optional<merkle::NodeId>> {
    std::optional<merkle::NodeId> first;
    if (pending.empty()) return first;
    std::vector<merkle::NodeId> ids;
    ids.reserve(pending.size());
    for (const auto& [id, h] : pending) ids.push_back(id);
    CRM_ASSIGN_OR_RETURN(merkle::NodeMap stored, store.FetchNodes(ids));
    absl::flat_hash_set<merkle::NodeId> differing;
    for (const auto& [id, h] : pending) {
      auto it = stored.find(id);
      if (it == stored.end() || it->second != h) differing.insert(id);
    }
    pending.clear();
    for (const merkle::NodeId& id : differing) {
      // Children complete before their parent, so a child compared earlier
      // matched; one compared now explains its parent.
      if (differing.contains(merkle::NodeId{id.level - 1, 2 * id.index}) ||
          differing.contains(merkle::NodeId{id.level - 1, 2 * id.index + 1})) {
        continue;
      }
      if (!first.has_value() || id.begin() < first->begin() ||
          (id.begin() == first->begin() && id.level < first->level)) {
        first = id;
      }
    }
    return first;
  };
  auto subtree_problem = [](const merkle::NodeId& id) {
    return absl::StrCat("stored subtree ", id.DebugString(), " over entries ", id.begin(), "..",
                        id.end() - 1,
                        " differs from the entries (a leaf hash was rewritten, entries were "
                        "reordered or inserted, or the subtree was changed); first differing "
                        "entry ",
                        id.begin());
  };
  // Fails at entry `index`, unless a stored subtree starting before it differs.
  auto fail_at = [&](int64_t index, std::string problem) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::optional<merkle::NodeId> node, first_differing());
    if (node.has_value() && static_cast<int64_t>(node->begin()) < index) {
      fail(static_cast<int64_t>(node->begin()), subtree_problem(*node));
    } else {
      fail(index, std::move(problem));
    }
    return absl::CancelledError("stop");
  };
  absl::Status scan = store.Scan(0, 10'000, [&](const StoredEntry& e) -> absl::Status {
    if (e.index != static_cast<int64_t>(tree.size())) {
      return fail_at(static_cast<int64_t>(tree.size()),
                     absl::StrCat("entry ", tree.size(), ": missing (the next stored entry is ",
                                  e.index, ")"));
    }
    if (!e.content_expired && merkle::LeafHash(EncodeLeaf(e.record)) != e.leaf_hash) {
      return fail_at(e.index,
                     absl::StrCat("entry ", e.index, ": content does not match its leaf hash"));
    }
    CRM_RETURN_IF_ERROR(
        tree.Append(e.leaf_hash, [&](const merkle::NodeId& id, absl::string_view h) {
          if (id.level >= 1) pending[id] = std::string(h);
        }));
    ++report.entries_checked;
    while (next_checkpoint < checkpoints.size() &&
           checkpoints[next_checkpoint].tree_size == tree.size()) {
      const Checkpoint& c = checkpoints[next_checkpoint];
      if (tree.Root() != c.root_hash) {
        CRM_ASSIGN_OR_RETURN(std::optional<merkle::NodeId> node, first_differing());
        if (node.has_value()) {
          fail(static_cast<int64_t>(node->begin()),
               absl::StrCat("checkpoint ", c.tree_size, ": root does not match; ",
                            subtree_problem(*node)));
        } else {
          // The stored subtrees were rewritten along with the leaf hashes:
          // only the range the checkpoint adds is known.
          fail(static_cast<int64_t>(covered),
               absl::StrCat("checkpoint ", c.tree_size, ": root does not match entries ", covered,
                            "..", c.tree_size - 1,
                            " (leaf hashes and stored subtrees were rewritten)"));
        }
        return absl::CancelledError("stop");
      }
      covered = c.tree_size;
      ++report.checkpoints_checked;
      ++next_checkpoint;
    }
    if (pending.size() >= 10'000) {
      CRM_ASSIGN_OR_RETURN(std::optional<merkle::NodeId> node, first_differing());
      if (node.has_value()) {
        fail(static_cast<int64_t>(node->begin()), subtree_problem(*node));
        return absl::CancelledError("stop");
      }
    }
    return absl::OkStatus();
  });
  if (!scan.ok() && !absl::IsCancelled(scan)) return scan;
  if (report.ok && next_checkpoint < checkpoints.size()) {
    absl::Status s = fail_at(
        static_cast<int64_t>(tree.size()),
        absl::StrCat("entry ", tree.size(), ": missing (checkpoint ",
                     checkpoints[next_checkpoint].tree_size, " covers more entries than stored)"));
    if (!absl::IsCancelled(s)) return s;
  }
  if (report.ok) {
    CRM_ASSIGN_OR_RETURN(std::optional<merkle::NodeId> node, first_differing());
    if (node.has_value()) fail(static_cast<int64_t>(node->begin()), subtree_problem(*node));
  }
  return report;
}

}  // namespace crm::audit
