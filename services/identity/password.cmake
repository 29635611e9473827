# Identity's password domain: Argon2id hashing, the password policy with the
# embedded common-password list, and the lockout/throttle rules.
#
# This file has two modes:
#  - included from services/identity/CMakeLists.txt: declares the targets;
#  - run as a script (cmake -DIN=<txt> -DOUT=<cc> -P password.cmake) by the
#    build: turns common_passwords.txt into a .cc defining CommonPasswordList()
#    (a sorted, de-duplicated constexpr array), after checking every entry.

if(CMAKE_SCRIPT_MODE_FILE)
  file(READ "${IN}" identity_pw_text)
  string(REPLACE "\r" "" identity_pw_text "${identity_pw_text}")
  # Comment lines are blanked (keeping line numbers); then characters that
  # CMake's list handling would mangle are rejected before the text becomes a
  # list (the allowed set below excludes them anyway).
  string(REGEX REPLACE "\n#[^\n]*" "\n" identity_pw_text "\n${identity_pw_text}")
  string(SUBSTRING "${identity_pw_text}" 1 -1 identity_pw_text)
  foreach(identity_pw_bad ";" "\\" "[" "]")
    string(FIND "${identity_pw_text}" "${identity_pw_bad}" identity_pw_at)
    if(NOT identity_pw_at EQUAL -1)
      message(FATAL_ERROR "${IN}: the character '${identity_pw_bad}' is not allowed")
    endif()
  endforeach()
  string(REPLACE "\n" ";" identity_pw_lines "${identity_pw_text}")
  set(identity_pw_entries "")
  set(identity_pw_lineno 0)
  foreach(identity_pw_line IN LISTS identity_pw_lines)
    math(EXPR identity_pw_lineno "${identity_pw_lineno} + 1")
    if(identity_pw_line STREQUAL "")
      continue()
    endif()
    string(LENGTH "${identity_pw_line}" identity_pw_len)
    if(identity_pw_len LESS 8 OR NOT identity_pw_line MATCHES "^[a-z0-9!@#$%^&*()_+=.,~-]+$")
      message(FATAL_ERROR "${IN}:${identity_pw_lineno}: entries must be 8 or more of "
                          "a-z 0-9 !@#$%^&*()_+=.,~- (lower-case, no spaces)")
    endif()
    list(APPEND identity_pw_entries "${identity_pw_line}")
  endforeach()
  list(REMOVE_DUPLICATES identity_pw_entries)
  list(SORT identity_pw_entries COMPARE STRING CASE SENSITIVE)
  list(LENGTH identity_pw_entries identity_pw_count)
  list(JOIN identity_pw_entries "\",\n      \"" identity_pw_body)
  file(WRITE "${OUT}"
"// Generated from services/identity/common_passwords.txt by
// services/identity/password.cmake: do not edit. ${identity_pw_count} entries.
#include \"services/identity/password_policy.h\"

namespace crm::identity {

absl::Span<const absl::string_view> CommonPasswordList() {
  static constexpr absl::string_view kList[] = {
      \"${identity_pw_body}\",
  };
  return kList;
}

}  // namespace crm::identity
")
  return()
endif()

set(identity_pw_list_cc ${CMAKE_CURRENT_BINARY_DIR}/common_passwords_list.cc)
add_custom_command(
  OUTPUT ${identity_pw_list_cc}
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_CURRENT_SOURCE_DIR}/common_passwords.txt
          -DOUT=${identity_pw_list_cc} -P ${CMAKE_CURRENT_LIST_FILE}
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/common_passwords.txt ${CMAKE_CURRENT_LIST_FILE}
  COMMENT "Embedding services/identity/common_passwords.txt"
  VERBATIM)

crm_cc_library(NAME identity_password_lib
  SRCS lockout_policy.cc password_hasher.cc password_policy.cc ${identity_pw_list_cc}
  HDRS lockout_policy.h password_hasher.h password_policy.h
  DEPS crm_base crm_crypto PkgConfig::ARGON2 absl::status absl::statusor absl::strings
       absl::cord absl::span absl::time absl::int128)

crm_cc_test(NAME identity_password_test
  SRCS lockout_policy_test.cc password_hasher_test.cc password_policy_test.cc
  DEPS identity_password_lib)

crm_cc_bench(NAME password_bench SRCS password_bench.cc DEPS identity_password_lib)
