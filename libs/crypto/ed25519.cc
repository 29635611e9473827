#include "libs/crypto/ed25519.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"

namespace crm::crypto {
namespace {

std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

const unsigned char* U(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Bio ReadBio(absl::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) return nullptr;
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

bool IsEd25519(EVP_PKEY* k) { return k != nullptr && EVP_PKEY_is_a(k, "ED25519") == 1; }

}  // namespace

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::FromRaw(absl::string_view raw) {
  if (raw.size() != kEd25519PublicKeySize) {
    return absl::InvalidArgumentError("Ed25519 public key must be 32 bytes");
  }
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, U(raw), raw.size());
  if (k == nullptr) return absl::InvalidArgumentError("invalid Ed25519 public key");
  return Ed25519PublicKey(Own(k));
}

absl::StatusOr<Ed25519PublicKey> Ed25519PublicKey::FromPem(absl::string_view pem) {
  Bio bio = ReadBio(pem);
  if (bio == nullptr) return absl::InvalidArgumentError("public key PEM too large");
  std::shared_ptr<EVP_PKEY> k = Own(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (k == nullptr) return absl::InvalidArgumentError("public key PEM does not parse");
  if (!IsEd25519(k.get())) return absl::InvalidArgumentError("public key is not Ed25519");
  return Ed25519PublicKey(std::move(k));
}

std::string Ed25519PublicKey::Raw() const {
  std::string out(kEd25519PublicKeySize, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key_.get(), reinterpret_cast<unsigned char*>(out.data()), &len) !=
          1 ||
      len != kEd25519PublicKeySize) {
    std::abort();  // Only possible if OpenSSL is broken: the key was checked on creation.
  }
  return out;
}

std::string Ed25519PublicKey::ToPem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) std::abort();
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool Ed25519PublicKey::Verify(absl::string_view message, absl::string_view signature) const {
  if (signature.size() != kEd25519SignatureSize) return false;
  MdCtx ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return false;
  // Ed25519 is a one-shot scheme: no digest (NULL md), EVP_DigestVerify only.
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), U(signature), signature.size(), U(message), message.size()) ==
         1;
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::Generate() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (k == nullptr) return absl::InternalError("Ed25519 key generation failed");
  return Ed25519PrivateKey(Own(k));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromSeed(absl::string_view seed) {
  if (seed.size() != kEd25519SeedSize) {
    return absl::InvalidArgumentError("Ed25519 seed must be 32 bytes");
  }
  EVP_PKEY* k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, U(seed), seed.size());
  if (k == nullptr) return absl::InvalidArgumentError("invalid Ed25519 seed");
  return Ed25519PrivateKey(Own(k));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromPem(absl::string_view pem) {
  Bio bio = ReadBio(pem);
  if (bio == nullptr) return absl::InvalidArgumentError("private key PEM too large");
  // An empty passphrase callback result makes encrypted PEM fail instead of prompting.
  std::shared_ptr<EVP_PKEY> k =
      Own(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")));
  if (k == nullptr) return absl::InvalidArgumentError("private key PEM does not parse");
  if (!IsEd25519(k.get())) return absl::InvalidArgumentError("private key is not Ed25519");
  return Ed25519PrivateKey(std::move(k));
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::LoadPemFile(const std::string& path,
                                                                 const KeyFileOptions& options) {
  CRM_ASSIGN_OR_RETURN(SecretBytes pem, ReadKeyFile(path, options));
  absl::StatusOr<Ed25519PrivateKey> key = FromPem(pem.view());
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("key file ", path, ": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<SecretBytes> Ed25519PrivateKey::ToPem() const {
  Bio bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr) bio.reset(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError("private key PEM encoding failed");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  if (n <= 0 || data == nullptr) return absl::InternalError("private key PEM encoding failed");
  return SecretBytes::CopyFrom(absl::string_view(data, static_cast<size_t>(n)));
}

absl::Status Ed25519PrivateKey::SavePemFile(const std::string& path) const {
  CRM_ASSIGN_OR_RETURN(SecretBytes pem, ToPem());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create key file ", path));
  bool ok = fchmod(fd, 0600) == 0;
  size_t done = 0;
  while (ok && done < pem.size()) {
    const ssize_t n = write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  ok = (fsync(fd) == 0) && ok;
  ok = (close(fd) == 0) && ok;
  if (!ok) return absl::InternalError(absl::StrCat("cannot write key file ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Ed25519PrivateKey::Sign(absl::string_view message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return absl::InternalError("signature context allocation failed");
  std::string sig(kEd25519SignatureSize, '\0');
  size_t len = sig.size();
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, U(message),
                     message.size()) != 1 ||
      len != kEd25519SignatureSize) {
    return absl::InternalError("Ed25519 signing failed");
  }
  return sig;
}

Ed25519PublicKey Ed25519PrivateKey::PublicKey() const {
  // A public-only key object, so the private half never travels with it.
  unsigned char raw[kEd25519PublicKeySize];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &len) != 1 || len != sizeof(raw)) std::abort();
  EVP_PKEY* k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw, len);
  if (k == nullptr) std::abort();
  return Ed25519PublicKey(Own(k));
}

}  // namespace crm::crypto
