# The audit log's storage: the leaf encoding and event split (leaf.h), the
# per-scope data keys (data_keys.h) and the PostgreSQL log with its Merkle
# nodes and checkpoints (log_store.h). Included by services/audit/CMakeLists.txt.
crm_cc_library(NAME audit_log_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/leaf.cc ${CMAKE_CURRENT_LIST_DIR}/data_keys.cc
       ${CMAKE_CURRENT_LIST_DIR}/copy_text.cc
       ${CMAKE_CURRENT_LIST_DIR}/log_store.cc ${CMAKE_CURRENT_LIST_DIR}/audit_log.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/leaf.h ${CMAKE_CURRENT_LIST_DIR}/data_keys.h
       ${CMAKE_CURRENT_LIST_DIR}/copy_text.h
       ${CMAKE_CURRENT_LIST_DIR}/log_store.h ${CMAKE_CURRENT_LIST_DIR}/audit_log.h
  DEPS audit_merkle_lib crm_auth crm_rpc_auth crm_audit_proto crm_pg crm_crypto crm_base absl::flat_hash_map
       absl::flat_hash_set absl::status absl::statusor absl::strings absl::synchronization
       absl::time)
