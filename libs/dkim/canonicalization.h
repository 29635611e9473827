// The message parsing and "relaxed" canonicalization algorithms of DKIM
// (RFC 6376 §3.4.2 for header fields, §3.4.4 for the body), which
// crm::dkim::Signer (signer.h) hashes and signs. Exposed for tests and for
// anyone who needs to reproduce a body hash.
//
// Input is a whole RFC 5322 message with CRLF line endings. Only the relaxed
// algorithms are here; "simple" is not implemented (Signer never uses it).
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace crm::dkim {

// One header field of a message.
struct HeaderField {
  // The field name as written, without whitespace before the colon
  // ("List-Unsubscribe").
  absl::string_view name;
  // The whole field as written: name, colon, value with its continuation
  // lines, and the final CRLF.
  absl::string_view field;
};

// A message split into its header fields (top to bottom) and its body (the
// bytes after the empty line that ends the header; may be empty). Views into
// the message given to ParseMessage.
struct ParsedMessage {
  std::vector<HeaderField> headers;
  absl::string_view body;
};

// Splits `message`. INVALID_ARGUMENT if a CR or LF in it is not part of a CRLF
// pair, if there is no empty line ending the header (a message without a body
// still needs it), if the first line is a continuation line, or if a header
// line is not "<name>:" with a name of printable US-ASCII other than ':'
// (optionally followed by spaces or tabs before the colon). Messages name the
// line number, never its content.
absl::StatusOr<ParsedMessage> ParseMessage(absl::string_view message);

// RFC 6376 §3.4.2 relaxed header canonicalization of one field (as in
// HeaderField::field; the final CRLF may be missing): the name lower-cased,
// continuation lines unfolded, runs of spaces and tabs made one space,
// whitespace before and after the colon and at the end of the value removed.
// Always ends in CRLF. "B : Y\t\r\n\tZ  \r\n" -> "b:Y Z\r\n". `field` must
// contain a colon (ParseMessage guarantees it); without one, the whole input
// is taken as the name.
std::string RelaxedHeader(absl::string_view field);

// RFC 6376 §3.4.4 relaxed body canonicalization: whitespace at the end of
// each line removed, other runs of spaces and tabs made one space, empty
// lines at the end removed, a missing final CRLF added. A body that is empty,
// or has only empty or blank lines, canonicalizes to the empty string (not to
// CRLF: that is the "simple" algorithm's rule, §3.4.3).
// " C \r\nD \t E\r\n\r\n\r\n" -> " C\r\nD E\r\n".
std::string RelaxedBody(absl::string_view body);

}  // namespace crm::dkim
