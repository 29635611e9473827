#include "tools/crmctl_src/proto_registry.h"

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace crm::crmctl {
namespace {

using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

// Collects the first error of DescriptorPool::BuildFileCollectingErrors.
class ErrorCollector final : public google::protobuf::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name,
                const google::protobuf::Message* /*descriptor*/, ErrorLocation /*location*/,
                const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat(filename, ": ", element_name, ": ", message);
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

std::string PackageOf(absl::string_view service_hint) {
  return absl::StrCat("crm.", service_hint, ".v1");
}

std::string MethodNames(const ServiceDescriptor& service) {
  std::vector<std::string> names;
  for (int i = 0; i < service.method_count(); ++i) names.push_back(service.method(i)->name());
  return absl::StrJoin(names, ", ");
}

std::string ServiceNames(const std::vector<const ServiceDescriptor*>& services) {
  return absl::StrJoin(services, ", ", [](std::string* out, const ServiceDescriptor* s) {
    absl::StrAppend(out, s->full_name());
  });
}

std::string FullMethodNames(const std::vector<const MethodDescriptor*>& methods) {
  return absl::StrJoin(methods, ", ", [](std::string* out, const MethodDescriptor* m) {
    absl::StrAppend(out, m->service()->full_name(), "/", m->name());
  });
}

// Keeps the entries in package crm.<hint>.v1 if there are any.
template <typename T, typename PackageFn>
std::vector<T> PreferHint(std::vector<T> all, absl::string_view service_hint, PackageFn package) {
  if (service_hint.empty() || all.size() < 2) return all;
  std::vector<T> preferred;
  const std::string wanted = PackageOf(service_hint);
  for (T item : all) {
    if (package(item) == wanted) preferred.push_back(item);
  }
  return preferred.empty() ? all : preferred;
}

absl::StatusOr<const MethodDescriptor*> Unary(const MethodDescriptor* method) {
  if (method->client_streaming() || method->server_streaming()) {
    return absl::InvalidArgumentError(absl::StrCat(method->full_name(),
                                                   " is a streaming method; crmctl calls "
                                                   "unary methods only"));
  }
  return method;
}

}  // namespace

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = false;
  options.preserve_proto_field_names = true;
  std::string text;
  google::protobuf::util::Status printed =
      google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!printed.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print the response: ",
                     absl::string_view(printed.message().data(), printed.message().size())));
  }
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

absl::StatusOr<std::unique_ptr<ProtoRegistry>> ProtoRegistry::FromDescriptorSet(
    absl::string_view serialized_set) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(serialized_set.data(), static_cast<int>(serialized_set.size()))) {
    return absl::InvalidArgumentError("descriptor set: does not parse");
  }
  std::unique_ptr<ProtoRegistry> registry(new ProtoRegistry());
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    ErrorCollector errors;
    if (registry->pool_.BuildFileCollectingErrors(file, &errors) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("descriptor set: ", errors.first()));
    }
    registry->file_names_.push_back(file.name());
  }
  return registry;
}

absl::StatusOr<std::unique_ptr<ProtoRegistry>> ProtoRegistry::Embedded() {
  return FromDescriptorSet(EmbeddedDescriptorSet());
}

std::vector<const ServiceDescriptor*> ProtoRegistry::Services() const {
  std::vector<const ServiceDescriptor*> services;
  for (const std::string& name : file_names_) {
    const google::protobuf::FileDescriptor* file = pool_.FindFileByName(name);
    if (file == nullptr) continue;
    for (int i = 0; i < file->service_count(); ++i) services.push_back(file->service(i));
  }
  std::sort(services.begin(), services.end(),
            [](const ServiceDescriptor* a, const ServiceDescriptor* b) {
              return a->full_name() < b->full_name();
            });
  return services;
}

std::vector<const ServiceDescriptor*> ProtoRegistry::ServicesMatching(
    absl::string_view filter) const {
  std::vector<const ServiceDescriptor*> out;
  for (const ServiceDescriptor* s : Services()) {
    if (filter.empty() || s->full_name() == filter || s->name() == filter ||
        s->file()->package() == PackageOf(filter)) {
      out.push_back(s);
    }
  }
  return out;
}

absl::StatusOr<const MethodDescriptor*> ProtoRegistry::FindMethod(
    absl::string_view name, absl::string_view service_hint) const {
  absl::string_view spec = absl::StripPrefix(name, "/");
  absl::string_view service_part;
  absl::string_view method_part = spec;
  if (size_t slash = spec.rfind('/'); slash != absl::string_view::npos) {
    service_part = spec.substr(0, slash);
    method_part = spec.substr(slash + 1);
  } else if (size_t dot = spec.rfind('.'); dot != absl::string_view::npos) {
    service_part = spec.substr(0, dot);
    method_part = spec.substr(dot + 1);
  }
  if (method_part.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("method \"", name, "\": expected <Service>/<Method> or <Method>"));
  }
  const std::vector<const ServiceDescriptor*> all = Services();

  if (!service_part.empty()) {
    std::vector<const ServiceDescriptor*> services;
    for (const ServiceDescriptor* s : all) {
      if (s->full_name() == service_part || s->name() == service_part) services.push_back(s);
    }
    services = PreferHint(std::move(services), service_hint,
                          [](const ServiceDescriptor* s) { return s->file()->package(); });
    if (services.empty()) {
      return absl::NotFoundError(absl::StrCat("unknown service \"", service_part,
                                              "\"; known services: ", ServiceNames(all)));
    }
    if (services.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("ambiguous service \"", service_part,
                                                     "\"; candidates: ", ServiceNames(services)));
    }
    const MethodDescriptor* method = services[0]->FindMethodByName(std::string(method_part));
    if (method == nullptr) {
      return absl::NotFoundError(absl::StrCat(services[0]->full_name(), " has no method \"",
                                              method_part,
                                              "\"; its methods: ", MethodNames(*services[0])));
    }
    return Unary(method);
  }

  std::vector<const MethodDescriptor*> methods;
  for (const ServiceDescriptor* s : all) {
    if (const MethodDescriptor* m = s->FindMethodByName(std::string(method_part))) {
      methods.push_back(m);
    }
  }
  methods = PreferHint(std::move(methods), service_hint,
                       [](const MethodDescriptor* m) { return m->service()->file()->package(); });
  if (methods.empty()) {
    std::vector<const ServiceDescriptor*> scope = ServicesMatching(service_hint);
    if (scope.empty()) scope = all;
    std::vector<std::string> known;
    for (const ServiceDescriptor* s : scope) {
      for (int i = 0; i < s->method_count(); ++i) {
        known.push_back(absl::StrCat(s->full_name(), "/", s->method(i)->name()));
      }
    }
    return absl::NotFoundError(absl::StrCat("unknown method \"", method_part,
                                            "\"; known methods: ", absl::StrJoin(known, ", ")));
  }
  if (methods.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("ambiguous method \"", method_part,
                                                   "\"; candidates: ", FullMethodNames(methods)));
  }
  return Unary(methods[0]);
}

std::unique_ptr<google::protobuf::Message> ProtoRegistry::NewMessage(
    const google::protobuf::Descriptor* type) const {
  const google::protobuf::Message* prototype = factory_.GetPrototype(type);
  if (prototype == nullptr) return nullptr;
  return std::unique_ptr<google::protobuf::Message>(prototype->New());
}

}  // namespace crm::crmctl
