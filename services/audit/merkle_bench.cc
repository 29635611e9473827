// The audit Merkle tree's hot paths against raw SHA-256 on the same cores.
//
//   BM_RawSha256Baseline/<len>    one SHA-256 (EVP_Digest) of a len-byte entry
//   BM_LeafHashAndAppend/<len>    LeafHash of the entry + TreeBuilder::Append:
//                                 the log verifier's inner loop, per entry
//   BM_LeafHashAndAppendReported/<len>  the same, collecting the reported
//                                 nodes as the writer does
//   BM_RawSha256NodeBaseline      one SHA-256 of 65 bytes (one node hash)
//   BM_InclusionProofNodes        phase 1 (the NodeIds) at size 10^7
//   BM_InclusionProof             phase 2 from a prepared NodeMap at 10^7
//   BM_ConsistencyProofNodes / BM_ConsistencyProof   the same for
//                                 PROOF(m, D[10^7]), m random
//
// Targets (issue 4): full verification at >= 500,000 entries/s on 2 cores,
// i.e. well under 2 us per entry on one; a proof served in under 5 ms at
// 10^7 entries (the library's share is the proof rows; the store's one query
// comes on top). The proof maps hold random hashes: the work does not depend
// on the values (correctness is audit_merkle_test's job).
//
// Run in a Release build, e.g. build-release/bench/merkle_bench
// --benchmark_min_time=1 --benchmark_repetitions=3. After the table it prints
// the ratios to the baselines (medians when repeated).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "libs/crypto/primitives.h"
#include "libs/testing/bench_ratio.h"
#include "services/audit/merkle.h"

namespace crm::audit::merkle {
namespace {

constexpr uint64_t kProofTreeSize = 10'000'000;
constexpr size_t kRequests = 256;

template <typename T>
T OrDie(absl::StatusOr<T> v) {
  if (!v.ok()) std::abort();
  return *std::move(v);
}

const EVP_MD* Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

void RawSha256(const std::string& data, unsigned char* out) {
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, Md(), nullptr) != 1) std::abort();
}

// Entries differ in their first bytes, as successive log entries do.
std::string Entry(size_t len) { return crypto::RandomBytes(len); }
void Vary(std::string& entry, uint64_t i) {
  for (size_t b = 0; b < sizeof(i) && b < entry.size(); ++b) {
    entry[b] = static_cast<char>(i >> 8 * b);
  }
}

void BM_RawSha256Baseline(benchmark::State& state) {
  std::string entry = Entry(state.range(0));
  unsigned char out[kHashSize];
  uint64_t i = 0;
  for (auto _ : state) {
    Vary(entry, i++);
    RawSha256(entry, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_LeafHashAndAppend(benchmark::State& state) {
  std::string entry = Entry(state.range(0));
  TreeBuilder builder;
  uint64_t i = 0;
  for (auto _ : state) {
    Vary(entry, i++);
    if (!builder.Append(LeafHash(entry)).ok()) std::abort();
  }
  benchmark::DoNotOptimize(builder.Root());
  state.SetItemsProcessed(state.iterations());
}

void BM_LeafHashAndAppendReported(benchmark::State& state) {
  std::string entry = Entry(state.range(0));
  TreeBuilder builder;
  std::vector<std::pair<NodeId, std::string>> batch;
  uint64_t i = 0;
  for (auto _ : state) {
    Vary(entry, i++);
    if (!builder
             .Append(LeafHash(entry),
                     [&](const NodeId& id, absl::string_view h) { batch.emplace_back(id, h); })
             .ok()) {
      std::abort();
    }
    if (batch.size() >= 1024) batch.clear();  // a writer's insert batch
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RawSha256NodeBaseline(benchmark::State& state) {
  std::string node = Entry(2 * kHashSize + 1);
  unsigned char out[kHashSize];
  uint64_t i = 0;
  for (auto _ : state) {
    Vary(node, i++);
    RawSha256(node, out);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}

// kRequests proofs at size 10^7, each with the NodeMap its one query returns.
struct PreparedProofs {
  std::vector<uint64_t> first;  // index (inclusion) or m (consistency)
  std::vector<NodeMap> nodes;
  size_t node_count = 0;
};

PreparedProofs Prepare(bool consistency) {
  std::mt19937_64 rng(42);
  PreparedProofs p;
  for (size_t r = 0; r < kRequests; ++r) {
    const uint64_t first = consistency ? 1 + rng() % (kProofTreeSize - 1) : rng() % kProofTreeSize;
    const std::vector<NodeId> ids = OrDie(consistency ? ConsistencyProofNodes(first, kProofTreeSize)
                                                      : InclusionProofNodes(first, kProofTreeSize));
    NodeMap nodes;
    for (const NodeId& id : ids) nodes[id] = crypto::RandomBytes(kHashSize);
    p.node_count += ids.size();
    p.first.push_back(first);
    p.nodes.push_back(std::move(nodes));
  }
  return p;
}

void BM_InclusionProofNodes(benchmark::State& state) {
  const PreparedProofs p = Prepare(false);
  size_t r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(OrDie(InclusionProofNodes(p.first[r++ % kRequests], kProofTreeSize)));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_InclusionProof(benchmark::State& state) {
  const PreparedProofs p = Prepare(false);
  size_t r = 0;
  for (auto _ : state) {
    const size_t i = r++ % kRequests;
    benchmark::DoNotOptimize(OrDie(InclusionProof(p.first[i], kProofTreeSize, p.nodes[i])));
  }
  state.counters["nodes_fetched"] = static_cast<double>(p.node_count) / kRequests;
  state.SetItemsProcessed(state.iterations());
}

void BM_ConsistencyProofNodes(benchmark::State& state) {
  const PreparedProofs p = Prepare(true);
  size_t r = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        OrDie(ConsistencyProofNodes(p.first[r++ % kRequests], kProofTreeSize)));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ConsistencyProof(benchmark::State& state) {
  const PreparedProofs p = Prepare(true);
  size_t r = 0;
  for (auto _ : state) {
    const size_t i = r++ % kRequests;
    benchmark::DoNotOptimize(OrDie(ConsistencyProof(p.first[i], kProofTreeSize, p.nodes[i])));
  }
  state.counters["nodes_fetched"] = static_cast<double>(p.node_count) / kRequests;
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_RawSha256Baseline)->Arg(256)->Arg(1024);
BENCHMARK(BM_LeafHashAndAppend)->Arg(256)->Arg(1024);
BENCHMARK(BM_LeafHashAndAppendReported)->Arg(256);
BENCHMARK(BM_RawSha256NodeBaseline);
BENCHMARK(BM_InclusionProofNodes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_InclusionProof)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConsistencyProofNodes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ConsistencyProof)->Unit(benchmark::kMicrosecond);

void PrintRatios(const crm::testing::RatioReporter& reporter) {
  std::printf("\nPer entry, against one raw SHA-256 of the entry (target: well under 2 us):\n");
  for (const char* len : {"256", "1024"}) {
    const std::string suffix = std::string("/") + len;
    reporter.PrintCostRatio((std::string("LeafHash+Append, ") + len + " B").c_str(),
                            "BM_LeafHashAndAppend" + suffix, "BM_RawSha256Baseline" + suffix);
    if (const auto* f = reporter.Find("BM_LeafHashAndAppend" + suffix);
        f != nullptr && f->items_per_second > 0) {
      std::printf("      %.3f us/entry; 500,000 entries/s needs %.0f%% of one core\n",
                  1e6 / f->items_per_second, 500000 / f->items_per_second * 100);
    }
  }
  reporter.PrintCostRatio("LeafHash+Append+report, 256 B", "BM_LeafHashAndAppendReported/256",
                          "BM_RawSha256Baseline/256");

  std::printf("\nProofs at 10^7 entries, against one node hash (budget: 5 ms per proof):\n");
  for (const char* name : {"BM_InclusionProofNodes", "BM_InclusionProof",
                           "BM_ConsistencyProofNodes", "BM_ConsistencyProof"}) {
    reporter.PrintTimeRatio(name + 3, name, "BM_RawSha256NodeBaseline", "node hash");
    if (const auto* f = reporter.Find(name); f != nullptr) {
      std::printf("      %.4f%% of the 5 ms budget\n", f->seconds_per_iteration / 5e-3 * 100);
    }
  }
}

}  // namespace
}  // namespace crm::audit::merkle

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  crm::testing::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  crm::audit::merkle::PrintRatios(reporter);
  benchmark::Shutdown();
  return 0;
}
