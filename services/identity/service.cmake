# Identity's service layer: settings, the login guard (Redis throttling and
# lockout counters), personal-data sealing and the gRPC handlers, and the
# crm-identity binary. Included by services/identity/CMakeLists.txt.
crm_cc_library(NAME identity_service_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/identity_config.cc ${CMAKE_CURRENT_LIST_DIR}/login_guard.cc
       ${CMAKE_CURRENT_LIST_DIR}/personal_data.cc ${CMAKE_CURRENT_LIST_DIR}/service_util.cc
       ${CMAKE_CURRENT_LIST_DIR}/identity_service.cc ${CMAKE_CURRENT_LIST_DIR}/login_handlers.cc
       ${CMAKE_CURRENT_LIST_DIR}/grant_handlers.cc ${CMAKE_CURRENT_LIST_DIR}/identity_app.cc
       ${CMAKE_CURRENT_LIST_DIR}/subject_verification.cc
       ${CMAKE_CURRENT_LIST_DIR}/subject_directory.cc ${CMAKE_CURRENT_LIST_DIR}/subject_handlers.cc
       ${CMAKE_CURRENT_LIST_DIR}/revocations.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/identity_config.h ${CMAKE_CURRENT_LIST_DIR}/login_guard.h
       ${CMAKE_CURRENT_LIST_DIR}/personal_data.h ${CMAKE_CURRENT_LIST_DIR}/service_util.h
       ${CMAKE_CURRENT_LIST_DIR}/identity_service.h ${CMAKE_CURRENT_LIST_DIR}/identity_app.h
       ${CMAKE_CURRENT_LIST_DIR}/subject_verification.h
       ${CMAKE_CURRENT_LIST_DIR}/subject_directory.h ${CMAKE_CURRENT_LIST_DIR}/revocations.h
  DEPS identity_store_lib identity_session_store_lib identity_credential_store_lib
       identity_grant_store_lib identity_signing_keys_lib identity_password_lib identity_access_lib
       crm_identity_proto crm_audit_proto crm_contacts_proto crm_mailing_proto crm_outbox crm_rpc crm_rpc_auth crm_auth crm_auth_redis
       crm_redis crm_service_auth crm_crypto crm_config crm_log crm_base prometheus-cpp::core
       absl::status absl::statusor absl::strings absl::synchronization absl::time
       absl::flat_hash_set absl::flat_hash_map)

crm_cc_binary(NAME crm-identity SRCS ${CMAKE_CURRENT_LIST_DIR}/main.cc
  DEPS identity_service_lib crm_service)
