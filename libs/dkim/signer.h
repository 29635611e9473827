// DKIM signing (RFC 6376) of outgoing mail with rsa-sha256, for the mailing
// service: every message it sends gets a DKIM-Signature header field, so
// receivers can tie the From domain, the subject and the List-Unsubscribe
// headers (RFC 8058 one-click unsubscribe) to our domain.
//
// What is covered: a=rsa-sha256 with RSA keys of 2048 bits or more;
// c=relaxed/relaxed (canonicalization.h); the tags v, a, c, d, s, t, h, bh
// and b; the header fields of a configured list that the message has, each
// as many times as it occurs (bottom-up, §5.4.2), optionally once more to
// forbid additions (§8.15); the public key's DNS TXT record for operators.
// What is not: the l= (body length), z= (copied headers), i= (AUID, so it
// defaults to "@" + d=), x= (expiry) and q= tags; "simple" canonicalization;
// ed25519-sha256 (RFC 8463) and rsa-sha1; verification; ARC. Bodies are
// taken as given (8bit UTF-8 is fine): nothing is re-encoded, so the
// transport must deliver the bytes unchanged (8BITMIME for 8bit bodies).
//
// Usage:
//   CRM_ASSIGN_OR_RETURN(dkim::Signer signer, dkim::Signer::FromPemFile(
//       key_path, {.domain = "example.com", .selector = "mail2025"}));
//   CRM_ASSIGN_OR_RETURN(std::string signed_message,
//                        signer.SignMessage(message, clock.Now()));
//
// Thread-safety: immutable after construction; Sign and SignMessage may be
// called from many threads at once (the OpenSSL key is shared read-only, each
// call has its own digest context). Copies are cheap and share the key.
// Cost: one RSA private-key operation per message (0.84 ms for 2048 bits on
// our 2-core machines, `openssl speed rsa2048`: ~1,200 messages/s per core)
// plus a SHA-256 pass over the body.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/crypto/key_file.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace crm::dkim {

// Smallest RSA modulus accepted, in bits (RFC 8301 requires 1024 to verify;
// 2048 is what receivers such as Gmail expect of bulk senders).
inline constexpr int kMinRsaBits = 2048;

// From, To, Cc, Reply-To, Subject, Date, Message-ID, MIME-Version,
// Content-Type, Content-Transfer-Encoding, List-Unsubscribe,
// List-Unsubscribe-Post: the default of SignerOptions::signed_headers.
std::vector<std::string> DefaultSignedHeaders();

struct SignerOptions {
  // d=: the signing domain, normally the domain of the From address.
  // Required: dot-separated labels of letters, digits and inner hyphens
  // (A-labels for internationalised names), at most 253 bytes.
  std::string domain;
  // s=: the selector under which the public key is published
  // (<selector>._domainkey.<domain>). Required; same syntax as `domain`.
  std::string selector;
  // Header fields to sign when the message has them, matched
  // case-insensitively, listed in h= in this order (lower-cased; a repeated
  // name counts once). Must include From, which every message must have.
  // Names are printable US-ASCII without ':'; DKIM-Signature is refused.
  // Default: DefaultSignedHeaders().
  std::vector<std::string> signed_headers = DefaultSignedHeaders();
  // List every signed name in h= once more than the message has it (RFC 6376
  // §8.15, "oversigning"), so that a field of that name added later, e.g. a
  // second Subject or List-Unsubscribe, breaks the signature. Default: off.
  bool oversign = false;
};

class Signer {
 public:
  // A signer with the RSA private key in `private_key_pem` (PKCS#8 "BEGIN
  // PRIVATE KEY", as `openssl genpkey` writes, or PKCS#1 "BEGIN RSA PRIVATE
  // KEY"; unencrypted). INVALID_ARGUMENT if the PEM does not parse, is not an
  // RSA key, has fewer than kMinRsaBits bits, or `options` is invalid (the
  // message names the setting, never the key).
  static absl::StatusOr<Signer> FromPem(absl::string_view private_key_pem, SignerOptions options);
  // Reads the key file with crypto::ReadKeyFile's checks (mode 0600/0400/0440,
  // size) and returns FromPem's result. ReadKeyFile's errors name the path;
  // FromPem's are prefixed with it.
  static absl::StatusOr<Signer> FromPemFile(const std::string& path, SignerOptions options,
                                            const crypto::KeyFileOptions& file_options = {});

  // The "DKIM-Signature: ..." header field for `message` (a whole RFC 5322
  // message: header fields, an empty line, the body; CRLF line endings), with
  // t= set to `signing_time` in whole seconds. Folded to lines of at most 78
  // characters (unless d= or s= alone is longer); ends in CRLF; to be put
  // before the message's first line.
  // INVALID_ARGUMENT if ParseMessage refuses the message, if it has no From
  // field or more than one, or if `signing_time` is before 1970. INTERNAL if
  // OpenSSL fails. Messages never contain message content.
  absl::StatusOr<std::string> Sign(absl::string_view message, absl::Time signing_time) const;
  // Sign's header field followed by `message`. Sign's errors.
  absl::StatusOr<std::string> SignMessage(absl::string_view message, absl::Time signing_time) const;

  // Where the public key is to be published: "<selector>._domainkey.<domain>".
  std::string DnsRecordName() const;
  // The TXT record value to publish there: "v=DKIM1; k=rsa; p=<base64 of the
  // DER SubjectPublicKeyInfo>". About 400 characters for a 2048-bit key, so
  // DNS providers split it into strings of at most 255 characters.
  std::string DnsTxtRecord() const;

  const std::string& domain() const { return options_->domain; }
  const std::string& selector() const { return options_->selector; }
  // The RSA modulus size in bits.
  int key_bits() const;

 private:
  Signer(std::shared_ptr<EVP_PKEY> key, std::shared_ptr<const SignerOptions> options)
      : key_(std::move(key)), options_(std::move(options)) {}

  std::shared_ptr<EVP_PKEY> key_;
  // Validated; signed_headers lower-cased, without repeats.
  std::shared_ptr<const SignerOptions> options_;
};

}  // namespace crm::dkim
