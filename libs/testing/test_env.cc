#include "libs/testing/test_env.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace crm::testing {
namespace {

constexpr absl::string_view kHint =
    "run the test through ctest (ctest --test-dir <build> -R <name>) and declare it with "
    "crm_cc_test(... FIXTURES pg redis), so tools/testenv starts PostgreSQL and Redis first";

absl::Status Required(const std::map<std::string, std::string, std::less<>>& values,
                      absl::string_view key, std::string* out) {
  auto it = values.find(key);
  if (it == values.end() || it->second.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("test env: key ", key, " missing"));
  }
  *out = it->second;
  return absl::OkStatus();
}

absl::Status RequiredPort(const std::map<std::string, std::string, std::less<>>& values,
                          absl::string_view key, int* out) {
  std::string text;
  if (absl::Status s = Required(values, key, &text); !s.ok()) return s;
  if (!absl::SimpleAtoi(text, out) || *out <= 0 || *out > 65535) {
    return absl::FailedPreconditionError(absl::StrCat("test env: ", key, " is not a port"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string QuoteConnValue(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string PgServerInfo::ConnString(absl::string_view dbname) const {
  return absl::StrCat("host=", QuoteConnValue(host), " port=", port, " user=", QuoteConnValue(user),
                      " password=", QuoteConnValue(password), " dbname=", QuoteConnValue(dbname));
}

absl::StatusOr<TestEnv> TestEnv::Load() {
  const char* dir = std::getenv("CRMTEST_ENV_DIR");
  if (dir == nullptr || *dir == '\0') {
    return absl::FailedPreconditionError(absl::StrCat("CRMTEST_ENV_DIR is not set: ", kHint));
  }
  const std::string path = absl::StrCat(dir, "/env");
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("test env file ", path, " is missing (did crm_testenv_start fail?): ", kHint));
  }
  std::stringstream content;
  content << in.rdbuf();
  return Parse(content.str());
}

absl::StatusOr<TestEnv> TestEnv::Parse(absl::string_view content) {
  TestEnv env;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::FailedPreconditionError("test env: a line is not KEY=VALUE");
    }
    env.values_[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  for (absl::Status s : {
           Required(env.values_, "PGHOST", &env.pg_.host),
           RequiredPort(env.values_, "PGPORT", &env.pg_.port),
           Required(env.values_, "PGUSER", &env.pg_.user),
           Required(env.values_, "PGPASSWORD", &env.pg_.password),
           Required(env.values_, "REDIS_HOST", &env.redis_.host),
           RequiredPort(env.values_, "REDIS_PORT", &env.redis_.port),
           Required(env.values_, "REDIS_PASSWORD", &env.redis_.password),
       }) {
    if (!s.ok()) return s;
  }
  return env;
}

std::string TestEnv::Get(absl::string_view key) const {
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second;
}

}  // namespace crm::testing
