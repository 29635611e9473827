// Access exports (Art. 15 and 20): the JSON document an access request
// assembles from every target's Describe and Export, with the Art. 15 facts
// from the controller's record of processing (setting
// processing_record_file; deploy/processing-record.json is the suite's).
//
// The document (docs/erasure.md):
//   {"format":"crm.access-export.v1","request_id":...,"subject_id":...,
//    "generated_at":...,"controller":{...},"rights":...,   (generated_at:
//    when the data was gathered, the request's completion)
//    "services":[{"service":"contacts",
//                 "categories":[{"category":...,"records":N,
//                   "purposes":[...],"recipients":[...],"source":...,
//                   "retention":...,"legally_retained":bool,
//                   "retention_basis":...,"purge_after":...}],
//                 "records":[{"category":...,"data":{...}}]}, ...]}
// Each service's member is built when its target answers and stored in
// sealed chunks (ExportChunks); the head and tail are written when the
// document is served, one chunk at a time. A worker step holds the answers of
// the targets it calls (each within gRPC's 4 MiB message limit).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "crm/erasure/v1/erasure.pb.h"
#include "crm/subject/v1/subject_data.pb.h"

namespace crm::erasure {

// Largest stored chunk of a document, before sealing.
inline constexpr size_t kExportChunkSize = 256 << 10;

// The controller's record of processing, as far as Art. 15(1) asks: per
// category the purposes, recipients, source and retention.
//   {"controller": {"name": "...", "contact": "...", ...: strings},
//    "rights": "...",                        (optional: Art. 15(1)(e), (f))
//    "categories": {"person": {"purposes": ["..."], "recipients": ["..."],
//                              "source": "...", "retention": "..."}, ...},
//    "default": {...same members...}}        (optional: unlisted categories)
class ProcessingRecord {
 public:
  // INVALID_ARGUMENT naming the member at fault.
  static absl::StatusOr<ProcessingRecord> Parse(absl::string_view text);
  static absl::StatusOr<ProcessingRecord> LoadFile(const std::string& path);
  // None configured: a controller "not configured" and every category
  // "described": false.
  static std::shared_ptr<const ProcessingRecord> Unconfigured();

  // The document up to the services' members: `{"format":...,"services":[`.
  std::string Head(const v1::ErasureRequest& r, absl::Time generated) const;
  // One service's member of "services" (JSON object).
  absl::StatusOr<std::string> ServicePart(const subject::v1::DescribeSubjectDataResponse& described,
                                          const subject::v1::ExportSubjectDataResponse& exported,
                                          absl::string_view service) const;
  static constexpr absl::string_view kTail = "]}";

 private:
  std::string controller_;  // JSON object
  std::string rights_;      // JSON string, or empty
  // Category -> `"purposes":[...],"recipients":[...],"source":...,"retention":...`.
  absl::flat_hash_map<std::string, std::string> facts_;
  std::string default_facts_;  // empty: none
};

// `text` in chunks of at most kExportChunkSize bytes.
std::vector<absl::string_view> ExportChunks(absl::string_view text);

// The AAD binding a sealed chunk to its place in its request's export.
std::string ExportPartAad(absl::string_view request_id, absl::string_view service, int seq);
// The AAD of a request's wrapped export key.
std::string ExportKeyAad(absl::string_view request_id);

}  // namespace crm::erasure
