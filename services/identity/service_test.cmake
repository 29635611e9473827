# Identity's service tests: the gRPC API through a real in-process server over
# mutual TLS (TestPki certificates), IdentityApp on a database migrated with
# migrations/, a private redis-server the tests stop and restart, and a
# FakeClock. Included by services/identity/CMakeLists.txt.
crm_cc_test(NAME identity_service_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/identity_service_test.cc
  DEPS identity_service_lib crm_testing_pg crm_testing_grpc crm_rpc_testing crm_auth_testing
       crm_auth crm_crypto crm_json OpenSSL::Crypto absl::strings absl::time
  FIXTURES pg redis)

crm_cc_test(NAME identity_subject_verification_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/subject_verification_test.cc
  DEPS identity_service_lib crm_testing_pg absl::strings
  FIXTURES pg redis)
