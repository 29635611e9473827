// Fuzz target `base64url`: the strict unpadded base64url codec of libs/auth
// that every token segment goes through.
//
// Properties beyond "no crash, no sanitizer report":
//  - Base64UrlDecode(Base64UrlEncode(x)) == x for any bytes x (the input);
//  - the input read as text decodes only if it is canonical: then
//    Base64UrlEncode(decoded) is the input again (one accepted spelling per
//    byte string, so a token cannot be altered without changing its bytes),
//    it holds only [A-Za-z0-9_-] and decodes to floor(6n/8) bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "libs/auth/base64url.h"

namespace {

[[noreturn]] void Fail(const char* property) {
  std::fprintf(stderr, "PROPERTY VIOLATED (base64url): %s\n", property);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  const std::string encoded = crm::auth::Base64UrlEncode(input);
  const std::optional<std::string> round_trip = crm::auth::Base64UrlDecode(encoded);
  if (!round_trip.has_value()) Fail("an encoding is refused by the decoder");
  if (*round_trip != input) Fail("decode(encode(x)) != x");

  const std::optional<std::string> decoded = crm::auth::Base64UrlDecode(input);
  if (decoded.has_value()) {
    for (char c : input) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
        Fail("accepted a character outside the base64url alphabet");
      }
    }
    if (crm::auth::Base64UrlEncode(*decoded) != input) Fail("accepted a non-canonical encoding");
    if (decoded->size() != input.size() * 6 / 8) Fail("decoded length is wrong");
  }
  return 0;
}
