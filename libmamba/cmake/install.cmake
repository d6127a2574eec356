# Installing libmamba: the two libraries and mamba.h, and how other builds
# find them: a CMake package (find_package(libmamba) -> libmamba::mamba, the
# shared library, and libmamba::mamba_static) and a pkg-config file
# (libmamba.pc). Both are relocatable: `cmake --install build --prefix P`
# works for any P, and the files may be moved with the tree.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(mamba_shared PROPERTIES EXPORT_NAME mamba)
set_target_properties(mamba_static PROPERTIES EXPORT_NAME mamba_static)
# the same names inside this build, for projects that add it as a subdirectory
add_library(libmamba::mamba ALIAS mamba_shared)
add_library(libmamba::mamba_static ALIAS mamba_static)

install(TARGETS mamba_static mamba_shared EXPORT libmambaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# ---- the CMake package ---------------------------------------------------------
set(MB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/libmamba)
set(MB_CFG_OPENMP ${OpenMP_C_FOUND})
foreach(v MB_CFG_OPENMP MB_HAVE_MPI MB_BUILD_CUDA)
  if(${v})
    set(${v} ON)
  else()
    set(${v} OFF)
  endif()
endforeach()
install(EXPORT libmambaTargets NAMESPACE libmamba:: DESTINATION ${MB_CMAKE_DIR})
configure_package_config_file(cmake/libmambaConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/libmambaConfig.cmake INSTALL_DESTINATION ${MB_CMAKE_DIR})
# 0.x: a new minor release may change the API
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/libmambaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libmambaConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/libmambaConfigVersion.cmake DESTINATION ${MB_CMAKE_DIR})

# ---- pkg-config ------------------------------------------------------------------
# Library paths, names or flags -> linker flags: /d/libx.so -> -L/d -lx (no -L
# for the compiler's own directories), x -> -lx, a flag as it is.
function(mb_pc_flags out)
  set(flags "")
  foreach(lib IN LISTS ARGN)
    if(lib MATCHES "^-")
      list(APPEND flags "${lib}")
    elseif(IS_ABSOLUTE "${lib}")
      get_filename_component(dir "${lib}" DIRECTORY)
      get_filename_component(name "${lib}" NAME)
      if(NOT dir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
        list(APPEND flags "-L${dir}")
      endif()
      if(name MATCHES "^lib(.+)\\.(so|a|dylib)$")
        list(APPEND flags "-l${CMAKE_MATCH_1}")
      else()
        list(APPEND flags "-l:${name}") # e.g. the NCCL wheel's libnccl.so.2
      endif()
    else()
      list(APPEND flags "-l${lib}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES flags)
  string(JOIN " " flags ${flags})
  set(${out} "${flags}" PARENT_SCOPE)
endfunction()

# Requires.private names a dependency when its own .pc is here (Debian's
# libcjson-dev, zlib1g-dev and libopenblas-dev ship one), so pkg-config adds
# what it needs in turn (OpenBLAS: gfortran, pthread); otherwise its library
# goes into Libs.private.
set(MB_PC_REQUIRES "")
set(_mb_pc_libs "")
macro(mb_pc_dependency module lib)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(_mb_pc_${module} QUIET ${module})
  endif()
  if(_mb_pc_${module}_FOUND)
    list(APPEND MB_PC_REQUIRES ${module})
  else()
    list(APPEND _mb_pc_libs ${lib})
  endif()
endmacro()
mb_pc_dependency(libcjson ${MB_CJSON_LIB})
mb_pc_dependency(zlib ${ZLIB_LIBRARIES})
if(MB_CBLAS_INCLUDE AND MB_OPENBLAS_LIB)
  mb_pc_dependency(openblas ${MB_OPENBLAS_LIB})
endif()
if(OpenMP_C_FOUND)
  if(OpenMP_C_LIBRARIES)
    list(APPEND _mb_pc_libs ${OpenMP_C_LIBRARIES})
  else()
    list(APPEND _mb_pc_libs ${OpenMP_C_FLAGS})
  endif()
endif()
if(MB_HAVE_MPI)
  list(APPEND _mb_pc_libs ${MPI_C_LIBRARIES})
endif()
if(MB_BUILD_CUDA)
  list(APPEND _mb_pc_libs -L${CUDAToolkit_LIBRARY_DIR} -lcudart -lcublas)
  if(MB_NCCL_LIB AND MB_HAVE_MPI AND MB_NCCL_INCLUDE)
    list(APPEND _mb_pc_libs ${MB_NCCL_LIB})
  endif()
  list(APPEND _mb_pc_libs stdc++) # the CUDA objects' C++ runtime
endif()
list(APPEND _mb_pc_libs m)
mb_pc_flags(MB_PC_LIBS_PRIVATE ${_mb_pc_libs})
string(JOIN " " MB_PC_REQUIRES_PRIVATE ${MB_PC_REQUIRES})

# the prefix as the .pc file's place in it, so the tree can move
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(MB_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(MB_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(MB_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _mb_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" _mb_up "${_mb_up}")
  set(MB_PC_PREFIX "\${pcfiledir}/${_mb_up}")
  set(MB_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(MB_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/libmamba.pc.in ${CMAKE_CURRENT_BINARY_DIR}/libmamba.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/libmamba.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
