# crm-audit's tests on a real PostgreSQL: the log's store level (log_test.cc:
# ingestion, replicas, checkpoints, proofs, tampering, erasure, retention)
# and the gRPC service over mutual TLS with the access policy main.cc uses,
# a fake identity serving token keys and the shared test Redis
# (service_test.cc). Included by services/audit/CMakeLists.txt.
crm_cc_test(NAME audit_log_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/log_test.cc ${CMAKE_CURRENT_LIST_DIR}/copy_text_test.cc
  DEPS audit_log_lib crm_testing_pg crm_crypto absl::flat_hash_set absl::strings absl::time
  FIXTURES pg)

crm_cc_test(NAME audit_service_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/service_test.cc
  DEPS audit_service_lib crm_service_auth crm_identity_proto crm_testing_pg crm_testing_api crm_rpc_testing
       crm_auth_testing crm_crypto crm_log absl::strings absl::time
  FIXTURES pg redis)
