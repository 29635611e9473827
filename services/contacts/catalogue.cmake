# The field catalogue (catalogue.h): every stored field with its category,
# sensitivity, purposes and retention. Included by services/contacts/CMakeLists.txt.
crm_cc_library(NAME contacts_catalogue_lib
  SRCS ${CMAKE_CURRENT_LIST_DIR}/catalogue.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/catalogue.h
  DEPS crm_contacts_proto absl::status absl::strings)

crm_cc_test(NAME contacts_catalogue_test SRCS ${CMAKE_CURRENT_LIST_DIR}/catalogue_test.cc
  DEPS contacts_catalogue_lib crm_contacts_proto absl::strings absl::flat_hash_set)
