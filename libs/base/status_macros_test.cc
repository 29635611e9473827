#include "libs/base/status_macros.h"

#include <memory>
#include <string>

#include "libs/testing/status_matchers.h"

namespace crm::base {
namespace {

using ::crm::testing::IsOk;
using ::crm::testing::IsOkAndHolds;
using ::crm::testing::StatusIs;

absl::Status FailIf(bool fail) { return fail ? absl::NotFoundError("gone") : absl::OkStatus(); }

absl::Status Chain(bool fail, int* reached) {
  CRM_RETURN_IF_ERROR(FailIf(fail));
  ++*reached;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail) {
  if (fail) return absl::InvalidArgumentError("count: required");
  return std::make_unique<int>(7);
}

absl::StatusOr<int> Doubled(bool fail) {
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<int> v, MakeInt(fail));
  return *v * 2;
}

TEST(StatusMacrosTest, ReturnIfErrorPassesOkThrough) {
  int reached = 0;
  EXPECT_THAT(Chain(false, &reached), IsOk());
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsEarlyWithTheError) {
  int reached = 0;
  EXPECT_THAT(Chain(true, &reached), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(reached, 0);
}

TEST(StatusMacrosTest, AssignOrReturnMovesMoveOnlyValues) {
  EXPECT_THAT(Doubled(false), IsOkAndHolds(14));
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheError) {
  EXPECT_THAT(Doubled(true),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("count")));
}

}  // namespace
}  // namespace crm::base
