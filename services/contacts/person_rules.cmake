# Person rules (person_rules.h): validation and normalisation of a person
# write, the field-by-field diff for the audit trail, and masking of sensitive
# fields. Plain C++, no I/O. Included by services/contacts/CMakeLists.txt.
crm_cc_library(NAME contacts_person_rules_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/person_rules.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/person_rules.h
  DEPS contacts_catalogue_lib crm_contacts_proto crm_base absl::status absl::statusor absl::strings)

# Company rules (company_rules.h): the same for companies, with tax ids and IBANs.
crm_cc_library(NAME contacts_company_rules_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/company_rules.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/company_rules.h
  DEPS contacts_person_rules_lib contacts_tax_id_lib contacts_catalogue_lib crm_contacts_proto
       crm_base absl::status absl::statusor absl::strings)

crm_cc_test(NAME contacts_person_rules_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/person_rules_test.cc
  DEPS contacts_person_rules_lib crm_contacts_proto crm_base absl::strings)

crm_cc_test(NAME contacts_company_rules_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/company_rules_test.cc
  DEPS contacts_company_rules_lib crm_contacts_proto)
