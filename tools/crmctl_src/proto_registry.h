// ProtoRegistry: every crm proto (with its imports) as a DescriptorPool built
// from the FileDescriptorSet compiled into crmctl at build time, plus a
// DynamicMessageFactory for requests and responses. crmctl uses it to find
// the method of `crmctl call`, to convert JSON to and from messages, and to
// print `crmctl list`. Because the set is embedded, crmctl needs no generated
// C++ code of the protos and no server reflection.
//
// Thread-safety: immutable after creation, except NewMessage, which may be
// called from several threads (DynamicMessageFactory is thread-safe).
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::crmctl {

// The serialized google.protobuf.FileDescriptorSet of every crm proto,
// generated at build time (embed_descriptor_set.cmake).
absl::string_view EmbeddedDescriptorSet();

// `message` as indented JSON with the proto field names ("subject_id"),
// fields at their default value omitted, ending in a newline. INTERNAL if it
// cannot be printed.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

class ProtoRegistry {
 public:
  // A registry of the files in `serialized_set` (a FileDescriptorSet whose
  // files come in dependency order, as protoc --include_imports writes them).
  // INVALID_ARGUMENT if it does not parse or a file does not build.
  static absl::StatusOr<std::unique_ptr<ProtoRegistry>> FromDescriptorSet(
      absl::string_view serialized_set);
  // FromDescriptorSet(EmbeddedDescriptorSet()).
  static absl::StatusOr<std::unique_ptr<ProtoRegistry>> Embedded();

  ProtoRegistry(const ProtoRegistry&) = delete;
  ProtoRegistry& operator=(const ProtoRegistry&) = delete;

  // Finds a unary method by any of:
  //   "crm.audit.v1.AuditIngest/AppendEvents" (also with a leading '/', or
  //   "crm.audit.v1.AuditIngest.AppendEvents"), "AuditIngest/AppendEvents",
  //   "AppendEvents".
  // Short forms that match several services prefer package crm.<hint>.v1
  // when `service_hint` (a service name like "audit") is set.
  // NOT_FOUND for an unknown service or method and INVALID_ARGUMENT for an
  // ambiguous name, each listing the candidates; INVALID_ARGUMENT for a
  // streaming method (not supported).
  absl::StatusOr<const google::protobuf::MethodDescriptor*> FindMethod(
      absl::string_view name, absl::string_view service_hint) const;

  // Every service, sorted by full name.
  std::vector<const google::protobuf::ServiceDescriptor*> Services() const;

  // Services matching `filter`: a full name, a simple name ("Echo"), or a
  // service name like "audit" (everything in package crm.audit.v1). Empty
  // filter: all. Sorted by full name.
  std::vector<const google::protobuf::ServiceDescriptor*> ServicesMatching(
      absl::string_view filter) const;

  // A new, empty message of `type` (which must come from this registry).
  std::unique_ptr<google::protobuf::Message> NewMessage(
      const google::protobuf::Descriptor* type) const;

  const google::protobuf::DescriptorPool& pool() const { return pool_; }

 private:
  ProtoRegistry() = default;

  google::protobuf::DescriptorPool pool_;
  mutable google::protobuf::DynamicMessageFactory factory_{&pool_};
  std::vector<std::string> file_names_;
};

}  // namespace crm::crmctl
