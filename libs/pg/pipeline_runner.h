// Internal to libs/pg: one attempt of Pool::RunPipeline on one connection.
#pragma once

#include "absl/status/status.h"
#include "libs/pg/connection.h"
#include "libs/pg/pipeline.h"

namespace crm::pg {

class PipelineRunner {
 public:
  struct Outcome {
    bool retry = false;   // another attempt may succeed
    bool broken = false;  // the connection must not be reused
  };
  // Runs `p` as BEGIN; [set_transaction;] statements; COMMIT in one round
  // trip. Errors as Pool::Transact's.
  static absl::Status RunOnce(Connection& conn, Pipeline& p, const char* set_transaction,
                              Outcome* out);
};

}  // namespace crm::pg
