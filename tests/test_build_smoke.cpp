// Placeholder that keeps the test build alive before the real tests land:
// Catch2 links with its main, Eigen 3.4 is found, C++17 is on, fixtures dir is set.
#include "catch.hpp"

#include <Eigen/Core>

#include <string>

static_assert(__cplusplus >= 201703L, "tests are built as C++17");

TEST_CASE("build smoke: Eigen 3.4 is usable", "[build]") {
  REQUIRE(EIGEN_WORLD_VERSION == 3);
  REQUIRE(EIGEN_MAJOR_VERSION >= 4);

  Eigen::Matrix2f m;
  m << 1.0f, 2.0f,
       3.0f, 4.0f;
  const Eigen::Vector2f y = m * Eigen::Vector2f(1.0f, 1.0f);  // [2]
  CHECK(y(0) == Approx(3.0f));
  CHECK(y(1) == Approx(7.0f));
}

TEST_CASE("build smoke: GEMMA3_FIXTURES_DIR is defined", "[build]") {
  const std::string dir = GEMMA3_FIXTURES_DIR;
  REQUIRE(dir.size() >= 8);
  CHECK(dir.substr(dir.size() - 8) == "fixtures");
}
