# Identity's end-to-end login benchmark (login_bench.cc): the whole Login on a
# PostgreSQL and Redis of its own (tools/testenv) against the raw Argon2id
# hash, and access-token verification per call with the Redis revocation
# check. Included by services/identity/CMakeLists.txt. Uses the test helpers
# (libs/testing, libs/rpc/testing), so it needs CRM_BUILD_TESTS (on by
# default); the source dir locates tools/testenv and the migrations.
if(CRM_BUILD_BENCHMARKS AND CRM_BUILD_TESTS)
  crm_cc_bench(NAME login_bench SRCS ${CMAKE_CURRENT_LIST_DIR}/login_bench.cc
    DEPS identity_service_lib crm_testing_pg crm_testing crm_rpc_testing crm_rpc crm_auth
         crm_auth_redis crm_redis crm_pg crm_crypto crm_log crm_base PkgConfig::ARGON2 absl::status
         absl::statusor absl::strings absl::time)
  target_compile_definitions(login_bench PRIVATE CRM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
