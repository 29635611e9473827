// Escaping text for HTML: mailing's HTML bodies, the gateway's pages.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace crm::base {

// `s` with & < > " ' replaced by entities: safe in HTML text and in quoted
// attribute values.
std::string HtmlEscape(absl::string_view s);

}  // namespace crm::base
