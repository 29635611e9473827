// Company tax identifiers of the contacts service: validation by format and
// check digits, and normalisation to one canonical spelling so that the same
// identifier typed two ways ("PL 584-030-44-72", "5840304472") is stored and
// matched as one value.
//
// Error messages name the field and the rule broken, never the value: a tax id
// can identify a natural person (sole traders' NIPs, Spanish DNIs, Czech birth
// numbers used as DIČ...), and error messages end up in logs and responses.
//
// Input: at most 64 bytes; ASCII letters and digits, with spaces, hyphens and
// dots as separators (dropped). Anything else, including NUL and any byte
// outside ASCII, is rejected before any other rule is applied.
//
// Kinds and their rules:
//  - kNip (Polish NIP): 10 digits, weights 6,5,7,2,3,4,5,6,7, sum mod 11 is
//    the 10th digit (10 is never valid). An optional "PL" prefix is dropped.
//  - kRegon: 9 digits (weights 8,9,2,3,4,5,6,7, mod 11, 10 -> 0) or 14 digits
//    (the first 9 a valid REGON, then weights 2,4,8,5,0,9,7,3,6,1,2,4,8 over
//    the first 13, mod 11, 10 -> 0).
//  - kKrs: up to 10 digits, left-padded with zeros to 10; all zeros invalid.
//    KRS numbers are sequential and have NO check digit, so only the format
//    can be checked: a mistyped KRS that is well formed is accepted.
//  - kEuVat: a two-letter prefix (case-insensitive; Greece is "EL", "GR" is
//    unknown; Northern Ireland's "XI" is unknown) then the national number.
//    Canonical form: upper-case prefix + national number, no separators.
//
// EU VAT countries with check digits (the national number's main forms):
//   AT (U + 8 digits), BE (10 digits, 97-modulus), BG (9-digit form),
//   CY, CZ (8-digit legal entities, 9-digit "6..." numbers, 10-digit numbers
//   by the mod-11 rule), DE (ISO 7064 MOD 11,10), DK, EE, EL, ES (DNI, NIE,
//   CIF with a digit or a letter as check character, K/L/M numbers), FI,
//   FR (numeric key over the SIREN, SIREN Luhn), HR (ISO 7064 MOD 11,10),
//   HU, IE (7 digits + check letter [+ A-I/W], and the old form digit,
//   letter, 5 digits, check letter), IT (Luhn + office code), LT, LU,
//   LV (legal entities), MT, NL (mod 11 or the 2020+ mod 97), PL (NIP), PT,
//   RO, SE (Luhn over the first 10 digits), SI, SK.
// Format only (length and character set; no check digit is verified):
//   - BG 10-digit numbers (personal numbers of individuals and foreigners);
//   - CZ 9-digit numbers not starting with 6 (birth numbers issued before
//     1954, which have no check digit); birth dates in CZ numbers are not
//     checked either;
//   - LV numbers of natural persons (first digit 0-3): their birth date is
//     not checked;
//   - FR numbers whose 2-character key contains a letter: the key itself is
//     not verified (the SIREN's Luhn digit still is, as for numeric keys).
//     SIRENs beginning "000" (Monaco) are exempt from the Luhn check.
// Not accepted at all: Irish old-style numbers with "+" or "*" as the second
// character (those characters are not in the accepted input alphabet),
// Romanian 13-digit personal numbers (CNP), and the shortened spellings some
// countries allow (BE with 9 digits, NL without leading zeros...).
//
// A number that passes is well formed, not necessarily issued or active:
// only VIES (or the national register) can tell that.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::contacts {

enum class TaxIdKind { kNip, kRegon, kKrs, kEuVat };

// The canonical form of `value` of `kind`, or INVALID_ARGUMENT whose message
// names `field` and the rule broken (e.g. "company.tax_ids[0].value: NIP
// check digit does not match"), never the value itself.
absl::StatusOr<std::string> NormalizeTaxId(absl::string_view field, TaxIdKind kind,
                                           absl::string_view value);

}  // namespace crm::contacts
