#include "libs/rpc/handler.h"

#include <google/protobuf/util/json_util.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace crm::rpc {

absl::Status ToStruct(const google::protobuf::Message& message, google::protobuf::Struct* out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok() ||
      !google::protobuf::util::JsonStringToMessage(json, out).ok()) {
    return absl::InternalError(
        absl::StrCat(message.GetDescriptor()->name(), ": does not convert to a Struct"));
  }
  return absl::OkStatus();
}

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros / 1'000'000;
  int64_t rest = micros % 1'000'000;
  if (rest < 0) {
    rest += 1'000'000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}

absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::StatusOr<absl::Time> GetTime(absl::string_view field, const google::protobuf::Timestamp& ts) {
  if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
      ts.nanos() > 999'999'999) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a valid timestamp"));
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string EncodePageToken(int64_t position, absl::string_view query_key) {
  return absl::WebSafeBase64Escape(absl::StrCat("p1|", position, "|", query_key));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view query_key,
                                        int64_t first) {
  if (token.empty()) return first;
  const absl::Status bad =
      absl::InvalidArgumentError("page.page_token: malformed or not for this query");
  std::string raw;
  if (token.size() > 4096 || !absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  int64_t position;
  if (parts.size() != 3 || parts[0] != "p1" || !absl::SimpleAtoi(parts[1], &position) ||
      parts[2] != query_key) {
    return bad;
  }
  return position;
}

}  // namespace crm::rpc
