#include "libs/crypto/primitives.h"

#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace crm::crypto {
namespace {

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }
std::string Bytes(absl::string_view hex) { return absl::HexStringToBytes(hex); }

TEST(Sha256Test, MatchesFips180Examples) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

struct HmacVector {
  const char* name;
  std::string key;
  std::string data;
  const char* mac_hex;
};

// RFC 4231, section 4 (test case 5, a truncated output, does not apply).
std::vector<HmacVector> Rfc4231Vectors() {
  const std::string aa131(131, '\xaa');
  return {
      {"case1", std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"case2", "Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"case3", std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {"case4", Bytes("0102030405060708090a0b0c0d0e0f10111213141516171819"),
       std::string(50, '\xcd'), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {"case6", aa131, "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {"case7", aa131,
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
}

TEST(HmacSha256Test, MatchesRfc4231) {
  for (const HmacVector& v : Rfc4231Vectors()) {
    EXPECT_EQ(Hex(HmacSha256(v.key, v.data)), v.mac_hex) << v.name;
  }
}

TEST(HmacSha256Test, EmptyKeyIsAccepted) { EXPECT_EQ(HmacSha256("", "x").size(), 32u); }

TEST(RandomTest, ReturnsRequestedSizeAndDiffers) {
  EXPECT_EQ(RandomBytes(0).size(), 0u);
  EXPECT_EQ(RandomBytes(33).size(), 33u);
  EXPECT_NE(RandomBytes(32), RandomBytes(32));
  SecretBytes s = RandomSecret(32);
  EXPECT_EQ(s.size(), 32u);
  EXPECT_NE(s.view(), RandomSecret(32).view());
}

TEST(RandomTest, DrawsAcrossTheBufferRefillAllDiffer) {
  // Small draws come from a per-thread buffer of 4 KiB: draw past several
  // refills and across a boundary; no 16-byte draw may repeat.
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(seen.insert(RandomBytes(i % 2 == 0 ? 16 : 13)).second) << i;
  }
  EXPECT_EQ(RandomBytes(64).size(), 64u);  // the largest buffered draw
  EXPECT_EQ(RandomBytes(65).size(), 65u);  // straight from OpenSSL
}

TEST(RandomTest, ForkedChildDoesNotRepeatItsParentsBufferedBytes) {
  (void)RandomBytes(16);  // the buffer is filled now
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string r = RandomBytes(16);
    _exit(write(fds[1], r.data(), r.size()) == static_cast<ssize_t>(r.size()) ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent = RandomBytes(16);
  std::string from_child(16, '\0');
  ASSERT_EQ(read(fds[0], from_child.data(), from_child.size()), 16);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_NE(parent, from_child);
}

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

TEST(SecretBytesTest, MoveLeavesSourceEmptyAndCopyIsExplicit) {
  SecretBytes a = SecretBytes::CopyFrom("key material");
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(b.view(), "key material");
  SecretBytes c = b.Copy();
  EXPECT_EQ(c.view(), "key material");
  c.Clear();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(b.view(), "key material");
  b = SecretBytes::CopyFrom("other");
  EXPECT_EQ(b.view(), "other");
}

}  // namespace
}  // namespace crm::crypto
