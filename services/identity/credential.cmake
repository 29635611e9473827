# Identity's credential store: password hash and history, forced change, the
# durable lockout record, last login, TOTP secret and recovery codes, and the
# notices queued for the mailing service (credential_store.*), on PostgreSQL,
# tested on a database migrated with migrations/. Included by
# services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_credential_store_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/credential_store.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/credential_store.h
  DEPS crm_base crm_pg identity_password_lib absl::status absl::statusor absl::strings
       absl::time)

crm_cc_test(NAME identity_credential_store_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/credential_store_test.cc
  DEPS identity_credential_store_lib identity_store_lib crm_testing_pg
  FIXTURES pg)
