// SecretBytes: a fixed-size buffer for key material (data keys, KEKs, HMAC
// keys, PEM-encoded private keys) that is wiped with OPENSSL_cleanse() when it
// is destroyed or moved from. Used by everything in libs/crypto that hands out
// or takes in secrets, and by services holding unwrapped data keys.
//
// It is move-only (a copy must be asked for with Copy()), never reallocates,
// and has no operator== or stream output, so a secret is not compared in
// variable time or printed by accident. Not thread-safe for concurrent
// mutation; concurrent reads of a const SecretBytes are fine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"

namespace crm::crypto {

class SecretBytes {
 public:
  SecretBytes() = default;
  // `size` zero bytes.
  explicit SecretBytes(size_t size);
  // A copy of `bytes`. The caller remains responsible for wiping its source.
  static SecretBytes CopyFrom(absl::string_view bytes);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  // An explicit copy.
  SecretBytes Copy() const { return CopyFrom(view()); }

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(data_.get()), size_);
  }

  // Wipes and releases the buffer; size() becomes 0.
  void Clear();

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t size_ = 0;
};

}  // namespace crm::crypto
