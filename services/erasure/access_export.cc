#include "services/erasure/access_export.h"

#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/json/json.h"
#include "libs/rpc/handler.h"

namespace crm::erasure {
namespace {

std::string Time(absl::Time t) {
  return json::Quote(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()));
}

absl::Status Bad(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("processing record: ", where, ": ", what));
}

absl::StatusOr<std::string> StringOf(const json::Value& v, absl::string_view where) {
  if (!v.is_string() || v.string_value().empty() || v.string_value().size() > 2000) {
    return Bad(where, "a string of 1..2000 bytes");
  }
  return json::Quote(v.string_value());
}

// One category's facts: `"purposes":[...],"recipients":[...],"source":...,"retention":...`.
absl::StatusOr<std::string> FactsOf(const json::Value& v, const std::string& where) {
  if (!v.is_object()) return Bad(where, "an object");
  for (const auto& [name, _] : v.object()) {
    if (name != "purposes" && name != "recipients" && name != "source" && name != "retention") {
      return Bad(where, "members are purposes, recipients, source and retention");
    }
  }
  std::string out;
  for (const char* list : {"purposes", "recipients"}) {
    const json::Value* items = v.Find(list);
    const std::string at = absl::StrCat(where, ".", list);
    if (items == nullptr || !items->is_array() || items->array().empty()) {
      return Bad(at, "a non-empty array of strings");
    }
    absl::StrAppend(&out, out.empty() ? "" : ",", "\"", list, "\":[");
    for (size_t i = 0; i < items->array().size(); ++i) {
      CRM_ASSIGN_OR_RETURN(std::string s, StringOf(items->array()[i], at));
      absl::StrAppend(&out, i > 0 ? "," : "", s);
    }
    out += "]";
  }
  for (const char* text : {"source", "retention"}) {
    const json::Value* item = v.Find(text);
    const std::string at = absl::StrCat(where, ".", text);
    if (item == nullptr) return Bad(at, "required");
    CRM_ASSIGN_OR_RETURN(std::string s, StringOf(*item, at));
    absl::StrAppend(&out, ",\"", text, "\":", s);
  }
  return out;
}

}  // namespace

absl::StatusOr<ProcessingRecord> ProcessingRecord::Parse(absl::string_view text) {
  absl::StatusOr<json::Value> parsed =
      json::Parse(text, {.max_size = size_t{1} << 20, .max_depth = 8});
  if (!parsed.ok()) return Bad("JSON", parsed.status().message());
  const json::Value& doc = *parsed;
  if (!doc.is_object()) return Bad("top level", "an object");
  for (const auto& [name, _] : doc.object()) {
    if (name != "controller" && name != "rights" && name != "categories" && name != "default") {
      return Bad(name, "unknown member (controller, rights, categories, default)");
    }
  }
  ProcessingRecord out;
  const json::Value* controller = doc.Find("controller");
  if (controller == nullptr || !controller->is_object() || controller->object().empty()) {
    return Bad("controller", "a non-empty object of strings (name, contact, ...)");
  }
  out.controller_ = "{";
  for (const auto& [name, value] : controller->object()) {
    CRM_ASSIGN_OR_RETURN(std::string s, StringOf(value, absl::StrCat("controller.", name)));
    absl::StrAppend(&out.controller_, out.controller_.size() > 1 ? "," : "", json::Quote(name), ":",
                    s);
  }
  out.controller_ += "}";
  if (const json::Value* rights = doc.Find("rights"); rights != nullptr) {
    CRM_ASSIGN_OR_RETURN(out.rights_, StringOf(*rights, "rights"));
  }
  const json::Value* categories = doc.Find("categories");
  if (categories == nullptr || !categories->is_object()) return Bad("categories", "an object");
  for (const auto& [name, value] : categories->object()) {
    CRM_ASSIGN_OR_RETURN(out.facts_[name], FactsOf(value, absl::StrCat("categories.", name)));
  }
  if (const json::Value* fallback = doc.Find("default"); fallback != nullptr) {
    CRM_ASSIGN_OR_RETURN(out.default_facts_, FactsOf(*fallback, "default"));
  }
  return out;
}

absl::StatusOr<ProcessingRecord> ProcessingRecord::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("processing record: cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str());
}

std::shared_ptr<const ProcessingRecord> ProcessingRecord::Unconfigured() {
  static const auto* const none =
      new std::shared_ptr<const ProcessingRecord>(std::make_shared<const ProcessingRecord>(
          *Parse(R"({"controller":{"name":"not configured"},"categories":{}})")));
  return *none;
}

std::string ProcessingRecord::Head(const v1::ErasureRequest& r, absl::Time generated) const {
  return absl::StrCat("{\"format\":\"crm.access-export.v1\",\"request_id\":",
                      json::Quote(r.request_id()), ",\"subject_id\":", json::Quote(r.subject_id()),
                      ",\"received_at\":", Time(rpc::ToTime(r.received_at())),
                      ",\"generated_at\":", Time(generated), ",\"controller\":", controller_,
                      rights_.empty() ? "" : ",\"rights\":", rights_, ",\"services\":[");
}

absl::StatusOr<std::string> ProcessingRecord::ServicePart(
    const subject::v1::DescribeSubjectDataResponse& described,
    const subject::v1::ExportSubjectDataResponse& exported, absl::string_view service) const {
  // Every category described, then any the export has that Describe did not
  // name (with the count of its records).
  std::vector<subject::v1::DataCategory> categories(described.categories().begin(),
                                                    described.categories().end());
  for (const subject::v1::ExportedRecord& record : exported.records()) {
    subject::v1::DataCategory* same = nullptr;
    for (subject::v1::DataCategory& c : categories) {
      if (c.category() == record.category()) same = &c;
    }
    if (same == nullptr) {
      same = &categories.emplace_back();
      same->set_category(record.category());
      same->set_record_count(0);
    }
    // Described counts stand; an undescribed category counts its records.
    bool described_here = false;
    for (const subject::v1::DataCategory& c : described.categories()) {
      described_here = described_here || c.category() == record.category();
    }
    if (!described_here) same->set_record_count(same->record_count() + 1);
  }
  std::string out = absl::StrCat("{\"service\":", json::Quote(service), ",\"categories\":[");
  for (size_t i = 0; i < categories.size(); ++i) {
    const subject::v1::DataCategory& c = categories[i];
    absl::StrAppend(&out, i > 0 ? "," : "", "{\"category\":", json::Quote(c.category()),
                    ",\"records\":", c.record_count(), ",");
    auto facts = facts_.find(c.category());
    if (facts != facts_.end()) {
      out += facts->second;
    } else if (!default_facts_.empty()) {
      out += default_facts_;
    } else {
      out += "\"described\":false";  // missing from the record of processing
    }
    absl::StrAppend(&out, ",\"legally_retained\":", c.legally_retained() ? "true" : "false");
    if (c.legally_retained()) {
      absl::StrAppend(&out, ",\"retention_basis\":", json::Quote(c.retention_basis()));
      if (c.has_purge_after()) {
        absl::StrAppend(&out, ",\"purge_after\":", Time(rpc::ToTime(c.purge_after())));
      }
    }
    out += "}";
  }
  out += "],\"records\":[";
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  for (int i = 0; i < exported.records_size(); ++i) {
    const subject::v1::ExportedRecord& record = exported.records(i);
    std::string data;
    if (!google::protobuf::util::MessageToJsonString(record.data(), &data, options).ok()) {
      return absl::InternalError(absl::StrCat(service, ": a record does not convert to JSON"));
    }
    absl::StrAppend(&out, i > 0 ? "," : "", "{\"category\":", json::Quote(record.category()),
                    ",\"data\":", data, "}");
  }
  return out + "]}";
}

std::vector<absl::string_view> ExportChunks(absl::string_view text) {
  std::vector<absl::string_view> out;
  for (size_t at = 0; at < text.size(); at += kExportChunkSize) {
    out.push_back(text.substr(at, kExportChunkSize));
  }
  return out;
}

std::string ExportPartAad(absl::string_view request_id, absl::string_view service, int seq) {
  return absl::StrCat("crm.erasure/export_parts/", request_id, "/", service, "/", seq);
}

std::string ExportKeyAad(absl::string_view request_id) {
  return absl::StrCat("crm.erasure/requests.export_key/", request_id);
}

}  // namespace crm::erasure
