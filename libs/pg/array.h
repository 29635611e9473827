// PostgreSQL array literals for bound parameters: libpqxx 6.4 binds scalars
// only, so a list travels as one text parameter cast in SQL, e.g.
//   tx.exec_params("... WHERE id = ANY($1::uuid[])", pg::ArrayLiteral(ids));
// Every element is double-quoted with '"' and '\' escaped, so any text is
// safe (NUL bytes are not: PostgreSQL text cannot hold them).
#pragma once

#include <string>

#include "absl/types/span.h"

namespace crm::pg {

inline std::string ArrayLiteral(absl::Span<const std::string> values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace crm::pg
