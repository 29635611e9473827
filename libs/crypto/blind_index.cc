#include "libs/crypto/blind_index.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {

absl::StatusOr<BlindIndexer> BlindIndexer::Create(SecretBytes key) {
  if (key.size() < 32) {
    return absl::InvalidArgumentError("blind-index key must be at least 32 bytes");
  }
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return absl::InternalError("HMAC unavailable");
  std::shared_ptr<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(mac), EVP_MAC_CTX_free);
  EVP_MAC_free(mac);  // the context holds its own reference
  if (ctx == nullptr) return absl::InternalError("HMAC context allocation failed");
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1) {
    return absl::InternalError("HMAC initialisation failed");
  }
  return BlindIndexer(std::move(ctx));
}

absl::StatusOr<BlindIndexer> BlindIndexer::LoadFromFile(const std::string& path,
                                                        const KeyFileOptions& options) {
  CRM_ASSIGN_OR_RETURN(SecretBytes content, ReadKeyFile(path, options));
  absl::StatusOr<std::vector<VersionedKey>> keys = ParseKeyLines(content.view(), 32);
  if (!keys.ok()) {
    return absl::Status(keys.status().code(),
                        absl::StrCat("blind-index key ", path, ": ", keys.status().message()));
  }
  if (keys->size() != 1 || (*keys)[0].pending) {
    return absl::InvalidArgumentError(
        absl::StrCat("blind-index key ", path, ": must hold exactly one key, not pending"));
  }
  return Create(std::move((*keys)[0].key));
}

std::string BlindIndexer::Raw(absl::string_view normalized_value) const {
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_.get());
  if (ctx == nullptr) std::abort();
  std::string out(kSha256Size, '\0');
  size_t len = 0;
  const bool ok =
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(normalized_value.data()),
                     normalized_value.size()) == 1 &&
      EVP_MAC_final(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) == 1 &&
      len == kSha256Size;
  EVP_MAC_CTX_free(ctx);
  if (!ok) std::abort();
  return out;
}

std::string BlindIndexer::Hex(absl::string_view normalized_value) const {
  return absl::BytesToHexString(Raw(normalized_value));
}

}  // namespace crm::crypto
