# Contacts' storage: persons in PostgreSQL (person_store.h) and the sealing of
# their personal fields under per-subject data keys (person_sealer.h).
# Included by services/contacts/CMakeLists.txt.
crm_cc_library(NAME contacts_store_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/person_store.cc ${CMAKE_CURRENT_LIST_DIR}/person_sealer.cc
       ${CMAKE_CURRENT_LIST_DIR}/retention.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/person_store.h ${CMAKE_CURRENT_LIST_DIR}/person_sealer.h
       ${CMAKE_CURRENT_LIST_DIR}/retention.h
  DEPS crm_contacts_proto crm_pg crm_crypto crm_rpc_auth crm_base protobuf::libprotobuf absl::status
       absl::statusor absl::strings absl::time)
