// Test-only helper: writes files under a fresh temporary directory that is
// removed with the object. Not thread-safe; one per test.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace crm::crypto::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/crm_crypto_XXXXXX";
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `content` to `name` with `mode`; returns the full path.
  std::string Write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const std::string p = path_ + "/" + name;
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << content;
    }
    EXPECT_EQ(chmod(p.c_str(), mode), 0);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace crm::crypto::testing
