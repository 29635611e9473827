#include "libs/auth/token_cache.h"

#include <utility>

namespace crm::auth {

VerifiedTokenCache::VerifiedTokenCache(size_t capacity) : capacity_(capacity) {}

std::shared_ptr<const Principal> VerifiedTokenCache::Lookup(absl::string_view token_hash,
                                                            absl::Time now,
                                                            uint64_t key_generation) {
  if (capacity_ == 0) return nullptr;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(token_hash);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  List::iterator e = it->second;
  if (now >= e->valid_until || e->generation != key_generation) {
    lru_.erase(e);
    index_.erase(it);
    ++misses_;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, e);
  ++hits_;
  return e->principal;
}

void VerifiedTokenCache::Insert(absl::string_view token_hash,
                                std::shared_ptr<const Principal> principal, absl::Time valid_until,
                                uint64_t key_generation) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(token_hash);
  if (it != index_.end()) {
    List::iterator e = it->second;
    e->principal = std::move(principal);
    e->valid_until = valid_until;
    e->generation = key_generation;
    lru_.splice(lru_.begin(), lru_, e);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().hash);
    lru_.pop_back();
  }
  lru_.push_front(
      Entry{std::string(token_hash), std::move(principal), valid_until, key_generation});
  index_.emplace(lru_.front().hash, lru_.begin());
}

size_t VerifiedTokenCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

uint64_t VerifiedTokenCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

uint64_t VerifiedTokenCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace crm::auth
