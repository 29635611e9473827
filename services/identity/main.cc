// crm-identity: wiring only. Settings: the common ones (libs/service) and
// identity_config.h; see docs/identity.md.
#include <cstdio>
#include <memory>

#include "libs/base/status_macros.h"
#include "libs/service/service_main.h"
#include "services/identity/identity_app.h"

int main(int argc, char** argv) {
  crm::service::CommonConfig common("identity");
  crm::identity::IdentityConfig cfg;
  crm::config::Settings settings("crm-identity");
  crm::service::AddCommonSettings(settings, &common);
  crm::identity::AddIdentitySettings(settings, &cfg);
  crm::config::ParseOrExit(settings, argc, argv, environ);
  absl::Status valid = crm::service::ValidateCommonConfig(common);
  if (valid.ok()) valid = crm::identity::ValidateIdentityConfig(cfg);
  if (!valid.ok()) {
    std::fprintf(stderr, "%s: %s\n", argv[0], std::string(valid.message()).c_str());
    return 2;
  }
  std::unique_ptr<crm::identity::IdentityApp> app;
  return crm::service::Run(common, [&](crm::service::Context& ctx) -> absl::Status {
    CRM_ASSIGN_OR_RETURN(app, crm::identity::IdentityApp::Create(cfg, common.server.tls, ctx.db,
                                                                 ctx.clock, &ctx.metrics));
    CRM_RETURN_IF_ERROR(app->AllowMethods(ctx.policy));
    ctx.services.push_back(&app->service());
    app->StartSweeper();
    ctx.on_stop.push_back([&app] { app->Stop(); });
    return absl::OkStatus();
  });
}
