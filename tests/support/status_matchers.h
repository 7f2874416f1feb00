// gtest assertions for asya::Result<T> / asya::Status: on failure they print the expression and
// the error's text, so a failing test says why.
#pragma once

#include <gtest/gtest.h>

#include "asya/base/result.h"

// ASSERT_OK(expr) / EXPECT_OK(expr): expr is a Result<T> or Status that must hold a value.
#define ASSERT_OK(expr)                                                                        \
  do {                                                                                         \
    const auto& asya_test_r_ = (expr);                                                         \
    ASSERT_TRUE(asya_test_r_.has_value()) << #expr << ": " << asya_test_r_.error().ToString(); \
  } while (false)

#define EXPECT_OK(expr)                                                                        \
  do {                                                                                         \
    const auto& asya_test_r_ = (expr);                                                         \
    EXPECT_TRUE(asya_test_r_.has_value()) << #expr << ": " << asya_test_r_.error().ToString(); \
  } while (false)

// ASSIGN_OR_FAIL(auto x, expr): declares x from a Result<T>'s value, or fails the test (ASSERT).
#define ASSIGN_OR_FAIL(lhs, expr)                                                  \
  auto ASYA_CONCAT_(asya_test_r_, __LINE__) = (expr);                              \
  ASSERT_TRUE(ASYA_CONCAT_(asya_test_r_, __LINE__).has_value())                    \
      << #expr << ": " << ASYA_CONCAT_(asya_test_r_, __LINE__).error().ToString(); \
  lhs = std::move(ASYA_CONCAT_(asya_test_r_, __LINE__)).value()
