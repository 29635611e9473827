// crmctl: the operator's command-line client. Wiring only; see crmctl.h.
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tools/crmctl_src/crmctl.h"

extern char** environ;

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return crm::crmctl::Run(args, env, CRMCTL_REPO_ROOT, std::cin, std::cout, std::cerr);
}
