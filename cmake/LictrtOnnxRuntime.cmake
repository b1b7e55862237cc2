# ONNX Runtime C/C++ API headers, for compiling custom-op libraries and programs against ONNX Runtime.
#
#   include(cmake/LictrtOnnxRuntime.cmake)
#   if(TARGET lictrt::onnxruntime_headers)
#     target_link_libraries(my_ops PRIVATE lictrt::onnxruntime_headers)
#   endif()
#
# Defines, when headers are found:
#   lictrt::onnxruntime_headers      INTERFACE target: the include directory holding onnxruntime_c_api.h and
#                                    onnxruntime_cxx_api.h (SYSTEM). Headers only: it links no library. A custom-op
#                                    library compiled against it defines ORT_API_MANUAL_INIT and takes the API from
#                                    the OrtApiBase that RegisterCustomOps() receives; a program also links the
#                                    onnxruntime shared library itself.
#   LICTRT_ONNXRUNTIME_INCLUDE_DIR   that directory.
# and always:
#   LICTRT_ONNXRUNTIME_HEADERS_FOUND ON or OFF. When OFF one status line says why, and targets that need the
#                                    headers are skipped by their CMakeLists.
#
# Where the headers come from, first match wins:
#   1. -DONNXRUNTIME_INCLUDE_DIR=<dir> (or the environment variable of the same name): the user's headers.
#   2. An installed Debian/Ubuntu libonnxruntime-dev (<prefix>/include/onnxruntime).
#   3. Debian trixie's libonnxruntime-dev (1.21.0, C API version 21), fetched with `apt-get download` using a
#      private sources list and private apt state/cache directories inside the build tree (the system's sources,
#      package lists and cache are neither used nor changed), and only its include/onnxruntime directory extracted into
#      <build>/_deps/onnxruntime_headers. Nothing is committed to the repository. Off with
#      -DLICTRT_FETCH_ONNXRUNTIME_HEADERS=OFF; -DLICTRT_ONNXRUNTIME_DEB=<file.deb> uses a local package instead.
# Headers of C API version N serve every ONNX Runtime release >= N.
include_guard(GLOBAL)

set(ONNXRUNTIME_INCLUDE_DIR "$ENV{ONNXRUNTIME_INCLUDE_DIR}" CACHE PATH "Directory containing onnxruntime_c_api.h")
option(LICTRT_FETCH_ONNXRUNTIME_HEADERS "Fetch Debian's libonnxruntime-dev headers when none are given" ON)
set(LICTRT_ONNXRUNTIME_DEB "" CACHE FILEPATH "Local libonnxruntime-dev .deb to take the headers from")
set(LICTRT_ONNXRUNTIME_DEBIAN_MIRROR "http://deb.debian.org/debian" CACHE STRING "Debian mirror for the headers")
set(LICTRT_ONNXRUNTIME_DEBIAN_SUITE "trixie" CACHE STRING "Debian suite whose libonnxruntime-dev is fetched")

# Extracts usr/include/onnxruntime of the .deb `deb` into `dest`; sets `ok` to TRUE on success.
function(_lictrt_ort_extract_deb deb dest ok)
  set(${ok} FALSE PARENT_SCOPE)
  set(_tmp "${dest}.unpack")
  file(REMOVE_RECURSE "${_tmp}")
  file(MAKE_DIRECTORY "${_tmp}")
  file(ARCHIVE_EXTRACT INPUT "${deb}" DESTINATION "${_tmp}")  # a .deb is an ar archive
  file(GLOB _data "${_tmp}/data.tar*")
  if(NOT _data)
    return()
  endif()
  list(GET _data 0 _data)
  file(ARCHIVE_EXTRACT INPUT "${_data}" DESTINATION "${_tmp}/data" PATTERNS "./usr/include/onnxruntime/*")
  if(EXISTS "${_tmp}/data/usr/include/onnxruntime/onnxruntime_c_api.h")
    file(REMOVE_RECURSE "${dest}")
    file(RENAME "${_tmp}/data/usr/include/onnxruntime" "${dest}")
    set(${ok} TRUE PARENT_SCOPE)
  endif()
  file(REMOVE_RECURSE "${_tmp}")
endfunction()

# Downloads libonnxruntime-dev with apt-get and a private configuration; sets `out_deb` to the file or "".
function(_lictrt_ort_apt_download work out_deb why)
  set(${out_deb} "" PARENT_SCOPE)
  find_program(_apt_get apt-get)
  if(NOT _apt_get)
    set(${why} "apt-get not found" PARENT_SCOPE)
    return()
  endif()
  set(_keyring "/usr/share/keyrings/debian-archive-keyring.gpg")
  if(EXISTS "${_keyring}")
    set(_signed "[signed-by=${_keyring}] ")
  else()
    set(_signed "[trusted=yes] ")  # no Debian keyring on this system (e.g. Ubuntu): the package holds headers only
  endif()
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}/etc/sources.list.d" "${work}/etc/preferences.d" "${work}/state/lists/partial"
       "${work}/cache/archives/partial" "${work}/download")
  file(WRITE "${work}/etc/sources.list"
       "deb ${_signed}${LICTRT_ONNXRUNTIME_DEBIAN_MIRROR} ${LICTRT_ONNXRUNTIME_DEBIAN_SUITE} main\n")
  set(_opts
      -o "Dir::Etc::SourceList=${work}/etc/sources.list" -o "Dir::Etc::SourceParts=${work}/etc/sources.list.d"
      -o "Dir::Etc::Preferences=${work}/etc/preferences" -o "Dir::Etc::PreferencesParts=${work}/etc/preferences.d"
      -o "Dir::State=${work}/state" -o "Dir::State::Lists=${work}/state/lists" -o "Dir::State::status=/dev/null"
      -o "Dir::Cache=${work}/cache" -o "Debug::NoLocking=1" -o "Acquire::Languages=none"
      -o "quiet=2")
  execute_process(COMMAND "${_apt_get}" ${_opts} update
                  RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err TIMEOUT 120)
  if(_rc EQUAL 0)
    execute_process(COMMAND "${_apt_get}" ${_opts} download libonnxruntime-dev
                    WORKING_DIRECTORY "${work}/download"
                    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err TIMEOUT 120)
  endif()
  file(GLOB _deb "${work}/download/libonnxruntime-dev_*.deb")
  if(NOT _rc EQUAL 0 OR NOT _deb)
    string(REGEX REPLACE "[\r\n]+" " " _err "${_err}")
    set(${why} "apt-get download libonnxruntime-dev failed: ${_err}" PARENT_SCOPE)
    return()
  endif()
  list(GET _deb 0 _deb)
  set(${out_deb} "${_deb}" PARENT_SCOPE)
endfunction()

function(_lictrt_find_onnxruntime_headers)
  set(_inc "")
  set(_why "")
  if(ONNXRUNTIME_INCLUDE_DIR)
    if(EXISTS "${ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_c_api.h")
      set(_inc "${ONNXRUNTIME_INCLUDE_DIR}")
    else()
      set(_why "ONNXRUNTIME_INCLUDE_DIR=${ONNXRUNTIME_INCLUDE_DIR} has no onnxruntime_c_api.h")
    endif()
  else()
    find_path(LICTRT_ONNXRUNTIME_SYSTEM_INCLUDE_DIR onnxruntime_c_api.h PATH_SUFFIXES onnxruntime
              NO_CMAKE_FIND_ROOT_PATH)
    mark_as_advanced(LICTRT_ONNXRUNTIME_SYSTEM_INCLUDE_DIR)
    set(_fetched "${CMAKE_BINARY_DIR}/_deps/onnxruntime_headers")
    if(LICTRT_ONNXRUNTIME_SYSTEM_INCLUDE_DIR)
      set(_inc "${LICTRT_ONNXRUNTIME_SYSTEM_INCLUDE_DIR}")
    elseif(EXISTS "${_fetched}/onnxruntime_c_api.h")
      set(_inc "${_fetched}")
    else()
      set(_deb "${LICTRT_ONNXRUNTIME_DEB}")
      if(NOT _deb AND LICTRT_FETCH_ONNXRUNTIME_HEADERS)
        message(STATUS "lictrt: fetching ONNX Runtime headers: apt-get download libonnxruntime-dev "
                       "(${LICTRT_ONNXRUNTIME_DEBIAN_SUITE}, private apt configuration)")
        _lictrt_ort_apt_download("${CMAKE_BINARY_DIR}/_deps/onnxruntime_apt" _deb _why)
      elseif(NOT _deb)
        set(_why "LICTRT_FETCH_ONNXRUNTIME_HEADERS=OFF and no ONNXRUNTIME_INCLUDE_DIR")
      endif()
      if(_deb)
        _lictrt_ort_extract_deb("${_deb}" "${_fetched}" _ok)
        if(_ok)
          set(_inc "${_fetched}")
        else()
          set(_why "${_deb} holds no usr/include/onnxruntime/onnxruntime_c_api.h")
        endif()
      endif()
    endif()
  endif()
  if(NOT _inc)
    message(STATUS "lictrt: ONNX Runtime headers not found (${_why}); the ONNX Runtime custom-op library is "
                   "skipped. Set -DONNXRUNTIME_INCLUDE_DIR=<dir with onnxruntime_c_api.h> to build it.")
    set(LICTRT_ONNXRUNTIME_HEADERS_FOUND OFF PARENT_SCOPE)
    return()
  endif()
  file(STRINGS "${_inc}/onnxruntime_c_api.h" _ver REGEX "^#define ORT_API_VERSION [0-9]+")
  string(REGEX REPLACE "[^0-9]" "" _ver "${_ver}")
  message(STATUS "lictrt: ONNX Runtime headers (C API ${_ver}) from ${_inc}")
  set(LICTRT_ONNXRUNTIME_HEADERS_FOUND ON PARENT_SCOPE)
  set(LICTRT_ONNXRUNTIME_INCLUDE_DIR "${_inc}" PARENT_SCOPE)
endfunction()

_lictrt_find_onnxruntime_headers()
if(LICTRT_ONNXRUNTIME_HEADERS_FOUND AND NOT TARGET lictrt::onnxruntime_headers)
  add_library(lictrt_onnxruntime_headers INTERFACE)
  target_include_directories(lictrt_onnxruntime_headers SYSTEM INTERFACE "${LICTRT_ONNXRUNTIME_INCLUDE_DIR}")
  add_library(lictrt::onnxruntime_headers ALIAS lictrt_onnxruntime_headers)
endif()
