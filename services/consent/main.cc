// crm-consent: purposes, lawful bases, notices and the consent ledger (issue 6).
// Wiring only: settings, database, migrations and serving come from libs/service.
#include "libs/service/service_main.h"

int main(int argc, char** argv) {
  return crm::service::Main("consent", argc, argv,
                            [](crm::service::Context&) { return absl::OkStatus(); });
}
