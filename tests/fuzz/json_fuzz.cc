// Fuzz target `json`: the strict JSON parser of libs/json (JWT headers and
// claims, and any JSON read by hand) on arbitrary bytes.
//
// Properties beyond "no crash, no sanitizer report":
//  - parse -> serialise -> parse is a fixed point: a document that parses is
//    written back out (this file's own writer, strings through
//    json::AppendString) and parses again to the same tree;
//  - nesting is refused, not recursed into, past ParseOptions::max_depth, also
//    at a depth far beyond the input sizes the fuzzer tries (checked once);
//  - a parse error never quotes the input (INVALID_ARGUMENT "json: <reason> at
//    offset N");
//  - every valid UTF-8 string survives json::Quote -> Parse unchanged.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "libs/json/json.h"

namespace {

using ::crm::json::Value;

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (json): %s\n", property);
  std::abort();
}

void Serialise(const Value& v, std::string* out) {
  switch (v.type()) {
    case Value::Type::kNull:
      out->append("null");
      return;
    case Value::Type::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return;
    case Value::Type::kNumber:
      if (std::optional<int64_t> i = v.AsInt64(); i.has_value()) {
        // "-0" parses to the integer 0 with the double -0.0: keep the sign.
        if (*i == 0 && std::signbit(v.number())) {
          out->append("-0");
        } else {
          absl::StrAppend(out, *i);
        }
      } else {
        // Round-trip precision; a fraction or exponent keeps it a
        // non-integer literal (1e3 is a number but not an exact integer for
        // AsInt64, and must stay so).
        std::string n = absl::StrFormat("%.17g", v.number());
        if (n.find_first_of(".e") == std::string::npos) n += ".0";
        out->append(n);
      }
      return;
    case Value::Type::kString:
      crm::json::AppendString(out, v.string_value());
      return;
    case Value::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.array()) {
        if (!first) out->push_back(',');
        first = false;
        Serialise(item, out);
      }
      out->push_back(']');
      return;
    }
    case Value::Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.object()) {
        if (!first) out->push_back(',');
        first = false;
        crm::json::AppendString(out, key);
        out->push_back(':');
        Serialise(item, out);
      }
      out->push_back('}');
      return;
    }
  }
}

bool Same(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return a.bool_value() == b.bool_value();
    case Value::Type::kNumber:
      return a.AsInt64() == b.AsInt64() && a.number() == b.number() &&
             std::signbit(a.number()) == std::signbit(b.number());
    case Value::Type::kString:
      return a.string_value() == b.string_value();
    case Value::Type::kArray:
      if (a.array().size() != b.array().size()) return false;
      for (size_t i = 0; i < a.array().size(); ++i) {
        if (!Same(a.array()[i], b.array()[i])) return false;
      }
      return true;
    case Value::Type::kObject:
      if (a.object().size() != b.object().size()) return false;
      for (size_t i = 0; i < a.object().size(); ++i) {
        if (a.object()[i].first != b.object()[i].first ||
            !Same(a.object()[i].second, b.object()[i].second)) {
          return false;
        }
      }
      return true;
  }
  return false;
}

// Once: a nesting depth no input of the fuzzer reaches is refused cleanly.
bool DeepNestingRefused() {
  for (const char* open : {"[", "{\"a\":"}) {
    std::string deep;
    for (int i = 0; i < 200'000; ++i) deep.append(open);
    crm::json::ParseOptions options;
    options.max_size = deep.size();
    absl::StatusOr<Value> v = crm::json::Parse(deep, options);
    if (v.ok() || !absl::StrContains(v.status().message(), "nesting too deep")) return false;
  }
  return true;
}

// "json: <one of the parser's reasons> at offset <n>", n within the input:
// the message carries no input bytes.
void CheckError(const absl::Status& status, size_t size) {
  static const auto* const kReasons =
      new absl::flat_hash_set<std::string>{"control character in string",
                                           "duplicate object key",
                                           "expected ',' or ']'",
                                           "expected ',' or '}'",
                                           "expected ':'",
                                           "expected object key",
                                           "input too large",
                                           "invalid UTF-8 in string",
                                           "invalid \\u escape",
                                           "invalid escape",
                                           "invalid literal",
                                           "invalid number",
                                           "invalid value",
                                           "leading zero in number",
                                           "lone high surrogate",
                                           "lone low surrogate",
                                           "nesting too deep",
                                           "number out of range",
                                           "trailing content",
                                           "unexpected end",
                                           "unterminated string"};
  if (status.code() != absl::StatusCode::kInvalidArgument) Fail("error is not INVALID_ARGUMENT");
  absl::string_view m = status.message();
  const bool prefixed = absl::ConsumePrefix(&m, "json: ");
  const size_t at = m.rfind(" at offset ");
  size_t offset = 0;
  if (!prefixed || at == absl::string_view::npos ||
      !absl::SimpleAtoi(m.substr(at + sizeof(" at offset ") - 1), &offset) || offset > size ||
      !kReasons->contains(m.substr(0, at))) {
    Fail("error message is not \"json: <reason> at offset <n>\"");
  }
}

void CheckFixedPoint(absl::string_view text, const crm::json::ParseOptions& options) {
  absl::StatusOr<Value> first = crm::json::Parse(text, options);
  if (!first.ok()) {
    CheckError(first.status(), text.size());
    return;
  }
  std::string written;
  Serialise(*first, &written);
  crm::json::ParseOptions relaxed = options;
  relaxed.max_size = written.size();  // escapes may have grown it
  absl::StatusOr<Value> second = crm::json::Parse(written, relaxed);
  if (!second.ok()) Fail("serialised document does not parse");
  if (!Same(*first, *second)) Fail("parse -> serialise -> parse changed the document");
  std::string again;
  Serialise(*second, &again);
  if (again != written) Fail("serialisation is not stable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool deep_ok = DeepNestingRefused();
  if (!deep_ok) Fail("deep nesting not refused");
  const absl::string_view text(reinterpret_cast<const char*>(data), size);

  CheckFixedPoint(text, crm::json::ParseOptions());  // the defaults: depth 16
  crm::json::ParseOptions deep;
  deep.max_depth = 256;
  CheckFixedPoint(text, deep);
  crm::json::ParseOptions tiny;  // the verifier's limits for token segments
  tiny.max_depth = 4;
  tiny.max_size = 512;
  CheckFixedPoint(text, tiny);

  // The input as a string value: Quote must produce a literal that parses back.
  absl::StatusOr<Value> as_string = crm::json::Parse(crm::json::Quote(text));
  if (as_string.ok() && as_string->string_value() != text) Fail("Quote -> Parse changed a string");
  return 0;
}
