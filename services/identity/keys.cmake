# Identity's token-signing keys: SigningKeys (signing_keys.h) creates, rotates
# and retires Ed25519 keys in the signing_keys table, their private halves
# wrapped under identity's KEK ring, and serves the signer and the published
# public keys. Its test runs on a database migrated with migrations/.
# Included by services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_signing_keys_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/signing_keys.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/signing_keys.h
  DEPS crm_base crm_pg crm_crypto crm_auth absl::status absl::statusor absl::strings
       absl::synchronization absl::time)

crm_cc_test(NAME identity_signing_keys_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/signing_keys_test.cc
  DEPS identity_signing_keys_lib crm_testing_pg
  FIXTURES pg)
