#include "libs/smtp/sender.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/base/status_macros.h"

namespace crm::smtp {
namespace {

// The status payload that carries the relay's reply code.
constexpr char kReplyCodeUrl[] = "type.crm.local/crm.smtp.ReplyCode";
constexpr size_t kMaxAddressBytes = 320;  // 64 local part + '@' + 255 domain

absl::Status GlobalInit() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("smtp: curl_global_init failed: ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

bool IsHostName(absl::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '-' || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

bool IsIpv6Literal(absl::string_view host) {
  return host.find(':') != absl::string_view::npos &&
         std::all_of(host.begin(), host.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
         });
}

// Whole milliseconds, at least 1.
long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// `status` with the relay's refusal (a 4xx or 5xx reply code) attached.
absl::Status WithReplyCode(absl::Status status, long reply_code) {
  if (reply_code >= 400 && reply_code < 600)
    status.SetPayload(kReplyCodeUrl, absl::Cord(absl::StrCat(reply_code)));
  return status;
}

// Errors of curl that say the relay or our TLS settings will not do, however
// often we try.
bool IsPermanentCurlError(CURLcode rc) {
  switch (rc) {
    case CURLE_USE_SSL_FAILED:            // no STARTTLS offered (a refusal has a 4xx/5xx code)
    case CURLE_PEER_FAILED_VERIFICATION:  // certificate not from our CA, or not for this host
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_LOGIN_DENIED:  // without a reply code: no usable mechanism
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<int> ReplyCode(const absl::Status& status) {
  const auto payload = status.GetPayload(kReplyCodeUrl);
  int code = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

absl::Status ValidateEnvelopeAddress(absl::string_view address, absl::string_view field) {
  if (address.size() > kMaxAddressBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", kMaxAddressBytes, " bytes"));
  }
  for (const char c : address) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": contains a control character (CR, LF, NUL, ...)"));
    }
    if (c == '<' || c == '>') {
      return absl::InvalidArgumentError(absl::StrCat(field, ": contains '<' or '>'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateMessage(absl::string_view message) {
  if (message.empty()) return absl::InvalidArgumentError("message: empty");
  for (size_t i = 0; i < message.size(); ++i) {
    const char c = message[i];
    if (c == '\0') {
      return absl::InvalidArgumentError(absl::StrCat("message: NUL byte at offset ", i));
    }
    if (c == '\r' && (i + 1 == message.size() || message[i + 1] != '\n')) {
      return absl::InvalidArgumentError(absl::StrCat("message: bare CR at offset ", i));
    }
    if (c == '\n' && (i == 0 || message[i - 1] != '\r')) {
      return absl::InvalidArgumentError(absl::StrCat("message: bare LF at offset ", i));
    }
  }
  return absl::OkStatus();
}

struct Sender::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

namespace {

// The upload: curl pulls the message through this.
struct Upload {
  absl::string_view rest;
  const Sender::BeforeEnd* before_end = nullptr;  // may be null or empty
  bool asked = false;                             // before_end was called
  absl::Status refused;                           // what before_end answered, if not OK
};

size_t ReadMessage(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* upload = static_cast<Upload*>(userdata);
  if (upload->rest.empty() && !upload->asked) {
    // curl asks for more once it has the whole message; on the 0 below it
    // sends the end of data. Aborting instead makes it close the connection
    // without the dot: the relay throws the message away.
    upload->asked = true;
    if (upload->before_end != nullptr && *upload->before_end) {
      upload->refused = (*upload->before_end)();
      if (!upload->refused.ok()) return CURL_READFUNC_ABORT;
    }
  }
  const size_t n = std::min(size * nitems, upload->rest.size());
  std::memcpy(buffer, upload->rest.data(), n);
  upload->rest.remove_prefix(n);
  return n;
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

}  // namespace

absl::StatusOr<std::unique_ptr<Sender>> Sender::Create(Options options) {
  if (options.host.empty()) return absl::InvalidArgumentError("host: required");
  const bool ipv6 = IsIpv6Literal(options.host);
  if (!ipv6 && !IsHostName(options.host)) {
    return absl::InvalidArgumentError("host: not a host name or IP address");
  }
  if (options.port == 0) options.port = options.tls == TlsMode::kImplicit ? 465 : 587;
  if (options.port < 1 || options.port > 65535) {
    return absl::InvalidArgumentError("port: must be 1..65535");
  }
  if (!IsHostName(options.ehlo_name)) {
    return absl::InvalidArgumentError("ehlo_name: not a host name (letters, digits, '-', '.')");
  }
  if (!options.ca_file.empty() && !std::ifstream(options.ca_file).good()) {
    return absl::InvalidArgumentError("ca_file: cannot be read");
  }
  if (options.username.empty() && !options.password.empty()) {
    return absl::InvalidArgumentError("password: given without username");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("connect_timeout: must be positive");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  if (options.max_idle < absl::Seconds(1)) {
    return absl::InvalidArgumentError("max_idle: must be at least 1 s");
  }
  CRM_RETURN_IF_ERROR(GlobalInit());

  auto handle = std::make_unique<Handle>();
  handle->curl = curl_easy_init();
  if (handle->curl == nullptr) return absl::InternalError("smtp: curl_easy_init failed");
  CURL* c = handle->curl;

  const bool implicit = options.tls == TlsMode::kImplicit;
  const std::string host = ipv6 ? absl::StrCat("[", options.host, "]") : options.host;
  // The path of an SMTP URL is the EHLO name.
  const std::string url = absl::StrCat(implicit ? "smtps://" : "smtp://", host, ":", options.port,
                                       "/", options.ehlo_name);
  bool ok =
      curl_easy_setopt(c, CURLOPT_URL, url.c_str()) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, implicit ? "smtps" : "smtp") == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_VERBOSE, 0L) == CURLE_OK &&
      // STARTTLS or nothing; with smtps the whole session is TLS anyway.
      curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL)) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)) ==
          CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, Millis(options.connect_timeout)) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, Millis(options.timeout)) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_MAXAGE_CONN,
                       static_cast<long>(absl::ToInt64Seconds(options.max_idle))) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) == CURLE_OK &&
      curl_easy_setopt(c, CURLOPT_READFUNCTION, &ReadMessage) == CURLE_OK;
  if (ok && !options.ca_file.empty()) {
    // Only this bundle: no fallback to the system's directory of CAs.
    ok = curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str()) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_CAPATH, nullptr) == CURLE_OK;
  }
  if (ok && !options.username.empty()) {
    ok = curl_easy_setopt(c, CURLOPT_USERNAME, options.username.c_str()) == CURLE_OK &&
         curl_easy_setopt(c, CURLOPT_PASSWORD, options.password.c_str()) == CURLE_OK;
  }
  if (!ok) return absl::InternalError("smtp: libcurl refused an option (built without TLS?)");
  return std::unique_ptr<Sender>(new Sender(std::move(options), std::move(handle)));
}

Sender::Sender(Options options, std::unique_ptr<Handle> handle)
    : options_(std::move(options)), handle_(std::move(handle)) {}

Sender::~Sender() = default;

Sender::Attempt Sender::Perform(const Envelope& envelope, curl_slist* recipients,
                                absl::string_view message, const BeforeEnd& before_end,
                                bool fresh_connection) {
  CURL* c = handle_->curl;
  Upload upload{.rest = message, .before_end = &before_end};
  // An empty MAIL_FROM makes curl send the null reverse-path "MAIL FROM:<>".
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, envelope.from.c_str());
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt(c, CURLOPT_READDATA, &upload);
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, fresh_connection ? 1L : 0L);
  Attempt attempt;
  attempt.rc = curl_easy_perform(c);
  long connects = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &attempt.reply_code);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
  attempt.connects = std::max(0L, connects);
  // curl asks for the message only after the relay's 354 to DATA.
  attempt.message_started = upload.rest.size() != message.size();
  attempt.refused_before_end = upload.refused;
  // The handle outlives this call's list and buffer.
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, nullptr);
  curl_easy_setopt(c, CURLOPT_READDATA, nullptr);
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 0L);
  stats_.connects += static_cast<uint64_t>(attempt.connects);
  return attempt;
}

absl::Status Sender::Send(const Envelope& envelope, absl::string_view message,
                          const BeforeEnd& before_end) {
  CRM_RETURN_IF_ERROR(ValidateEnvelopeAddress(envelope.from, "from"));
  if (envelope.recipients.empty()) return absl::InvalidArgumentError("recipients: none");
  Slist recipients;
  curl_slist* tail = nullptr;
  for (size_t i = 0; i < envelope.recipients.size(); ++i) {
    const std::string field = absl::StrCat("recipients[", i, "]");
    if (envelope.recipients[i].empty()) return absl::InvalidArgumentError(field + ": empty");
    CRM_RETURN_IF_ERROR(ValidateEnvelopeAddress(envelope.recipients[i], field));
    curl_slist* appended = curl_slist_append(tail, envelope.recipients[i].c_str());
    if (appended == nullptr) return absl::ResourceExhaustedError("smtp: out of memory");
    if (!recipients) recipients.reset(appended);
    tail = appended;
  }
  CRM_RETURN_IF_ERROR(ValidateMessage(message));

  Attempt attempt =
      Perform(envelope, recipients.get(), message, before_end, /*fresh_connection=*/false);
  if (attempt.rc != CURLE_OK && kept_connection_ && attempt.connects == 0 &&
      !attempt.message_started && (attempt.reply_code == 0 || attempt.reply_code == 421) &&
      attempt.rc != CURLE_OPERATION_TIMEDOUT) {
    // The kept connection was dead: the relay closed it (idle timeout,
    // restart) in a way curl cannot see before using it, e.g. after a TLS
    // close_notify or a 421. The relay has not seen a byte of this message,
    // so one more try on a new connection cannot deliver it twice.
    ++stats_.retried_on_new_connection;
    attempt = Perform(envelope, recipients.get(), message, before_end, /*fresh_connection=*/true);
  }
  // curl closes the connection after a failed transfer and keeps it after a
  // successful one.
  kept_connection_ = attempt.rc == CURLE_OK;
  const auto rc = static_cast<CURLcode>(attempt.rc);
  const long reply_code = attempt.reply_code;

  ++stats_.sends;
  if (!attempt.refused_before_end.ok()) {
    ++stats_.abandoned_before_end;
    return attempt.refused_before_end;
  }
  const std::string relay = absl::StrCat("smtp relay ", options_.host, ":", options_.port);
  if (rc == CURLE_OK) {
    ++stats_.delivered;
    return absl::OkStatus();
  }
  // The relay's reply decides when there is one (curl resets the code for
  // every transfer, so it is this send's); a 2xx/3xx means the failure came
  // after it, from curl's side.
  if (reply_code >= 400 && reply_code < 500) {
    ++stats_.temporary_failures;
    return WithReplyCode(
        absl::UnavailableError(absl::StrCat(relay, " answered ", reply_code, " (temporary; ",
                                            curl_easy_strerror(rc), ")")),
        reply_code);
  }
  if (reply_code >= 500 && reply_code < 600) {
    ++stats_.permanent_failures;
    return WithReplyCode(
        absl::FailedPreconditionError(absl::StrCat(relay, " answered ", reply_code, " (permanent; ",
                                                   curl_easy_strerror(rc), ")")),
        reply_code);
  }
  if (IsPermanentCurlError(rc)) {
    ++stats_.permanent_failures;
    const char* what = rc == CURLE_USE_SSL_FAILED ? "offers no STARTTLS; not sending in clear"
                       : rc == CURLE_PEER_FAILED_VERIFICATION
                           ? "presented a certificate that does not verify"
                           : curl_easy_strerror(rc);
    return WithReplyCode(absl::FailedPreconditionError(absl::StrCat(relay, ": ", what)),
                         reply_code);
  }
  ++stats_.temporary_failures;
  return WithReplyCode(absl::UnavailableError(absl::StrCat(relay, ": ", curl_easy_strerror(rc))),
                       reply_code);
}

}  // namespace crm::smtp
