# Shared by tools/example_shop/setup and tools/platform-accounts: idempotent
# crmctl steps an administrator takes for a system that calls the CRM's API
# with its own certificate. Needs $CRMCTL (the crmctl binary) and a crmctl
# session of an administrator (identity.admin). Each step prints "created"
# or "in place"; any other crmctl error stops the script.

say() { printf '%s: %s\n' "${SCRIPT_NAME:-setup}" "$*"; }
die() { printf '%s: error: %s\n' "${SCRIPT_NAME:-setup}" "$*" >&2; exit 1; }

# create WHAT ARGS...: runs the crmctl command ARGS; ALREADY_EXISTS means WHAT
# is in place, any other error stops the set-up.
create() {
  local what=$1 err
  shift
  if err=$("${CRMCTL}" "$@" 2>&1 >/dev/null); then
    say "${what}: created"
  elif [[ ${err} == *"ERROR ALREADY_EXISTS"* ]]; then
    say "${what}: in place"
  else
    die "${what}: ${err}"
  fi
}

# ctl ARGS...: crmctl's output, or stop with its error.
ctl() {
  local out
  out=$("${CRMCTL}" "$@" 2>&1) || die "crmctl $1 $2: ${out}"
  printf '%s\n' "${out}"
}

require_admin_session() {
  local err
  if ! err=$("${CRMCTL}" role list 2>&1 >/dev/null); then
    die "crmctl needs an administrator's session: run 'tools/crmctl login admin' (after the first" \
      "login also 'tools/crmctl passwd'). crmctl said: ${err}"
  fi
}

# ensure_service_account ACCOUNT SPIFFE_ID NAME ROLE ROLE_DESCRIPTION JUSTIFICATION PERMISSION...:
# the service account bound to SPIFFE_ID, a role holding exactly the
# permissions needed, and an open-ended grant of it to the account.
ensure_service_account() {
  local account=$1 spiffe=$2 name=$3 role=$4 description=$5 justification=$6
  shift 6
  local permissions=("$@") p
  create "service account ${account} (${spiffe})" \
    service-account create "${account}" --spiffe-id "${spiffe}" --name "${name}"
  local accounts account_id
  accounts=$(ctl user list --kind service-account)
  account_id=$(awk -v n="${account}" '$2 == n { print $1 }' <<<"${accounts}")
  [[ -n ${account_id} ]] || die "service account ${account} not found after creating it"

  local permission_flags=()
  for p in "${permissions[@]}"; do permission_flags+=(--permission "$p"); done
  create "role ${role}" role create "${role}" "${permission_flags[@]}" --description "${description}"
  local roles held
  roles=$(ctl role list)
  held=$(awk -v r="${role}" '$1 == r { print $4 }' <<<"${roles}")
  for p in "${permissions[@]}"; do
    [[ ,${held}, == *",$p,"* ]] || die "role ${role} exists without $p (it has: ${held})"
  done

  local grants
  grants=$(ctl grant list "${account_id}")
  if awk -v r="${role}" '$3 == r && $4 == "active" { f = 1 } END { exit !f }' <<<"${grants}"; then
    say "grant of ${role} to ${account}: in place"
  else
    ctl grant add "${account_id}" "${role}" --justification "${justification}" >/dev/null
    say "grant of ${role} to ${account}: created"
  fi
}
