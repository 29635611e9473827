// crm-contacts: the subject registry and the CRM records (issue 5).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("contacts", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
