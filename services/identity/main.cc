// crm-identity: operators, credentials, sessions and tokens, roles and time-bound grants (issue 3).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("identity", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
