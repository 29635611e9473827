#include "services/audit/copy_text.h"

#include "absl/strings/str_cat.h"

namespace crm::audit {

using pg::AppendCopyBytea;
using pg::AppendCopyText;
using pg::CopyTime;

void AppendLeafCopyRow(std::string& out, uint64_t index, const LeafRecord& r,
                       absl::string_view leaf_hash, absl::string_view ingested_at) {
  absl::StrAppend(&out, index, "\t", r.event_id, "\t", CopyTime(r.event_time), "\t");
  for (const std::string* field :
       {&r.service, &r.actor_user_id, &r.actor_service, &r.actor_session, &r.action, &r.resource}) {
    AppendCopyText(out, *field);
    out.push_back('\t');
  }
  if (r.subject_id.empty()) {
    out.append("\\N");
  } else {
    AppendCopyText(out, r.subject_id);
  }
  absl::StrAppend(&out, "\t", r.outcome, "\t");
  AppendCopyText(out, r.request_id);
  out.push_back('\t');
  AppendCopyText(out, r.key_scope);
  out.append(r.has_changes ? "\tt\t" : "\tf\t");
  AppendCopyBytea(out, r.clear_part, /*empty_is_null=*/true);
  out.push_back('\t');
  AppendCopyBytea(out, r.sealed, /*empty_is_null=*/true);
  out.push_back('\t');
  AppendCopyBytea(out, leaf_hash, /*empty_is_null=*/false);
  out.push_back('\t');
  out.append(ingested_at.data(), ingested_at.size());
  out.push_back('\n');
}

void AppendNodeCopyRow(std::string& out, const merkle::NodeId& id, absl::string_view hash) {
  absl::StrAppend(&out, id.level, "\t", id.index, "\t");
  AppendCopyBytea(out, hash, /*empty_is_null=*/false);
  out.push_back('\n');
}

}  // namespace crm::audit
