# Contacts' end-to-end benchmark (contacts_bench.cc): CreatePerson against
# pgbench running the same statements, ImportPersons against COPY of the same
# rows, GetPerson and look-up latency at half of peak over 10^6 subjects, on a
# PostgreSQL and Redis of its own (tools/testenv). Included by
# services/contacts/CMakeLists.txt. Uses the test helpers (libs/testing), so
# it needs CRM_BUILD_TESTS (on by default).
if(CRM_BUILD_BENCHMARKS AND CRM_BUILD_TESTS)
  crm_cc_bench(NAME contacts_bench SRCS ${CMAKE_CURRENT_LIST_DIR}/contacts_bench.cc
    DEPS contacts_service_lib crm_bench_load crm_testing_api crm_testing_pg crm_testing crm_rpc_testing crm_outbox crm_rpc crm_pg
         crm_crypto crm_log crm_base PkgConfig::PQXX PkgConfig::LIBPQ absl::status absl::statusor
         absl::strings absl::time)
  target_compile_definitions(contacts_bench PRIVATE CRM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
