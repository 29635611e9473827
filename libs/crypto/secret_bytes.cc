#include "libs/crypto/secret_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <utility>

namespace crm::crypto {

SecretBytes::SecretBytes(size_t size) : data_(size ? new uint8_t[size]() : nullptr), size_(size) {}

SecretBytes SecretBytes::CopyFrom(absl::string_view bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecretBytes::~SecretBytes() { Clear(); }

void SecretBytes::Clear() {
  if (data_ != nullptr && size_ > 0) OPENSSL_cleanse(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

}  // namespace crm::crypto
