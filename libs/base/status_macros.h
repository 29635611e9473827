// Early-return helpers for absl::Status and absl::StatusOr, which Debian's
// Abseil (20220623) does not ship. Usable in any function returning
// absl::Status or absl::StatusOr<T>. Header-only; no state.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CRM_STATUS_CONCAT_INNER_(a, b) a##b
#define CRM_STATUS_CONCAT_(a, b) CRM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) once and returns it from the enclosing
// function if it is not OK.
#define CRM_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status crm_status_ = (expr);       \
    if (!crm_status_.ok()) return crm_status_; \
  } while (false)

// `CRM_ASSIGN_OR_RETURN(auto x, Foo());` evaluates Foo() (an absl::StatusOr)
// once; on error returns its status, otherwise moves the value into `lhs`.
#define CRM_ASSIGN_OR_RETURN(lhs, expr) \
  CRM_ASSIGN_OR_RETURN_IMPL_(CRM_STATUS_CONCAT_(crm_statusor_, __LINE__), lhs, expr)

#define CRM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
