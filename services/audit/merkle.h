// The audit log's Merkle tree (RFC 6962 section 2.1; verification as in RFC
// 9162 section 2.1): leaf and node hashing, an incremental builder for the
// writer and the log verifier, and inclusion and consistency proofs computed
// from stored subtree hashes. Pure code, no I/O: the audit store supplies the
// hashes.
//
// Storage model. A complete subtree at (level, index) covers the leaves
// [index << level, (index + 1) << level); level 0 is the leaves. The store
// keeps the hash of every complete subtree (leaves included), written as the
// log grows (TreeBuilder::Append reports them). Proofs and roots need only
// O(log n) of them: the first phase lists the NodeIds to fetch (one query),
// the second computes the result from the fetched NodeMap; subtrees on the
// right edge that are not complete are hashed from the complete ones.
//
// Hashes are 32-byte std::strings. Tree sizes and indices are uint64_t up to
// kMaxTreeSize (int64 max, as in the proto).
//
// Errors: INVALID_ARGUMENT naming the argument for bad sizes, indices and
// hash lengths; NOT_FOUND naming the node when a NodeMap lacks a listed
// node; DATA_LOSS when a proof does not verify.
//
// Thread safety: the free functions are thread-safe (each thread hashes with
// its own OpenSSL context). TreeBuilder is a value type: concurrent const
// calls are safe, mutation needs external synchronisation.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace crm::audit::merkle {

inline constexpr size_t kHashSize = 32;
inline constexpr uint64_t kMaxTreeSize = std::numeric_limits<int64_t>::max();

// SHA-256(0x00 || leaf).
std::string LeafHash(absl::string_view leaf);
// SHA-256(0x01 || left || right); `left` and `right` are 32-byte hashes.
std::string NodeHash(absl::string_view left, absl::string_view right);
// The root of the empty tree: SHA-256 of the empty string.
std::string EmptyRoot();

// A complete subtree: 2^level leaves starting at leaf index << level.
struct NodeId {
  int level = 0;
  uint64_t index = 0;

  uint64_t begin() const { return index << level; }
  uint64_t end() const { return (index + 1) << level; }
  // "(level 3, index 5)", for messages.
  std::string DebugString() const;

  friend bool operator==(const NodeId&, const NodeId&) = default;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const NodeId& n) {
    return H::combine(std::move(h), n.level, n.index);
  }
};

// Fetched subtree hashes, as the second phase of every computation reads them.
using NodeMap = absl::flat_hash_map<NodeId, std::string>;

// The frontier of a tree of `size` leaves: its maximal complete subtrees, one
// per set bit of `size`, left to right (largest first). Their hashes are all
// TreeBuilder::Resume needs, and folded right to left they give the root.
std::vector<NodeId> FrontierNodes(uint64_t size);

// The nodes RootHash(size, ...) reads: FrontierNodes(size) (none for size 0).
// INVALID_ARGUMENT if size > kMaxTreeSize.
absl::StatusOr<std::vector<NodeId>> RootNodes(uint64_t size);
// MTH of the first `size` leaves (EmptyRoot() for 0). NOT_FOUND naming the
// node if `nodes` lacks one of RootNodes(size); INVALID_ARGUMENT if size >
// kMaxTreeSize or a node's hash is not 32 bytes.
absl::StatusOr<std::string> RootHash(uint64_t size, const NodeMap& nodes);

// The nodes InclusionProof(index, size, ...) reads. INVALID_ARGUMENT if
// size is 0 or above kMaxTreeSize, or index >= size.
absl::StatusOr<std::vector<NodeId>> InclusionProofNodes(uint64_t index, uint64_t size);
// The audit path PATH(index, D[size]) of RFC 6962 section 2.1.1, from the
// leaf's sibling up to the root's child. Errors as InclusionProofNodes, plus
// NOT_FOUND naming the node if `nodes` lacks a listed node and
// INVALID_ARGUMENT if a node's hash is not 32 bytes.
absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size,
                                                        const NodeMap& nodes);

// The nodes ConsistencyProof(m, n, ...) reads. INVALID_ARGUMENT if m is 0
// (RFC 9162 defines proofs for 0 < m), m > n or n > kMaxTreeSize.
absl::StatusOr<std::vector<NodeId>> ConsistencyProofNodes(uint64_t m, uint64_t n);
// PROOF(m, D[n]) of RFC 6962 section 2.1.2; empty when m == n. Errors as
// ConsistencyProofNodes, plus NOT_FOUND / INVALID_ARGUMENT for the nodes as
// InclusionProof.
absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t m, uint64_t n,
                                                          const NodeMap& nodes);

// OK if `path` proves that `leaf_hash` is leaf `index` of the tree of `size`
// leaves whose root is `root` (RFC 9162 section 2.1.3.2). INVALID_ARGUMENT
// (naming it) if a hash is not 32 bytes, size is 0 or above kMaxTreeSize, or
// index >= size; DATA_LOSS if the proof does not verify.
absl::Status VerifyInclusion(absl::string_view leaf_hash, uint64_t index, uint64_t size,
                             absl::Span<const std::string> path, absl::string_view root);

// OK if `proof` proves that the tree of m leaves with root `root_m` is a
// prefix of the tree of n leaves with root `root_n` (RFC 9162 section
// 2.1.4.2). For m == n the proof must be empty and the roots equal.
// INVALID_ARGUMENT (naming it) if a hash is not 32 bytes, m is 0, m > n or n
// > kMaxTreeSize; DATA_LOSS if the proof does not verify.
absl::Status VerifyConsistency(uint64_t m, uint64_t n, absl::string_view root_m,
                               absl::string_view root_n, absl::Span<const std::string> proof);

// The right edge of a growing tree (a compact range over [0, size)): appends
// leaf hashes, reports each complete subtree as it forms and yields the root
// of the current size. O(log size) memory; an append costs one hash per
// subtree it completes (one on average).
class TreeBuilder {
 public:
  // Called with each node an append completes; `hash` is valid during the
  // call only.
  using NodeSink = absl::FunctionRef<void(const NodeId& id, absl::string_view hash)>;

  // The empty tree.
  TreeBuilder() = default;

  // The tree of `size` leaves, from the hashes of FrontierNodes(size) (the
  // writer's restart). NOT_FOUND naming the node if one is missing;
  // INVALID_ARGUMENT if size > kMaxTreeSize or a hash is not 32 bytes.
  static absl::StatusOr<TreeBuilder> Resume(uint64_t size, const NodeMap& nodes);

  uint64_t size() const { return size_; }

  // Appends the leaf with hash `leaf_hash` (LeafHash of its bytes) as leaf
  // size(). The overload with `sink` first reports the leaf itself
  // (level 0, index size()), then every subtree the leaf completes, bottom
  // up. INVALID_ARGUMENT if leaf_hash is not 32 bytes; FAILED_PRECONDITION
  // if the tree already has kMaxTreeSize leaves. Nothing changes on error.
  absl::Status Append(absl::string_view leaf_hash);
  absl::Status Append(absl::string_view leaf_hash, NodeSink sink);

  // MTH of the current tree (EmptyRoot() when empty).
  std::string Root() const;

 private:
  using Digest = std::array<unsigned char, kHashSize>;

  template <typename Sink>
  absl::Status AppendImpl(absl::string_view leaf_hash, Sink&& sink);

  uint64_t size_ = 0;
  // The hashes of FrontierNodes(size_), in that order.
  std::vector<Digest> frontier_;
};

}  // namespace crm::audit::merkle
