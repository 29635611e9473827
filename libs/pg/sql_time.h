// Timestamps between SQL and C++ as microseconds since the Unix epoch, the
// precision of timestamptz: a column read as a bigint (absl::FromUnixMicros)
// and a bound bigint parameter (absl::ToUnixMicros) used as a timestamptz.
//
//   "SELECT " CRM_TS("created_at") " FROM t WHERE due < " CRM_TS_PARAM("$1")
#pragma once

#define CRM_TS(col) "(EXTRACT(EPOCH FROM " col ") * 1000000)::bigint"
#define CRM_TS_PARAM(n) "('epoch'::timestamptz + (" n ")::bigint * interval '1 microsecond')"
