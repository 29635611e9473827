# Identity's grant store: roles (custom roles and "MFA required" flags),
# time-bound grants and service-account bindings on PostgreSQL
# (grant_store.*), tested on a database migrated with migrations/. Included by
# services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_grant_store_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/grant_store.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/grant_store.h
  DEPS crm_base crm_pg identity_access_lib absl::status absl::statusor absl::strings absl::time)

crm_cc_test(NAME identity_grant_store_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/grant_store_test.cc
  DEPS identity_grant_store_lib identity_store_lib crm_testing_pg
  FIXTURES pg)
