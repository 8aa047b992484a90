# Builds and runs one consumer project of tests/consumers/ in a scratch dir.
#   cmake -DMODE=find_package|add_subdirectory|fetch_content
#         -DGEMMA3_SOURCE_DIR=<repo> -DCONSUMERS_DIR=<repo>/tests/consumers
#         -DWORK_DIR=<scratch dir, wiped first> [-DGENERATOR=..] [-DCXX_COMPILER=..]
#         [-DEigen3_DIR=..] -P run_consumer.cmake
# Registered by tests/CMakeLists.txt as ctest tests consumer_<MODE> (label consumer).
cmake_minimum_required(VERSION 3.21)

foreach(_v IN ITEMS MODE GEMMA3_SOURCE_DIR CONSUMERS_DIR WORK_DIR)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${_v}=... is required")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory|fetch_content)$")
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

# Do not let an outer `make` (make test) leak its jobserver into the inner builds.
unset(ENV{MAKEFLAGS})
unset(ENV{MFLAGS})
unset(ENV{MAKELEVEL})

# Settings shared by every configure below.
set(_common -DCMAKE_BUILD_TYPE=Release)
if(GENERATOR)
  list(PREPEND _common -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
  list(APPEND _common "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(Eigen3_DIR)
  list(APPEND _common "-DEigen3_DIR=${Eigen3_DIR}")
endif()

function(step what)
  message(STATUS "[consumer_${MODE}] ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "[consumer_${MODE}] FAILED: ${what} (exit ${rc})")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_bin "${WORK_DIR}/consumer-build")
set(_consumer_args "-DGEMMA3_SOURCE_DIR=${GEMMA3_SOURCE_DIR}")
if(REQUIRE_IMAGES)
  list(APPEND _consumer_args -DREQUIRE_IMAGES=ON)
endif()

if(MODE STREQUAL "find_package")
  # Install gemma3 into a private prefix exactly as a user would.
  set(_prefix "${WORK_DIR}/prefix")
  step("configure gemma3 for install"
    ${CMAKE_COMMAND} -S "${GEMMA3_SOURCE_DIR}" -B "${WORK_DIR}/gemma3-build" ${_common}
      -DGEMMA3_BUILD_TESTS=OFF -DGEMMA3_BUILD_BENCH=OFF -DGEMMA3_BUILD_EXAMPLES=OFF -DGEMMA3_CUDA=OFF
      -DGEMMA3_INSTALL=ON "-DCMAKE_INSTALL_PREFIX=${_prefix}")
  step("build gemma3" ${CMAKE_COMMAND} --build "${WORK_DIR}/gemma3-build" --config Release)
  step("install gemma3" ${CMAKE_COMMAND} --install "${WORK_DIR}/gemma3-build" --config Release)
  foreach(_f IN ITEMS include/gemma3/rms_norm.hpp
                      share/cmake/gemma3/gemma3Config.cmake
                      share/cmake/gemma3/gemma3ConfigVersion.cmake
                      share/cmake/gemma3/gemma3Targets.cmake)
    if(NOT EXISTS "${_prefix}/${_f}")
      message(FATAL_ERROR "[consumer_${MODE}] install did not produce ${_prefix}/${_f}")
    endif()
  endforeach()
  list(APPEND _consumer_args "-DCMAKE_PREFIX_PATH=${_prefix}" "-DEXPECTED_PREFIX=${_prefix}"
                             -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
endif()

step("configure consumer"
  ${CMAKE_COMMAND} -S "${CONSUMERS_DIR}/${MODE}" -B "${_bin}" ${_common} ${_consumer_args})
step("build consumer" ${CMAKE_COMMAND} --build "${_bin}" --config Release)

# Nothing of gemma3's own (tests, benchmarks, examples) may have been built.
file(GLOB_RECURSE _own LIST_DIRECTORIES false "${_bin}/gemma3_tests*")
foreach(_d IN ITEMS gemma3-build _deps/gemma3-build)
  foreach(_sub IN ITEMS tests bench examples)
    if(IS_DIRECTORY "${_bin}/${_d}/${_sub}")
      list(APPEND _own "${_bin}/${_d}/${_sub}")
    endif()
  endforeach()
endforeach()
if(_own)
  message(FATAL_ERROR "[consumer_${MODE}] gemma3's own tests/bench/examples were built: ${_own}")
endif()

set(_exe "")
foreach(_c IN ITEMS gemma3_consumer gemma3_consumer.exe Release/gemma3_consumer.exe Release/gemma3_consumer)
  if(EXISTS "${_bin}/${_c}" AND NOT IS_DIRECTORY "${_bin}/${_c}")
    set(_exe "${_bin}/${_c}")
    break()
  endif()
endforeach()
if(NOT _exe)
  message(FATAL_ERROR "[consumer_${MODE}] built program not found under ${_bin}")
endif()
step("run ${_exe}" "${_exe}")
message("${step_output}")
if(NOT step_output MATCHES "gemma3 consumer OK")
  message(FATAL_ERROR "[consumer_${MODE}] unexpected output (no 'gemma3 consumer OK')")
endif()

# The image program, where gemma3::images exists (required when REQUIRE_IMAGES is set).
set(_image_exe "")
foreach(_c IN ITEMS gemma3_image_consumer gemma3_image_consumer.exe Release/gemma3_image_consumer.exe
                    Release/gemma3_image_consumer)
  if(EXISTS "${_bin}/${_c}" AND NOT IS_DIRECTORY "${_bin}/${_c}")
    set(_image_exe "${_bin}/${_c}")
    break()
  endif()
endforeach()
if(_image_exe)
  step("run ${_image_exe}" "${_image_exe}")
  message("${step_output}")
  if(NOT step_output MATCHES "gemma3 image consumer OK")
    message(FATAL_ERROR "[consumer_${MODE}] unexpected output (no 'gemma3 image consumer OK')")
  endif()
elseif(REQUIRE_IMAGES)
  message(FATAL_ERROR "[consumer_${MODE}] gemma3_image_consumer was not built")
endif()
message(STATUS "[consumer_${MODE}] passed")
