// crm-audit: the tamper-evident log of every access and change (issue 4).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("audit", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
