// crm-erasure: the erasure orchestrator (issue 8).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("erasure", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
