# Identity's session and login-history store: the SessionStore interface
# (session_store.h), its PostgreSQL implementation (pg_session_store.*) and an
# in-memory fake (in_memory_session_store.*), with one contract suite run
# against both on a database migrated with migrations/. Included by
# services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_session_store_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/pg_session_store.cc
       ${CMAKE_CURRENT_LIST_DIR}/in_memory_session_store.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/session_store.h ${CMAKE_CURRENT_LIST_DIR}/pg_session_store.h
       ${CMAKE_CURRENT_LIST_DIR}/in_memory_session_store.h
  DEPS crm_base crm_pg absl::status absl::statusor absl::strings absl::synchronization absl::time)

crm_cc_test(NAME identity_session_store_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/session_store_test.cc
  DEPS identity_session_store_lib identity_store_lib crm_testing_pg
  FIXTURES pg)
