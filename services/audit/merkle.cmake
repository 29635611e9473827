# The audit log's RFC 6962 Merkle tree (merkle.h): hashing, the incremental
# builder, proofs from stored subtree hashes, verification. Included by
# services/audit/CMakeLists.txt.
crm_cc_library(NAME audit_merkle_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/merkle.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/merkle.h
  DEPS crm_base crm_crypto absl::flat_hash_map absl::function_ref absl::span absl::status
       absl::statusor absl::strings OpenSSL::Crypto)

crm_cc_test(NAME audit_merkle_test SRCS ${CMAKE_CURRENT_LIST_DIR}/merkle_test.cc
  DEPS audit_merkle_lib crm_crypto absl::strings)

crm_cc_bench(NAME merkle_bench SRCS ${CMAKE_CURRENT_LIST_DIR}/merkle_bench.cc
  DEPS audit_merkle_lib crm_crypto OpenSSL::Crypto)
