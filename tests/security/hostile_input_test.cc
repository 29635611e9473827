// The catalogue of malformed and hostile requests of issue 12, on the whole
// suite as processes (Stack):
//  - every RPC of every service, from the generated descriptors, with the
//    administrator's token (or the certificate a service-to-service method
//    wants): each string field, top level, nested and repeated, set in turn
//    to invalid UTF-8, CR/LF header injection, a NUL byte, SQL and script
//    injection and 1 MiB of text; each number to its extremes; each enum to
//    undefined numbers; each repeated field to 100,000 elements; and whole
//    requests of garbage, truncated wire format, deeply nested groups, an
//    unknown field, just under and just over the 4 MiB message limit;
//  - every endpoint of the gateway: wrong JSON types, missing and unknown
//    fields, 10,000 levels of nesting, bodies over the limit, invalid UTF-8,
//    duplicate keys, CR/LF in header values, other content types, path
//    traversal under /static/, overlong URLs and malformed link tokens;
//  - nothing half-written: refused writes of contacts, consent, mailing and
//    identity leave every table of the service's database as it was, and an
//    import with a bad row in the middle does what ImportPersons promises.
//
// What counts as a clean answer (AcceptedCode): any status but UNKNOWN,
// INTERNAL, DATA_LOSS (a handler that failed or lost track), UNAVAILABLE,
// DEADLINE_EXCEEDED, CANCELLED (a service that died, hung or dropped the
// call) and UNIMPLEMENTED (every method here is served). OK is clean too: the
// administrator may store "<script>" as a name; it is data. One exception,
// documented with AcceptedCode: a request protobuf cannot parse (invalid
// UTF-8 in a proto3 string, garbage, truncated wire format, groups nested
// past protobuf's limit) is answered by gRPC itself before any of our code
// runs, with INTERNAL and protobuf's InitializationErrorString(), which is
// empty for proto3 messages (grpcpp/impl/codegen/proto_utils.h,
// GenericDeserialize); that exact answer is accepted for those requests
// only. No status message may carry the hostile value back.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crm/consent/v1/consent.grpc.pb.h"
#include "crm/contacts/v1/contacts.grpc.pb.h"
#include "crm/identity/v1/identity.grpc.pb.h"
#include "crm/mailing/v1/mailing.grpc.pb.h"
#include "libs/base/status_macros.h"
#include "libs/json/json.h"
#include "libs/rpc/channel.h"
#include "libs/testing/grpc_call.h"
#include "libs/testing/loopback.h"
#include "libs/testing/status_matchers.h"
#include "libs/testing/unary_call.h"
#include "tests/security/served_rpcs.h"
#include "tests/system/stack.h"

namespace crm::security_test {
namespace {

namespace pb = ::google::protobuf;
using ::crm::system_test::Stack;
using ::crm::testing::RawUnaryCall;
using ::crm::testing::UnaryCall;
using ::testing::IsEmpty;
using Code = ::grpc::StatusCode;

constexpr absl::Duration kCallTimeout = absl::Seconds(10);
constexpr size_t kGrpcLimit = 4 * 1024 * 1024;  // the services' max_message_bytes

// ---- The catalogue -------------------------------------------------------------

// A hostile value for a text field.
struct HostileText {
  std::string name;
  std::string value;
  bool unparseable = false;  // proto3 parsers refuse it in a string field
};

const std::vector<HostileText>& Texts() {
  static const auto* texts = new std::vector<HostileText>{
      {"invalid UTF-8", "ok\xc3\x28\xff\xfe\xed\xa0\x80", true},
      {"CR/LF header injection", "a\r\nBcc: x@evil.example"},
      {"a NUL byte", std::string("nul\0byte", 8)},
      {"SQL injection", "' OR 1=1; DROP TABLE persons; --"},
      {"script injection", "<script>alert(1)</script>"},
      {"1 MiB of text", std::string(1 << 20, 'H')},
  };
  return *texts;
}

// Parts of the catalogue's values that no answer may carry back.
const std::vector<std::string>& EchoMarkers() {
  static const auto* markers = new std::vector<std::string>{
      "evil.example", "DROP TABLE",   "<script>",  "HHHHHHHHHHHHHHHH",
      "\xff\xfe",     "ZQXJ-hostile", "987654321", std::string("nul\0byte", 8)};
  return *markers;
}

// The catalogue's value that `text` carries back, if any.
std::optional<std::string> Echoed(absl::string_view text) {
  for (const std::string& m : EchoMarkers()) {
    if (absl::StrContains(text, m)) return absl::CEscape(m);
  }
  return std::nullopt;
}

// A field reached from the request message: the fields on the way (a
// repeated message gets one element), the last one the field set.
using Path = std::vector<const pb::FieldDescriptor*>;

std::string PathName(const Path& path) {
  std::vector<std::string> parts;
  for (const pb::FieldDescriptor* f : path) parts.push_back(f->name());
  return absl::StrJoin(parts, ".");
}

// Every field of `type` and of its messages, to `depth` levels.
void CollectPaths(const pb::Descriptor* type, Path prefix, int depth, std::vector<Path>* out) {
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    Path path = prefix;
    path.push_back(f);
    out->push_back(path);
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && depth > 1 &&
        f->message_type()->file()->package() != "google.protobuf") {
      CollectPaths(f->message_type(), path, depth - 1, out);
    }
  }
  // Timestamps and durations: their seconds and nanos, at their extremes.
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* f = type->field(i);
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && depth > 1 &&
        (f->message_type()->full_name() == "google.protobuf.Timestamp" ||
         f->message_type()->full_name() == "google.protobuf.Duration")) {
      Path path = prefix;
      path.push_back(f);
      CollectPaths(f->message_type(), path, 1, out);
    }
  }
}

// The message the last field of `path` lives in, creating the way there.
pb::Message* Reach(pb::Message* root, const Path& path) {
  pb::Message* m = root;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    const pb::Reflection* r = m->GetReflection();
    m = path[i]->is_repeated() ? r->AddMessage(m, path[i]) : r->MutableMessage(m, path[i]);
  }
  return m;
}

// One hostile request of an RPC.
struct Case {
  std::string what;
  std::string bytes;
  bool unparseable = false;
};

// The cases of a request message `type`.
std::vector<Case> CasesFor(const pb::Descriptor* type) {
  const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(type);
  std::vector<Path> paths;
  CollectPaths(type, {}, 4, &paths);
  std::vector<Case> out;
  std::optional<Path> first_text;

  auto build = [&](const Path& path, const std::function<void(pb::Message*)>& set) {
    std::unique_ptr<pb::Message> m(prototype->New());
    set(Reach(m.get(), path));
    return m;
  };
  for (const Path& path : paths) {
    const pb::FieldDescriptor* f = path.back();
    const std::string name = PathName(path);
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING: {
        if (!first_text && !f->is_repeated()) first_text = path;
        for (const HostileText& t : Texts()) {
          // A stand-in of the same length, swapped for the value once
          // serialized (protobuf would refuse to write invalid UTF-8).
          const std::string stand_in(t.value.size(), '\x01');
          const std::string& set = t.unparseable ? stand_in : t.value;
          std::unique_ptr<pb::Message> m = build(path, [&](pb::Message* at) {
            const pb::Reflection* r = at->GetReflection();
            f->is_repeated() ? r->AddString(at, f, set) : r->SetString(at, f, set);
          });
          std::string bytes = m->SerializeAsString();
          if (t.unparseable) {
            const size_t at = bytes.find(stand_in);
            if (at == std::string::npos) continue;
            bytes.replace(at, stand_in.size(), t.value);
          }
          out.push_back({absl::StrCat(name, " = ", t.name), std::move(bytes),
                         t.unparseable && f->type() == pb::FieldDescriptor::TYPE_STRING});
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_INT32:
      case pb::FieldDescriptor::CPPTYPE_INT64:
      case pb::FieldDescriptor::CPPTYPE_UINT32:
      case pb::FieldDescriptor::CPPTYPE_UINT64:
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      case pb::FieldDescriptor::CPPTYPE_FLOAT: {
        struct Extreme {
          const char* name;
          int64_t i;
          double d;
        };
        const std::vector<Extreme> extremes = {
            {"INT64_MIN", std::numeric_limits<int64_t>::min(), -HUGE_VAL},
            {"INT64_MAX", std::numeric_limits<int64_t>::max(), HUGE_VAL},
            {"-1", -1, std::nan("")},
        };
        for (const Extreme& e : extremes) {
          std::unique_ptr<pb::Message> m = build(path, [&](pb::Message* at) {
            const pb::Reflection* r = at->GetReflection();
            const bool rep = f->is_repeated();
            switch (f->cpp_type()) {
              case pb::FieldDescriptor::CPPTYPE_INT32: {
                const int32_t v = e.i < 0 ? (e.i == -1 ? -1 : std::numeric_limits<int32_t>::min())
                                          : std::numeric_limits<int32_t>::max();
                rep ? r->AddInt32(at, f, v) : r->SetInt32(at, f, v);
                break;
              }
              case pb::FieldDescriptor::CPPTYPE_INT64:
                rep ? r->AddInt64(at, f, e.i) : r->SetInt64(at, f, e.i);
                break;
              case pb::FieldDescriptor::CPPTYPE_UINT32:
                rep ? r->AddUInt32(at, f, static_cast<uint32_t>(e.i))
                    : r->SetUInt32(at, f, static_cast<uint32_t>(e.i));
                break;
              case pb::FieldDescriptor::CPPTYPE_UINT64:
                rep ? r->AddUInt64(at, f, static_cast<uint64_t>(e.i))
                    : r->SetUInt64(at, f, static_cast<uint64_t>(e.i));
                break;
              case pb::FieldDescriptor::CPPTYPE_DOUBLE:
                rep ? r->AddDouble(at, f, e.d) : r->SetDouble(at, f, e.d);
                break;
              default:
                rep ? r->AddFloat(at, f, static_cast<float>(e.d))
                    : r->SetFloat(at, f, static_cast<float>(e.d));
            }
          });
          out.push_back({absl::StrCat(name, " = ", e.name), m->SerializeAsString()});
        }
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        for (int v : {9999, -1}) {
          std::unique_ptr<pb::Message> m = build(path, [&](pb::Message* at) {
            const pb::Reflection* r = at->GetReflection();
            f->is_repeated() ? r->AddEnumValue(at, f, v) : r->SetEnumValue(at, f, v);
          });
          out.push_back(
              {absl::StrCat(name, " = undefined enum number ", v), m->SerializeAsString()});
        }
        break;
      default:
        break;
    }
    if (f->is_repeated()) {
      constexpr int kMany = 100000;
      std::unique_ptr<pb::Message> m = build(path, [&](pb::Message* at) {
        const pb::Reflection* r = at->GetReflection();
        for (int i = 0; i < kMany; ++i) {
          switch (f->cpp_type()) {
            case pb::FieldDescriptor::CPPTYPE_STRING:
              r->AddString(at, f, "x");
              break;
            case pb::FieldDescriptor::CPPTYPE_MESSAGE:
              r->AddMessage(at, f);
              break;
            case pb::FieldDescriptor::CPPTYPE_ENUM:
              r->AddEnumValue(at, f, 1);
              break;
            case pb::FieldDescriptor::CPPTYPE_BOOL:
              r->AddBool(at, f, true);
              break;
            case pb::FieldDescriptor::CPPTYPE_INT32:
              r->AddInt32(at, f, 1);
              break;
            case pb::FieldDescriptor::CPPTYPE_INT64:
              r->AddInt64(at, f, 1);
              break;
            default:
              return;  // no such repeated fields in the suite's requests
          }
        }
      });
      out.push_back({absl::StrCat(name, " with 100,000 elements"), m->SerializeAsString()});
    }
  }

  // Whole requests.
  out.push_back(
      {"garbage bytes", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), true});
  out.push_back({"truncated wire format (a 16-byte field with 3 bytes)",
                 "\x0a\x10"
                 "abc",
                 true});
  {
    std::string groups;
    for (int i = 0; i < 10000; ++i) groups += "\xa3\x3e";  // start group, field 1000
    out.push_back({"10,000 nested unknown groups", groups, true});
  }
  out.push_back({"an unknown field (number 1000)", std::string("\xc0\x3e\x01", 3)});
  // Just under and just over the limit: in the first text field if there is
  // one (so validation sees it), else as an unknown field.
  for (const auto& [what, size] : {std::pair{"just under 4 MiB", kGrpcLimit - 1024},
                                   std::pair{"just over 4 MiB", kGrpcLimit + 1024}}) {
    std::string bytes;
    if (first_text) {
      std::unique_ptr<pb::Message> m = build(*first_text, [&](pb::Message* at) {
        at->GetReflection()->SetString(at, first_text->back(), std::string(size, 'H'));
      });
      bytes = m->SerializeAsString();
      out.push_back({absl::StrCat(PathName(*first_text), " ", what), std::move(bytes)});
    } else {
      // Field 1000, length-delimited, `size` bytes.
      bytes = "\xc2\x3e";
      for (size_t n = size; n >= 0x80; n >>= 7)
        bytes.push_back(static_cast<char>((n & 0x7f) | 0x80));
      bytes.push_back(static_cast<char>([&] {
        size_t n = size;
        while (n >= 0x80) n >>= 7;
        return n;
      }()));
      bytes.append(size, 'H');
      out.push_back({absl::StrCat("an unknown field ", what), std::move(bytes)});
    }
  }
  return out;
}

// What makes an answer clean (see the top of the file).
bool AcceptedCode(const grpc::Status& s, bool unparseable) {
  switch (s.error_code()) {
    case Code::UNKNOWN:
    case Code::DATA_LOSS:
    case Code::UNAVAILABLE:
    case Code::DEADLINE_EXCEEDED:
    case Code::CANCELLED:
    case Code::UNIMPLEMENTED:
      return false;
    case Code::INTERNAL:
      // gRPC's own answer to a request protobuf cannot parse.
      return unparseable && s.error_message().empty();
    default:
      return true;
  }
}

// ---- HTTP by hand ----------------------------------------------------------------

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// Sends `request` as it is over TLS to 127.0.0.1:`port` (httplib's client
// would tidy what these tests must send raw) and reads until the server
// closes. The server's certificate is not checked: the peer is ours.
absl::StatusOr<HttpReply> RawHttps(int port, const std::string& request) {
  CRM_ASSIGN_OR_RETURN(int fd, crm::testing::ConnectLoopback(port, absl::Seconds(15)));
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  if (SSL_connect(ssl.get()) != 1) {
    close(fd);
    return absl::UnavailableError("TLS handshake with the gateway failed");
  }
  // A server may answer and close before it read all of a large request:
  // a failed write is not the end, the answer is what counts.
  for (size_t at = 0; at < request.size();) {
    const int n = SSL_write(ssl.get(), request.data() + at,
                            static_cast<int>(std::min<size_t>(request.size() - at, 1 << 16)));
    if (n <= 0) break;
    at += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[16384];
  // Until the server closes or the answer is complete (a server may keep
  // the connection open a while after an error, whatever we asked).
  auto complete = [&] {
    const size_t head_end = reply.find("\r\n\r\n");
    if (head_end == std::string::npos) return false;
    const std::string head = absl::AsciiStrToLower(reply.substr(0, head_end));
    const size_t at = head.find("\r\ncontent-length:");
    return at != std::string::npos &&
           reply.size() - head_end - 4 >=
               static_cast<size_t>(std::atol(head.c_str() + at + strlen("\r\ncontent-length:")));
  };
  for (int n; !complete() && (n = SSL_read(ssl.get(), buf, sizeof(buf))) > 0;) reply.append(buf, n);
  ERR_clear_error();
  close(fd);
  HttpReply out;
  const size_t end = reply.find("\r\n\r\n");
  out.head = reply.substr(0, end);
  if (end != std::string::npos) out.body = reply.substr(end + 4);
  if (absl::StartsWith(reply, "HTTP/1.1 ") && reply.size() > 12) {
    out.status = std::atoi(reply.substr(9, 3).c_str());
  }
  return out;
}

// ---- The fixture ---------------------------------------------------------------

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* source = std::getenv("CRMTEST_SOURCE_DIR");
    // Logins of the sweep (hostile usernames, fresh tokens for Logout) would
    // otherwise be throttled.
    absl::StatusOr<std::unique_ptr<Stack>> st = Stack::Create(
        {.static_dir = absl::StrCat(source == nullptr ? "." : source, "/services/gateway/static"),
         .service_env = {{"identity", {{"CRM_LOGIN_THROTTLE_ATTEMPTS", "100000"}}}}});
    ASSERT_TRUE(st.ok()) << st.status();
    stack_ = st->release();
  }
  static void TearDownTestSuite() {
    if (stack_ != nullptr) {
      const absl::Status s = stack_->Shutdown();
      EXPECT_TRUE(s.ok()) << "a process did not exit cleanly (crashed?): " << s;
    }
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(stack_, nullptr) << "the stack did not start"; }

  static Stack& st() { return *stack_; }

  static std::shared_ptr<grpc::Channel> ChannelAs(const std::string& process,
                                                  const std::string& who) {
    rpc::ChannelConfig config;
    config.target = st().Addr(process);
    config.tls = st().pki->Files(who);
    config.expected_server = process;
    config.max_attempts = 1;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::MakeChannel(config);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return channel.ok() ? *channel : nullptr;
  }

  // A fresh access token of `username`.
  static std::string Login(const std::string& username, const std::string& password) {
    auto stub = identity::v1::Identity::NewStub(ChannelAs("identity", "operator"));
    identity::v1::LoginRequest request;
    request.set_username(username);
    request.set_password(password);
    absl::StatusOr<identity::v1::LoginResponse> r =
        UnaryCall(*stub, &identity::v1::Identity::Stub::Login, request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tokens().access_token() : "";
  }
  static std::string AdminToken() {
    static std::string* token = new std::string;
    if (token->empty()) *token = Login("admin", system_test::kAdminPassword);
    return *token;
  }

  // The number of rows of every table of `service`'s database.
  static std::map<std::string, int64_t> RowCounts(const std::string& service) {
    std::map<std::string, int64_t> out;
    try {
      pqxx::connection c(st().launched[service].env.at("CRM_DB_URL"));
      pqxx::nontransaction tx(c);
      for (const pqxx::row& t :
           tx.exec("SELECT quote_ident(table_name) FROM information_schema.tables WHERE "
                   "table_schema = 'public' AND table_type = 'BASE TABLE'")) {
        const std::string table = t[0].as<std::string>();
        out[table] = tx.exec1(absl::StrCat("SELECT count(*) FROM ", table))[0].as<int64_t>();
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << service << " database unreadable: " << e.what();
    }
    return out;
  }

  // What changed between two RowCounts, as "table: before -> after".
  static std::vector<std::string> Changed(const std::map<std::string, int64_t>& before,
                                          const std::map<std::string, int64_t>& after) {
    std::vector<std::string> out;
    for (const auto& [table, n] : after) {
      const auto it = before.find(table);
      const int64_t was = it == before.end() ? 0 : it->second;
      if (was != n) out.push_back(absl::StrCat(table, ": ", was, " -> ", n));
    }
    return out;
  }

  static Stack* stack_;
};

Stack* HostileInputTest::stack_ = nullptr;

// ---- 1. Every RPC ------------------------------------------------------------------

TEST_F(HostileInputTest, EveryRpcAnswersEveryHostileRequestCleanlyAndEveryServiceKeepsServing) {
  const std::string admin = AdminToken();
  ASSERT_FALSE(admin.empty());
  // ChangePassword with hostile current passwords would count as failures
  // against the administrator: a user of its own takes them.
  const std::string own_password = "hostile input: eleven patient lanterns";
  {
    auto stub = identity::v1::Identity::NewStub(ChannelAs("identity", "operator"));
    identity::v1::CreateUserRequest create;
    create.set_username("hostile.sacrificial");
    create.set_display_name("Hostile Sacrificial");
    create.set_email("hostile.sacrificial@staff.example");
    create.set_initial_password(own_password);
    create.set_must_change_password(false);
    ASSERT_THAT(UnaryCall(*stub, &identity::v1::Identity::Stub::CreateUser, create, admin).status(),
                testing::IsOk());
  }
  const std::string sacrificial = Login("hostile.sacrificial", own_password);

  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>> channels;
  auto channel = [&](const std::string& process, const std::string& who) {
    auto& c = channels[{process, who}];
    if (c == nullptr) c = ChannelAs(process, who);
    return c;
  };

  std::vector<std::string> wrong;
  int calls = 0;
  int rpcs = 0;
  std::map<std::string, int> by_code;
  const absl::Time start = absl::Now();
  for (const Rpc& rpc : AllRpcs()) {
    ++rpcs;
    const pb::MethodDescriptor* m = pb::DescriptorPool::generated_pool()->FindMethodByName(
        absl::StrReplaceAll(rpc.method.substr(1), {{"/", "."}}));
    if (m == nullptr) {
      wrong.push_back(absl::StrCat(rpc.method, ": no descriptor"));
      continue;
    }
    const Access access = AccessOf(rpc.method);
    const std::string who =
        access == Access::kCallerOnly ? *CallerOnly().at(rpc.method).begin() : "operator";
    const bool logout = m->name() == "Logout";
    for (const Case& c : CasesFor(m->input_type())) {
      std::string token;
      if (access == Access::kToken) {
        // Logout ends the session of its token: a fresh one each time.
        token = logout                          ? Login("admin", system_test::kAdminPassword)
                : m->name() == "ChangePassword" ? sacrificial
                                                : admin;
      }
      const absl::Time t0 = absl::Now();
      grpc::Status s = RawUnaryCall(channel(rpc.process, who), rpc.method, c.bytes, nullptr,
                                    kCallTimeout, token);
      const absl::Duration took = absl::Now() - t0;
      ++calls;
      ++by_code[CodeName(s.error_code())];
      const std::string where = absl::StrCat(rpc.process, rpc.method, " with ", c.what, ": ");
      if (!AcceptedCode(s, c.unparseable)) {
        wrong.push_back(
            absl::StrCat(where, CodeName(s.error_code()), " \"", s.error_message(), "\""));
      } else if (took > kCallTimeout) {
        wrong.push_back(absl::StrCat(where, "answered after ", absl::FormatDuration(took)));
      }
      if (std::optional<std::string> echo = Echoed(s.error_message())) {
        wrong.push_back(
            absl::StrCat(where, "the status message carries the value back (", *echo, ")"));
      }
      if (access == Access::kToken && s.error_code() == Code::UNAUTHENTICATED && !logout &&
          m->name() != "ChangePassword") {
        wrong.push_back(absl::StrCat(where, "the administrator's token stopped working"));
      }
    }
    absl::StatusOr<int> health = crm::testing::GrpcHealthCheck(channel(rpc.process, "operator"));
    if (!health.ok() || *health != crm::testing::kHealthServing) {
      wrong.push_back(
          absl::StrCat(rpc.process, " is not SERVING after ", rpc.method, ": ",
                       health.ok() ? absl::StrCat(*health) : health.status().ToString()));
    }
  }
  for (const auto& [process, services] : Served()) {
    absl::StatusOr<int> health = crm::testing::GrpcHealthCheck(channel(process, "operator"));
    if (!health.ok() || *health != crm::testing::kHealthServing) {
      wrong.push_back(absl::StrCat(process, " is not SERVING at the end"));
    }
  }
  std::vector<std::string> codes;
  for (const auto& [code, n] : by_code) codes.push_back(absl::StrCat(code, " ", n));
  std::cout << "hostile RPC sweep: " << rpcs << " RPCs, " << calls << " calls in "
            << absl::FormatDuration(absl::Now() - start) << "; " << absl::StrJoin(codes, ", ")
            << "\n";
  EXPECT_GT(rpcs, 100);
  EXPECT_THAT(wrong, IsEmpty()) << wrong.size() << " unclean answers:\n"
                                << absl::StrJoin(wrong, "\n");
}

// ---- 2. Every gateway endpoint -----------------------------------------------------

// A JSON value of a type the field does not take.
std::string WrongJsonFor(const pb::FieldDescriptor* f) {
  if (f->is_map() || f->is_repeated()) return R"({"ZQXJ-hostile": 1})";
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return R"({"ZQXJ-hostile": true})";
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      // A field mask's JSON is a string: any string is of its type.
      return f->message_type()->full_name() == "google.protobuf.FieldMask" ? "987654321"
                                                                           : R"("ZQXJ-hostile")";
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return R"("ZQXJ-hostile")";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return R"("ZQXJ-hostile-NO_SUCH_VALUE")";
    default:
      return R"("ZQXJ-hostile")";
  }
}

TEST_F(HostileInputTest, EveryGatewayEndpointRefusesMalformedRequestsWithA4xxAndKeepsServing) {
  const std::string admin = AdminToken();
  ASSERT_FALSE(admin.empty());
  std::unique_ptr<httplib::SSLClient> https = st().Https();
  https->set_read_timeout(30, 0);
  https->set_tcp_nodelay(true);
  httplib::Result doc = https->Get("/openapi.json");
  ASSERT_TRUE(doc && doc->status == 200);
  absl::StatusOr<json::Value> api = json::Parse(doc->body, {.max_size = 16 << 20, .max_depth = 64});
  ASSERT_TRUE(api.ok() && api->Find("paths") != nullptr);

  std::vector<std::string> wrong;
  int requests = 0;
  int endpoints = 0;
  // `what` sent to `path` got `status` and `body`: clean if a 4xx (or
  // `ok_too` a 2xx) with a JSON error when JSON is expected, no value back.
  auto judge = [&](const std::string& where, int status, const std::string& body, bool ok_too,
                   bool json_error, const std::string& want_field = "") {
    ++requests;
    const bool fine = (status >= 400 && status < 500) || (ok_too && status >= 200 && status < 300);
    if (!fine) {
      wrong.push_back(absl::StrCat(where, ": HTTP ", status, " ", body.substr(0, 200)));
      return;
    }
    if (std::optional<std::string> echo = status >= 400 ? Echoed(body) : std::nullopt) {
      wrong.push_back(absl::StrCat(where, ": the answer carries the value back (", *echo, ")"));
    }
    if (json_error && status >= 400) {
      absl::StatusOr<json::Value> v = json::Parse(body);
      const json::Value* e = v.ok() ? v->Find("error") : nullptr;
      if (e == nullptr || e->Find("code") == nullptr || e->Find("message") == nullptr) {
        wrong.push_back(absl::StrCat(where, ": not a JSON error: ", body.substr(0, 200)));
      } else if (const json::Value* field = e->Find("field");
                 !want_field.empty() &&
                 (field == nullptr || !field->is_string() || field->string_value() != want_field)) {
        wrong.push_back(absl::StrCat(where, ": the error does not name ", want_field, ": ",
                                     body.substr(0, 200)));
      }
    }
  };
  auto post = [&](const std::string& path, const std::string& body,
                  const std::string& type = "application/json", const std::string& token = "") {
    httplib::Headers headers = {
        {"Authorization", absl::StrCat("Bearer ", token.empty() ? admin : token)}};
    return https->Post(path.c_str(), headers, body, type.c_str());
  };

  const json::Value* paths = api->Find("paths");
  for (const auto& [path, ops] : paths->object()) {
    if (!absl::StartsWith(path, "/api/v1/")) continue;
    ++endpoints;
    const std::string full = path.substr(std::string("/api/v1/").size());
    const pb::MethodDescriptor* m = pb::DescriptorPool::generated_pool()->FindMethodByName(
        absl::StrReplaceAll(full, {{"/", "."}}));
    if (m == nullptr) {
      wrong.push_back(absl::StrCat(path, ": no descriptor"));
      continue;
    }
    const pb::Descriptor* type = m->input_type();
    auto send = [&](const std::string& what, const std::string& body, bool ok_too,
                    const std::string& content_type = "application/json",
                    const std::string& want_field = "") {
      const std::string token =
          m->name() == "Logout" ? Login("admin", system_test::kAdminPassword) : "";
      httplib::Result r = post(path, body, content_type, token);
      const std::string where = absl::StrCat(path, " with ", what);
      if (!r) {
        wrong.push_back(absl::StrCat(where, ": no answer (", httplib::to_string(r.error()), ")"));
        return;
      }
      judge(where, r->status, r->body, ok_too, true, want_field);
    };
    // Wrong types, field by field; the body names no field protobuf knows
    // of the value, so the error must not carry it.
    for (int i = 0; i < type->field_count(); ++i) {
      const pb::FieldDescriptor* f = type->field(i);
      send(absl::StrCat("a wrong JSON type for ", f->json_name()),
           absl::StrCat("{\"", f->json_name(), "\": ", WrongJsonFor(f), "}"), false,
           "application/json", f->name());
    }
    send("missing fields ({})", "{}", true);
    send("an unknown field", R"({"zqxjHostileUnknown": 1})", false, "application/json", "body");
    send("duplicate keys",
         type->field_count() > 0
             ? absl::StrCat("{\"", type->field(0)->json_name(),
                            "\": ", WrongJsonFor(type->field(0)), ", \"",
                            type->field(0)->json_name(), "\": ", WrongJsonFor(type->field(0)), "}")
             : R"({"a": 1, "a": 2})",
         true);
    {
      std::string deep(10000, '[');
      deep += std::string(10000, ']');
      send("10,000 levels of nesting",
           type->field_count() > 0
               ? absl::StrCat("{\"", type->field(0)->json_name(), "\": ", deep, "}")
               : deep,
           false);
      std::string objects;
      for (int i = 0; i < 10000; ++i) objects += "{\"a\":";
      objects += "1" + std::string(10000, '}');
      send("10,000 nested objects", objects, false);
    }
    // Invalid UTF-8 and control characters inside JSON strings, in each
    // top-level text field.
    for (int i = 0; i < type->field_count(); ++i) {
      const pb::FieldDescriptor* f = type->field(i);
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || f->is_repeated()) continue;
      send(absl::StrCat("invalid UTF-8 in ", f->json_name()),
           absl::StrCat("{\"", f->json_name(), "\": \"ok\xc3\x28\xff\xfe\"}"), false);
      send(absl::StrCat("an escaped CR/LF injection in ", f->json_name()),
           absl::StrCat("{\"", f->json_name(), "\": \"a\\r\\nBcc: x@evil.example\"}"), true);
      send(absl::StrCat("an escaped NUL in ", f->json_name()),
           absl::StrCat("{\"", f->json_name(), "\": \"a\\u0000<script>\"}"), true);
    }
    send("a body that is not JSON", "ZQXJ-hostile <xml/>", false);
    send("a form content type", "a=ZQXJ-hostile", false, "application/x-www-form-urlencoded");
    send("a text content type", "{}", false, "text/plain");
  }

  // Over the 1 MiB limit, by Content-Length: refused before it is read.
  const int port = st().ports["gateway"];
  const std::string any_api = "/api/v1/crm.contacts.v1.Contacts/ListPersons";
  auto raw = [&](const std::string& what, const std::string& request, bool ok_too,
                 bool json_error) {
    absl::StatusOr<HttpReply> r = RawHttps(port, request);
    if (!r.ok()) {
      wrong.push_back(absl::StrCat(what, ": ", r.status().ToString()));
      return std::optional<HttpReply>();
    }
    judge(what, r->status, r->body, ok_too, json_error);
    return std::optional<HttpReply>(*r);
  };
  auto api_request = [&](const std::string& headers, const std::string& body) {
    return absl::StrCat("POST ", any_api, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
                        "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n",
                        headers, "\r\n", body);
  };
  {
    const std::string big = absl::StrCat("{\"pageToken\": \"", std::string(2 << 20, 'H'), "\"}");
    raw("a 2 MiB body", api_request(absl::StrCat("Authorization: Bearer ", admin, "\r\n"), big),
        false, true);
    raw("a body of chunks",
        absl::StrCat("POST ", any_api,
                     " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: "
                     "application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        false, true);
    raw("a gzip body", api_request("Content-Encoding: gzip\r\n", "{}"), false, true);
  }
  // CR or LF inside header values: a bare one in a value, and an encoded
  // line that must not become a header of the answer.
  for (const auto& [what, header] : std::vector<std::pair<std::string, std::string>>{
           {"a bare LF in X-Request-Id", "X-Request-Id: a\nBcc: x@evil.example\r\n"},
           {"a bare CR in X-Request-Id", "X-Request-Id: a\rBcc: x@evil.example\r\n"},
           {"a CR/LF line after X-Request-Id", "X-Request-Id: a\r\nX-Injected: x@evil.example\r\n"},
           {"a bare LF in Authorization",
            absl::StrCat("Authorization: Bearer ", admin, "\nBcc: x@evil.example\r\n")},
           {"a bare CR in Authorization",
            absl::StrCat("Authorization: Bearer ", admin, "\rBcc: x@evil.example\r\n")},
           {"a NUL in Authorization", std::string("Authorization: Bearer a\0b\r\n", 27)},
           {"a control character in Authorization", "Authorization: Bearer a\x01<script>\r\n"},
       }) {
    std::optional<HttpReply> r = raw(what, api_request(header, "{}"), true, true);
    if (r && (absl::StrContains(r->head, "evil.example") || absl::StrContains(r->head, "Bcc") ||
              absl::StrContains(r->head, "X-Injected"))) {
      wrong.push_back(absl::StrCat(what, ": the injected header is in the answer's"));
    }
  }
  // Path traversal under /static/, plain and encoded.
  for (const std::string& path : std::vector<std::string>{
           "/static/../../../../etc/passwd", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
           "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
           "/static/%252e%252e/%252e%252e/etc/passwd", "/static/....//....//....//etc/passwd",
           "/static/..\\..\\..\\..\\etc\\passwd", "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
           "/static/./../../../../etc/passwd%00.css", "/static//etc/passwd",
           "/../../../../etc/passwd", "/console/../../../../etc/passwd"}) {
    std::optional<HttpReply> r =
        raw(absl::StrCat("GET ", path),
            absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
            false, false);
    if (r && absl::StrContains(r->body, "root:")) {
      wrong.push_back(absl::StrCat("GET ", path, ": served /etc/passwd"));
    }
  }
  // Overlong URLs and header values.
  raw("a 100 KiB URL",
      absl::StrCat("GET /api/v1/", std::string(100 << 10, 'H'),
                   " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
      false, false);
  raw("a 100 KiB query",
      absl::StrCat("POST ", any_api, "?q=", std::string(100 << 10, 'H'),
                   " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 2\r\n"
                   "Content-Type: application/json\r\n\r\n{}"),
      false, false);
  raw("a 100 KiB Authorization",
      api_request(absl::StrCat("Authorization: Bearer ", std::string(100 << 10, 'H'), "\r\n"),
                  "{}"),
      false, false);
  raw("a 100 KiB method name",
      api_request("", "{}").replace(
          5, any_api.size(),
          absl::StrCat("/api/v1/crm.contacts.v1.Contacts/", std::string(100 << 10, 'H'))),
      false, false);
  // The links in mail, with malformed tokens (GET shows a form, POST acts).
  for (const std::string& token : std::vector<std::string>{
           "ZQXJ-hostile", "%00", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "%ff%fe%c3%28",
           "a%0d%0aBcc:%20x@evil.example", "..%2f..%2fetc%2fpasswd", "' OR 1=1; DROP TABLE persons",
           std::string(600, 'H'), "a.b.c", "eyJhbGciOiJub25lIn0.e30."}) {
    // GET of a token of the right alphabet shows the form without asking
    // mailing (link_pages.h: mail scanners fetch links); POST must refuse.
    const bool token_alphabet = std::all_of(token.begin(), token.end(), [](char c) {
      return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
    });
    for (const char* prefix : {"/u/", "/c/"}) {
      raw(absl::StrCat("GET ", prefix, "<malformed token>"),
          absl::StrCat("GET ", prefix, token,
                       " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
          token_alphabet, false);
      const std::string form = "List-Unsubscribe=One-Click";
      raw(absl::StrCat("POST ", prefix, "<malformed token>"),
          absl::StrCat("POST ", prefix, token,
                       " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: "
                       "application/x-www-form-urlencoded\r\nContent-Length: ",
                       form.size(), "\r\n\r\n", form),
          false, false);
    }
  }
  // Garbage instead of HTTP.
  raw("a request line of garbage", "\x16\x03\x01ZQXJ-hostile\r\n\r\n", false, false);

  httplib::Result health = st().Https()->Get("/healthz");
  if (!health || health->status != 200) wrong.push_back("the gateway stopped serving");
  std::cout << "hostile gateway sweep: " << endpoints << " API endpoints, " << requests
            << " requests\n";
  EXPECT_GT(endpoints, 50);
  EXPECT_THAT(wrong, IsEmpty()) << wrong.size() << " unclean answers:\n"
                                << absl::StrJoin(wrong, "\n");
}

// ---- 3. Nothing half-written -----------------------------------------------------

TEST_F(HostileInputTest, RefusedWritesLeaveNoTraceAndAnImportWithABadRowKeepsItsContract) {
  const std::string admin = AdminToken();
  ASSERT_FALSE(admin.empty());
  ASSERT_TRUE(st().RunPlatformAccounts().exit.exited_with(0));
  const std::string list = "hostile-news";
  const std::string customer = st().SubscribedCustomer(list, "hostile-welcome", "Quinta",
                                                       "quinta.hostile@customers.example");
  ASSERT_FALSE(customer.empty());
  const std::string notice =
      system_test::JsonString(st().Crmctl({"call", "consent", "ListPurposes", "{}"}).output, "en");
  ASSERT_FALSE(notice.empty());

  auto contacts = contacts::v1::Contacts::NewStub(ChannelAs("contacts", "operator"));
  auto consent = consent::v1::Consent::NewStub(ChannelAs("consent", "operator"));
  auto mailing = mailing::v1::Mailing::NewStub(ChannelAs("mailing", "operator"));
  auto identity = identity::v1::Identity::NewStub(ChannelAs("identity", "operator"));
  using consent::v1::Consent;
  using contacts::v1::Contacts;
  using identity::v1::Identity;
  using mailing::v1::Mailing;

  // A person not subscribed to anything yet (for Subscribe).
  std::string bystander;
  {
    contacts::v1::CreatePersonRequest r;
    r.mutable_person()->set_given_name("Bystander");
    r.mutable_person()->add_emails()->set_address("bystander.hostile@customers.example");
    CRM_ASSERT_OK_AND_ASSIGN(contacts::v1::CreatePersonResponse created,
                             UnaryCall(*contacts, &Contacts::Stub::CreatePerson, r, admin));
    bystander = created.person().subject_id();
  }

  std::vector<std::string> wrong;
  int refusals = 0;
  // `call` must be refused and leave every table of `services` as it was.
  auto refused = [&](const std::string& what, const std::vector<std::string>& services,
                     const std::function<absl::Status()>& call) {
    std::map<std::string, std::map<std::string, int64_t>> before;
    for (const std::string& s : services) {
      before[s] = RowCounts(s);
      if (before[s].empty()) wrong.push_back(absl::StrCat(what, ": no tables read in ", s));
    }
    const absl::Status status = call();
    ++refusals;
    std::cout << "  " << what << ": " << absl::StatusCodeToString(status.code()) << "\n";
    if (status.ok()) {
      wrong.push_back(absl::StrCat(what, ": accepted"));
      return;
    }
    if (status.code() == absl::StatusCode::kInternal ||
        status.code() == absl::StatusCode::kUnknown ||
        status.code() == absl::StatusCode::kUnavailable) {
      wrong.push_back(absl::StrCat(what, ": ", status.ToString()));
    }
    for (const std::string& s : services) {
      for (const std::string& c : Changed(before[s], RowCounts(s))) {
        wrong.push_back(absl::StrCat(what, " (", status.code(), ") left a trace in ", s, ": ", c));
      }
    }
  };

  // contacts: CreatePerson.
  auto person = [](const std::string& given, const std::vector<std::string>& emails) {
    contacts::v1::CreatePersonRequest r;
    r.mutable_person()->set_given_name(given);
    r.mutable_person()->set_family_name("Hostile");
    r.mutable_person()->add_phones()->set_number("+48601002003");
    for (const std::string& e : emails) r.mutable_person()->add_emails()->set_address(e);
    return r;
  };
  refused("CreatePerson with a bad second e-mail", {"contacts"}, [&] {
    return UnaryCall(*contacts, &Contacts::Stub::CreatePerson,
                     person("Ada", {"ada.1@customers.example", "not an address"}), admin)
        .status();
  });
  refused("CreatePerson whose second e-mail is another person's", {"contacts"}, [&] {
    return UnaryCall(*contacts, &Contacts::Stub::CreatePerson,
                     person("Ada", {"ada.2@customers.example", "quinta.hostile@customers.example"}),
                     admin)
        .status();
  });
  refused("CreatePerson with a script as country code", {"contacts"}, [&] {
    contacts::v1::CreatePersonRequest r = person("Ada", {"ada.3@customers.example"});
    auto* a = r.mutable_person()->add_addresses();
    a->set_city("Gdansk");
    a->set_country_code("<script>alert(1)</script>");
    return UnaryCall(*contacts, &Contacts::Stub::CreatePerson, r, admin).status();
  });
  refused("CreatePerson with 11 e-mails", {"contacts"}, [&] {
    std::vector<std::string> many;
    for (int i = 0; i < 11; ++i) many.push_back(absl::StrCat("ada.many", i, "@customers.example"));
    return UnaryCall(*contacts, &Contacts::Stub::CreatePerson, person("Ada", many), admin).status();
  });

  // contacts: UpdatePerson, a good field with a bad one, and a stale version.
  contacts::v1::GetPersonRequest get;
  get.set_subject_id(customer);
  CRM_ASSERT_OK_AND_ASSIGN(contacts::v1::GetPersonResponse was,
                           UnaryCall(*contacts, &Contacts::Stub::GetPerson, get, admin));
  refused("UpdatePerson of a name and a bad e-mail", {"contacts"}, [&] {
    contacts::v1::UpdatePersonRequest r;
    r.set_subject_id(customer);
    r.mutable_person()->set_given_name("Changed");
    r.mutable_person()->add_emails()->set_address("not an address");
    r.mutable_update_mask()->add_paths("given_name");
    r.mutable_update_mask()->add_paths("emails");
    return UnaryCall(*contacts, &Contacts::Stub::UpdatePerson, r, admin).status();
  });
  refused("UpdatePerson of a name and another person's e-mail", {"contacts"}, [&] {
    contacts::v1::UpdatePersonRequest r;
    r.set_subject_id(customer);
    r.mutable_person()->set_given_name("Changed");
    r.mutable_person()->add_emails()->set_address("bystander.hostile@customers.example");
    r.mutable_update_mask()->add_paths("given_name");
    r.mutable_update_mask()->add_paths("emails");
    return UnaryCall(*contacts, &Contacts::Stub::UpdatePerson, r, admin).status();
  });
  refused("UpdatePerson with a stale version", {"contacts"}, [&] {
    contacts::v1::UpdatePersonRequest r;
    r.set_subject_id(customer);
    r.mutable_person()->set_given_name("Changed");
    r.mutable_update_mask()->add_paths("given_name");
    r.set_expected_version(was.person().version() + 1000);
    return UnaryCall(*contacts, &Contacts::Stub::UpdatePerson, r, admin).status();
  });
  CRM_ASSERT_OK_AND_ASSIGN(contacts::v1::GetPersonResponse is,
                           UnaryCall(*contacts, &Contacts::Stub::GetPerson, get, admin));
  EXPECT_EQ(is.person().given_name(), "Quinta");
  EXPECT_EQ(is.person().version(), was.person().version());
  EXPECT_EQ(is.person().emails_size(), was.person().emails_size());

  // consent: Grant and Withdraw.
  auto statement = [&](const std::string& subject) {
    consent::v1::Statement s;
    s.set_subject_id(subject);
    s.set_purpose_id("newsletter");
    s.set_notice_version(notice);
    s.set_language("en");
    s.set_method(consent::v1::METHOD_WEB_FORM);
    s.set_source("shop");
    return s;
  };
  auto grant = [&](const consent::v1::Statement& s) {
    consent::v1::GrantRequest r;
    *r.mutable_statement() = s;
    return UnaryCall(*consent, &Consent::Stub::Grant, r, admin).status();
  };
  refused("Grant for an unknown purpose", {"consent"}, [&] {
    consent::v1::Statement s = statement(bystander);
    s.set_purpose_id("no-such-purpose");
    return grant(s);
  });
  refused("Grant of an unknown notice", {"consent"}, [&] {
    consent::v1::Statement s = statement(bystander);
    s.set_notice_version(std::string(64, 'f'));
    return grant(s);
  });
  refused("Grant from a source with SQL in it", {"consent"}, [&] {
    consent::v1::Statement s = statement(bystander);
    s.set_source("' OR 1=1; DROP TABLE persons; --");
    return grant(s);
  });
  refused("Grant given in the future", {"consent"}, [&] {
    consent::v1::Statement s = statement(bystander);
    s.mutable_given_at()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(48)));
    return grant(s);
  });
  refused("Grant for a malformed subject id", {"consent"},
          [&] { return grant(statement("00000000-0000-0000-0000-00000000000Z")); });
  refused("Withdraw with an undefined method", {"consent"}, [&] {
    consent::v1::WithdrawRequest r;
    *r.mutable_statement() = statement(customer);
    r.mutable_statement()->set_method(static_cast<consent::v1::Method>(9999));
    return UnaryCall(*consent, &Consent::Stub::Withdraw, r, admin).status();
  });
  refused("Withdraw from a script source", {"consent"}, [&] {
    consent::v1::WithdrawRequest r;
    *r.mutable_statement() = statement(customer);
    r.mutable_statement()->set_source("<script>alert(1)</script>");
    return UnaryCall(*consent, &Consent::Stub::Withdraw, r, admin).status();
  });

  // mailing: Subscribe (which records consent) and CreateCampaign.
  auto subscribe = [&](const std::string& list_id, const std::string& notice_version,
                       const std::string& source) {
    mailing::v1::SubscribeRequest r;
    r.set_list_id(list_id);
    r.set_subject_id(bystander);
    r.set_source(source);
    r.set_notice_version(notice_version);
    r.set_language("en");
    return UnaryCall(*mailing, &Mailing::Stub::Subscribe, r, admin).status();
  };
  refused("Subscribe to an unknown list", {"mailing", "consent"},
          [&] { return subscribe("no-such-list", notice, "shop"); });
  refused("Subscribe with an unknown notice", {"mailing", "consent"},
          [&] { return subscribe(list, std::string(64, 'f'), "shop"); });
  refused("Subscribe from a CR/LF source", {"mailing", "consent"},
          [&] { return subscribe(list, notice, "a\r\nBcc: x@evil.example"); });
  auto campaign = [&](const std::string& name, const std::string& template_id,
                      const std::string& list_id) {
    mailing::v1::CreateCampaignRequest r;
    r.mutable_campaign()->set_name(name);
    r.mutable_campaign()->set_list_id(list_id);
    r.mutable_campaign()->set_template_id(template_id);
    return UnaryCall(*mailing, &Mailing::Stub::CreateCampaign, r, admin).status();
  };
  refused("CreateCampaign of an unknown template", {"mailing"},
          [&] { return campaign("Hostile", "no-such-template", list); });
  refused("CreateCampaign to an unknown list", {"mailing"},
          [&] { return campaign("Hostile", "hostile-welcome", "no-such-list"); });
  refused("CreateCampaign with a 1 MiB name", {"mailing"},
          [&] { return campaign(std::string(1 << 20, 'H'), "hostile-welcome", list); });

  // identity: CreateUser.
  auto user = [&](const std::string& username, const std::string& email,
                  const std::string& password, const std::vector<std::string>& teams) {
    identity::v1::CreateUserRequest r;
    r.set_username(username);
    r.set_display_name("Hostile User");
    r.set_email(email);
    r.set_initial_password(password);
    for (const std::string& t : teams) r.add_team_ids(t);
    return UnaryCall(*identity, &Identity::Stub::CreateUser, r, admin).status();
  };
  const std::string good_password = "hostile input: twelve brass compasses";
  refused("CreateUser with a weak password", {"identity"},
          [&] { return user("hostile.weak", "hostile.weak@staff.example", "password", {}); });
  refused("CreateUser with a CR/LF e-mail", {"identity"}, [&] {
    return user("hostile.crlf", "a@staff.example\r\nBcc: x@evil.example", good_password, {});
  });
  refused("CreateUser in an unknown team", {"identity"}, [&] {
    return user("hostile.team", "hostile.team@staff.example", good_password,
                {"00000000-0000-0000-0000-000000000000"});
  });
  refused("CreateUser with the administrator's username", {"identity"},
          [&] { return user("admin", "hostile.admin@staff.example", good_password, {}); });
  refused("CreateUser with a SQL username", {"identity"}, [&] {
    return user("' OR 1=1; DROP TABLE users; --", "hostile.sql@staff.example", good_password, {});
  });

  // ImportPersons: "valid rows are committed in batches, invalid ones are
  // reported by row number with the field and rule broken (never the
  // value)": a bad row in the middle is reported and the others imported.
  {
    const std::map<std::string, int64_t> before = RowCounts("contacts");
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + admin);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    contacts::v1::ImportPersonsResponse response;
    std::unique_ptr<grpc::ClientWriter<contacts::v1::ImportPersonsRequest>> writer =
        contacts->ImportPersons(&ctx, &response);
    const std::vector<std::string> rows = {"import.one@customers.example",
                                           "not an address <script>",
                                           "import.three@customers.example"};
    for (const std::string& email : rows) {
      contacts::v1::ImportPersonsRequest r;
      r.mutable_person()->set_given_name("Imported");
      r.mutable_person()->add_emails()->set_address(email);
      r.set_source("hostile-test");
      ASSERT_TRUE(writer->Write(r));
    }
    ASSERT_TRUE(writer->WritesDone());
    const grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(response.received(), 3);
    EXPECT_EQ(response.imported(), 2);
    EXPECT_EQ(response.errors_total(), 1);
    ASSERT_EQ(response.errors_size(), 1);
    EXPECT_EQ(response.errors(0).row(), 2);
    EXPECT_TRUE(absl::StartsWith(response.errors(0).field(), "person.emails"))
        << response.errors(0).field();
    EXPECT_FALSE(Echoed(response.errors(0).reason())) << response.errors(0).reason();
    EXPECT_EQ(response.subject_ids_size(), 2);
    const std::map<std::string, int64_t> after = RowCounts("contacts");
    ASSERT_TRUE(after.contains("persons")) << "no table persons in contacts";
    EXPECT_EQ(after.at("persons"), before.at("persons") + 2);
  }
  // An import of bad rows only changes nothing.
  refused("ImportPersons of bad rows only", {"contacts"}, [&]() -> absl::Status {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + admin);
    contacts::v1::ImportPersonsResponse response;
    auto writer = contacts->ImportPersons(&ctx, &response);
    for (const char* email : {"bad one", "bad\r\ntwo", "' OR 1=1; --"}) {
      contacts::v1::ImportPersonsRequest r;
      r.mutable_person()->set_given_name("Imported");
      r.mutable_person()->add_emails()->set_address(email);
      writer->Write(r);
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "");
    // Answered, with every row refused: the refusal this check wants.
    return response.imported() == 0 && response.errors_total() == 3
               ? absl::FailedPreconditionError("every row refused")
               : absl::OkStatus();
  });

  std::cout << "refused writes checked: " << refusals << "\n";
  EXPECT_THAT(wrong, IsEmpty()) << absl::StrJoin(wrong, "\n");
}

}  // namespace
}  // namespace crm::security_test
