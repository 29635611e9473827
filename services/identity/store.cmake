# Identity's user/team store: the UserStore interface (user_store.h), its
# PostgreSQL implementation (pg_user_store.*) and an in-memory fake
# (in_memory_user_store.*), with one contract suite run against both on a
# database migrated with migrations/. Included by
# services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_store_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/pg_user_store.cc ${CMAKE_CURRENT_LIST_DIR}/in_memory_user_store.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/user_store.h ${CMAKE_CURRENT_LIST_DIR}/pg_user_store.h
       ${CMAKE_CURRENT_LIST_DIR}/in_memory_user_store.h
  DEPS crm_base crm_pg absl::status absl::statusor absl::strings absl::synchronization absl::time)

crm_cc_test(NAME identity_store_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/user_store_test.cc
  DEPS identity_store_lib crm_testing_pg
  FIXTURES pg)
