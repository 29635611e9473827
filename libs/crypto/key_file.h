// Reading secret files (key rings, blind-index keys, private keys) from disk
// or from a mounted Kubernetes Secret, and the line format they share. Used by
// KeyRing, BlindIndexer and Ed25519PrivateKey loaders. Thread-safe.
//
// Line format ("key lines"): UTF-8 text; blank lines and lines whose first
// non-blank character is '#' are ignored; every other line is
//   <version> <base64 key> [pending]
// with the version a decimal integer in 1..4294967295 and the key in standard
// base64 (with or without '=' padding). Fields are separated by spaces or
// tabs. `pending` marks a key ring's key that unwraps but does not wrap yet,
// so that every replica learns a new key before any of them uses it
// (docs/operations.md#rotating-a-key-encryption-key); files of one key refuse
// it. Errors name the line number, never its content.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/crypto/secret_bytes.h"

namespace crm::crypto {

struct KeyFileOptions {
  // Refuse a file that other users may read or write, or that its group may
  // write (mode & 0027 != 0). Modes 0400, 0600 and 0440 pass; a Kubernetes
  // Secret volume needs `defaultMode: 0440` (or 0400) for this. Default: on.
  bool check_permissions = true;
  // Refuse larger files (bytes). Default: 1 MiB.
  size_t max_size = 1 << 20;
};

// The whole content of the file at `path` (symlinks followed; the checks apply
// to the file read, not a link). NOT_FOUND if it does not exist;
// PERMISSION_DENIED if it cannot be opened; FAILED_PRECONDITION if it is not a
// regular file, its mode is too open (see KeyFileOptions) or it is larger than
// max_size; INTERNAL on a read error. Messages name the path, never content.
absl::StatusOr<SecretBytes> ReadKeyFile(const std::string& path,
                                        const KeyFileOptions& options = {});

struct VersionedKey {
  uint32_t version = 0;
  SecretBytes key;
  bool pending = false;  // marked `pending`: not yet used to wrap
};

// Parses key lines (format above). Every key must decode to `key_size` bytes
// and versions must be unique. Returns the keys in file order.
// INVALID_ARGUMENT naming the line ("line 3: ...") for a malformed line (a
// third field other than `pending`), bad
// base64, wrong key size or duplicate version; INVALID_ARGUMENT if there is
// no key at all.
absl::StatusOr<std::vector<VersionedKey>> ParseKeyLines(absl::string_view text, size_t key_size);

}  // namespace crm::crypto
