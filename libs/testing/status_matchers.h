// gMock matchers for absl::Status and absl::StatusOr<T>, which Debian's Abseil
// does not ship:
//   EXPECT_THAT(s, IsOk());
//   EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("email")));
//   EXPECT_THAT(maybe_value, IsOkAndHolds(42));
// Also CRM_ASSERT_OK_AND_ASSIGN(auto v, Foo()).
#pragma once

#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crm::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, negation ? "is not OK" : "is OK") {
  const absl::Status& s = ::crm::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(IsOkAndHolds, value_matcher,
          negation ? "is not OK or holds a non-matching value"
                   : "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "does not have code " : "has code ") +
               absl::StatusCodeToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher, negation)) {
  const absl::Status& s = ::crm::testing::GetStatus(arg);
  if (s.code() != code) {
    *result_listener << "status is " << s;
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// StatusIs(code) with any message.
inline auto StatusIs(absl::StatusCode code) { return StatusIs(code, ::testing::_); }

}  // namespace crm::testing

#define CRM_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  CRM_ASSERT_OK_AND_ASSIGN_IMPL_(CRM_STATUS_TEST_CONCAT_(crm_test_so_, __LINE__), lhs, expr)
#define CRM_STATUS_TEST_CONCAT_INNER_(a, b) a##b
#define CRM_STATUS_TEST_CONCAT_(a, b) CRM_STATUS_TEST_CONCAT_INNER_(a, b)
#define CRM_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  ASSERT_TRUE(tmp.ok()) << tmp.status();               \
  lhs = std::move(tmp).value()
