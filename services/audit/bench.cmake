# Audit's end-to-end benchmark (ingest_bench.cc): ingestion, full verification
# and proofs on a PostgreSQL of its own (tools/testenv) against raw COPY, a bare
# scan, SHA-256 and one round trip. Included by services/audit/CMakeLists.txt.
# Uses the test helpers (libs/testing), so it needs CRM_BUILD_TESTS (on by
# default); the source dir locates tools/testenv and the migrations.
if(CRM_BUILD_BENCHMARKS AND CRM_BUILD_TESTS)
  # libpq itself, for COPY without libpqxx (the floor and the bulk load).
  crm_cc_bench(NAME ingest_bench SRCS ${CMAKE_CURRENT_LIST_DIR}/ingest_bench.cc
    DEPS audit_log_lib audit_merkle_lib crm_testing_pg crm_testing crm_audit_proto crm_pg
         crm_crypto crm_log crm_base PkgConfig::PQXX PkgConfig::LIBPQ OpenSSL::Crypto absl::flat_hash_map
         absl::status absl::statusor absl::str_format absl::strings absl::time)
  target_compile_definitions(ingest_bench PRIVATE CRM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endif()
