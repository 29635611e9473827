#include "libs/crypto/key_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace crm::crypto {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Wipes a std::string that held secret bytes.
void Wipe(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

bool IsBase64Char(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
}

}  // namespace

absl::StatusOr<SecretBytes> ReadKeyFile(const std::string& path, const KeyFileOptions& options) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("key file ", path, " not found"));
    return absl::PermissionDeniedError(absl::StrCat("key file ", path, " cannot be opened"));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return absl::InternalError(absl::StrCat("key file ", path, ": stat failed"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("key file ", path, " is not a regular file"));
  }
  if (options.check_permissions && (st.st_mode & 0027) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "key file %s has mode %04o: it must not be group-writable or accessible to others "
        "(use 0600, 0400 or 0440)",
        path, st.st_mode & 07777));
  }
  if (static_cast<uint64_t>(st.st_size) > options.max_size) {
    return absl::FailedPreconditionError(absl::StrCat("key file ", path, " is too large"));
  }
  SecretBytes content(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < content.size()) {
    ssize_t n = read(fd.get(), content.data() + got, content.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("key file ", path, ": read failed"));
    if (n == 0) break;  // Shrunk while reading: keep what is there.
    got += static_cast<size_t>(n);
  }
  if (got != content.size()) {
    SecretBytes shorter = SecretBytes::CopyFrom(content.view().substr(0, got));
    return shorter;
  }
  return content;
}

absl::StatusOr<std::vector<VersionedKey>> ParseKeyLines(absl::string_view text, size_t key_size) {
  std::vector<VersionedKey> keys;
  std::set<uint32_t> seen;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2 && (fields.size() != 3 || fields[2] != "pending")) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": expected '<version> <base64 key> [pending]'"));
    }
    absl::string_view version_text = fields[0];
    uint64_t version = 0;
    bool version_ok = !version_text.empty() && version_text.size() <= 10;
    for (char c : version_text) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        version_ok = false;
        break;
      }
      version = version * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!version_ok || version == 0 || version > 0xffffffffu) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": version must be an integer in 1..4294967295"));
    }
    bool chars_ok = true;
    for (char c : fields[1]) chars_ok = chars_ok && IsBase64Char(c);
    std::string decoded;
    if (!chars_ok || !absl::Base64Unescape(fields[1], &decoded)) {
      Wipe(&decoded);
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": key is not base64"));
    }
    if (decoded.size() != key_size) {
      const size_t got = decoded.size();
      Wipe(&decoded);
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": key must be ", key_size, " bytes, got ", got));
    }
    if (!seen.insert(static_cast<uint32_t>(version)).second) {
      Wipe(&decoded);
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": duplicate key version ", version));
    }
    keys.push_back(VersionedKey{static_cast<uint32_t>(version), SecretBytes::CopyFrom(decoded),
                                fields.size() == 3});
    Wipe(&decoded);
  }
  if (keys.empty()) return absl::InvalidArgumentError("no key found");
  return keys;
}

}  // namespace crm::crypto
