// crm-mailing: lists, campaigns, transactional mail and unsubscribe (issue 7).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("mailing", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
