// A small, strict JSON (RFC 8259) parser and string writer for untrusted
// input: JWT headers and claims (libs/auth), and any other place that must
// read JSON without a full library. It accepts exactly the RFC grammar and
// refuses anything else: comments, trailing commas, NaN/Infinity, leading
// zeros, unescaped control characters, invalid UTF-8, lone surrogates
// (\ud800), duplicate object keys, trailing content. Input size and nesting
// depth are capped (ParseOptions) so that hostile input cannot exhaust memory
// or the stack.
//
// Values are immutable trees; parsing and reading are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<Value>;
  // Members in document order; keys are unique.
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() = default;  // null
  static Value Bool(bool b) { return Value(b); }
  static Value Number(double d, std::optional<int64_t> exact_int) {
    return Value(Num{d, exact_int});
  }
  static Value String(std::string s) { return Value(std::move(s)); }
  static Value MakeArray(Array a) { return Value(std::move(a)); }
  static Value MakeObject(Object o) { return Value(std::move(o)); }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kNumber; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Accessors: call only after checking the type; the wrong type throws
  // std::bad_variant_access (a programming error).
  bool bool_value() const { return std::get<bool>(v_); }
  double number() const { return std::get<Num>(v_).d; }
  const std::string& string_value() const { return std::get<std::string>(v_); }
  const Array& array() const { return std::get<Array>(v_); }
  const Object& object() const { return std::get<Object>(v_); }

  // For a number written as an integer (no fraction or exponent) that fits in
  // int64: its exact value. Otherwise (other types, 1.5, 1e3, 2^63) nullopt.
  std::optional<int64_t> AsInt64() const;

  // For an object, the member named `key`; nullptr if absent or not an object.
  const Value* Find(absl::string_view key) const;

 private:
  struct Num {
    double d;
    std::optional<int64_t> exact;
  };
  explicit Value(bool b) : v_(b) {}
  explicit Value(Num n) : v_(n) {}
  explicit Value(std::string s) : v_(std::move(s)) {}
  explicit Value(Array a) : v_(std::move(a)) {}
  explicit Value(Object o) : v_(std::move(o)) {}

  std::variant<std::monostate, bool, Num, std::string, Array, Object> v_;
};

struct ParseOptions {
  // Longest input accepted, in bytes. Default 64 KiB.
  size_t max_size = 64 << 10;
  // Deepest nesting of arrays/objects accepted (the top level counts 1). Default 16.
  int max_depth = 16;
};

// Parses one JSON text. INVALID_ARGUMENT on any deviation from RFC 8259 (see
// the header comment) or a limit exceeded; the message gives the reason and
// byte offset, never the input.
absl::StatusOr<Value> Parse(absl::string_view text, const ParseOptions& options = {});

// Appends `s` (valid UTF-8) as a JSON string literal with quotes: `"`, `\`
// and control characters are escaped, everything else is copied.
void AppendString(std::string* out, absl::string_view s);

// `s` as a JSON string literal (AppendString to an empty string).
std::string Quote(absl::string_view s);

}  // namespace crm::json
