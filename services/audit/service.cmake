# crm-audit's handlers and binary, and audit-verify. Included by
# services/audit/CMakeLists.txt.
crm_cc_library(NAME audit_service_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/audit_service.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/audit_service.h
  DEPS audit_log_lib crm_audit_proto crm_subject_proto crm_rpc crm_rpc_auth crm_auth crm_log
       crm_base protobuf::libprotobuf absl::strings)

crm_cc_binary(NAME crm-audit SRCS ${CMAKE_CURRENT_LIST_DIR}/main.cc
  DEPS audit_service_lib crm_service crm_service_auth)

# The independent verifier (tools/audit-verify runs it).
crm_cc_binary(NAME audit-verify SRCS ${CMAKE_CURRENT_LIST_DIR}/verify_main.cc
  DEPS audit_log_lib crm_config crm_pg crm_base)
