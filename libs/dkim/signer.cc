#include "libs/dkim/signer.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/base/status_macros.h"
#include "libs/crypto/primitives.h"
#include "libs/crypto/secret_bytes.h"
#include "libs/dkim/canonicalization.h"

namespace crm::dkim {
namespace {

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (CRLF excluded).
constexpr size_t kMaxLine = 78;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// A dot-separated sequence of LDH labels (RFC 5321 Domain, RFC 6376
// selector): each 1..63 letters, digits and inner hyphens; 253 bytes at most.
absl::Status ValidateDomainName(absl::string_view setting, absl::string_view value) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("DKIM ", setting,
                     ": must be dot-separated labels of 1..63 letters, digits and inner "
                     "hyphens, at most 253 bytes"));
  };
  if (value.empty() || value.size() > 253) return invalid();
  for (absl::string_view label : absl::StrSplit(value, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return invalid();
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return invalid();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const SignerOptions>> NormalizeOptions(SignerOptions options) {
  CRM_RETURN_IF_ERROR(ValidateDomainName("domain", options.domain));
  CRM_RETURN_IF_ERROR(ValidateDomainName("selector", options.selector));
  std::vector<std::string> names;
  for (const std::string& raw : options.signed_headers) {
    bool valid = !raw.empty();
    for (char c : raw) valid = valid && c >= 33 && c <= 126 && c != ':';
    if (!valid) {
      return absl::InvalidArgumentError(
          "DKIM signed_headers: a name is empty or not printable US-ASCII without ':'");
    }
    std::string name = absl::AsciiStrToLower(raw);
    if (name == "dkim-signature") {
      return absl::InvalidArgumentError("DKIM signed_headers: DKIM-Signature cannot be signed");
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  if (std::find(names.begin(), names.end(), "from") == names.end()) {
    return absl::InvalidArgumentError("DKIM signed_headers: must include From");
  }
  options.signed_headers = std::move(names);
  return std::make_shared<const SignerOptions>(std::move(options));
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> ParseRsaKey(absl::string_view pem) {
  if (pem.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("DKIM private key PEM too large");
  }
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError("DKIM private key: BIO allocation failed");
  // An empty passphrase makes encrypted PEM fail instead of prompting.
  std::shared_ptr<EVP_PKEY> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")), EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError("DKIM private key PEM does not parse (or is encrypted)");
  }
  // "RSA" only: an RSA-PSS-restricted key cannot make PKCS#1 v1.5 signatures.
  if (EVP_PKEY_is_a(key.get(), "RSA") != 1) {
    return absl::InvalidArgumentError("DKIM private key is not an RSA key");
  }
  const int bits = EVP_PKEY_get_bits(key.get());
  if (bits < kMinRsaBits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DKIM private key has ", bits, " bits; at least ", kMinRsaBits, " are required"));
  }
  return key;
}

// Builds a folded header field: tokens are added to the current line while
// it stays within kMaxLine characters, else on a new line starting with a
// tab. Relaxed canonicalization turns each fold into one space.
class Folder {
 public:
  explicit Folder(absl::string_view start) : text_(start), line_length_(start.size()) {}

  // Adds `token`, after `separator` if it stays on the current line.
  void Add(absl::string_view token, absl::string_view separator) {
    if (line_length_ + separator.size() + token.size() <= kMaxLine) {
      absl::StrAppend(&text_, separator, token);
      line_length_ += separator.size() + token.size();
    } else {
      absl::StrAppend(&text_, "\r\n\t", token);
      line_length_ = 1 + token.size();
    }
  }

  // Adds `value` without separators, split over as many lines as it needs.
  void AddSplittable(absl::string_view value) {
    while (!value.empty()) {
      if (line_length_ >= kMaxLine) {
        text_.append("\r\n\t");
        line_length_ = 1;
      }
      const size_t n = std::min(value.size(), kMaxLine - line_length_);
      text_.append(value.data(), n);
      line_length_ += n;
      value.remove_prefix(n);
    }
  }

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  size_t line_length_;
};

absl::StatusOr<std::string> RsaSha256Sign(EVP_PKEY* key, absl::string_view data) {
  MdCtx ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return absl::InternalError("DKIM signature context allocation failed");
  EVP_PKEY_CTX* pctx = nullptr;  // Owned by ctx.
  size_t len = 0;
  if (EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, nullptr, 0) != 1) {
    return absl::InternalError("DKIM RSA-SHA256 signing failed");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return absl::InternalError("DKIM RSA-SHA256 signing failed");
  }
  signature.resize(len);
  return signature;
}

}  // namespace

std::vector<std::string> DefaultSignedHeaders() {
  return {"From",
          "To",
          "Cc",
          "Reply-To",
          "Subject",
          "Date",
          "Message-ID",
          "MIME-Version",
          "Content-Type",
          "Content-Transfer-Encoding",
          "List-Unsubscribe",
          "List-Unsubscribe-Post"};
}

absl::StatusOr<Signer> Signer::FromPem(absl::string_view private_key_pem, SignerOptions options) {
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const SignerOptions> normalized,
                       NormalizeOptions(std::move(options)));
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<EVP_PKEY> key, ParseRsaKey(private_key_pem));
  return Signer(std::move(key), std::move(normalized));
}

absl::StatusOr<Signer> Signer::FromPemFile(const std::string& path, SignerOptions options,
                                           const crypto::KeyFileOptions& file_options) {
  CRM_ASSIGN_OR_RETURN(std::shared_ptr<const SignerOptions> normalized,
                       NormalizeOptions(std::move(options)));
  CRM_ASSIGN_OR_RETURN(crypto::SecretBytes pem, crypto::ReadKeyFile(path, file_options));
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> key = ParseRsaKey(pem.view());
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("key file ", path, ": ", key.status().message()));
  }
  return Signer(*std::move(key), std::move(normalized));
}

absl::StatusOr<std::string> Signer::Sign(absl::string_view message, absl::Time signing_time) const {
  if (signing_time < absl::UnixEpoch() || signing_time == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("DKIM signing time must be a finite time after 1970");
  }
  CRM_ASSIGN_OR_RETURN(ParsedMessage parsed, ParseMessage(message));

  size_t from_count = 0;
  for (const HeaderField& h : parsed.headers) {
    if (absl::EqualsIgnoreCase(h.name, "from")) ++from_count;
  }
  if (from_count == 0) return absl::InvalidArgumentError("message: no From header field");
  if (from_count > 1) {
    return absl::InvalidArgumentError("message: more than one From header field");
  }

  // h= and the canonical header fields it selects: for a name the message
  // has k times, k entries taking the fields bottom-up (§5.4.2); one more
  // when oversigning, which selects nothing (a null string) now but any
  // field of that name added later.
  std::vector<absl::string_view> h_names;
  std::string signed_data;
  std::vector<const HeaderField*> instances;
  for (const std::string& name : options_->signed_headers) {
    instances.clear();
    for (const HeaderField& h : parsed.headers) {
      if (absl::EqualsIgnoreCase(h.name, name)) instances.push_back(&h);
    }
    if (instances.empty() && !options_->oversign) continue;
    for (auto it = instances.rbegin(); it != instances.rend(); ++it) {
      h_names.push_back(name);
      signed_data.append(RelaxedHeader((*it)->field));
    }
    if (options_->oversign) h_names.push_back(name);
  }

  const std::string body_hash = absl::Base64Escape(crypto::Sha256(RelaxedBody(parsed.body)));

  Folder folder("DKIM-Signature:");
  folder.Add("v=1;", " ");
  folder.Add("a=rsa-sha256;", " ");
  folder.Add("c=relaxed/relaxed;", " ");
  folder.Add(absl::StrCat("d=", options_->domain, ";"), " ");
  folder.Add(absl::StrCat("s=", options_->selector, ";"), " ");
  folder.Add(absl::StrCat("t=", absl::ToUnixSeconds(signing_time), ";"), " ");
  for (size_t i = 0; i < h_names.size(); ++i) {
    const absl::string_view end = i + 1 < h_names.size() ? ":" : ";";
    if (i == 0) {
      folder.Add(absl::StrCat("h=", h_names[i], end), " ");
    } else {
      folder.Add(absl::StrCat(h_names[i], end), "");
    }
  }
  folder.Add(absl::StrCat("bh=", body_hash, ";"), " ");
  folder.Add("b=", " ");

  // §3.7: the signature field itself, with an empty b= value, canonicalized
  // and without its final CRLF, comes last. Everything after "b=" is left out
  // by verifiers, so the value may be folded freely afterwards.
  std::string own = RelaxedHeader(folder.text());
  own.resize(own.size() - 2);
  signed_data.append(own);

  CRM_ASSIGN_OR_RETURN(std::string signature, RsaSha256Sign(key_.get(), signed_data));
  folder.AddSplittable(absl::Base64Escape(signature));
  return absl::StrCat(folder.text(), "\r\n");
}

absl::StatusOr<std::string> Signer::SignMessage(absl::string_view message,
                                                absl::Time signing_time) const {
  CRM_ASSIGN_OR_RETURN(std::string header, Sign(message, signing_time));
  return absl::StrCat(header, message);
}

std::string Signer::DnsRecordName() const {
  return absl::StrCat(options_->selector, "._domainkey.", options_->domain);
}

std::string Signer::DnsTxtRecord() const {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key_.get(), &der);
  if (len <= 0 || der == nullptr) std::abort();  // Only if OpenSSL is broken: the key was checked.
  const std::string spki(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return absl::StrCat("v=DKIM1; k=rsa; p=", absl::Base64Escape(spki));
}

int Signer::key_bits() const { return EVP_PKEY_get_bits(key_.get()); }

}  // namespace crm::dkim
