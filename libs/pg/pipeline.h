// pg::Pipeline: statements that Pool::RunPipeline sends to PostgreSQL at once
// and runs in one transaction, in one network round trip (libpq's pipeline
// mode) instead of one round trip per statement:
//
//   pg::Pipeline p;
//   const size_t dup = p.Add(kFindOwnerSql, kinds, blinds);
//   p.Add(kInsertPersonSql, id, pqxx::binarystring(sealed), version);
//   absl::Status s = pool.RunPipeline(p);
//   if (!p.Ran(dup)) ...;  // statements after a failed one do not run
//   for (const auto& row : p.Rows(dup)) ...
//
// For a transaction whose statements do not depend on each other's results:
// every statement is sent before the first answer is read. Statements are
// prepared on their connection at first use (named after their text, as
// pg::ExecPrepared does, with another prefix so the two never collide) and
// then only executed. Parameters are sent as text, pqxx::binarystring ones as
// binary (bytea); std::nullopt is NULL.
//
// Not thread-safe; one pipeline belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <pqxx/binarystring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"

namespace crm::pg {

class Pipeline {
 public:
  // One row of a statement's result: its fields as text, nullopt for NULL.
  using Row = std::vector<std::optional<std::string>>;

  // Adds a statement; returns its index for Ran and Rows.
  template <typename... Args>
  size_t Add(std::string_view sql, const Args&... args) {
    Statement s;
    s.sql = std::string(sql);
    (AddParam(s, args), ...);
    statements_.push_back(std::move(s));
    return statements_.size() - 1;
  }

  size_t size() const { return statements_.size(); }

  // After RunPipeline: whether statement `i` ran to completion in the last
  // run (statements after a failed one are skipped), and the rows it
  // returned. The transaction committed only if RunPipeline returned OK.
  bool Ran(size_t i) const { return statements_[i].ran; }
  const std::vector<Row>& Rows(size_t i) const { return statements_[i].rows; }

 private:
  friend class PipelineRunner;

  struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> values;
    std::vector<int> formats;  // 0 text, 1 binary
    bool ran = false;
    std::vector<Row> rows;
  };

  static void AddParam(Statement& s, const pqxx::binarystring& v) {
    s.values.emplace_back(std::string(v.get(), v.size()));
    s.formats.push_back(1);
  }
  static void AddParam(Statement& s, std::nullopt_t) {
    s.values.emplace_back(std::nullopt);
    s.formats.push_back(0);
  }
  static void AddParam(Statement& s, bool v) { AddText(s, v ? "true" : "false"); }
  static void AddParam(Statement& s, std::string_view v) { AddText(s, std::string(v)); }
  static void AddParam(Statement& s, const std::string& v) { AddText(s, v); }
  static void AddParam(Statement& s, const char* v) { AddText(s, v); }
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
  static void AddParam(Statement& s, T v) {
    AddText(s, absl::StrCat(v));
  }
  static void AddText(Statement& s, std::string v) {
    s.values.emplace_back(std::move(v));
    s.formats.push_back(0);
  }

  std::vector<Statement> statements_;
};

}  // namespace crm::pg
