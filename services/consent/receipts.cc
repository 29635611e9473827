#include "services/consent/receipts.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <pqxx/binarystring>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/base64url.h"
#include "libs/auth/token_signer.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::consent {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

std::string KeyAad(const std::string& kid) {
  return absl::StrCat("crm.consent.v1.receipt-key|", kid);
}

Value Str(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}
Value Num(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}
Value Bool(bool b) {
  Value v;
  v.set_bool_value(b);
  return v;
}
Value List(std::initializer_list<Value> items) {
  Value v;
  for (const Value& i : items) *v.mutable_list_value()->add_values() = i;
  return v;
}

const char* MethodName(v1::Method m) {
  switch (m) {
    case v1::METHOD_WEB_FORM:
      return "web form";
    case v1::METHOD_EMAIL_LINK:
      return "e-mail link";
    case v1::METHOD_PHONE:
      return "phone";
    case v1::METHOD_PAPER:
      return "paper form";
    case v1::METHOD_API:
      return "API";
    default:
      return "unspecified";
  }
}

}  // namespace

std::string ReceiptPayload(const v1::LedgerEntry& grant, const v1::Purpose& purpose,
                           const ReceiptIssuer& issuer) {
  Struct r;
  auto& f = *r.mutable_fields();
  f["version"] = Str("KI-CR-v1.1.0");
  f["jurisdiction"] = Str(issuer.jurisdiction);
  f["consentTimestamp"] = Num(static_cast<double>(grant.given_at().seconds()));
  f["collectionMethod"] = Str(MethodName(grant.method()));
  f["consentReceiptID"] = Str(grant.entry_hash());
  f["language"] = Str("en");
  f["piiPrincipalId"] = Str(grant.subject_id());
  Value controller;
  auto& c = *controller.mutable_struct_value()->mutable_fields();
  c["piiController"] = Str(issuer.controller);
  c["contact"] = Str(issuer.contact);
  c["email"] = Str(issuer.contact);
  f["piiControllers"] = List({controller});
  f["policyUrl"] = Str(issuer.policy_url);
  Value p;
  auto& pf = *p.mutable_struct_value()->mutable_fields();
  pf["purpose"] = Str(purpose.description());
  pf["purposeCategory"] = List({Str(purpose.purpose_id())});
  pf["consentType"] = Str("EXPLICIT");
  Value categories;
  categories.mutable_list_value();
  for (const std::string& cat : purpose.data_categories()) {
    *categories.mutable_list_value()->add_values() = Str(cat);
  }
  pf["piiCategory"] = categories;
  pf["primaryPurpose"] = Bool(true);
  pf["termination"] =
      Str(grant.has_expires_at()
              ? absl::StrCat("at ",
                             absl::FormatTime(absl::RFC3339_sec,
                                              absl::FromUnixSeconds(grant.expires_at().seconds()),
                                              absl::UTCTimeZone()),
                             ", or on withdrawal")
              : "on withdrawal");
  pf["thirdPartyDisclosure"] = Bool(false);
  Value service;
  auto& sf = *service.mutable_struct_value()->mutable_fields();
  sf["service"] = Str(purpose.purpose_id());
  sf["purposes"] = List({p});
  f["services"] = List({service});
  f["sensitive"] = Bool(false);
  f["spiCat"] = List({});
  f["noticeVersion"] = Str(grant.notice_version());
  f["ledgerSequence"] = Num(static_cast<double>(grant.sequence()));
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(r, &json, options);
  return json;
}

absl::StatusOr<std::unique_ptr<ReceiptSigner>> ReceiptSigner::LoadOrCreate(
    pg::Pool& db, const crypto::KeyRing& ring, ReceiptIssuer issuer) {
  std::string kid, wrapped;
  CRM_RETURN_IF_ERROR(db.Transact([&](pqxx::work& tx) -> absl::Status {
    constexpr char kNewest[] =
        "SELECT key_id, wrapped_seed FROM receipt_keys ORDER BY created_at DESC, key_id LIMIT 1";
    pqxx::result r = tx.exec(kNewest);
    if (r.empty()) {
      // A replica racing us may insert first: then its key is the one.
      tx.exec("LOCK TABLE receipt_keys IN EXCLUSIVE MODE");
      r = tx.exec(kNewest);
    }
    if (r.empty()) {
      const crypto::SecretBytes seed = crypto::RandomSecret(crypto::kEd25519SeedSize);
      CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                           crypto::Ed25519PrivateKey::FromSeed(seed.view()));
      const std::string raw_public = key.PublicKey().Raw();
      const std::string new_kid = absl::StrCat(
          "consent-", absl::BytesToHexString(crypto::Sha256(raw_public)).substr(0, 16));
      CRM_ASSIGN_OR_RETURN(std::string new_wrapped, ring.Wrap(seed.view(), KeyAad(new_kid)));
      tx.exec_params(
          "INSERT INTO receipt_keys (key_id, public_key, wrapped_seed, created_at) "
          "VALUES ($1, $2, $3, now())",
          new_kid, pqxx::binarystring(raw_public.data(), raw_public.size()),
          pqxx::binarystring(new_wrapped.data(), new_wrapped.size()));
      r = tx.exec(kNewest);
    }
    kid = r[0][0].as<std::string>();
    wrapped = pqxx::binarystring(r[0][1]).str();
    return absl::OkStatus();
  }));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes seed, ring.UnwrapSecret(wrapped, KeyAad(kid)));
  CRM_ASSIGN_OR_RETURN(crypto::Ed25519PrivateKey key,
                       crypto::Ed25519PrivateKey::FromSeed(seed.view()));
  return std::unique_ptr<ReceiptSigner>(
      new ReceiptSigner(std::move(key), std::move(kid), std::move(issuer)));
}

absl::StatusOr<std::string> ReceiptSigner::Sign(const v1::LedgerEntry& grant,
                                                const v1::Purpose& purpose) const {
  const std::string header =
      absl::StrCat(R"({"alg":"EdDSA","typ":"JWT","kid":)", "\"", kid_, "\"}");
  return auth::SignCompactJws(key_, header, ReceiptPayload(grant, purpose, issuer_));
}

}  // namespace crm::consent
