# Identity's access rules as plain C++ (no gRPC, no SQL): the permission
# catalogue and built-in roles, time-bound role grants (effective permissions,
# token expiry, expiry notices, who may grant what), TOTP second factors and
# hashed recovery codes. Included by services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_access_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/permissions.cc ${CMAKE_CURRENT_LIST_DIR}/grants.cc
       ${CMAKE_CURRENT_LIST_DIR}/totp.cc ${CMAKE_CURRENT_LIST_DIR}/recovery_codes.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/permissions.h ${CMAKE_CURRENT_LIST_DIR}/grants.h
       ${CMAKE_CURRENT_LIST_DIR}/totp.h ${CMAKE_CURRENT_LIST_DIR}/recovery_codes.h
  DEPS crm_base crm_crypto absl::status absl::statusor absl::strings absl::time absl::span
       OpenSSL::Crypto)

crm_cc_test(NAME identity_access_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/permissions_test.cc ${CMAKE_CURRENT_LIST_DIR}/grants_test.cc
       ${CMAKE_CURRENT_LIST_DIR}/totp_test.cc ${CMAKE_CURRENT_LIST_DIR}/recovery_codes_test.cc
  DEPS identity_access_lib)
