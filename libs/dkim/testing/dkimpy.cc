#include "libs/dkim/testing/dkimpy.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/test_files.h"
#include "libs/testing/subprocess.h"

namespace crm::dkim::testing {
namespace {

using ::crm::testing::ExitStatus;
using ::crm::testing::Subprocess;

absl::StatusOr<std::string> VerifyScript() {
  const char* src = std::getenv("CRMTEST_SOURCE_DIR");
  if (src == nullptr) {
    return absl::FailedPreconditionError("CRMTEST_SOURCE_DIR is unset: run the test through ctest");
  }
  return absl::StrCat(src, "/libs/dkim/testdata/verify.py");
}

absl::StatusOr<ExitStatus> Run(const std::vector<std::string>& args, const std::string& output,
                               std::string* text) {
  Subprocess::Options options;
  options.args = args;
  options.output_file = output;
  CRM_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(options));
  absl::StatusOr<ExitStatus> exit = p->WaitForExit(absl::Seconds(120));
  *text = p->Output();
  return exit;
}

absl::StatusOr<std::string> FindPythonWithDkim(const std::string& work_dir) {
  static absl::Mutex mu(absl::kConstInit);
  static std::string* found ABSL_GUARDED_BY(mu) = nullptr;  // Remembered once found.
  absl::MutexLock lock(&mu);
  if (found != nullptr) return *found;
  CRM_ASSIGN_OR_RETURN(std::string script, VerifyScript());
  const char* path = std::getenv("PATH");
  std::vector<std::string> tried;
  for (absl::string_view dir :
       absl::StrSplit(path == nullptr ? "" : path, ':', absl::SkipEmpty())) {
    const std::string python = absl::StrCat(dir, "/python3");
    if (access(python.c_str(), X_OK) != 0) continue;
    std::string text;
    absl::StatusOr<ExitStatus> exit =
        Run({python, script, "--probe"}, work_dir + "/probe.log", &text);
    if (exit.ok() && exit->exited_with(0)) {
      found = new std::string(python);
      return python;
    }
    tried.push_back(python);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("no python3 on PATH can import the dkim module (tried: ",
                   tried.empty() ? "none found" : absl::StrJoin(tried, ", "),
                   "): run tools/dev deps, or apt-get install python3-dkim"));
}

}  // namespace

std::string NewRsaKeyPem(int bits, bool traditional) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)), &EVP_PKEY_free);
  if (key == nullptr) return "";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  const int ok = traditional ? PEM_write_bio_PrivateKey_traditional(bio.get(), key.get(), nullptr,
                                                                    nullptr, 0, nullptr, nullptr)
                             : PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0,
                                                        nullptr, nullptr);
  if (ok != 1) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::map<std::string, std::string>> VerifyWithDkimpy(
    const std::string& record_name, const std::string& txt_record,
    const std::map<std::string, std::string>& messages) {
  crypto::testing::TempDir dir;
  CRM_ASSIGN_OR_RETURN(std::string python, FindPythonWithDkim(dir.path()));
  CRM_ASSIGN_OR_RETURN(std::string script, VerifyScript());
  std::vector<std::string> args = {
      python, script, "--name", record_name, "--record-file", dir.Write("record.txt", txt_record)};
  for (const auto& [name, message] : messages) args.push_back(dir.Write(name, message));
  std::string text;
  CRM_ASSIGN_OR_RETURN(ExitStatus exit, Run(args, dir.path() + "/verify.log", &text));
  if (!exit.exited_with(0)) {
    return absl::InternalError(absl::StrCat("verify.py failed (", exit.code, "): ", text));
  }
  std::map<std::string, std::string> results;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "RESULT ")) continue;
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    results[kv.first] = kv.second;
  }
  if (results.size() != messages.size()) {
    return absl::InternalError(absl::StrCat("verify.py reported on ", results.size(), " of ",
                                            messages.size(), " messages: ", text));
  }
  return results;
}

}  // namespace crm::dkim::testing
