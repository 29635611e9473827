#include "libs/json/json.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crm::json {

std::optional<int64_t> Value::AsInt64() const {
  if (!is_number()) return std::nullopt;
  return std::get<Num>(v_).exact;
}

const Value* Value::Find(absl::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(absl::string_view text, const ParseOptions& options) : s_(text), options_(options) {}

  absl::StatusOr<Value> ParseDocument() {
    if (s_.size() > options_.max_size) return Error("input too large");
    SkipSpace();
    absl::StatusOr<Value> v = ParseValue(1);
    if (!v.ok()) return v;
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing content");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("json: ", what, " at offset ", pos_));
  }

  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return s_[pos_]; }

  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  bool Consume(absl::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::StatusOr<Value> ParseValue(int depth) {
    if (AtEnd()) return Error("unexpected end");
    switch (Peek()) {
      case '{':
        return ParseObject(depth);
      case '[':
        return ParseArray(depth);
      case '"': {
        std::string str;
        absl::Status st = ParseString(&str);
        if (!st.ok()) return st;
        return Value::String(std::move(str));
      }
      case 't':
        if (Consume("true")) return Value::Bool(true);
        return Error("invalid literal");
      case 'f':
        if (Consume("false")) return Value::Bool(false);
        return Error("invalid literal");
      case 'n':
        if (Consume("null")) return Value();
        return Error("invalid literal");
      default:
        return ParseNumber();
    }
  }

  absl::StatusOr<Value> ParseObject(int depth) {
    if (depth > options_.max_depth) return Error("nesting too deep");
    ++pos_;  // '{'
    Value::Object members;
    SkipSpace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      return Value::MakeObject(std::move(members));
    }
    while (true) {
      SkipSpace();
      if (AtEnd() || Peek() != '"') return Error("expected object key");
      std::string key;
      absl::Status st = ParseString(&key);
      if (!st.ok()) return st;
      for (const auto& m : members) {
        if (m.first == key) return Error("duplicate object key");
      }
      SkipSpace();
      if (AtEnd() || Peek() != ':') return Error("expected ':'");
      ++pos_;
      SkipSpace();
      absl::StatusOr<Value> v = ParseValue(depth + 1);
      if (!v.ok()) return v.status();
      members.emplace_back(std::move(key), std::move(v).value());
      SkipSpace();
      if (AtEnd()) return Error("unexpected end");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return Value::MakeObject(std::move(members));
      }
      return Error("expected ',' or '}'");
    }
  }

  absl::StatusOr<Value> ParseArray(int depth) {
    if (depth > options_.max_depth) return Error("nesting too deep");
    ++pos_;  // '['
    Value::Array items;
    SkipSpace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return Value::MakeArray(std::move(items));
    }
    while (true) {
      SkipSpace();
      absl::StatusOr<Value> v = ParseValue(depth + 1);
      if (!v.ok()) return v.status();
      items.push_back(std::move(v).value());
      SkipSpace();
      if (AtEnd()) return Error("unexpected end");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return Value::MakeArray(std::move(items));
      }
      return Error("expected ',' or ']'");
    }
  }

  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Reads 4 hex digits after "\u".
  bool ReadHex4(uint32_t* out) {
    if (s_.size() - pos_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = HexDigit(s_[pos_ + i]);
      if (d < 0) return false;
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  // Length of the valid UTF-8 sequence starting at pos_ (lead byte >= 0x80),
  // or 0 if invalid: overlong forms, surrogates and > U+10FFFF are refused.
  size_t Utf8SequenceLength() const {
    const auto b = [&](size_t i) { return static_cast<uint8_t>(s_[pos_ + i]); };
    const size_t left = s_.size() - pos_;
    const uint8_t c = b(0);
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (left < n) return 0;
    for (size_t i = 1; i < n; ++i) {
      if ((b(i) & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (b(i) & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return 0;
    }
    return n;
  }

  absl::Status ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = Peek();
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (static_cast<uint8_t>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        if (static_cast<uint8_t>(c) < 0x80) {
          out->push_back(c);
          ++pos_;
          continue;
        }
        const size_t n = Utf8SequenceLength();
        if (n == 0) return Error("invalid UTF-8 in string");
        out->append(s_.data() + pos_, n);
        pos_ += n;
        continue;
      }
      ++pos_;  // backslash
      if (AtEnd()) return Error("unterminated string");
      const char e = Peek();
      ++pos_;
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!ReadHex4(&cp)) return Error("invalid \\u escape");
          if (cp >= 0xdc00 && cp <= 0xdfff) return Error("lone low surrogate");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t low;
            if (!Consume("\\u") || !ReadHex4(&low) || low < 0xdc00 || low > 0xdfff) {
              return Error("lone high surrogate");
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Error("invalid escape");
      }
    }
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  absl::StatusOr<Value> ParseNumber() {
    const size_t start = pos_;
    if (!AtEnd() && Peek() == '-') ++pos_;
    if (AtEnd() || !IsDigit(Peek())) return Error("invalid value");
    if (Peek() == '0') {
      ++pos_;
      if (!AtEnd() && IsDigit(Peek())) return Error("leading zero in number");
    } else {
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    bool integral = true;
    if (!AtEnd() && Peek() == '.') {
      integral = false;
      ++pos_;
      if (AtEnd() || !IsDigit(Peek())) return Error("invalid number");
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (AtEnd() || !IsDigit(Peek())) return Error("invalid number");
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    const absl::string_view text = s_.substr(start, pos_ - start);
    double d = 0;
    if (!absl::SimpleAtod(text, &d) || !std::isfinite(d)) return Error("number out of range");
    std::optional<int64_t> exact;
    int64_t i = 0;
    if (integral && absl::SimpleAtoi(text, &i)) exact = i;
    return Value::Number(d, exact);
  }

  absl::string_view s_;
  const ParseOptions& options_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Value> Parse(absl::string_view text, const ParseOptions& options) {
  return Parser(text, options).ParseDocument();
}

std::string Quote(absl::string_view s) {
  std::string out;
  AppendString(&out, s);
  return out;
}

void AppendString(std::string* out, absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<uint8_t>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (u < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 0xf]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace crm::json
