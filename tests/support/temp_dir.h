// A fresh, short directory under /tmp (Unix socket paths must stay under 108 bytes), removed with
// everything in it when the object goes. Aborts the test binary if it cannot be made.
#pragma once

#include <string>
#include <string_view>

namespace asya::test {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "asya-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  // path() + "/" + name
  [[nodiscard]] std::string File(std::string_view name) const;
  // Writes `text` to File(name) and returns that path.
  std::string Write(std::string_view name, std::string_view text) const;

 private:
  std::string path_;
};

}  // namespace asya::test
