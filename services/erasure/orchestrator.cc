#include "services/erasure/orchestrator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <pqxx/pqxx>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/blocking_counter.h"
#include "crm/audit/v1/ingest.pb.h"
#include "libs/base/status_macros.h"
#include "libs/base/uuid.h"
#include "libs/crypto/aead.h"
#include "libs/crypto/primitives.h"
#include "libs/rpc/handler.h"
#include "services/erasure/certificate.h"
#include "services/erasure/erasure_store.h"

namespace crm::erasure {
namespace {

namespace sv1 = crm::subject::v1;

// Starts `n` calls with start(i, done) and waits until every done ran.
std::vector<grpc::Status> Parallel(
    size_t n, const std::function<void(size_t, std::function<void(grpc::Status)>)>& start) {
  std::vector<grpc::Status> out(n);
  if (n == 0) return out;
  absl::BlockingCounter left(static_cast<int>(n));
  for (size_t i = 0; i < n; ++i) {
    start(i, [&out, &left, i](grpc::Status s) {
      out[i] = std::move(s);
      left.DecrementCount();
    });
  }
  left.Wait();
  return out;
}

std::string ErrorText(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), ": ", s.error_message().substr(0, 300));
}

// "completed_with_retention" for STATE_COMPLETED_WITH_RETENTION.
std::string StateName(v1::State s) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::State_Name(s), "STATE_"));
}

crm::audit::v1::Event StateEvent(const v1::ErasureRequest& r) {
  crm::audit::v1::Event e;
  e.set_action(absl::StrCat(r.kind() == v1::KIND_ACCESS ? "erasure.access." : "erasure.request.",
                            StateName(r.state())));
  e.set_outcome(r.state() == v1::STATE_NEEDS_ATTENTION ? crm::audit::v1::OUTCOME_FAILURE
                                                       : crm::audit::v1::OUTCOME_SUCCESS);
  e.set_resource(absl::StrCat("erasure/", r.request_id()));
  e.set_subject_id(r.subject_id());
  e.mutable_actor()->set_service_identity("erasure");
  e.set_request_id(r.request_id());
  return e;
}

int IndexOf(const v1::ErasureRequest& r, absl::string_view service) {
  for (int i = 0; i < r.targets_size(); ++i) {
    if (r.targets(i).service() == service) return i;
  }
  return -1;
}

// The e-mail addresses in an export: record "person", emails[].address.
std::vector<std::string> AddressesOf(const sv1::ExportSubjectDataResponse& exported) {
  std::vector<std::string> out;
  for (const sv1::ExportedRecord& record : exported.records()) {
    if (record.category() != "person") continue;
    auto emails = record.data().fields().find("emails");
    if (emails == record.data().fields().end()) continue;
    for (const google::protobuf::Value& e : emails->second.list_value().values()) {
      auto address = e.struct_value().fields().find("address");
      if (address != e.struct_value().fields().end() && !address->second.string_value().empty()) {
        out.push_back(address->second.string_value());
      }
    }
  }
  return out;
}

}  // namespace

std::string RoundRequestId(const std::string& request_id, int round) {
  if (round <= 1) return request_id;
  std::string h = crypto::Sha256(absl::StrCat("crm.erasure/round/", request_id, "/", round));
  h[6] = static_cast<char>((h[6] & 0x0f) | 0x80);  // version 8 (RFC 9562: custom)
  h[8] = static_cast<char>((h[8] & 0x3f) | 0x80);  // the RFC 4122 variant
  const std::string hex = absl::BytesToHexString(h.substr(0, 16));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20, 12));
}

namespace {

std::string AddressAad(absl::string_view request_id) {
  return absl::StrCat("crm.erasure/requests.addresses/", request_id);
}

}  // namespace

absl::StatusOr<std::pair<std::string, std::string>> Orchestrator::SealAddresses(
    const std::string& request_id, const std::vector<std::string>& addresses) const {
  const crypto::SecretBytes key = crypto::RandomSecret(crypto::kAes256KeySize);
  CRM_ASSIGN_OR_RETURN(std::string wrapped, ring_.Wrap(key.view(), AddressAad(request_id)));
  CRM_ASSIGN_OR_RETURN(std::string sealed,
                       crypto::Seal(key, absl::StrJoin(addresses, "\n"), AddressAad(request_id)));
  return std::make_pair(std::move(wrapped), std::move(sealed));
}

absl::StatusOr<std::optional<std::vector<std::string>>> Orchestrator::OpenAddresses(
    const std::string& request_id,
    const std::optional<std::pair<std::string, std::string>>& stored) const {
  if (!stored.has_value()) return std::nullopt;
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes key,
                       ring_.UnwrapSecret(stored->first, AddressAad(request_id)));
  CRM_ASSIGN_OR_RETURN(std::string joined,
                       crypto::Open(key, stored->second, AddressAad(request_id)));
  std::vector<std::string> out;
  if (!joined.empty()) out = absl::StrSplit(joined, '\n');
  return out;
}

Orchestrator::Orchestrator(pg::Pool& db, std::vector<Target> targets,
                           const crypto::Ed25519PrivateKey& key, const crypto::KeyRing& ring,
                           Notifier* notifier, outbox::Writer& audit, const base::Clock& clock,
                           OrchestratorOptions options)
    : db_(db),
      targets_(std::move(targets)),
      key_(key),
      ring_(ring),
      notifier_(notifier),
      key_id_(KeyId(key.PublicKey())),
      audit_(audit),
      clock_(clock),
      worker_id_(base::NewUuid()),
      options_(std::move(options)) {
  if (options_.record == nullptr) options_.record = ProcessingRecord::Unconfigured();
}

std::vector<std::string> Orchestrator::TargetNames() const {
  std::vector<std::string> out;
  for (const Target& t : targets_) out.push_back(t.service);
  return out;
}

absl::Duration Orchestrator::Backoff(int failures) const {
  thread_local absl::BitGen bits;
  const absl::Duration base =
      std::min(options_.max_retry, options_.first_retry * (1 << std::min(failures - 1, 20)));
  return base * absl::Uniform(bits, 0.5, 1.5);  // jitter: replicas do not retry in step
}

absl::StatusOr<AdvanceStats> Orchestrator::RunOnce() {
  AdvanceStats stats;
  std::vector<std::string> claimed;
  CRM_RETURN_IF_ERROR(db_.Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(claimed, ErasureStore::Claim(tx, options_.batch_size, options_.lease,
                                                      clock_.Now(), worker_id_));
    return absl::OkStatus();
  }));
  stats.claimed = static_cast<int>(claimed.size());
  absl::Status first_error = ExpireExports(stats);
  for (const std::string& id : claimed) {
    absl::Status s = Advance(id, stats);
    if (!s.ok() && first_error.ok()) first_error = s;
  }
  if (!first_error.ok()) return first_error;
  return stats;
}

absl::Status Orchestrator::ExpireExports(AdvanceStats& stats) {
  return db_.Transact([&](pqxx::work& tx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(std::vector<v1::ErasureRequest> expired,
                         ErasureStore::Expire(tx, clock_.Now(), 100));
    for (const v1::ErasureRequest& r : expired) {
      CRM_RETURN_IF_ERROR(audit_.Enqueue(tx, StateEvent(r)));
    }
    stats.expired = static_cast<int>(expired.size());
    return absl::OkStatus();
  });
}

absl::Status Orchestrator::Advance(const std::string& request_id, AdvanceStats& stats) {
  // The request, its targets and its secrets, in one transaction.
  std::optional<v1::ErasureRequest> loaded;
  ErasureStore::Secrets secrets;
  CRM_RETURN_IF_ERROR(db_.Transact(
      [&](pqxx::work& tx) -> absl::Status {
        CRM_ASSIGN_OR_RETURN(loaded, ErasureStore::Get(tx, request_id, true, false));
        CRM_ASSIGN_OR_RETURN(secrets, ErasureStore::GetSecrets(tx, request_id));
        return absl::OkStatus();
      },
      {.read_only = true}));
  if (!loaded.has_value()) return absl::NotFoundError("request_id: not found");
  v1::ErasureRequest r = *std::move(loaded);
  // An access request's export key, once made.
  std::optional<crypto::SecretBytes> export_key;
  if (secrets.export_key.has_value()) {
    CRM_ASSIGN_OR_RETURN(export_key,
                         ring_.UnwrapSecret(*secrets.export_key, ExportKeyAad(r.request_id())));
  }
  // The subject's addresses, once read (nullopt: not yet).
  std::optional<std::vector<std::string>> addresses;
  CRM_ASSIGN_OR_RETURN(addresses, OpenAddresses(r.request_id(), secrets.addresses));
  // Targets by registry name; a target the registry no longer has is never
  // called (its row waits: NEEDS ATTENTION would hide a misconfiguration).
  auto stub_of = [&](const std::string& service) -> sv1::SubjectData::StubInterface* {
    for (const Target& t : targets_) {
      if (t.service == service) return t.stub.get();
    }
    return nullptr;
  };

  for (int step = 0; step < 8 + 3 * options_.max_rounds && IsOpen(r.state()); ++step) {
    const absl::Time now = clock_.Now();
    const v1::State before = r.state();
    std::vector<int> changed;  // target indexes to write
    std::vector<crm::audit::v1::Event> events;
    std::optional<std::pair<std::string, std::string>> sealed_addresses;  // to store
    bool drop_addresses = false;
    absl::Time notice_retry = absl::InfiniteFuture();
    std::optional<std::string> export_key_to_store;                       // wrapped
    std::vector<std::pair<std::string, std::vector<std::string>>> parts;  // service, sealed chunks
    bool extension_told = false;

    // The targets this step calls: in `want` state and due.
    auto due = [&](v1::TargetState want) {
      std::vector<int> out;
      for (int i = 0; i < r.targets_size(); ++i) {
        const v1::Target& t = r.targets(i);
        if (t.state() == want && stub_of(t.service()) != nullptr &&
            (!t.has_next_attempt_at() || rpc::ToTime(t.next_attempt_at()) <= now)) {
          out.push_back(i);
        }
      }
      return out;
    };
    auto failed = [&](int i, const grpc::Status& s) {
      v1::Target* t = r.mutable_targets(i);
      t->set_failures(t->failures() + 1);
      t->set_last_error(ErrorText(s));
      rpc::SetTime(now + Backoff(t->failures()), t->mutable_next_attempt_at());
      ++stats.target_failures;
      changed.push_back(i);
    };
    auto succeeded = [&](int i, v1::TargetState state) {
      v1::Target* t = r.mutable_targets(i);
      t->set_state(state);
      t->set_failures(0);
      t->clear_last_error();
      t->clear_next_attempt_at();
      changed.push_back(i);
    };
    auto all_in = [&](v1::TargetState state) {
      return std::all_of(r.targets().begin(), r.targets().end(),
                         [&](const v1::Target& t) { return t.state() == state; });
    };
    // Describe on the given targets.
    auto describe = [&](const std::vector<int>& which) {
      std::vector<grpc::ClientContext> ctx(which.size());
      std::vector<sv1::DescribeSubjectDataRequest> req(which.size());
      std::vector<sv1::DescribeSubjectDataResponse> resp(which.size());
      std::vector<grpc::Status> status = Parallel(which.size(), [&](size_t k, auto done) {
        // gRPC deadlines run on the real clock, whatever clock_ says.
        ctx[k].set_deadline(absl::ToChronoTime(absl::Now() + options_.call_deadline));
        req[k].set_subject_id(r.subject_id());
        stub_of(r.targets(which[k]).service())
            ->async()
            ->DescribeSubjectData(&ctx[k], &req[k], &resp[k], std::move(done));
      });
      return std::make_pair(std::move(status), std::move(resp));
    };
    // Tells the subject of their own request (an erasure asked for by them,
    // or any access request); false when it failed (retried later).
    auto tell = [&](NoticeKind kind, const v1::ErasureRequest& about) {
      if (notifier_ == nullptr || !addresses.has_value() || addresses->empty() ||
          (about.kind() != v1::KIND_ACCESS &&
           about.reason() != v1::ERASURE_REASON_SUBJECT_REQUEST)) {
        return true;
      }
      const absl::Status told = notifier_->Send(kind, about, *addresses);
      if (told.ok()) return true;
      r.set_attention(
          absl::StrCat(kind == NoticeKind::kExtended ? "extension" : "completion",
                       " notice not yet queued: ", absl::StatusCodeToString(told.code())));
      notice_retry = now + Backoff(3);
      return false;
    };
    // The request is done (`done`, completed): the subject hears of it first;
    // then the address key goes.
    auto finish = [&](v1::ErasureRequest done, NoticeKind kind) {
      done.clear_attention();
      rpc::SetTime(now, done.mutable_completed_at());
      if (tell(kind, done)) {
        r = std::move(done);
        drop_addresses = true;
      }
    };
    if (r.extension_notice_pending() && addresses.has_value() && tell(NoticeKind::kExtended, r)) {
      r.set_extension_notice_pending(false);
      extension_told = true;
    }

    switch (r.state()) {
      case v1::STATE_RECEIVED: {
        if (r.kind() == v1::KIND_ACCESS) {
          const crypto::SecretBytes key = crypto::RandomSecret(crypto::kAes256KeySize);
          CRM_ASSIGN_OR_RETURN(export_key_to_store,
                               ring_.Wrap(key.view(), ExportKeyAad(r.request_id())));
          CRM_ASSIGN_OR_RETURN(
              export_key, ring_.UnwrapSecret(*export_key_to_store, ExportKeyAad(r.request_id())));
          r.set_state(v1::STATE_EXPORTING);
          break;
        }
        const std::vector<int> which = due(v1::TARGET_STATE_PENDING);
        auto [status, resp] = describe(which);
        for (size_t k = 0; k < which.size(); ++k) {
          if (!status[k].ok()) {
            failed(which[k], status[k]);
            continue;
          }
          *r.mutable_targets(which[k])->mutable_planned() = resp[k].categories();
          succeeded(which[k], v1::TARGET_STATE_PLANNED);
        }
        if (!addresses.has_value()) {
          const int source = IndexOf(r, options_.address_source);
          if (source < 0 || stub_of(options_.address_source) == nullptr) {
            addresses.emplace();  // no address source: nothing to read
          } else if (r.targets(source).state() == v1::TARGET_STATE_PLANNED) {
            grpc::ClientContext ctx;
            ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_deadline));
            sv1::ExportSubjectDataRequest req;
            req.set_subject_id(r.subject_id());
            sv1::ExportSubjectDataResponse resp;
            const grpc::Status s =
                stub_of(options_.address_source)->ExportSubjectData(&ctx, req, &resp);
            if (s.ok()) {
              addresses = AddressesOf(resp);
              CRM_ASSIGN_OR_RETURN(sealed_addresses, SealAddresses(r.request_id(), *addresses));
            } else {
              failed(source, s);
            }
          }
        }
        if (all_in(v1::TARGET_STATE_PLANNED) && addresses.has_value()) {
          // Planned, and erasing starts in the same step (one transaction).
          r.set_state(v1::STATE_PLANNED);
          events.push_back(StateEvent(r));
          r.set_state(v1::STATE_ERASING);
          r.set_rounds(1);
        }
        break;
      }
      case v1::STATE_EXPORTING: {
        if (!export_key.has_value()) return absl::DataLossError("erasure: export key missing");
        const std::vector<int> which = due(v1::TARGET_STATE_PENDING);
        auto [status, described] = describe(which);
        std::vector<size_t> ok;  // positions in `which` described
        for (size_t k = 0; k < which.size(); ++k) {
          if (status[k].ok()) {
            ok.push_back(k);
          } else {
            failed(which[k], status[k]);
          }
        }
        std::vector<grpc::ClientContext> ctx(ok.size());
        std::vector<sv1::ExportSubjectDataRequest> req(ok.size());
        std::vector<sv1::ExportSubjectDataResponse> resp(ok.size());
        std::vector<grpc::Status> exported = Parallel(ok.size(), [&](size_t j, auto done) {
          ctx[j].set_deadline(absl::ToChronoTime(absl::Now() + options_.call_deadline));
          req[j].set_subject_id(r.subject_id());
          stub_of(r.targets(which[ok[j]]).service())
              ->async()
              ->ExportSubjectData(&ctx[j], &req[j], &resp[j], std::move(done));
        });
        for (size_t j = 0; j < ok.size(); ++j) {
          const int i = which[ok[j]];
          const std::string service = r.targets(i).service();
          if (exported[j].error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            // Larger than the channel accepts: no retry will fit it.
            failed(i, exported[j]);
            r.set_state(v1::STATE_NEEDS_ATTENTION);
            r.set_attention(absl::StrCat(service,
                                         ": its export is larger than the setting export_max_mib "
                                         "allows; raise it and submit the request again"));
            continue;
          }
          if (!exported[j].ok()) {
            failed(i, exported[j]);
            continue;
          }
          absl::StatusOr<std::string> part =
              options_.record->ServicePart(described[ok[j]], resp[j], service);
          if (!part.ok()) {
            failed(i,
                   grpc::Status(grpc::StatusCode::INTERNAL, std::string(part.status().message())));
            continue;
          }
          std::vector<std::string>& chunks =
              parts.emplace_back(service, std::vector<std::string>{}).second;
          for (absl::string_view chunk : ExportChunks(*part)) {
            CRM_ASSIGN_OR_RETURN(chunks.emplace_back(),
                                 crypto::Seal(*export_key, chunk,
                                              ExportPartAad(r.request_id(), service,
                                                            static_cast<int>(chunks.size()))));
          }
          if (service == options_.address_source && !addresses.has_value()) {
            addresses = AddressesOf(resp[j]);
            CRM_ASSIGN_OR_RETURN(sealed_addresses, SealAddresses(r.request_id(), *addresses));
          }
          *r.mutable_targets(i)->mutable_planned() = described[ok[j]].categories();
          succeeded(i, v1::TARGET_STATE_EXPORTED);
        }
        if (!addresses.has_value() && (IndexOf(r, options_.address_source) < 0 ||
                                       stub_of(options_.address_source) == nullptr)) {
          addresses.emplace();  // no address source: nothing to read
        }
        if (all_in(v1::TARGET_STATE_EXPORTED) && addresses.has_value()) {
          v1::ErasureRequest done = r;
          done.set_state(v1::STATE_COMPLETED);
          rpc::SetTime(now + options_.export_ttl, done.mutable_expires_at());
          finish(std::move(done), NoticeKind::kAccessReady);
        }
        break;
      }
      case v1::STATE_PLANNED:
        r.set_state(v1::STATE_ERASING);
        r.set_rounds(1);
        break;
      case v1::STATE_ERASING: {
        const std::vector<int> which = due(v1::TARGET_STATE_PLANNED);
        std::vector<grpc::ClientContext> ctx(which.size());
        std::vector<sv1::EraseSubjectDataRequest> req(which.size());
        std::vector<sv1::EraseSubjectDataResponse> resp(which.size());
        std::vector<grpc::Status> status = Parallel(which.size(), [&](size_t k, auto done) {
          ctx[k].set_deadline(absl::ToChronoTime(absl::Now() + options_.call_deadline));
          req[k].set_request_id(RoundRequestId(r.request_id(), r.rounds()));
          req[k].set_subject_id(r.subject_id());
          for (size_t a = 0; addresses.has_value() && a < addresses->size() && a < 16; ++a) {
            req[k].add_email_addresses((*addresses)[a]);
          }
          stub_of(r.targets(which[k]).service())
              ->async()
              ->EraseSubjectData(&ctx[k], &req[k], &resp[k], std::move(done));
        });
        for (size_t k = 0; k < which.size(); ++k) {
          if (!status[k].ok()) {
            failed(which[k], status[k]);
            continue;
          }
          v1::Target* t = r.mutable_targets(which[k]);
          // Targets answer a repeated request id with their first answer
          // (the contract), so a later round's answer is not added to the
          // first: each category keeps the largest count reported.
          for (const sv1::DataCategory& c : resp[k].erased()) {
            sv1::DataCategory* same = nullptr;
            for (sv1::DataCategory& e : *t->mutable_erased()) {
              if (e.category() == c.category()) same = &e;
            }
            if (same == nullptr) {
              *t->add_erased() = c;
            } else if (c.record_count() > same->record_count()) {
              *same = c;
            }
          }
          *t->mutable_retained() = resp[k].retained();
          rpc::SetTime(now, t->mutable_erased_at());
          succeeded(which[k], v1::TARGET_STATE_ERASED);
        }
        // Targets verified in an earlier round are not erased again.
        if (std::all_of(r.targets().begin(), r.targets().end(), [](const v1::Target& t) {
              return t.state() == v1::TARGET_STATE_ERASED || t.state() == v1::TARGET_STATE_VERIFIED;
            })) {
          r.set_state(v1::STATE_VERIFYING);
        }
        break;
      }
      case v1::STATE_VERIFYING: {
        const std::vector<int> which = due(v1::TARGET_STATE_ERASED);
        auto [status, resp] = describe(which);
        for (size_t k = 0; k < which.size(); ++k) {
          if (!status[k].ok()) {
            failed(which[k], status[k]);
            continue;
          }
          std::vector<std::string> left;
          for (const sv1::DataCategory& c : resp[k].categories()) {
            if (c.record_count() > 0 && !c.legally_retained()) {
              left.push_back(absl::StrCat(c.category(), " (", c.record_count(), ")"));
            }
          }
          v1::Target* t = r.mutable_targets(which[k]);
          if (left.empty()) {
            rpc::SetTime(now, t->mutable_verified_at());
            succeeded(which[k], v1::TARGET_STATE_VERIFIED);
          } else {
            succeeded(which[k], v1::TARGET_STATE_PLANNED);
            t->set_last_error(absl::StrCat("verification found ", absl::StrJoin(left, ", ")));
          }
        }
        if (all_in(v1::TARGET_STATE_VERIFIED)) {
          const bool retained =
              std::any_of(r.targets().begin(), r.targets().end(),
                          [](const v1::Target& t) { return !t.retained().empty(); });
          v1::ErasureRequest done = r;
          done.set_state(retained ? v1::STATE_COMPLETED_WITH_RETENTION : v1::STATE_COMPLETED);
          finish(std::move(done), NoticeKind::kErasureConfirmed);
        } else if (std::none_of(r.targets().begin(), r.targets().end(), [](const v1::Target& t) {
                     return t.state() == v1::TARGET_STATE_ERASED;
                   })) {
          // Every target answered and some still hold data: another round.
          if (r.rounds() >= options_.max_rounds) {
            std::vector<std::string> where;
            for (const v1::Target& t : r.targets()) {
              if (t.state() == v1::TARGET_STATE_PLANNED) {
                where.push_back(absl::StrCat(t.service(), ": ", t.last_error()));
              }
            }
            r.set_state(v1::STATE_NEEDS_ATTENTION);
            r.set_attention(absl::StrCat("still holding data after ", r.rounds(),
                                         " rounds: ", absl::StrJoin(where, "; ")));
          } else {
            r.set_rounds(r.rounds() + 1);
            r.set_state(v1::STATE_ERASING);
          }
        }
        break;
      }
      default:
        break;
    }

    const bool moved = r.state() != before;
    if (moved) events.push_back(StateEvent(r));
    // When to look again: at once after a move, else at the earliest retry.
    absl::Time next = now;
    if (!moved && IsOpen(r.state())) {
      next = absl::InfiniteFuture();
      for (const v1::Target& t : r.targets()) {
        if (t.has_next_attempt_at()) next = std::min(next, rpc::ToTime(t.next_attempt_at()));
      }
      next = std::min(next, notice_retry);
      if (next == absl::InfiniteFuture()) next = now + options_.first_retry;
    }
    const bool last = !moved || !IsOpen(r.state());
    std::string certificate, signature;
    if (r.kind() != v1::KIND_ACCESS &&
        (r.state() == v1::STATE_COMPLETED || r.state() == v1::STATE_COMPLETED_WITH_RETENTION)) {
      certificate = CertificateJson(r, key_id_);
      CRM_ASSIGN_OR_RETURN(signature, key_.Sign(certificate));
    }
    const absl::Status written = db_.Transact([&](pqxx::work& tx) -> absl::Status {
      for (int i : changed)
        CRM_RETURN_IF_ERROR(ErasureStore::PutTarget(tx, r.request_id(), r.targets(i)));
      CRM_RETURN_IF_ERROR(ErasureStore::Update(tx, r, before, next, /*release=*/last, worker_id_));
      if (sealed_addresses.has_value()) {
        CRM_RETURN_IF_ERROR(ErasureStore::PutAddresses(tx, r.request_id(), sealed_addresses->first,
                                                       sealed_addresses->second));
      }
      if (drop_addresses) CRM_RETURN_IF_ERROR(ErasureStore::DropAddresses(tx, r.request_id()));
      if (export_key_to_store.has_value()) {
        CRM_RETURN_IF_ERROR(ErasureStore::PutExportKey(tx, r.request_id(), *export_key_to_store));
      }
      for (const auto& [service, chunks] : parts) {
        // A repeated step (after a crash) may have left a longer part.
        CRM_RETURN_IF_ERROR(ErasureStore::DropExportParts(tx, r.request_id(), service));
        for (size_t seq = 0; seq < chunks.size(); ++seq) {
          CRM_RETURN_IF_ERROR(ErasureStore::PutExportPart(tx, r.request_id(), service,
                                                          static_cast<int>(seq), chunks[seq]));
        }
      }
      if (r.kind() == v1::KIND_ACCESS && r.state() == v1::STATE_NEEDS_ATTENTION) {
        // No document will be served: what was gathered goes now.
        CRM_RETURN_IF_ERROR(ErasureStore::DropExport(tx, r.request_id()));
        CRM_RETURN_IF_ERROR(ErasureStore::DropAddresses(tx, r.request_id()));
      }
      if (extension_told) {
        CRM_RETURN_IF_ERROR(
            ErasureStore::ExtensionNoticeSent(tx, r.request_id(), r.extended_months()));
      }
      if (!certificate.empty()) {
        CRM_RETURN_IF_ERROR(
            ErasureStore::PutCertificate(tx, r.request_id(), certificate, signature, now));
      }
      for (const crm::audit::v1::Event& e : events) CRM_RETURN_IF_ERROR(audit_.Enqueue(tx, e));
      return absl::OkStatus();
    });
    // Cancelled while this step ran (only possible before planning): drop it.
    if (absl::IsFailedPrecondition(written)) return absl::OkStatus();
    CRM_RETURN_IF_ERROR(written);
    if (r.state() == v1::STATE_COMPLETED || r.state() == v1::STATE_COMPLETED_WITH_RETENTION) {
      ++stats.completed;
    }
    if (r.state() == v1::STATE_NEEDS_ATTENTION) ++stats.needs_attention;
    if (last) break;
  }
  return absl::OkStatus();
}

}  // namespace crm::erasure
