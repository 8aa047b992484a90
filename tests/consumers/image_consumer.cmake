# Included by each consumer project: the image program, linked with gemma3::images
# (gemma3::gemma3 plus libjpeg) when gemma3 found libjpeg.
if(TARGET gemma3::images)
  add_executable(gemma3_image_consumer ${CMAKE_CURRENT_LIST_DIR}/image_main.cpp)
  target_link_libraries(gemma3_image_consumer PRIVATE gemma3::images)
elseif(REQUIRE_IMAGES)
  message(FATAL_ERROR "gemma3::images is missing, but gemma3's own build found libjpeg")
endif()
