#include "services/contacts/catalogue.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace crm::contacts {
namespace {

using ::testing::HasSubstr;
namespace v1 = crm::contacts::v1;

// Every field path below `prefix` of message `d`, as the catalogue spells
// them: repeated fields without an index, nested messages of this package
// descended into, Timestamps and enums as leaves.
void CollectPaths(const google::protobuf::Descriptor* d, const std::string& prefix,
                  absl::flat_hash_set<std::string>& out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    const std::string path = absl::StrCat(prefix, ".", f->name());
    out.insert(path);
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE &&
        f->message_type()->file()->package() == "crm.contacts.v1") {
      CollectPaths(f->message_type(), path, out);
    }
  }
}

absl::flat_hash_set<std::string> ProtoPaths() {
  absl::flat_hash_set<std::string> paths;
  CollectPaths(v1::Person::descriptor(), "person", paths);
  CollectPaths(v1::Company::descriptor(), "company", paths);
  CollectPaths(v1::Invoice::descriptor(), "invoice", paths);
  CollectPaths(v1::Interaction::descriptor(), "interaction", paths);
  return paths;
}

TEST(CatalogueTest, DeclaresExactlyTheFieldsOfTheContract) {
  const absl::flat_hash_set<std::string> proto = ProtoPaths();
  absl::flat_hash_set<std::string> declared;
  for (const FieldSpec& f : Catalogue::Get().fields()) {
    EXPECT_TRUE(declared.insert(f.path).second) << "declared twice: " << f.path;
    EXPECT_TRUE(proto.contains(f.path)) << "not in crm.contacts.v1: " << f.path;
  }
  for (const std::string& p : proto) EXPECT_TRUE(declared.contains(p)) << "undeclared: " << p;
}

TEST(CatalogueTest, EveryFieldIsDescribed) {
  for (const FieldSpec& f : Catalogue::Get().fields()) {
    SCOPED_TRACE(f.path);
    EXPECT_FALSE(f.data_category.empty());
    EXPECT_FALSE(f.purposes.empty());
    EXPECT_FALSE(f.retention.empty());
    EXPECT_FALSE(f.description.empty());
    EXPECT_NE(f.sensitivity, v1::SENSITIVITY_UNSPECIFIED);
    // A blind index over a value that is not sealed would be pointless; over
    // a non-text one, impossible.
    if (f.blind_indexed) {
      EXPECT_NE(f.sensitivity, v1::SENSITIVITY_NONE);
      EXPECT_GT(f.max_length, 0);
    }
  }
}

TEST(CatalogueTest, PersonalValuesAreNotMarkedNonPersonal) {
  // The values a dump must never show in clear.
  for (const char* path : {"person.given_name", "person.family_name", "person.emails.address",
                           "person.phones.number", "person.addresses.street_lines", "person.notes",
                           "person.personal_id_number", "company.billing.bank_account",
                           "company.tax_ids.value", "interaction.summary", "invoice.number"}) {
    const FieldSpec* f = Catalogue::Get().Find(path);
    ASSERT_NE(f, nullptr) << path;
    EXPECT_NE(f->sensitivity, v1::SENSITIVITY_NONE) << path;
  }
}

TEST(CatalogueTest, SensitiveFieldsAndWhatIsInsideThem) {
  const Catalogue& c = Catalogue::Get();
  EXPECT_TRUE(c.IsSensitive("person.personal_id_number"));
  EXPECT_TRUE(c.IsSensitive("company.billing.bank_account"));
  EXPECT_FALSE(c.IsSensitive("company.billing"));
  EXPECT_FALSE(c.IsSensitive("company.billing.invoice_email"));
  EXPECT_FALSE(c.IsSensitive("person.emails.address"));
  EXPECT_FALSE(c.IsSensitive("person.personal_id_number_x"));
}

TEST(CatalogueTest, UpdateMasksNameWritableTopLevelFieldsOnly) {
  const Catalogue& c = Catalogue::Get();
  google::protobuf::FieldMask ok;
  ok.add_paths("emails");
  ok.add_paths("family_name");
  EXPECT_TRUE(c.ValidateUpdateMask("person", ok).ok());

  struct Case {
    std::vector<std::string> paths;
    std::string message;
  };
  const std::vector<Case> bad = {
      {{}, "update_mask: names no field"},
      {{"emails", "shoe_size"}, "update_mask.paths[1]: not a field of the person"},
      {{"subject_id"}, "update_mask.paths[0]: is read-only"},
      {{"version"}, "update_mask.paths[0]: is read-only"},
      {{"assignment"}, "update_mask.paths[0]: is read-only"},
      {{"emails.address"}, "update_mask.paths[0]: must name a field of the person itself"},
      {{""}, "update_mask.paths[0]: must name"},
      {{"notes", "notes"}, "update_mask.paths[1]: repeated"},
      {{"'; DROP TABLE persons; --"}, "update_mask.paths[0]: not a field"},
  };
  for (const Case& k : bad) {
    google::protobuf::FieldMask mask;
    for (const std::string& p : k.paths) mask.add_paths(p);
    const absl::Status s = c.ValidateUpdateMask("person", mask);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(k.message));
  }
  google::protobuf::FieldMask company;
  company.add_paths("billing");
  EXPECT_TRUE(c.ValidateUpdateMask("company", company).ok());
  company.add_paths("emails");  // a person's field, not a company's
  EXPECT_EQ(c.ValidateUpdateMask("company", company).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CatalogueTest, ServedCatalogueCarriesEveryField) {
  const v1::GetFieldCatalogueResponse served = Catalogue::Get().ToProto();
  ASSERT_EQ(served.fields_size(), static_cast<int>(Catalogue::Get().fields().size()));
  EXPECT_EQ(served.version(), 1);
  const FieldSpec* email = Catalogue::Get().Find("person.emails.address");
  ASSERT_NE(email, nullptr);
  bool found = false;
  for (const v1::FieldDescriptor& d : served.fields()) {
    if (d.path() != "person.emails.address") continue;
    found = true;
    EXPECT_TRUE(d.blind_indexed());
    EXPECT_EQ(d.max_length(), 254);
    EXPECT_EQ(d.sensitivity(), v1::SENSITIVITY_PERSONAL);
    EXPECT_EQ(d.purposes_size(), static_cast<int>(email->purposes.size()));
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace crm::contacts
