# Company tax identifiers (NIP, REGON, KRS, EU VAT): validation by format and
# check digits, and normalisation to a canonical spelling. Plain C++, no I/O.
# Included by services/contacts/CMakeLists.txt.
crm_cc_library(NAME contacts_tax_id_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/tax_id.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/tax_id.h
  DEPS absl::status absl::statusor absl::strings)

crm_cc_test(NAME contacts_tax_id_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/tax_id_test.cc
  DEPS contacts_tax_id_lib)
