// The audit Merkle tree against a naive recursive implementation of RFC 6962
// section 2.1 (MTH, PATH, PROOF) written out below, for every tree size up to
// kLeaves and every index and pair of sizes, and against the published test
// vectors of the certificate-transparency project.
#include "services/audit/merkle.h"

#include <bit>
#include <latch>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/crypto/primitives.h"
#include "libs/testing/status_matchers.h"

namespace crm::audit::merkle {

// Readable NodeIds in gtest messages (found by ADL).
void PrintTo(const NodeId& id, std::ostream* os) { *os << id.DebugString(); }

namespace {

using ::crm::testing::IsOk;
using ::crm::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

using Hashes = std::vector<std::string>;
using Leaves = absl::Span<const std::string>;

constexpr size_t kLeaves = 70;

// ---- Reference implementation: RFC 6962 2.1, literally, over leaf hashes
// (MTH of one leaf is its leaf hash). Deliberately naive: no stored nodes.

std::string RefLeafHash(absl::string_view data) {
  return crypto::Sha256(absl::StrCat(std::string(1, '\0'), data));
}

size_t LargestPowerOfTwoBelow(size_t n) {
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

std::string RefMth(Leaves d) {
  if (d.empty()) return crypto::Sha256("");
  if (d.size() == 1) return d[0];
  const size_t k = LargestPowerOfTwoBelow(d.size());
  return crypto::Sha256(absl::StrCat("\x01", RefMth(d.subspan(0, k)), RefMth(d.subspan(k))));
}

// PATH(m, D[n]).
Hashes RefPath(size_t m, Leaves d) {
  if (d.size() <= 1) return {};
  const size_t k = LargestPowerOfTwoBelow(d.size());
  Hashes out;
  if (m < k) {
    out = RefPath(m, d.subspan(0, k));
    out.push_back(RefMth(d.subspan(k)));
  } else {
    out = RefPath(m - k, d.subspan(k));
    out.push_back(RefMth(d.subspan(0, k)));
  }
  return out;
}

// SUBPROOF(m, D[n], b).
Hashes RefSubproof(size_t m, Leaves d, bool b) {
  if (m == d.size()) return b ? Hashes{} : Hashes{RefMth(d)};
  const size_t k = LargestPowerOfTwoBelow(d.size());
  Hashes out;
  if (m <= k) {
    out = RefSubproof(m, d.subspan(0, k), b);
    out.push_back(RefMth(d.subspan(k)));
  } else {
    out = RefSubproof(m - k, d.subspan(k), false);
    out.push_back(RefMth(d.subspan(0, k)));
  }
  return out;
}

// PROOF(m, D[n]).
Hashes RefProof(size_t m, Leaves d) { return RefSubproof(m, d, true); }

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }
std::string Unhex(absl::string_view hex) { return absl::HexStringToBytes(hex); }
Hashes UnhexAll(const std::vector<absl::string_view>& hexes) {
  Hashes out;
  out.reserve(hexes.size());
  for (absl::string_view h : hexes) out.push_back(Unhex(h));
  return out;
}

std::string Flip(std::string hash, size_t byte) {
  hash[byte % hash.size()] ^= 0x01;
  return hash;
}

class MerkleTest : public ::testing::Test {
 protected:
  MerkleTest() {
    for (size_t i = 0; i < kLeaves; ++i) leaves_.push_back(RefLeafHash(absl::StrCat("entry ", i)));
    for (size_t n = 0; n <= kLeaves; ++n) roots_.push_back(RefMth(Prefix(n)));
    all_ = CompleteNodes(kLeaves);
  }

  Leaves Prefix(size_t n) const { return Leaves(leaves_).subspan(0, n); }

  // Every complete subtree of the tree of `size` leaves, by the reference.
  NodeMap CompleteNodes(size_t size) const {
    NodeMap out;
    for (int level = 0; (size_t{1} << level) <= size; ++level) {
      for (uint64_t index = 0; ((index + 1) << level) <= size; ++index) {
        const NodeId id{level, index};
        out[id] = RefMth(Leaves(leaves_).subspan(id.begin(), size_t{1} << level));
      }
    }
    return out;
  }

  // Only the listed nodes, as the store's one query would return them.
  NodeMap Only(const std::vector<NodeId>& ids) const {
    NodeMap out;
    for (const NodeId& id : ids) {
      auto it = all_.find(id);
      EXPECT_NE(it, all_.end()) << id.DebugString() << " is not a complete subtree";
      if (it != all_.end()) out.insert(*it);
    }
    return out;
  }

  Hashes leaves_;  // leaf hashes of "entry 0", "entry 1", ...
  Hashes roots_;   // roots_[n]: MTH of the first n leaves
  NodeMap all_;    // every complete subtree of the tree of kLeaves leaves
};

TEST(MerkleHashTest, HashesAreDomainSeparatedSha256) {
  EXPECT_EQ(Hex(EmptyRoot()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(LeafHash("")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(LeafHash("abc"), crypto::Sha256(std::string("\0abc", 4)));
  const std::string l = LeafHash("l");
  const std::string r = LeafHash("r");
  EXPECT_EQ(NodeHash(l, r), crypto::Sha256(absl::StrCat("\x01", l, r)));
  EXPECT_NE(NodeHash(l, r), NodeHash(r, l));
}

// The reference tree of google/certificate-transparency,
// cpp/merkletree/merkle_tree_test.cc (kInputs, kSHA256Roots, kSHA256Paths,
// kSHA256Proofs; its leaf numbers are 1-based, ours 0-based); the same values
// are in transparency-dev/merkle testonly/constants.go.
TEST(MerkleVectorTest, CertificateTransparencyReferenceTree) {
  const std::vector<std::string> inputs = {
      "",
      Unhex("00"),
      Unhex("10"),
      Unhex("2021"),
      Unhex("3031"),
      Unhex("40414243"),
      Unhex("5051525354555657"),
      Unhex("606162636465666768696a6b6c6d6e6f"),
  };
  const std::vector<absl::string_view> roots = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
  };
  struct PathVector {
    uint64_t index;
    uint64_t size;
    Hashes path;
  };
  const std::vector<PathVector> paths = {
      {0, 1, {}},
      {0, 8,
       UnhexAll({"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"})},
      {5, 8,
       UnhexAll({"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                 "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"})},
      {2, 3, UnhexAll({"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"})},
      {1, 5,
       UnhexAll({"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"})},
  };
  struct ProofVector {
    uint64_t m;
    uint64_t n;
    Hashes proof;
  };
  const std::vector<ProofVector> proofs = {
      {1, 1, {}},
      {1, 8,
       UnhexAll({"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"})},
      {6, 8,
       UnhexAll({"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                 "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"})},
      {2, 5,
       UnhexAll({"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                 "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"})},
  };

  TreeBuilder builder;
  NodeMap stored;
  Hashes leaf_hashes;
  EXPECT_EQ(builder.Root(), EmptyRoot());
  for (size_t i = 0; i < inputs.size(); ++i) {
    leaf_hashes.push_back(LeafHash(inputs[i]));
    ASSERT_THAT(
        builder.Append(leaf_hashes.back(),
                       [&](const NodeId& id, absl::string_view h) { stored[id] = std::string(h); }),
        IsOk());
    EXPECT_EQ(Hex(builder.Root()), roots[i]) << "size " << i + 1;
    EXPECT_EQ(Hex(RefMth(leaf_hashes)), roots[i]) << "size " << i + 1;
    EXPECT_THAT(RootHash(i + 1, stored), ::crm::testing::IsOkAndHolds(Unhex(roots[i])));
  }
  for (const PathVector& v : paths) {
    SCOPED_TRACE(absl::StrCat("index ", v.index, " size ", v.size));
    EXPECT_THAT(InclusionProof(v.index, v.size, stored), ::crm::testing::IsOkAndHolds(v.path));
    EXPECT_EQ(RefPath(v.index, Leaves(leaf_hashes).subspan(0, v.size)), v.path);
    EXPECT_THAT(
        VerifyInclusion(leaf_hashes[v.index], v.index, v.size, v.path, Unhex(roots[v.size - 1])),
        IsOk());
  }
  for (const ProofVector& v : proofs) {
    SCOPED_TRACE(absl::StrCat("m ", v.m, " n ", v.n));
    EXPECT_THAT(ConsistencyProof(v.m, v.n, stored), ::crm::testing::IsOkAndHolds(v.proof));
    EXPECT_EQ(RefProof(v.m, Leaves(leaf_hashes).subspan(0, v.n)), v.proof);
    EXPECT_THAT(VerifyConsistency(v.m, v.n, Unhex(roots[v.m - 1]), Unhex(roots[v.n - 1]), v.proof),
                IsOk());
  }
}

TEST_F(MerkleTest, BuilderReportsEachCompleteSubtreeOnceAsItForms) {
  TreeBuilder builder;
  EXPECT_EQ(builder.size(), 0u);
  EXPECT_EQ(builder.Root(), roots_[0]);
  NodeMap emitted;
  for (uint64_t size = 1; size <= kLeaves; ++size) {
    SCOPED_TRACE(absl::StrCat("size ", size));
    std::vector<NodeId> order;
    ASSERT_THAT(builder.Append(leaves_[size - 1],
                               [&](const NodeId& id, absl::string_view h) {
                                 order.push_back(id);
                                 EXPECT_TRUE(emitted.emplace(id, std::string(h)).second)
                                     << id.DebugString() << " reported twice";
                               }),
                IsOk());
    // The leaf first, then bottom up; each one ends at the new size.
    ASSERT_FALSE(order.empty());
    for (size_t i = 0; i < order.size(); ++i) {
      EXPECT_EQ(order[i].level, static_cast<int>(i));
      EXPECT_EQ(order[i].end(), size);
    }
    EXPECT_EQ(emitted, CompleteNodes(size));
    EXPECT_EQ(builder.size(), size);
    EXPECT_EQ(builder.Root(), roots_[size]);
  }
}

TEST_F(MerkleTest, ResumeFromFrontierNodesContinuesTheSameTree) {
  for (uint64_t start = 0; start <= kLeaves; ++start) {
    SCOPED_TRACE(absl::StrCat("resumed at ", start));
    const std::vector<NodeId> ids = FrontierNodes(start);
    EXPECT_EQ(ids.size(), static_cast<size_t>(std::popcount(start)));
    CRM_ASSERT_OK_AND_ASSIGN(TreeBuilder builder, TreeBuilder::Resume(start, Only(ids)));
    EXPECT_EQ(builder.size(), start);
    EXPECT_EQ(builder.Root(), roots_[start]);
    for (uint64_t size = start + 1; size <= kLeaves; ++size) {
      size_t reported = 0;
      ASSERT_THAT(builder.Append(leaves_[size - 1],
                                 [&](const NodeId& id, absl::string_view h) {
                                   ++reported;
                                   EXPECT_EQ(id.end(), size);
                                   EXPECT_EQ(all_.at(id), h) << id.DebugString();
                                 }),
                  IsOk());
      // The leaf and one node per trailing one bit of its index.
      EXPECT_EQ(reported, 1u + std::countr_one(size - 1));
      EXPECT_EQ(builder.Root(), roots_[size]) << "size " << size;
    }
  }
}

TEST_F(MerkleTest, ResumeNamesAMissingOrMalformedFrontierNode) {
  NodeMap nodes = Only(FrontierNodes(6));  // (level 2, index 0), (level 1, index 2)
  nodes.erase(NodeId{1, 2});
  EXPECT_THAT(TreeBuilder::Resume(6, nodes),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("(level 1, index 2)")));
  nodes[NodeId{1, 2}] = "short";
  EXPECT_THAT(TreeBuilder::Resume(6, nodes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(level 1, index 2)")));
}

TEST_F(MerkleTest, RootHashFromRootNodesMatchesReference) {
  for (uint64_t size = 0; size <= kLeaves; ++size) {
    CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids, RootNodes(size));
    EXPECT_EQ(ids, FrontierNodes(size));
    EXPECT_THAT(RootHash(size, Only(ids)), ::crm::testing::IsOkAndHolds(roots_[size]))
        << "size " << size;
  }
}

TEST_F(MerkleTest, InclusionProofsMatchReferenceForEveryIndexAndSize) {
  for (uint64_t size = 1; size <= kLeaves; ++size) {
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(absl::StrCat("index ", index, " size ", size));
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids, InclusionProofNodes(index, size));
      for (const NodeId& id : ids) EXPECT_LE(id.end(), size) << id.DebugString();
      CRM_ASSERT_OK_AND_ASSIGN(Hashes path, InclusionProof(index, size, Only(ids)));
      EXPECT_EQ(path, RefPath(index, Prefix(size)));
      EXPECT_THAT(VerifyInclusion(leaves_[index], index, size, path, roots_[size]), IsOk());
    }
  }
}

TEST_F(MerkleTest, ConsistencyProofsMatchReferenceForEveryPairOfSizes) {
  for (uint64_t n = 1; n <= kLeaves; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      SCOPED_TRACE(absl::StrCat("m ", m, " n ", n));
      CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids, ConsistencyProofNodes(m, n));
      for (const NodeId& id : ids) EXPECT_LE(id.end(), n) << id.DebugString();
      CRM_ASSERT_OK_AND_ASSIGN(Hashes proof, ConsistencyProof(m, n, Only(ids)));
      EXPECT_EQ(proof, RefProof(m, Prefix(n)));
      EXPECT_THAT(VerifyConsistency(m, n, roots_[m], roots_[n], proof), IsOk());
    }
  }
}

TEST_F(MerkleTest, ProofsNameAMissingNode) {
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids, InclusionProofNodes(5, 70));
  ASSERT_GE(ids.size(), 2u);
  NodeMap nodes = Only(ids);
  nodes.erase(ids[1]);
  EXPECT_THAT(InclusionProof(5, 70, nodes),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(ids[1].DebugString())));

  CRM_ASSERT_OK_AND_ASSIGN(ids, ConsistencyProofNodes(7, 70));
  nodes = Only(ids);
  nodes.erase(ids.back());
  EXPECT_THAT(ConsistencyProof(7, 70, nodes),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(ids.back().DebugString())));

  nodes = Only(FrontierNodes(70));
  nodes[FrontierNodes(70)[0]] = std::string(31, 'x');
  EXPECT_THAT(RootHash(70, nodes), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr(FrontierNodes(70)[0].DebugString())));
}

TEST_F(MerkleTest, VerifyInclusionRejectsTamperedProofs) {
  const auto kDataLoss = absl::StatusCode::kDataLoss;
  const std::string zeros(kHashSize, '\0');
  for (uint64_t size = 1; size <= kLeaves; ++size) {
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(absl::StrCat("index ", index, " size ", size));
      const Hashes path = RefPath(index, Prefix(size));
      const std::string& leaf = leaves_[index];
      const std::string& root = roots_[size];
      ASSERT_THAT(VerifyInclusion(leaf, index, size, path, root), IsOk());

      for (size_t j = 0; j < path.size(); ++j) {
        Hashes bad = path;
        bad[j] = Flip(bad[j], j * 7);
        EXPECT_THAT(VerifyInclusion(leaf, index, size, bad, root), StatusIs(kDataLoss));
      }
      EXPECT_THAT(VerifyInclusion(Flip(leaf, index), index, size, path, root), StatusIs(kDataLoss));
      EXPECT_THAT(VerifyInclusion(leaf, index, size, path, Flip(root, size)), StatusIs(kDataLoss));

      // Wrong index: every other leaf of the tree, and one past the end.
      for (uint64_t other = 0; other < size; ++other) {
        if (other == index) continue;
        EXPECT_THAT(VerifyInclusion(leaf, other, size, path, root), StatusIs(kDataLoss))
            << "as index " << other;
      }
      EXPECT_THAT(VerifyInclusion(leaf, size, size, path, root),
                  StatusIs(absl::StatusCode::kInvalidArgument));

      // Wrong size: double and half (as the certificate-transparency tests
      // do) against this root, and every other size against its own root.
      EXPECT_THAT(VerifyInclusion(leaf, index, size * 2, path, root), Not(IsOk()));
      if (index < size / 2) {
        EXPECT_THAT(VerifyInclusion(leaf, index, size / 2, path, root), Not(IsOk()));
      }
      for (uint64_t other = index + 1; other <= kLeaves; ++other) {
        if (other == size) continue;
        EXPECT_THAT(VerifyInclusion(leaf, index, other, path, roots_[other]), StatusIs(kDataLoss))
            << "as size " << other;
      }

      // Truncated and extended paths.
      if (!path.empty()) {
        EXPECT_THAT(VerifyInclusion(leaf, index, size, Hashes(path.begin(), path.end() - 1), root),
                    StatusIs(kDataLoss));
        EXPECT_THAT(VerifyInclusion(leaf, index, size, Hashes(path.begin() + 1, path.end()), root),
                    StatusIs(kDataLoss));
      }
      for (const std::string& extra : {root, zeros, leaf}) {
        Hashes longer = path;
        longer.push_back(extra);
        EXPECT_THAT(VerifyInclusion(leaf, index, size, longer, root),
                    StatusIs(kDataLoss, HasSubstr("too long")));
        longer = path;
        longer.insert(longer.begin(), extra);
        EXPECT_THAT(VerifyInclusion(leaf, index, size, longer, root), StatusIs(kDataLoss));
      }
    }
  }
}

TEST_F(MerkleTest, VerifyConsistencyRejectsTamperedProofs) {
  const auto kDataLoss = absl::StatusCode::kDataLoss;
  const std::string zeros(kHashSize, '\0');
  for (uint64_t n = 1; n <= kLeaves; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      SCOPED_TRACE(absl::StrCat("m ", m, " n ", n));
      const Hashes proof = RefProof(m, Prefix(n));
      const std::string& root_m = roots_[m];
      const std::string& root_n = roots_[n];
      ASSERT_THAT(VerifyConsistency(m, n, root_m, root_n, proof), IsOk());

      for (size_t j = 0; j < proof.size(); ++j) {
        Hashes bad = proof;
        bad[j] = Flip(bad[j], j * 5);
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, bad), StatusIs(kDataLoss));
      }
      EXPECT_THAT(VerifyConsistency(m, n, Flip(root_m, m), root_n, proof), StatusIs(kDataLoss));
      EXPECT_THAT(VerifyConsistency(m, n, root_m, Flip(root_n, n), proof), StatusIs(kDataLoss));
      if (m != n) {
        EXPECT_THAT(VerifyConsistency(m, n, root_n, root_m, proof), StatusIs(kDataLoss));
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, {}), StatusIs(kDataLoss));
      }

      // Wrong sizes, each with its own root, and m +- 1 / n * 2 / n / 2
      // with these roots (as the certificate-transparency tests do).
      for (uint64_t other = 1; other <= n; ++other) {
        if (other == m) continue;
        EXPECT_THAT(VerifyConsistency(other, n, roots_[other], root_n, proof), Not(IsOk()))
            << "as m " << other;
      }
      for (uint64_t other = m; other <= kLeaves; ++other) {
        if (other == n) continue;
        EXPECT_THAT(VerifyConsistency(m, other, root_m, roots_[other], proof), Not(IsOk()))
            << "as n " << other;
      }
      if (m != n) {
        EXPECT_THAT(VerifyConsistency(m - 1, n, root_m, root_n, proof), Not(IsOk()));
        EXPECT_THAT(VerifyConsistency(m + 1, n, root_m, root_n, proof), Not(IsOk()));
        EXPECT_THAT(VerifyConsistency(m, n * 2, root_m, root_n, proof), Not(IsOk()));
        EXPECT_THAT(VerifyConsistency(m, n / 2, root_m, root_n, proof), Not(IsOk()));
      }

      // Truncated and extended proofs.
      if (!proof.empty()) {
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, Hashes(proof.begin(), proof.end() - 1)),
                    StatusIs(kDataLoss));
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, Hashes(proof.begin() + 1, proof.end())),
                    StatusIs(kDataLoss));
      }
      for (const std::string& extra : {root_m, root_n, zeros}) {
        Hashes longer = proof;
        longer.push_back(extra);
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, longer),
                    StatusIs(kDataLoss, HasSubstr(m == n ? "need none" : "too long")));
        longer = proof;
        longer.insert(longer.begin(), extra);
        EXPECT_THAT(VerifyConsistency(m, n, root_m, root_n, longer), StatusIs(kDataLoss));
      }
    }
  }
}

TEST_F(MerkleTest, InvalidArgumentsAreNamed) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(InclusionProofNodes(0, 0), StatusIs(kInvalid, HasSubstr("size is 0")));
  EXPECT_THAT(InclusionProofNodes(3, 3), StatusIs(kInvalid, HasSubstr("index (3)")));
  EXPECT_THAT(InclusionProof(3, 3, all_), StatusIs(kInvalid, HasSubstr("index (3)")));
  EXPECT_THAT(InclusionProofNodes(0, kMaxTreeSize + 1), StatusIs(kInvalid, HasSubstr("size (")));
  EXPECT_THAT(ConsistencyProofNodes(0, 5), StatusIs(kInvalid, HasSubstr("m is 0")));
  EXPECT_THAT(ConsistencyProof(0, 5, all_), StatusIs(kInvalid, HasSubstr("m is 0")));
  EXPECT_THAT(ConsistencyProofNodes(6, 5), StatusIs(kInvalid, HasSubstr("m (6) exceeds n (5)")));
  EXPECT_THAT(ConsistencyProofNodes(1, kMaxTreeSize + 1), StatusIs(kInvalid, HasSubstr("n (")));
  EXPECT_THAT(RootNodes(kMaxTreeSize + 1), StatusIs(kInvalid, HasSubstr("size (")));
  EXPECT_THAT(RootHash(kMaxTreeSize + 1, all_), StatusIs(kInvalid, HasSubstr("size (")));
  EXPECT_THAT(TreeBuilder::Resume(kMaxTreeSize + 1, all_), StatusIs(kInvalid, HasSubstr("size (")));

  const std::string& leaf = leaves_[1];
  const Hashes path = RefPath(1, Prefix(4));
  const std::string& root = roots_[4];
  EXPECT_THAT(VerifyInclusion(leaf.substr(1), 1, 4, path, root),
              StatusIs(kInvalid, HasSubstr("leaf_hash has 31 bytes")));
  EXPECT_THAT(VerifyInclusion(leaf, 1, 4, path, root + "x"),
              StatusIs(kInvalid, HasSubstr("root has 33 bytes")));
  Hashes bad = path;
  bad[1].clear();
  EXPECT_THAT(VerifyInclusion(leaf, 1, 4, bad, root), StatusIs(kInvalid, HasSubstr("path[1]")));
  EXPECT_THAT(VerifyInclusion(leaf, 4, 4, path, root), StatusIs(kInvalid, HasSubstr("index (4)")));
  EXPECT_THAT(VerifyInclusion(leaf, 0, 0, {}, root), StatusIs(kInvalid, HasSubstr("size is 0")));

  const Hashes proof = RefProof(3, Prefix(7));
  EXPECT_THAT(VerifyConsistency(3, 7, "", roots_[7], proof),
              StatusIs(kInvalid, HasSubstr("root_m has 0 bytes")));
  EXPECT_THAT(VerifyConsistency(3, 7, roots_[3], "x", proof),
              StatusIs(kInvalid, HasSubstr("root_n has 1 bytes")));
  bad = proof;
  bad[0].push_back('x');
  EXPECT_THAT(VerifyConsistency(3, 7, roots_[3], roots_[7], bad),
              StatusIs(kInvalid, HasSubstr("proof[0]")));
  EXPECT_THAT(VerifyConsistency(0, 7, roots_[0], roots_[7], proof),
              StatusIs(kInvalid, HasSubstr("m is 0")));
  EXPECT_THAT(VerifyConsistency(8, 7, roots_[8], roots_[7], proof),
              StatusIs(kInvalid, HasSubstr("m (8) exceeds n (7)")));

  TreeBuilder builder;
  EXPECT_THAT(builder.Append("not a hash"), StatusIs(kInvalid, HasSubstr("leaf_hash")));
  EXPECT_EQ(builder.size(), 0u);
  EXPECT_EQ(builder.Root(), EmptyRoot());
}

// Addressing stays in range at the largest size the proto can carry.
TEST(MerkleLimitsTest, LargestTreeIsAddressableAndFull) {
  NodeMap frontier;
  for (const NodeId& id : FrontierNodes(kMaxTreeSize)) frontier[id] = LeafHash(id.DebugString());
  ASSERT_EQ(frontier.size(), 63u);
  CRM_ASSERT_OK_AND_ASSIGN(TreeBuilder builder, TreeBuilder::Resume(kMaxTreeSize, frontier));
  EXPECT_EQ(builder.Root().size(), kHashSize);
  EXPECT_THAT(builder.Append(LeafHash("one too many")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(builder.size(), kMaxTreeSize);

  for (uint64_t index : {uint64_t{0}, kMaxTreeSize / 2, kMaxTreeSize - 1}) {
    CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids, InclusionProofNodes(index, kMaxTreeSize));
    EXPECT_LE(ids.size(), 2u * 63);
    for (const NodeId& id : ids) {
      EXPECT_LE(id.level, 62);
      EXPECT_LE(id.end(), kMaxTreeSize) << id.DebugString();
    }
  }
  CRM_ASSERT_OK_AND_ASSIGN(std::vector<NodeId> ids,
                           ConsistencyProofNodes(kMaxTreeSize / 3, kMaxTreeSize));
  for (const NodeId& id : ids) EXPECT_LE(id.end(), kMaxTreeSize) << id.DebugString();
}

// Each thread hashes with its own OpenSSL context: two threads hashing at
// once get the same results as one thread alone.
TEST(MerkleThreadTest, ConcurrentHashingAgreesWithSequential) {
  constexpr int kItems = 20000;
  std::vector<std::string> expected;
  expected.reserve(kItems);
  for (int i = 0; i < kItems; ++i) expected.push_back(RefLeafHash(absl::StrCat("item ", i)));
  std::string expected_root;
  {
    TreeBuilder b;
    for (const std::string& h : expected) ASSERT_THAT(b.Append(h), IsOk());
    expected_root = b.Root();
  }
  std::vector<int> mismatches(2, 0);
  std::vector<std::string> roots(2);
  std::latch start(2);
  std::vector<std::thread> threads;
  threads.reserve(2);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      TreeBuilder b;
      for (int i = 0; i < kItems; ++i) {
        const std::string h = LeafHash(absl::StrCat("item ", i));
        if (h != expected[i]) ++mismatches[t];
        if (!b.Append(h).ok()) ++mismatches[t];
      }
      roots[t] = b.Root();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 2; ++t) {
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
    EXPECT_EQ(roots[t], expected_root) << "thread " << t;
  }
}

}  // namespace
}  // namespace crm::audit::merkle
