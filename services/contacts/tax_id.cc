#include "services/contacts/tax_id.h"

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crm::contacts {
namespace {

// Longest input looked at; the longest identifier here (a 14-digit REGON or a
// 12-character VAT number with prefix) is far shorter even with separators,
// and the limit keeps hostile input from costing anything.
constexpr size_t kMaxInputBytes = 64;

// A rule check returns the broken rule's description, or an empty view when
// the number passes. Descriptions never quote the number.
using Rule = absl::string_view;
constexpr Rule kPass;

absl::Status Invalid(absl::string_view field, absl::string_view what, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what, " ", rule));
}

// Drops separators and upper-cases, or explains why the input is unusable.
// Runs before anything else so that no later rule ever sees a byte outside
// [0-9A-Z].
absl::StatusOr<std::string> Compact(absl::string_view field, absl::string_view what,
                                    absl::string_view value) {
  if (value.size() > kMaxInputBytes) {
    return Invalid(field, what, absl::StrCat("is longer than ", kMaxInputBytes, " characters"));
  }
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == ' ' || c == '-' || c == '.') continue;
    // absl::ascii_isalnum is false for every byte >= 0x80, so UTF-8 (valid or
    // not) and NUL both land here.
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      return Invalid(field, what, "may contain only letters, digits, spaces, hyphens and dots");
    }
    out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
  }
  if (out.empty()) return Invalid(field, what, "is empty");
  return out;
}

bool IsDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

int Digit(char c) { return c - '0'; }

// Sum of digit * weight over the first N digits of `s` (which has at least N).
template <size_t N>
int WeightedSum(absl::string_view s, const int (&weights)[N]) {
  int sum = 0;
  for (size_t i = 0; i < N; ++i) sum += Digit(s[i]) * weights[i];
  return sum;
}

// Luhn: from the right, every second digit doubled (digit sum of the
// product), total divisible by 10. The number includes its check digit.
bool LuhnValid(absl::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = Digit(digits[i]);
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

// ISO 7064 MOD 11,10 check digit over `digits` (without the check digit).
int Iso7064Mod11_10(absl::string_view digits) {
  int product = 10;
  for (char c : digits) {
    int sum = (Digit(c) + product) % 10;
    if (sum == 0) sum = 10;
    product = (2 * sum) % 11;
  }
  return (11 - product) % 10;
}

// `digits` as a number, mod m, without overflow for any length.
int ModOf(absl::string_view digits, int m) {
  int r = 0;
  for (char c : digits) r = (r * 10 + Digit(c)) % m;
  return r;
}

// Polish rules, shared by the national kinds and the PL VAT prefix.

Rule NipRule(absl::string_view n) {
  if (n.size() != 10 || !IsDigits(n)) return "must be 10 digits";
  static constexpr int kWeights[] = {6, 5, 7, 2, 3, 4, 5, 6, 7};
  // A remainder of 10 cannot be written as one digit: such numbers are never
  // issued, so 10 never matches.
  if (WeightedSum(n, kWeights) % 11 != Digit(n[9])) return "check digit does not match";
  return kPass;
}

bool Regon9Valid(absl::string_view n) {
  static constexpr int kWeights[] = {8, 9, 2, 3, 4, 5, 6, 7};
  return WeightedSum(n, kWeights) % 11 % 10 == Digit(n[8]);
}

Rule RegonRule(absl::string_view n) {
  if (!IsDigits(n) || (n.size() != 9 && n.size() != 14)) return "must be 9 or 14 digits";
  if (!Regon9Valid(n.substr(0, 9))) return "check digit does not match";
  if (n.size() == 14) {
    static constexpr int kWeights[] = {2, 4, 8, 5, 0, 9, 7, 3, 6, 1, 2, 4, 8};
    if (WeightedSum(n, kWeights) % 11 % 10 != Digit(n[13])) {
      return "local unit check digit does not match";
    }
  }
  return kPass;
}

// EU VAT: one function per country over the national part (after the
// prefix), already compacted to [0-9A-Z].

Rule VatAt(absl::string_view n) {
  if (n.size() != 9 || n[0] != 'U' || !IsDigits(n.substr(1))) {
    return "must be U followed by 8 digits";
  }
  // Luhn-like weights 1,2,1,2,... (digit sums of products) over the 7 digits
  // before the check digit, check = (6 - sum) mod 10 (the published
  // "10 - (sum + 4) mod 10").
  int sum = 0;
  for (size_t i = 1; i <= 7; ++i) {
    int d = Digit(n[i]);
    if (i % 2 == 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  if ((16 - sum % 10) % 10 != Digit(n[8])) return "check digit does not match";
  return kPass;
}

Rule VatBe(absl::string_view n) {
  if (n.size() != 10 || !IsDigits(n) || (n[0] != '0' && n[0] != '1')) {
    return "must be 10 digits starting with 0 or 1";
  }
  if (97 - ModOf(n.substr(0, 8), 97) != ModOf(n.substr(8), 100)) {
    return "check digits do not match";
  }
  return kPass;
}

Rule VatBg(absl::string_view n) {
  if (!IsDigits(n) || (n.size() != 9 && n.size() != 10)) return "must be 9 or 10 digits";
  if (n.size() == 10) return kPass;  // Personal numbers: format only (see header).
  static constexpr int kFirst[] = {1, 2, 3, 4, 5, 6, 7, 8};
  static constexpr int kSecond[] = {3, 4, 5, 6, 7, 8, 9, 10};
  int check = WeightedSum(n, kFirst) % 11;
  if (check == 10) check = WeightedSum(n, kSecond) % 11 % 10;
  if (check != Digit(n[8])) return "check digit does not match";
  return kPass;
}

Rule VatCy(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n.substr(0, 8)) || !IsUpper(n[8])) {
    return "must be 8 digits followed by a letter";
  }
  if (!absl::StrContains("013459", n[0]) || absl::StartsWith(n, "12")) {
    return "has an invalid first digit";
  }
  // Digits in even positions are translated through a fixed table, the
  // others added as they are; the sum mod 26 is the letter.
  static constexpr int kEven[] = {1, 0, 5, 7, 9, 13, 15, 17, 19, 21};
  int sum = 0;
  for (size_t i = 0; i < 8; ++i) sum += i % 2 == 0 ? kEven[Digit(n[i])] : Digit(n[i]);
  if ('A' + sum % 26 != n[8]) return "check letter does not match";
  return kPass;
}

Rule VatCz(absl::string_view n) {
  if (!IsDigits(n) || n.size() < 8 || n.size() > 10) return "must be 8, 9 or 10 digits";
  if (n.size() == 8) {
    // Legal entities.
    if (n[0] == '9') return "has an invalid first digit";
    static constexpr int kWeights[] = {8, 7, 6, 5, 4, 3, 2};
    int r = WeightedSum(n, kWeights) % 11;
    int check = r == 0 ? 1 : (11 - r) % 10;
    if (check != Digit(n[7])) return "check digit does not match";
    return kPass;
  }
  if (n.size() == 9) {
    // Individuals without a birth number get 9 digits starting with 6 and a
    // check digit over digits 2-8; other 9-digit numbers are pre-1954 birth
    // numbers, which have none.
    if (n[0] != '6') return kPass;
    static constexpr int kWeights[] = {8, 7, 6, 5, 4, 3, 2};
    int d = 11 - WeightedSum(n.substr(1), kWeights) % 11;  // 1..11
    if (9 - d % 10 != Digit(n[8])) return "check digit does not match";
    return kPass;
  }
  // 10 digits (birth numbers from 1954): divisible by 11, except that when
  // the first 9 leave 10 the check digit is 0.
  if (ModOf(n, 11) != 0 && !(ModOf(n.substr(0, 9), 11) == 10 && n[9] == '0')) {
    return "check digit does not match";
  }
  return kPass;
}

Rule VatDe(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n) || n[0] == '0') {
    return "must be 9 digits, the first not 0";
  }
  if (Iso7064Mod11_10(n.substr(0, 8)) != Digit(n[8])) return "check digit does not match";
  return kPass;
}

Rule VatDk(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n) || n[0] == '0') {
    return "must be 8 digits, the first not 0";
  }
  static constexpr int kWeights[] = {2, 7, 6, 5, 4, 3, 2, 1};
  if (WeightedSum(n, kWeights) % 11 != 0) return "check digit does not match";
  return kPass;
}

Rule VatEe(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n)) return "must be 9 digits";
  static constexpr int kWeights[] = {3, 7, 1, 3, 7, 1, 3, 7, 1};
  if (WeightedSum(n, kWeights) % 10 != 0) return "check digit does not match";
  return kPass;
}

Rule VatEl(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n)) return "must be 9 digits";
  static constexpr int kWeights[] = {256, 128, 64, 32, 16, 8, 4, 2};
  if (WeightedSum(n, kWeights) % 11 % 10 != Digit(n[8])) return "check digit does not match";
  return kPass;
}

// The DNI letter of a number (the remainder mod 23 picks the letter).
char DniLetter(int number) { return "TRWAGMYFPDXBNJZSQVHLCKE"[number % 23]; }

Rule VatEs(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n.substr(1, 7)) ||
      !(IsUpper(n[0]) || absl::ascii_isdigit(static_cast<unsigned char>(n[0])))) {
    return "must be 9 characters: a letter or digit, 7 digits, a letter or digit";
  }
  const char first = n[0];
  const char last = n[8];
  if (absl::ascii_isdigit(static_cast<unsigned char>(first))) {
    // DNI (Spanish natural persons): 8 digits and a check letter.
    if (!IsUpper(last)) return "must end in a check letter";
    if (DniLetter(ModOf(n.substr(0, 8), 23)) != last) return "check letter does not match";
    return kPass;
  }
  if (first == 'X' || first == 'Y' || first == 'Z' || first == 'K' || first == 'L' ||
      first == 'M') {
    // NIE (foreigners: X, Y, Z stand for 0, 1, 2) and K/L/M numbers (the DNI
    // rule over the 7 digits): a check letter.
    if (!IsUpper(last)) return "must end in a check letter";
    int prefix = first == 'Y' ? 1 : first == 'Z' ? 2 : 0;
    int number = prefix * 10000000 + ModOf(n.substr(1, 7), 100000000);
    if (DniLetter(number) != last) return "check letter does not match";
    return kPass;
  }
  if (!absl::StrContains("ABCDEFGHJNPQRSUVW", first)) return "has an unknown first letter";
  // CIF (legal entities): digits 1, 3, 5, 7 doubled (digit sums), 2, 4, 6 as
  // they are; the check is a digit, or the same value as a letter of
  // "JABCDEFGHI". Which of the two an entity type uses is not enforced.
  int sum = 0;
  for (size_t i = 1; i <= 7; ++i) {
    int d = Digit(n[i]);
    if (i % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  int check = (10 - sum % 10) % 10;
  if (last != '0' + check && last != "JABCDEFGHI"[check]) return "check character does not match";
  return kPass;
}

Rule VatFi(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n)) return "must be 8 digits";
  static constexpr int kWeights[] = {7, 9, 10, 5, 8, 4, 2, 1};
  if (WeightedSum(n, kWeights) % 11 != 0) return "check digit does not match";
  return kPass;
}

Rule VatFr(absl::string_view n) {
  // Key characters: digits and letters except I and O.
  auto is_key = [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
           (IsUpper(c) && c != 'I' && c != 'O');
  };
  if (n.size() != 11 || !is_key(n[0]) || !is_key(n[1]) || !IsDigits(n.substr(2))) {
    return "must be a 2-character key followed by 9 digits";
  }
  absl::string_view siren = n.substr(2);
  // Monaco's businesses have French VAT numbers whose "SIREN" starts 000 and
  // is not a real SIREN (no Luhn digit).
  if (!absl::StartsWith(siren, "000") && !LuhnValid(siren)) {
    return "SIREN check digit does not match";
  }
  if (IsDigits(n.substr(0, 2)) && (12 + 3 * ModOf(siren, 97)) % 97 != ModOf(n.substr(0, 2), 100)) {
    return "key does not match";
  }
  return kPass;
}

Rule VatHr(absl::string_view n) {
  if (n.size() != 11 || !IsDigits(n)) return "must be 11 digits";
  if (Iso7064Mod11_10(n.substr(0, 10)) != Digit(n[10])) return "check digit does not match";
  return kPass;
}

Rule VatHu(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n)) return "must be 8 digits";
  static constexpr int kWeights[] = {9, 7, 3, 1, 9, 7, 3, 1};
  if (WeightedSum(n, kWeights) % 10 != 0) return "check digit does not match";
  return kPass;
}

Rule VatIe(absl::string_view n) {
  // Check letters: a remainder mod 23, 0 written W.
  static constexpr absl::string_view kLetters = "WABCDEFGHIJKLMNOPQRSTUV";
  std::string digits;  // 7 digits, in weight order.
  char check;
  int extra = 0;  // Value of the optional 9th character.
  if (n.size() == 8 && absl::ascii_isdigit(static_cast<unsigned char>(n[0])) && IsUpper(n[1]) &&
      IsDigits(n.substr(2, 5)) && IsUpper(n[7])) {
    // Old form: digit, letter, 5 digits, check letter; weighed as
    // "0" + the 5 digits + the first digit.
    digits = absl::StrCat("0", n.substr(2, 5), n.substr(0, 1));
    check = n[7];
  } else if ((n.size() == 8 || n.size() == 9) && IsDigits(n.substr(0, 7)) && IsUpper(n[7])) {
    digits = std::string(n.substr(0, 7));
    check = n[7];
    if (n.size() == 9) {
      if (n[8] != 'W' && (n[8] < 'A' || n[8] > 'I')) return "has an invalid 9th character";
      extra = static_cast<int>(kLetters.find(n[8]));
    }
  } else {
    return "must be 7 digits and 1 or 2 letters, or digit, letter, 5 digits, letter";
  }
  static constexpr int kWeights[] = {8, 7, 6, 5, 4, 3, 2};
  int r = (WeightedSum(digits, kWeights) + 9 * extra) % 23;
  if (kLetters[r] != check) return "check letter does not match";
  return kPass;
}

Rule VatIt(absl::string_view n) {
  if (n.size() != 11 || !IsDigits(n)) return "must be 11 digits";
  if (ModOf(n.substr(0, 7), 10000000) == 0) return "has an all-zero company number";
  // Digits 8-10 are the issuing office: provinces 001-100, 120, 121, and 888
  // and 999 for special registrations.
  int office = ModOf(n.substr(7, 3), 1000);
  if (!((office >= 1 && office <= 100) || office == 120 || office == 121 || office == 888 ||
        office == 999)) {
    return "has an unknown office code";
  }
  if (!LuhnValid(n)) return "check digit does not match";
  return kPass;
}

Rule VatLt(absl::string_view n) {
  // Legal entities: 9 digits with 1 in 8th place; temporary taxpayers: 12
  // digits with 1 in 11th place.
  if (!IsDigits(n) || !((n.size() == 9 && n[7] == '1') || (n.size() == 12 && n[10] == '1'))) {
    return "must be 9 or 12 digits of the VAT form";
  }
  // Weights 1..9,1.. over all but the check digit; a remainder of 10 gets a
  // second pass with weights shifted by 2, whose 10 becomes 0.
  const size_t len = n.size() - 1;
  int sum = 0;
  for (size_t i = 0; i < len; ++i) sum += Digit(n[i]) * static_cast<int>(1 + i % 9);
  int check = sum % 11;
  if (check == 10) {
    sum = 0;
    for (size_t i = 0; i < len; ++i) sum += Digit(n[i]) * static_cast<int>(1 + (i + 2) % 9);
    check = sum % 11 % 10;
  }
  if (check != Digit(n[len])) return "check digit does not match";
  return kPass;
}

Rule VatLu(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n)) return "must be 8 digits";
  if (ModOf(n.substr(0, 6), 89) != ModOf(n.substr(6), 100)) return "check digits do not match";
  return kPass;
}

Rule VatLv(absl::string_view n) {
  if (n.size() != 11 || !IsDigits(n)) return "must be 11 digits";
  if (n[0] <= '3') return kPass;  // Natural persons: format only (see header).
  static constexpr int kWeights[] = {9, 1, 4, 8, 3, 10, 2, 5, 7, 6, 1};
  if (WeightedSum(n, kWeights) % 11 != 3) return "check digit does not match";
  return kPass;
}

Rule VatMt(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n) || n[0] == '0') return "must be 8 digits, the first not 0";
  static constexpr int kWeights[] = {3, 4, 6, 7, 8, 9, 10, 1};
  if (WeightedSum(n, kWeights) % 37 != 0) return "check digits do not match";
  return kPass;
}

Rule VatNl(absl::string_view n) {
  if (n.size() != 12 || !IsDigits(n.substr(0, 9)) || n[9] != 'B' || !IsDigits(n.substr(10)) ||
      n.substr(10) == "00") {
    return "must be 9 digits, B and 2 digits (not 00)";
  }
  // Older numbers: the Dutch "11-proof" (weights 9..2, remainder = 9th digit).
  static constexpr int kWeights[] = {9, 8, 7, 6, 5, 4, 3, 2};
  if (WeightedSum(n, kWeights) % 11 == Digit(n[8])) return kPass;
  // Numbers issued to sole traders since 2020: ISO 7064 mod 97 over "NL" +
  // the number, letters as 10..35 (N=23, L=21, B=11), remainder 1.
  std::string digits = absl::StrCat("2321", n.substr(0, 9), "11", n.substr(10));
  if (ModOf(digits, 97) == 1) return kPass;
  return "check digit does not match";
}

Rule VatPl(absl::string_view n) { return NipRule(n); }

Rule VatPt(absl::string_view n) {
  if (n.size() != 9 || !IsDigits(n) || n[0] == '0') return "must be 9 digits, the first not 0";
  static constexpr int kWeights[] = {9, 8, 7, 6, 5, 4, 3, 2};
  int check = 11 - WeightedSum(n, kWeights) % 11;
  if (check >= 10) check = 0;
  if (check != Digit(n[8])) return "check digit does not match";
  return kPass;
}

Rule VatRo(absl::string_view n) {
  if (!IsDigits(n) || n.size() < 2 || n.size() > 10 || n[0] == '0') {
    return "must be 2 to 10 digits, the first not 0";
  }
  // Weights 7,5,3,2,1,7,5,3,2 aligned to the right of the number (as if
  // zero-padded to 10 digits).
  static constexpr int kWeights[] = {7, 5, 3, 2, 1, 7, 5, 3, 2};
  const size_t pad = 10 - n.size();
  int sum = 0;
  for (size_t i = 0; i + 1 < n.size(); ++i) sum += Digit(n[i]) * kWeights[pad + i];
  if (sum * 10 % 11 % 10 != Digit(n.back())) return "check digit does not match";
  return kPass;
}

Rule VatSe(absl::string_view n) {
  if (n.size() != 12 || !IsDigits(n)) return "must be 12 digits";
  int suffix = ModOf(n.substr(10), 100);
  if (suffix < 1 || suffix > 94) return "must end in 01 to 94";
  if (!LuhnValid(n.substr(0, 10))) return "check digit does not match";
  return kPass;
}

Rule VatSi(absl::string_view n) {
  if (n.size() != 8 || !IsDigits(n) || n[0] == '0') return "must be 8 digits, the first not 0";
  static constexpr int kWeights[] = {8, 7, 6, 5, 4, 3, 2};
  int check = 11 - WeightedSum(n, kWeights) % 11;
  if (check == 10) check = 0;
  // 11 (remainder 0) is never issued; it cannot equal a digit.
  if (check != Digit(n[7])) return "check digit does not match";
  return kPass;
}

Rule VatSk(absl::string_view n) {
  if (n.size() != 10 || !IsDigits(n) || n[0] == '0' || !absl::StrContains("234789", n[2])) {
    return "must be 10 digits, the first not 0, the third one of 2,3,4,7,8,9";
  }
  if (ModOf(n, 11) != 0) return "check digit does not match";
  return kPass;
}

struct VatCountry {
  absl::string_view prefix;
  Rule (*rule)(absl::string_view national);
};

constexpr VatCountry kVatCountries[] = {
    {"AT", VatAt}, {"BE", VatBe}, {"BG", VatBg}, {"CY", VatCy}, {"CZ", VatCz}, {"DE", VatDe},
    {"DK", VatDk}, {"EE", VatEe}, {"EL", VatEl}, {"ES", VatEs}, {"FI", VatFi}, {"FR", VatFr},
    {"HR", VatHr}, {"HU", VatHu}, {"IE", VatIe}, {"IT", VatIt}, {"LT", VatLt}, {"LU", VatLu},
    {"LV", VatLv}, {"MT", VatMt}, {"NL", VatNl}, {"PL", VatPl}, {"PT", VatPt}, {"RO", VatRo},
    {"SE", VatSe}, {"SI", VatSi}, {"SK", VatSk},
};

absl::StatusOr<std::string> NormalizeVat(absl::string_view field, absl::string_view value) {
  absl::StatusOr<std::string> compact = Compact(field, "EU VAT number", value);
  if (!compact.ok()) return compact.status();
  absl::string_view s = *compact;
  if (s.size() < 2 || !IsUpper(s[0]) || !IsUpper(s[1])) {
    return Invalid(field, "EU VAT number", "must start with a two-letter country prefix");
  }
  absl::string_view prefix = s.substr(0, 2);
  for (const VatCountry& country : kVatCountries) {
    if (country.prefix != prefix) continue;
    Rule broken = country.rule(s.substr(2));
    if (!broken.empty()) {
      return Invalid(field, absl::StrCat("EU VAT number (", prefix, ")"), broken);
    }
    return std::move(compact).value();
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown EU VAT country prefix"));
}

}  // namespace

absl::StatusOr<std::string> NormalizeTaxId(absl::string_view field, TaxIdKind kind,
                                           absl::string_view value) {
  switch (kind) {
    case TaxIdKind::kNip: {
      absl::StatusOr<std::string> n = Compact(field, "NIP", value);
      if (!n.ok()) return n.status();
      absl::string_view digits = *n;
      if (absl::StartsWith(digits, "PL")) digits.remove_prefix(2);
      if (Rule broken = NipRule(digits); !broken.empty()) return Invalid(field, "NIP", broken);
      return std::string(digits);
    }
    case TaxIdKind::kRegon: {
      absl::StatusOr<std::string> n = Compact(field, "REGON", value);
      if (!n.ok()) return n.status();
      if (Rule broken = RegonRule(*n); !broken.empty()) return Invalid(field, "REGON", broken);
      return n;
    }
    case TaxIdKind::kKrs: {
      absl::StatusOr<std::string> n = Compact(field, "KRS", value);
      if (!n.ok()) return n.status();
      if (!IsDigits(*n) || n->size() > 10) return Invalid(field, "KRS", "must be 1 to 10 digits");
      // No check digit exists: KRS numbers are assigned in sequence.
      std::string padded = absl::StrCat(std::string(10 - n->size(), '0'), *n);
      if (padded == "0000000000") return Invalid(field, "KRS", "must not be all zeros");
      return padded;
    }
    case TaxIdKind::kEuVat:
      return NormalizeVat(field, value);
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown tax id kind"));
}

}  // namespace crm::contacts
