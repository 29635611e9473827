# crm-contacts' handlers and binary. Included by services/contacts/CMakeLists.txt.
crm_cc_library(NAME contacts_service_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/contacts_service.cc ${CMAKE_CURRENT_LIST_DIR}/subject_data_service.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/contacts_service.h ${CMAKE_CURRENT_LIST_DIR}/subject_data_service.h
  DEPS contacts_store_lib contacts_company_rules_lib crm_subject_proto crm_service_subject_data contacts_person_rules_lib contacts_catalogue_lib crm_contacts_proto
       crm_audit_proto crm_outbox crm_rpc crm_rpc_auth crm_auth crm_pg crm_crypto crm_base
       protobuf::libprotobuf absl::strings)

crm_cc_binary(NAME crm-contacts SRCS ${CMAKE_CURRENT_LIST_DIR}/main.cc
  DEPS contacts_service_lib crm_service crm_service_auth crm_service_outbox crm_outbox
       crm_erasure_proto crm_rpc)

crm_cc_test(NAME contacts_service_test SRCS ${CMAKE_CURRENT_LIST_DIR}/service_test.cc
  DEPS contacts_service_lib crm_testing_api crm_testing_pg crm_outbox crm_crypto crm_log
       absl::strings absl::synchronization
  FIXTURES pg redis)
