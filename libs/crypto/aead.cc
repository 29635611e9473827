#include "libs/crypto/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "libs/base/random.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"

namespace crm::crypto {

void internal::CipherCtxFree::operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }

namespace {

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) std::abort();
    return c;
  }();
  return cipher;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, internal::CipherCtxFree>;

const unsigned char* U(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

absl::Status CheckSizes(absl::string_view key, absl::string_view nonce, size_t data_size) {
  if (key.size() != kAes256KeySize) {
    return absl::InvalidArgumentError("AES-256-GCM key must be 32 bytes");
  }
  if (nonce.size() != kGcmNonceSize) {
    return absl::InvalidArgumentError("AES-256-GCM nonce must be 12 bytes");
  }
  if (data_size > static_cast<size_t>(INT_MAX) - 64) {
    return absl::InvalidArgumentError("message too large");
  }
  return absl::OkStatus();
}

// Feeds AAD to an initialised context; empty pieces are skipped.
bool UpdateAad(EVP_CIPHER_CTX* ctx, absl::string_view aad) {
  if (aad.empty()) return true;
  if (aad.size() > static_cast<size_t>(INT_MAX)) return false;
  int len = 0;
  return EVP_CipherUpdate(ctx, nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1;
}

// A context keyed for encryption under `key` (32 bytes), ready for
// EncryptInto: AES's key schedule and GCM's tables are computed once here.
absl::StatusOr<CipherCtx> KeyedEncryption(absl::string_view key) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::InternalError("cipher context allocation failed");
  if (EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), U(key), nullptr, nullptr) != 1) {
    return absl::InternalError("AES-256-GCM encryption setup failed");
  }
  return ctx;
}

// Encrypts `plaintext` with the keyed context `ctx` under the 12-byte
// `nonce`, binding aad_prefix || aad; writes ciphertext || tag
// (plaintext.size() + 16 bytes) to `out`. The context stays keyed for the
// next message.
absl::Status EncryptInto(EVP_CIPHER_CTX* ctx, absl::string_view nonce, absl::string_view aad_prefix,
                         absl::string_view aad, absl::string_view plaintext, unsigned char* out) {
  // The default GCM IV length is 12 bytes, so no EVP_CTRL_GCM_SET_IVLEN call;
  // no cipher and no key: the ones the context has are kept.
  if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, U(nonce), nullptr) != 1 ||
      !UpdateAad(ctx, aad_prefix) || !UpdateAad(ctx, aad)) {
    return absl::InternalError("AES-256-GCM encryption setup failed");
  }
  int len = 0;
  if (!plaintext.empty() &&
      EVP_EncryptUpdate(ctx, out, &len, U(plaintext), static_cast<int>(plaintext.size())) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx, out + len, &final_len) != 1 ||
      static_cast<size_t>(len + final_len) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagSize),
                          out + plaintext.size()) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  return absl::OkStatus();
}

const char kVersionPrefix[1] = {static_cast<char>(kSealedFormatV1)};

}  // namespace

namespace internal {

absl::StatusOr<std::string> GcmEncrypt(absl::string_view key, absl::string_view nonce,
                                       absl::string_view aad_prefix, absl::string_view aad,
                                       absl::string_view plaintext) {
  CRM_RETURN_IF_ERROR(CheckSizes(key, nonce, plaintext.size()));
  CRM_ASSIGN_OR_RETURN(CipherCtx ctx, KeyedEncryption(key));
  std::string out(plaintext.size() + kGcmTagSize, '\0');
  CRM_RETURN_IF_ERROR(EncryptInto(ctx.get(), nonce, aad_prefix, aad, plaintext,
                                  reinterpret_cast<unsigned char*>(out.data())));
  return out;
}

absl::Status GcmDecrypt(absl::string_view key, absl::string_view nonce,
                        absl::string_view aad_prefix, absl::string_view aad,
                        absl::string_view ciphertext_and_tag, uint8_t* out) {
  CRM_RETURN_IF_ERROR(CheckSizes(key, nonce, ciphertext_and_tag.size()));
  if (ciphertext_and_tag.size() < kGcmTagSize) {
    return absl::DataLossError("ciphertext truncated");
  }
  const size_t ct_size = ciphertext_and_tag.size() - kGcmTagSize;
  absl::string_view ct = ciphertext_and_tag.substr(0, ct_size);
  // EVP_CIPHER_CTX_ctrl takes a non-const tag pointer; copy the tag out.
  unsigned char tag[kGcmTagSize];
  std::memcpy(tag, ciphertext_and_tag.data() + ct_size, kGcmTagSize);

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::InternalError("cipher context allocation failed");
  if (EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), U(key), U(nonce), nullptr) != 1 ||
      !UpdateAad(ctx.get(), aad_prefix) || !UpdateAad(ctx.get(), aad)) {
    return absl::InternalError("AES-256-GCM decryption setup failed");
  }
  int len = 0;
  if (ct_size > 0 &&
      EVP_DecryptUpdate(ctx.get(), out, &len, U(ct), static_cast<int>(ct_size)) != 1) {
    OPENSSL_cleanse(out, ct_size);
    return absl::InternalError("AES-256-GCM decryption failed");
  }
  int final_len = 0;
  unsigned char scratch[kGcmTagSize];  // GCM's final step writes nothing; never pass null.
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagSize), tag) !=
          1 ||
      EVP_DecryptFinal_ex(ctx.get(), ct_size > 0 ? out + len : scratch, &final_len) != 1) {
    // Authentication failed: the plaintext written so far must not escape.
    if (ct_size > 0) OPENSSL_cleanse(out, ct_size);
    return absl::DataLossError("ciphertext failed authentication");
  }
  return absl::OkStatus();
}

}  // namespace internal

SealingKey::SealingKey(SealingKey&&) noexcept = default;
SealingKey& SealingKey::operator=(SealingKey&&) noexcept = default;
SealingKey::~SealingKey() = default;

absl::StatusOr<SealingKey> SealingKey::Create(const SecretBytes& key) {
  if (key.size() != kAes256KeySize) {
    return absl::InvalidArgumentError("AES-256-GCM key must be 32 bytes");
  }
  SealingKey out;
  CRM_ASSIGN_OR_RETURN(CipherCtx ctx, KeyedEncryption(key.view()));
  out.ctx_.reset(ctx.release());
  return out;
}

absl::StatusOr<std::string> SealingKey::Seal(absl::string_view plaintext, absl::string_view aad) {
  if (plaintext.size() > static_cast<size_t>(INT_MAX) - 64) {
    return absl::InvalidArgumentError("message too large");
  }
  // | version | nonce | ciphertext | tag |, written in place.
  std::string out(kSealOverhead + plaintext.size(), '\0');
  out[0] = static_cast<char>(kSealedFormatV1);
  base::FillRandom(out.data() + 1, kGcmNonceSize);
  CRM_RETURN_IF_ERROR(
      EncryptInto(ctx_.get(), absl::string_view(out.data() + 1, kGcmNonceSize),
                  absl::string_view(kVersionPrefix, 1), aad, plaintext,
                  reinterpret_cast<unsigned char*>(out.data()) + 1 + kGcmNonceSize));
  return out;
}

absl::StatusOr<std::string> Seal(const SecretBytes& key, absl::string_view plaintext,
                                 absl::string_view aad) {
  CRM_ASSIGN_OR_RETURN(SealingKey sealing, SealingKey::Create(key));
  return sealing.Seal(plaintext, aad);
}

namespace {

// Validates the envelope and decrypts into `out` (sealed.size() - overhead bytes).
absl::Status OpenTo(const SecretBytes& key, absl::string_view sealed, absl::string_view aad,
                    uint8_t* out) {
  if (key.size() != kAes256KeySize) {
    return absl::InvalidArgumentError("AES-256-GCM key must be 32 bytes");
  }
  if (sealed.size() < kSealOverhead) return absl::DataLossError("ciphertext truncated");
  if (static_cast<uint8_t>(sealed[0]) != kSealedFormatV1) {
    return absl::DataLossError("unknown ciphertext format version");
  }
  return internal::GcmDecrypt(key.view(), sealed.substr(1, kGcmNonceSize),
                              absl::string_view(kVersionPrefix, 1), aad,
                              sealed.substr(1 + kGcmNonceSize), out);
}

}  // namespace

absl::StatusOr<std::string> Open(const SecretBytes& key, absl::string_view sealed,
                                 absl::string_view aad) {
  std::string out(sealed.size() >= kSealOverhead ? sealed.size() - kSealOverhead : 0, '\0');
  CRM_RETURN_IF_ERROR(OpenTo(key, sealed, aad, reinterpret_cast<uint8_t*>(out.data())));
  return out;
}

absl::StatusOr<SecretBytes> OpenSecret(const SecretBytes& key, absl::string_view sealed,
                                       absl::string_view aad) {
  SecretBytes out(sealed.size() >= kSealOverhead ? sealed.size() - kSealOverhead : 0);
  uint8_t empty = 0;  // SecretBytes(0) has no buffer.
  CRM_RETURN_IF_ERROR(OpenTo(key, sealed, aad, out.empty() ? &empty : out.data()));
  return out;
}

}  // namespace crm::crypto
