# Helper functions every CMakeLists.txt in the tree uses, so targets look alike.
#
#   crm_cc_library(NAME crm_base SRCS a.cc HDRS a.h DEPS absl::status)
#   crm_cc_binary(NAME crm-identity SRCS main.cc DEPS identity_lib)
#   crm_cc_test(NAME base_test SRCS a_test.cc DEPS crm_base [FIXTURES pg redis] [LABELS slow])
#   crm_script_test(NAME rootfs_test COMMAND tests/deploy/rootfs_test [FIXTURES pg redis])
#   crm_cc_bench(NAME crypto_bench SRCS crypto_bench.cc DEPS crm_crypto)
#   crm_proto_library(NAME crm_subject_proto PROTOS crm/subject/v1/subject_data.proto DEPS crm_common_proto GRPC)
#   crm_fuzz_target(NAME json SRCS json_fuzz.cc DEPS crm_json)    (only with CRM_FUZZ)
#
# Our own code is compiled with warnings as errors; include paths are rooted at the
# repository (#include "libs/base/status_macros.h") and at the generated proto dir
# (#include "crm/subject/v1/subject_data.pb.h").

# -Wno-restrict: GCC 12 reports false positives inside std::string at -O2/-O3 (GCC PR 105329);
# clang (the fuzz tree) does not know the option.
set(CRM_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND CRM_WARNINGS -Wno-restrict)
endif()
set(CRM_PROTO_OUT ${CMAKE_BINARY_DIR}/gen)
set(CRM_TESTENV_DIR ${CMAKE_BINARY_DIR}/testenv)

function(_crm_common target)
  target_compile_options(${target} PRIVATE ${CRM_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR} ${CRM_PROTO_OUT})
endfunction()

function(crm_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  if(A_SRCS)
    add_library(${A_NAME} STATIC ${A_SRCS} ${A_HDRS})
    target_link_libraries(${A_NAME} PUBLIC ${A_DEPS})
    _crm_common(${A_NAME})
  else()
    add_library(${A_NAME} INTERFACE ${A_HDRS})
    target_link_libraries(${A_NAME} INTERFACE ${A_DEPS})
    target_include_directories(${A_NAME} INTERFACE ${PROJECT_SOURCE_DIR} ${CRM_PROTO_OUT})
  endif()
endfunction()

function(crm_cc_binary)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  _crm_common(${A_NAME})
endfunction()

# FIXTURES: pg and/or redis. The test then runs after the shared throwaway
# PostgreSQL/Redis of this test run are up (see tools/testenv) and finds them
# through CRMTEST_ENV_DIR.
function(crm_cc_test)
  if(NOT CRM_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SRCS;DEPS;FIXTURES;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} crm_testing GTest::gmock GTest::gtest GTest::gmock_main)
  _crm_common(${A_NAME})
  _crm_add_test(${A_NAME} "${A_TIMEOUT}" "${A_FIXTURES}" "${A_LABELS}" ${A_NAME})
endfunction()

# A test that is a script (or any command), with the environment and fixtures
# of crm_cc_test:
#   crm_script_test(NAME rootfs_test COMMAND ${PROJECT_SOURCE_DIR}/tests/deploy/rootfs_test
#                   FIXTURES pg redis)
function(crm_script_test)
  if(NOT CRM_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "COMMAND;FIXTURES;LABELS" ${ARGN})
  _crm_add_test(${A_NAME} "${A_TIMEOUT}" "${A_FIXTURES}" "${A_LABELS}" ${A_COMMAND})
endfunction()

# _crm_add_test(NAME TIMEOUT FIXTURES LABELS COMMAND...): the ctest entry of both.
function(_crm_add_test name timeout fixtures labels)
  add_test(NAME ${name} COMMAND ${ARGN})
  if(NOT timeout)
    set(timeout 300)
  endif()
  set(env "CRMTEST_ENV_DIR=${CRM_TESTENV_DIR}" "CRMTEST_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
          "CRMTEST_BINARY_DIR=${CMAKE_BINARY_DIR}")
  set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} ENVIRONMENT "${env}")
  if(labels)
    set_tests_properties(${name} PROPERTIES LABELS "${labels}")
  endif()
  if(fixtures)
    set(req "")
    foreach(f ${fixtures})
      list(APPEND req crm_${f})
    endforeach()
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${req}")
  endif()
endfunction()

function(crm_cc_bench)
  if(NOT CRM_BUILD_BENCHMARKS)
    return()
  endif()
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} benchmark::benchmark)
  _crm_common(${A_NAME})
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endfunction()

# A libFuzzer target (CRM_FUZZ only): <build>/fuzz/<NAME>_fuzz from SRCS, which
# define LLVMFuzzerTestOneInput, linked with libFuzzer's main; part of the
# aggregate target `fuzz`. Its seed corpus is tests/fuzz/corpus/<NAME>/ and its
# optional dictionary tests/fuzz/<NAME>.dict (tools/fuzz finds both by name).
function(crm_fuzz_target)
  if(NOT CRM_FUZZ)
    return()
  endif()
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS" ${ARGN})
  set(target ${A_NAME}_fuzz)
  add_executable(${target} ${A_SRCS})
  target_link_libraries(${target} PRIVATE ${A_DEPS})
  target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  _crm_common(${target})
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  if(NOT TARGET fuzz)
    add_custom_target(fuzz)
  endif()
  add_dependencies(fuzz ${target})
endfunction()

# Generates C++ (and, with GRPC, gRPC stubs) for PROTOS given relative to proto/.
function(crm_proto_library)
  cmake_parse_arguments(A "GRPC" "NAME" "PROTOS;DEPS" ${ARGN})
  set(srcs "")
  set(abs_protos "")
  foreach(p ${A_PROTOS})
    get_filename_component(dir ${p} DIRECTORY)
    get_filename_component(stem ${p} NAME_WE)
    set(outs ${CRM_PROTO_OUT}/${dir}/${stem}.pb.cc ${CRM_PROTO_OUT}/${dir}/${stem}.pb.h)
    set(plugin_args "")
    if(A_GRPC)
      list(APPEND outs ${CRM_PROTO_OUT}/${dir}/${stem}.grpc.pb.cc ${CRM_PROTO_OUT}/${dir}/${stem}.grpc.pb.h)
      set(plugin_args --grpc_out=${CRM_PROTO_OUT} --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CRM_PROTO_OUT}
      COMMAND protobuf::protoc --cpp_out=${CRM_PROTO_OUT} ${plugin_args}
              -I${PROJECT_SOURCE_DIR}/proto -I/usr/include ${PROJECT_SOURCE_DIR}/proto/${p}
      DEPENDS ${PROJECT_SOURCE_DIR}/proto/${p} protobuf::protoc
      COMMENT "protoc ${p}")
    list(APPEND srcs ${outs})
    list(APPEND abs_protos ${PROJECT_SOURCE_DIR}/proto/${p})
  endforeach()
  add_library(${A_NAME} STATIC ${srcs})
  target_include_directories(${A_NAME} PUBLIC ${CRM_PROTO_OUT})
  target_link_libraries(${A_NAME} PUBLIC ${A_DEPS} protobuf::libprotobuf)
  if(A_GRPC)
    target_link_libraries(${A_NAME} PUBLIC gRPC::grpc++)
  endif()
  set_property(GLOBAL APPEND PROPERTY CRM_ALL_PROTOS ${abs_protos})
endfunction()

# Adds every direct subfolder that has a CMakeLists.txt (libs/, services/, tools/):
# a new library, service or tool needs no edit to its parent.
function(crm_add_all_subdirectories)
  file(GLOB children LIST_DIRECTORIES true CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*)
  foreach(child ${children})
    if(EXISTS ${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()
