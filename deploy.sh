#!/usr/bin/env bash
# deploy.sh: one idempotent deploy of medspa-jobs to a Google Cloud project.
#
#   ./deploy.sh [--env-file PATH] [--dry-run]
#
# Settings come from the environment and from an env file (./deploy.env when present; see
# deploy.env.example); a variable set in the environment wins over the file. Everything is validated
# before the first gcloud call. Re-running on a deployed project updates it in place. What it does, in
# order, and why each service account holds the roles it holds: docs/deploy.md.
set -Eeuo pipefail
if (( BASH_VERSINFO[0] < 4 )); then
  echo "deploy.sh needs bash 4 or newer (macOS: brew install bash, then run it with that bash)" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ROOT
cd "$ROOT"
PYTHON=${PYTHON:-python3}
export CLOUDSDK_CORE_DISABLE_PROMPTS=1  # never wait on a prompt; every choice is a flag below

# ---------------------------------------------------------------------------------------------------
# What gets deployed. Entry points (name, folder, Python target, trigger) are read from
# deploy/registry.py, the one list the local stack also runs; the tables below say what each needs.

readonly APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com cloudtasks.googleapis.com pubsub.googleapis.com
  cloudscheduler.googleapis.com firestore.googleapis.com secretmanager.googleapis.com
  eventarc.googleapis.com iam.googleapis.com logging.googleapis.com)

readonly QUEUE_SMS=reminders-sms QUEUE_EMAIL=reminders-email QUEUE_WAITLIST=waitlist QUEUE_REPORTS=reports
readonly TOPICS=(reminders-tick appointment-events reports-tick failed-tasks-sweep)
readonly TASK_HANDLER=task-handler        # the HTTP entry point Cloud Tasks calls (OIDC-authenticated)
readonly STATUS_CALLBACK=twilio-status    # its URL is given to Twilio with each message
# HTTP entry points reachable from the internet: each verifies its caller's signature itself.
# Every other HTTP entry point is deployed with --no-allow-unauthenticated.
readonly PUBLIC_WEBHOOKS=(twilio-status)
readonly TASKS_SA_ID=tasks-invoker        # Cloud Tasks signs its OIDC tokens as this account
readonly EVENTS_SA_ID=events-invoker      # Eventarc pushes Pub/Sub events to functions as this account
readonly FIRESTORE_DATABASE='(default)'

# Cloud Tasks queues each function folder enqueues into (roles/cloudtasks.enqueuer on these only).
declare -A FOLDER_QUEUES=(
  [reminder_fanout]="$QUEUE_SMS $QUEUE_EMAIL"
  # its retry sweep re-enqueues a failed task into whichever queue it failed on
  [task_handler]="$QUEUE_SMS $QUEUE_EMAIL $QUEUE_WAITLIST $QUEUE_REPORTS"
  [report_builder]="$QUEUE_REPORTS"
  [waitlist]="$QUEUE_WAITLIST"
)
# Secret Manager secrets a function folder's service account may read (secretAccessor on these only),
# and the subset each entry point gets mapped in as environment variables.
declare -A FOLDER_SECRETS=(
  [task_handler]="TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN SENDGRID_API_KEY"
  [waitlist]="TWILIO_AUTH_TOKEN"
)
declare -A ENTRY_SECRETS=(
  [twilio-status]="TWILIO_AUTH_TOKEN"
)
readonly SECRET_ENVS=(TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN SENDGRID_API_KEY)

# ---------------------------------------------------------------------------------------------------
# Settings: name, then default ("" = required or optional, as validate() says).

readonly SETTING_NAMES=(PROJECT_ID REGION TWILIO_MPS TWILIO_SENDER SMS_MAX_CONCURRENT
  EMAIL_MAX_PER_SECOND EMAIL_MAX_CONCURRENT WAITLIST_MAX_PER_SECOND REPORTS_MAX_PER_SECOND
  QUEUE_MAX_ATTEMPTS QUEUE_MIN_BACKOFF QUEUE_MAX_BACKOFF
  REMINDER_SCHEDULE REPORT_SCHEDULE_DAILY REPORT_SCHEDULE_WEEKLY SWEEP_SCHEDULE SCHEDULER_TIME_ZONE
  SCHEDULER_LOCATION SCHEDULER_MAX_RETRY_ATTEMPTS FIRESTORE_LOCATION BUILD_SERVICE_ACCOUNT
  TWILIO_ACCOUNT_SID_SECRET TWILIO_AUTH_TOKEN_SECRET SENDGRID_API_KEY_SECRET)

apply_defaults() {
  : "${EMAIL_MAX_PER_SECOND:=50}" "${EMAIL_MAX_CONCURRENT:=20}"
  : "${WAITLIST_MAX_PER_SECOND:=1}" "${REPORTS_MAX_PER_SECOND:=5}"
  : "${QUEUE_MAX_ATTEMPTS:=8}" "${QUEUE_MIN_BACKOFF:=10s}" "${QUEUE_MAX_BACKOFF:=600s}"
  : "${REMINDER_SCHEDULE:=0 10 * * *}" "${REPORT_SCHEDULE_DAILY:=0 6 * * *}"
  : "${REPORT_SCHEDULE_WEEKLY:=0 7 * * 1}" "${SCHEDULER_TIME_ZONE:=Etc/UTC}"
  : "${SWEEP_SCHEDULE:=*/5 * * * *}"
  : "${SCHEDULER_MAX_RETRY_ATTEMPTS:=3}"
  : "${TWILIO_ACCOUNT_SID_SECRET:=twilio-account-sid}" "${TWILIO_AUTH_TOKEN_SECRET:=twilio-auth-token}"
  : "${SENDGRID_API_KEY_SECRET:=sendgrid-api-key}"
  : "${SCHEDULER_LOCATION:=${REGION:-}}"
  : "${TWILIO_SENDER:=}" "${FIRESTORE_LOCATION:=}" "${BUILD_SERVICE_ACCOUNT:=}"
  if [[ -z ${SMS_MAX_CONCURRENT:-} && ${TWILIO_MPS:-} =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    # A send takes up to ~1 s, so twice the rate in flight keeps the queue at its rate.
    SMS_MAX_CONCURRENT=$(awk -v mps="$TWILIO_MPS" 'BEGIN { n = int(mps * 2 + 0.999); print (n < 2 ? 2 : n) }')
  fi
}

usage() {
  cat <<'EOF'
usage: ./deploy.sh [--env-file PATH] [--dry-run]

  --env-file PATH  read settings from PATH (default: ./deploy.env when it exists)
  --dry-run        print every command instead of running it (no gcloud call is made)

Required: PROJECT_ID, REGION, TWILIO_MPS. Every setting, with its default: deploy.env.example.
What the script does, in order: docs/deploy.md.
EOF
}

# ---------------------------------------------------------------------------------------------------
# Output, failure and command running.

DRY_RUN=0
CURRENT_CMD=""
WORK=""

say() { printf '%s\n' "$*"; }
note() { if (( DRY_RUN )); then printf '# %s\n' "$*"; else printf '    %s\n' "$*"; fi; }
step() { if (( DRY_RUN )); then printf '\n# == %s\n' "$*"; else printf '\n==> %s\n' "$*"; fi; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

# One argument as the shell would need it typed: bare when safe, else single-quoted.
quote_arg() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_cmd() {
  local arg sep=""
  for arg in "$@"; do
    printf '%s' "$sep"
    quote_arg "$arg"
    sep=" "
  done
}

fail_command() {
  local rc=$1
  shift
  CURRENT_CMD=""
  printf '\ndeploy.sh: FAILED (exit %s): %s\n' "$rc" "$(quote_cmd "$@")" >&2
  printf 'deploy.sh: the steps before this one are in place; fix the cause and re-run (it is idempotent).\n' >&2
  exit "$rc"
}

on_error() {
  local rc=$1 line=$2
  trap - ERR
  if [[ -n $CURRENT_CMD ]]; then
    printf '\ndeploy.sh: FAILED (exit %s): %s\n' "$rc" "$CURRENT_CMD" >&2
  else
    printf '\ndeploy.sh: FAILED (exit %s) at line %s: %s\n' "$rc" "$line" "$BASH_COMMAND" >&2
  fi
  printf 'deploy.sh: the steps before this one are in place; fix the cause and re-run (it is idempotent).\n' >&2
  exit "$rc"
}
trap 'on_error $? $LINENO' ERR

cleanup() {
  if [[ -n $WORK && -d $WORK ]]; then rm -rf -- "$WORK"; fi
}
trap cleanup EXIT

# A command that changes something: printed, then run (or only printed with --dry-run).
run() {
  if (( DRY_RUN )); then
    quote_cmd "$@"
    printf '\n'
    return 0
  fi
  CURRENT_CMD=$(quote_cmd "$@")
  printf '+ %s\n' "$CURRENT_CMD"
  "$@"
  CURRENT_CMD=""
}

# An IAM binding. A service account created seconds ago can be briefly unknown to IAM: retry that case.
run_iam() {
  if (( DRY_RUN )); then run "$@"; return 0; fi
  local attempt rc
  for attempt in 1 2 3 4 5; do
    printf '+ %s\n' "$(quote_cmd "$@")"
    rc=0
    "$@" 2>"$WORK/iam.err" || rc=$?
    if (( rc == 0 )); then return 0; fi
    if (( attempt < 5 )) && grep -qi 'does not exist' "$WORK/iam.err"; then
      note "not visible to IAM yet; retrying in $((attempt * ${DEPLOY_IAM_RETRY_SECONDS:-3})) s"
      sleep "$((attempt * ${DEPLOY_IAM_RETRY_SECONDS:-3}))"
      continue
    fi
    cat "$WORK/iam.err" >&2
    fail_command "$rc" "$@"
  done
}

# A read-only look-up. Returns 0 when found (stdout in PROBE_OUT), 1 when the resource does not exist;
# any other failure (no credentials, permission denied, API disabled, ...) stops the deploy.
# With --dry-run nothing runs: the look-up is printed as a comment and treated as "absent".
PROBE_OUT=""
probe() {
  PROBE_OUT=""
  if (( DRY_RUN )); then
    printf '# check: %s\n' "$(quote_cmd "$@")"
    return 1
  fi
  local rc=0
  "$@" >"$WORK/probe.out" 2>"$WORK/probe.err" || rc=$?
  PROBE_OUT=$(<"$WORK/probe.out")
  if (( rc == 0 )); then return 0; fi
  if grep -Eqi 'NOT_FOUND|not found|does not exist|status=\[404\]' "$WORK/probe.err"; then return 1; fi
  cat "$WORK/probe.err" >&2
  fail_command "$rc" "$@"
}

# ---------------------------------------------------------------------------------------------------
# Settings: env file, validation.

is_setting() {
  local name
  for name in "${SETTING_NAMES[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

PROBLEMS=()
problem() { PROBLEMS+=("$*"); }

load_env_file() {
  local file=$1 line key value n=0
  [[ -f $file && -r $file ]] || { problem "env file $file: not a readable file"; return 0; }
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
    if [[ ! $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      problem "$file line $n: expected KEY=VALUE"  # the line itself is not echoed: it might hold a secret
      continue
    fi
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    value=${value%"${value##*[![:space:]]}"}  # trailing blanks
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
    case $key in
      TWILIO_ACCOUNT_SID | TWILIO_AUTH_TOKEN | SENDGRID_API_KEY)
        problem "$file line $n: $key is a secret value; secrets live only in Secret Manager (gcloud secrets versions add NAME --data-file=-), never in $file"
        continue ;;
    esac
    if ! is_setting "$key"; then
      problem "$file line $n: unknown setting $key (known: ${SETTING_NAMES[*]})"
      continue
    fi
    if [[ -z ${!key:-} ]]; then printf -v "$key" '%s' "$value"; fi  # the environment wins
  done <"$file"
}

check_number() {  # name value max: a positive decimal number up to max
  local name=$1 value=$2 max=$3
  if [[ ! $value =~ ^[0-9]+([.][0-9]+)?$ ]] || ! awk -v v="$value" -v m="$max" 'BEGIN { exit !(v > 0 && v <= m) }'; then
    problem "$name must be a number greater than 0 and at most $max, got '$value'"
  fi
}

check_int() {  # name value min max
  local name=$1 value=$2 min=$3 max=$4
  if [[ ! $value =~ ^[0-9]+$ ]] || (( 10#$value < min || 10#$value > max )); then
    problem "$name must be a whole number from $min to $max, got '$value'"
  fi
}

check_duration() {
  [[ $2 =~ ^[0-9]+(\.[0-9]+)?s$ ]] || problem "$1 must be a duration in seconds such as 10s, got '$2'"
}

check_cron() {
  local name=$1 value=$2 field
  local -a fields
  read -r -a fields <<<"$value"
  if (( ${#fields[@]} != 5 )); then
    problem "$name must be a cron expression with 5 fields (minute hour day-of-month month day-of-week), got '$value' (${#fields[@]} fields)"
    return 0
  fi
  for field in "${fields[@]}"; do
    if [[ ! $field =~ ^[0-9A-Za-z*/,?-]+$ ]]; then
      problem "$name: cron field '$field' has characters cron does not accept"
      return 0
    fi
  done
}

check_region() {
  [[ $2 =~ ^[a-z]+(-[a-z]+)+[0-9]+$ ]] || problem "$1 must be a Google Cloud region such as us-central1 or europe-west1, got '$2'"
}

validate() {
  local name
  for name in PROJECT_ID REGION TWILIO_MPS; do
    [[ -n ${!name:-} ]] || problem "missing required setting $name (set it in the environment or in the env file; see deploy.env.example)"
  done
  if [[ -n ${PROJECT_ID:-} && ! $PROJECT_ID =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]]; then
    problem "PROJECT_ID must be a project id (6-30 characters: lowercase letters, digits, hyphens; starts with a letter), got '$PROJECT_ID'"
  fi
  [[ -z ${REGION:-} ]] || check_region REGION "$REGION"
  [[ -z ${SCHEDULER_LOCATION:-} ]] || check_region SCHEDULER_LOCATION "$SCHEDULER_LOCATION"
  # One Cloud Tasks queue dispatches at most 500 tasks/s; the SMS queue must not outrun the sender.
  [[ -z ${TWILIO_MPS:-} ]] || check_number TWILIO_MPS "$TWILIO_MPS" 500
  check_number EMAIL_MAX_PER_SECOND "$EMAIL_MAX_PER_SECOND" 500
  check_number WAITLIST_MAX_PER_SECOND "$WAITLIST_MAX_PER_SECOND" 500
  check_number REPORTS_MAX_PER_SECOND "$REPORTS_MAX_PER_SECOND" 500
  [[ -z ${SMS_MAX_CONCURRENT:-} ]] || check_int SMS_MAX_CONCURRENT "$SMS_MAX_CONCURRENT" 1 5000
  check_int EMAIL_MAX_CONCURRENT "$EMAIL_MAX_CONCURRENT" 1 5000
  check_int QUEUE_MAX_ATTEMPTS "$QUEUE_MAX_ATTEMPTS" 1 100
  check_int SCHEDULER_MAX_RETRY_ATTEMPTS "$SCHEDULER_MAX_RETRY_ATTEMPTS" 0 5
  check_duration QUEUE_MIN_BACKOFF "$QUEUE_MIN_BACKOFF"
  check_duration QUEUE_MAX_BACKOFF "$QUEUE_MAX_BACKOFF"
  check_cron REMINDER_SCHEDULE "$REMINDER_SCHEDULE"
  check_cron REPORT_SCHEDULE_DAILY "$REPORT_SCHEDULE_DAILY"
  check_cron REPORT_SCHEDULE_WEEKLY "$REPORT_SCHEDULE_WEEKLY"
  check_cron SWEEP_SCHEDULE "$SWEEP_SCHEDULE"
  if [[ ! $SCHEDULER_TIME_ZONE =~ ^(UTC|[A-Z][A-Za-z_]*(/[A-Za-z0-9_+-]+)+)$ ]]; then
    problem "SCHEDULER_TIME_ZONE must be an IANA time zone name such as Etc/UTC or America/New_York, got '$SCHEDULER_TIME_ZONE'"
  elif [[ -d /usr/share/zoneinfo && ! -f /usr/share/zoneinfo/$SCHEDULER_TIME_ZONE ]]; then
    problem "SCHEDULER_TIME_ZONE '$SCHEDULER_TIME_ZONE' is not a known time zone (not in /usr/share/zoneinfo)"
  fi
  for name in TWILIO_ACCOUNT_SID_SECRET TWILIO_AUTH_TOKEN_SECRET SENDGRID_API_KEY_SECRET; do
    [[ ${!name} =~ ^[A-Za-z0-9_-]{1,255}$ ]] || problem "$name must be a Secret Manager secret name (letters, digits, - and _), got '${!name}'"
  done
  if [[ -n $TWILIO_SENDER && ! $TWILIO_SENDER =~ ^(\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32})$ ]]; then
    problem "TWILIO_SENDER must be an E.164 number (+15551234567) or a Messaging Service SID (MG + 32 hex), got '$TWILIO_SENDER'"
  fi
  if [[ -n $FIRESTORE_LOCATION && ! $FIRESTORE_LOCATION =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]]; then
    problem "FIRESTORE_LOCATION must be a Firestore location such as nam5 or us-central1, got '$FIRESTORE_LOCATION'"
  fi
  if [[ -n $BUILD_SERVICE_ACCOUNT && ! $BUILD_SERVICE_ACCOUNT =~ ^[^@[:space:]]+@[a-z0-9.-]+\.iam\.gserviceaccount\.com$ ]]; then
    problem "BUILD_SERVICE_ACCOUNT must be a service account email (…@PROJECT.iam.gserviceaccount.com), got '$BUILD_SERVICE_ACCOUNT'"
  fi
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    problem "$PYTHON not found: deploy.sh needs Python 3 to read deploy/registry.py and stage function sources (set PYTHON)"
  fi
  if (( ! DRY_RUN )) && ! command -v gcloud >/dev/null 2>&1; then
    problem "gcloud not found on PATH (install the Google Cloud CLI, then gcloud auth login)"
  fi
  [[ -f firestore.indexes.json ]] || problem "firestore.indexes.json is missing from $ROOT"
}

# ---------------------------------------------------------------------------------------------------
# Python helpers (local only: they read the repo, never the cloud).

read -r -d '' PY_HELPER <<'PY' || true
import json, re, sys
from pathlib import Path

def plan(out_dir):
    """What to deploy, read from the repo: entry points (deploy/registry.py) and TTL fields."""
    from deploy.registry import FUNCTIONS
    with open(Path(out_dir, "entry_points.tsv"), "w") as out:
        for entry in FUNCTIONS:
            main = Path("functions", entry.folder, "main.py")
            text = main.read_text() if main.is_file() else ""
            present = re.search(rf"^def {re.escape(entry.target)}\(", text, re.M) is not None
            print("\t".join([entry.name, entry.folder, entry.target, entry.signature,
                             entry.topic or "-", "yes" if present else "no"]), file=out)
    spec = json.loads(Path("firestore.indexes.json").read_text())
    for index in spec.get("indexes", []):
        _fields(index["fields"])  # fails here, before any gcloud call, on a malformed index
    with open(Path(out_dir, "ttl_fields.tsv"), "w") as out:
        for override in spec.get("fieldOverrides", []):
            if override.get("ttl"):
                print(f"{override['collectionGroup']}\t{override['fieldPath']}", file=out)

def _fields(fields, strict=True):
    out = []
    for field in fields:
        if "order" in field:
            out.append((field["fieldPath"], "order", field["order"].lower()))
        elif "arrayConfig" in field or not strict:
            out.append((field["fieldPath"], "array-config", str(field.get("arrayConfig", "")).lower()))
        else:
            raise SystemExit(f"firestore.indexes.json: field {field} needs an order or an arrayConfig")
    return tuple(out)

def missing_indexes(spec_path, existing_path=None):
    spec = json.loads(Path(spec_path).read_text())
    have = set()
    for index in json.loads(Path(existing_path).read_text() or "[]") if existing_path else []:
        group = re.search(r"/collectionGroups/([^/]+)/", index.get("name", ""))
        fields = _fields((f for f in index.get("fields", []) if f.get("fieldPath") != "__name__"), strict=False)
        have.add((group.group(1) if group else "", index.get("queryScope", "COLLECTION"), fields))
    for index in spec.get("indexes", []):
        scope = index.get("queryScope", "COLLECTION")
        fields = _fields(index["fields"])
        if (index["collectionGroup"], scope, fields) in have:
            continue
        configs = [f"field-path={path},{kind}={value}" for path, kind, value in fields]
        print("\t".join([index["collectionGroup"], scope.lower().replace("_", "-"), *configs]))

command, *args = sys.argv[1:]
{"plan": plan, "missing-indexes": missing_indexes}[command](*args)
PY

py_helper() { "$PYTHON" -c "$PY_HELPER" "$@"; }

# ---------------------------------------------------------------------------------------------------
# Names.

sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT_ID"; }
folder_sa() { printf 'fn-%s' "${1//_/-}"; }

is_public() {
  local name
  for name in "${PUBLIC_WEBHOOKS[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

secret_name() {  # the Secret Manager name behind a secret environment variable
  case $1 in
    TWILIO_ACCOUNT_SID) printf '%s' "$TWILIO_ACCOUNT_SID_SECRET" ;;
    TWILIO_AUTH_TOKEN) printf '%s' "$TWILIO_AUTH_TOKEN_SECRET" ;;
    SENDGRID_API_KEY) printf '%s' "$SENDGRID_API_KEY_SECRET" ;;
    *) die "no secret is configured for $1" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------
# Entry points to deploy (those whose main.py defines the target; the others are reported and skipped).

ENTRY_NAMES=()
declare -A ENTRY_FOLDER=() ENTRY_TARGET=() ENTRY_SIGNATURE=() ENTRY_TOPIC=()
FOLDERS=()
SKIPPED=()

discover_entry_points() {
  local name folder target signature topic present
  py_helper plan "$WORK"
  while IFS=$'\t' read -r name folder target signature topic present; do
    if [[ $present != yes ]]; then
      SKIPPED+=("$name: functions/$folder/main.py does not define $target yet")
      continue
    fi
    ENTRY_NAMES+=("$name")
    ENTRY_FOLDER[$name]=$folder
    ENTRY_TARGET[$name]=$target
    ENTRY_SIGNATURE[$name]=$signature
    ENTRY_TOPIC[$name]=$topic
    if [[ " ${FOLDERS[*]} " != *" $folder "* ]]; then FOLDERS+=("$folder"); fi
  done <"$WORK/entry_points.tsv"
  if [[ -z ${ENTRY_FOLDER[$TASK_HANDLER]:-} ]]; then
    problem "deploy/registry.py lists no deployable $TASK_HANDLER entry point: every other function needs its URL"
  fi
  for folder in "${FOLDERS[@]}"; do
    (( ${#folder} + 3 <= 30 )) || problem "function folder '$folder' makes a service account id longer than 30 characters"
  done
}

# ---------------------------------------------------------------------------------------------------
# Steps.

enable_apis() {
  step "1/9 Enable the APIs"
  run gcloud services enable "${APIS[@]}" "--project=$PROJECT_ID"
}

ensure_service_account() {  # id, description
  local email
  email=$(sa_email "$1")
  if probe gcloud iam service-accounts describe "$email" "--project=$PROJECT_ID" --format=value\(email\); then
    note "service account $1 exists"
  else
    run gcloud iam service-accounts create "$1" "--display-name=$1" "--description=$2" "--project=$PROJECT_ID"
  fi
}

service_accounts() {
  step "2/9 Service accounts, one per job, least privilege (docs/deploy.md says why each role)"
  local folder sa tasks_sa
  tasks_sa=$(sa_email "$TASKS_SA_ID")
  ensure_service_account "$TASKS_SA_ID" "Cloud Tasks signs its OIDC calls to the task handler as this account"
  ensure_service_account "$EVENTS_SA_ID" "Eventarc delivers Pub/Sub events to the event functions as this account"
  for folder in "${FOLDERS[@]}"; do
    ensure_service_account "$(folder_sa "$folder")" "runtime identity of functions/$folder"
  done
  for folder in "${FOLDERS[@]}"; do
    sa=$(sa_email "$(folder_sa "$folder")")
    # Firestore's roles are granted on the project (there is no narrower resource for the default database).
    run_iam gcloud projects add-iam-policy-binding "$PROJECT_ID" "--member=serviceAccount:$sa" \
      --role=roles/datastore.user --condition=None --format=none
    if [[ -n ${FOLDER_QUEUES[$folder]:-} ]]; then
      # Creating a task with oidc_token needs iam.serviceAccounts.actAs on the token's account: on that one only.
      run_iam gcloud iam service-accounts add-iam-policy-binding "$tasks_sa" "--member=serviceAccount:$sa" \
        --role=roles/iam.serviceAccountUser "--project=$PROJECT_ID" --format=none
    fi
  done
}

SECRETS_WITHOUT_VERSION=()
secrets() {
  step "3/9 Secret Manager secrets (deploy.sh never reads or writes a secret value)"
  local env_name name folder sa
  for env_name in "${SECRET_ENVS[@]}"; do
    name=$(secret_name "$env_name")
    if probe gcloud secrets describe "$name" "--project=$PROJECT_ID" --format=value\(name\); then
      note "secret $name exists"
    else
      run gcloud secrets create "$name" --replication-policy=automatic "--project=$PROJECT_ID"
    fi
    if probe gcloud secrets versions list "$name" --filter=state:enabled --limit=1 --format=value\(name\) \
      "--project=$PROJECT_ID" && [[ -n $PROBE_OUT ]]; then
      note "secret $name has an enabled version"
    elif (( ! DRY_RUN )); then
      SECRETS_WITHOUT_VERSION+=("$name ($env_name)")
    fi
  done
  if (( ${#SECRETS_WITHOUT_VERSION[@]} )); then
    {
      printf '\ndeploy.sh: these secrets have no enabled version yet:\n'
      printf '  - %s\n' "${SECRETS_WITHOUT_VERSION[@]}"
      printf 'Add each value once (typed or pasted on stdin, so it stays out of shell history and of this repo):\n'
      printf '  gcloud secrets versions add NAME --data-file=- --project=%s\n' "$PROJECT_ID"
      printf 'then re-run ./deploy.sh.\n'
    } >&2
    exit 1
  fi
  for folder in "${FOLDERS[@]}"; do
    sa=$(sa_email "$(folder_sa "$folder")")
    for env_name in ${FOLDER_SECRETS[$folder]:-}; do
      run_iam gcloud secrets add-iam-policy-binding "$(secret_name "$env_name")" "--member=serviceAccount:$sa" \
        --role=roles/secretmanager.secretAccessor "--project=$PROJECT_ID" --format=none
    done
  done
}

ensure_queue() {  # name, then the queue's rate and retry flags
  local name=$1
  shift
  if probe gcloud tasks queues describe "$name" "--location=$REGION" "--project=$PROJECT_ID" --format=value\(name\); then
    run gcloud tasks queues update "$name" "--location=$REGION" "--project=$PROJECT_ID" "$@"
  else
    run gcloud tasks queues create "$name" "--location=$REGION" "--project=$PROJECT_ID" "$@"
  fi
}

queues() {
  step "4/9 Cloud Tasks queues (rate limits and retries)"
  local retry=("--max-attempts=$QUEUE_MAX_ATTEMPTS" "--min-backoff=$QUEUE_MIN_BACKOFF"
    "--max-backoff=$QUEUE_MAX_BACKOFF" --max-doublings=4)
  # The SMS queue's rate is the Twilio sender's throughput: faster would only earn 20429 "too many requests".
  ensure_queue "$QUEUE_SMS" "--max-dispatches-per-second=$TWILIO_MPS" \
    "--max-concurrent-dispatches=$SMS_MAX_CONCURRENT" "${retry[@]}"
  ensure_queue "$QUEUE_EMAIL" "--max-dispatches-per-second=$EMAIL_MAX_PER_SECOND" \
    "--max-concurrent-dispatches=$EMAIL_MAX_CONCURRENT" "${retry[@]}"
  # Slow on purpose: offers go out in waves, and the first reply wins the slot.
  ensure_queue "$QUEUE_WAITLIST" "--max-dispatches-per-second=$WAITLIST_MAX_PER_SECOND" \
    --max-concurrent-dispatches=2 "${retry[@]}"
  ensure_queue "$QUEUE_REPORTS" "--max-dispatches-per-second=$REPORTS_MAX_PER_SECOND" \
    --max-concurrent-dispatches=5 "${retry[@]}"
  local folder queue sa
  for folder in "${FOLDERS[@]}"; do
    sa=$(sa_email "$(folder_sa "$folder")")
    for queue in ${FOLDER_QUEUES[$folder]:-}; do
      run_iam gcloud tasks queues add-iam-policy-binding "$queue" "--location=$REGION" \
        "--member=serviceAccount:$sa" --role=roles/cloudtasks.enqueuer "--project=$PROJECT_ID" --format=none
    done
  done
}

topics() {
  step "5/9 Pub/Sub topics"
  local topic
  for topic in "${TOPICS[@]}"; do
    if probe gcloud pubsub topics describe "$topic" "--project=$PROJECT_ID" --format=value\(name\); then
      note "topic $topic exists"
    else
      run gcloud pubsub topics create "$topic" "--project=$PROJECT_ID"
    fi
  done
}

ensure_job() {  # name, topic, schedule, message body, description
  local name=$1 topic=$2 schedule=$3 body=$4 description=$5
  local flags=("--location=$SCHEDULER_LOCATION" "--project=$PROJECT_ID" "--schedule=$schedule"
    "--topic=$topic" "--message-body=$body" "--time-zone=$SCHEDULER_TIME_ZONE"
    "--max-retry-attempts=$SCHEDULER_MAX_RETRY_ATTEMPTS" --min-backoff=30s --max-backoff=600s
    "--description=$description")
  if probe gcloud scheduler jobs describe "$name" "--location=$SCHEDULER_LOCATION" "--project=$PROJECT_ID" \
    --format=value\(name\); then
    run gcloud scheduler jobs update pubsub "$name" "${flags[@]}"
  else
    run gcloud scheduler jobs create pubsub "$name" "${flags[@]}"
  fi
}

scheduler_jobs() {
  step "6/9 Cloud Scheduler jobs (Pub/Sub targets)"
  ensure_job reminders-tick reminders-tick "$REMINDER_SCHEDULE" '{}' \
    "Daily reminders tick (every clinic, its local tomorrow)"
  ensure_job reports-daily reports-tick "$REPORT_SCHEDULE_DAILY" '{"period":"daily"}' "Daily clinic reports"
  ensure_job reports-weekly reports-tick "$REPORT_SCHEDULE_WEEKLY" '{"period":"weekly"}' "Weekly clinic reports"
  ensure_job failed-tasks-sweep failed-tasks-sweep "$SWEEP_SCHEDULE" '{}' \
    "Re-enqueue failed tasks an operator marked retry"
}

firestore() {
  step "7/9 Firestore: database, composite indexes (firestore.indexes.json), TTL policies"
  if probe gcloud firestore databases describe "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" \
    --format=value\(name\); then
    note "Firestore database $FIRESTORE_DATABASE exists"
  elif [[ -n $FIRESTORE_LOCATION ]]; then
    run gcloud firestore databases create "--database=$FIRESTORE_DATABASE" "--location=$FIRESTORE_LOCATION" \
      --type=firestore-native "--project=$PROJECT_ID"
  elif (( DRY_RUN )); then
    note "(the database is created only when FIRESTORE_LOCATION is set; it normally exists already)"
  else
    die "project $PROJECT_ID has no Firestore $FIRESTORE_DATABASE database. The booking platform normally creates it; to let deploy.sh create it, set FIRESTORE_LOCATION (e.g. nam5 or $REGION; it cannot be changed later) and re-run."
  fi

  local existing="" line group scope field
  local -a parts configs
  if probe gcloud firestore indexes composite list "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" \
    --format=json; then
    printf '%s' "$PROBE_OUT" >"$WORK/indexes.json"
    existing="$WORK/indexes.json"
  fi
  py_helper missing-indexes firestore.indexes.json ${existing:+"$existing"} >"$WORK/missing_indexes.tsv"
  if [[ ! -s $WORK/missing_indexes.tsv ]]; then note "every composite index in firestore.indexes.json exists"; fi
  # The loops read their lists on fd 3, so no gcloud inside them can swallow the list from stdin.
  while IFS=$'\t' read -r -u 3 -a parts; do
    group=${parts[0]}
    scope=${parts[1]}
    configs=()
    for field in "${parts[@]:2}"; do configs+=("--field-config=$field"); done
    # --async: an index builds for minutes while the functions deploy. A query that needs it fails
    # until it is READY; the first reminders tick is hours away.
    run gcloud firestore indexes composite create "--collection-group=$group" "--query-scope=$scope" \
      "${configs[@]}" "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" --async
  done 3<"$WORK/missing_indexes.tsv"

  while IFS=$'\t' read -r -u 3 group field; do
    line=""
    if probe gcloud firestore fields ttls list "--collection-group=$group" "--database=$FIRESTORE_DATABASE" \
      "--project=$PROJECT_ID" --format=value\(name\); then
      line=$PROBE_OUT
    fi
    if [[ $line == *"/fields/$field"* ]]; then
      note "TTL on $group.$field is set"
    else
      run gcloud firestore fields ttls update "$field" "--collection-group=$group" --enable-ttl \
        "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" --async
    fi
  done 3<"$WORK/ttl_fields.tsv"
}

# ---------------------------------------------------------------------------------------------------
# Functions.

declare -A URL=()
STAGE_ROOT=""

function_url() {  # name → URL[name] ("" when the function does not exist yet)
  URL[$1]=""
  if probe gcloud functions describe "$1" --gen2 "--region=$REGION" "--project=$PROJECT_ID" \
    --format=value\(serviceConfig.uri\); then
    URL[$1]=$PROBE_OUT
  fi
}

function_env() {
  local handler_url=${URL[$TASK_HANDLER]:-} vars
  vars="GOOGLE_CLOUD_PROJECT=$PROJECT_ID,TASKS_LOCATION=$REGION"
  vars+=",TASKS_SERVICE_ACCOUNT=$(sa_email "$TASKS_SA_ID")"
  if [[ -n $handler_url ]]; then vars+=",TASK_HANDLER_URL=$handler_url,TASK_AUDIENCE=$handler_url"; fi
  vars+=",QUEUE_SMS=$QUEUE_SMS,QUEUE_EMAIL=$QUEUE_EMAIL,QUEUE_WAITLIST=$QUEUE_WAITLIST,QUEUE_REPORTS=$QUEUE_REPORTS"
  vars+=",QUEUE_MAX_ATTEMPTS=$QUEUE_MAX_ATTEMPTS"
  if [[ -n ${URL[$STATUS_CALLBACK]:-} ]]; then vars+=",STATUS_CALLBACK_URL=${URL[$STATUS_CALLBACK]}"; fi
  printf '%s' "$vars"
}

secret_refs() {  # entry point name → KEY=secret:latest,...
  local name=$1 env_name refs="" list
  list=${ENTRY_SECRETS[$name]-${FOLDER_SECRETS[${ENTRY_FOLDER[$name]}]:-}}
  for env_name in $list; do
    refs+="${refs:+,}$env_name=$(secret_name "$env_name"):latest"
  done
  printf '%s' "$refs"
}

deploy_function() {
  local name=$1 folder=${ENTRY_FOLDER[$1]} refs
  local cmd=(gcloud functions deploy "$name" --gen2 --runtime=python312 "--region=$REGION" "--project=$PROJECT_ID"
    "--source=$STAGE_ROOT/$folder" "--entry-point=${ENTRY_TARGET[$name]}"
    "--service-account=$(sa_email "$(folder_sa "$folder")")" "--set-env-vars=$(function_env)")
  refs=$(secret_refs "$name")
  if [[ -n $refs ]]; then cmd+=("--set-secrets=$refs"); fi
  if [[ ${ENTRY_SIGNATURE[$name]} == http ]]; then
    cmd+=(--trigger-http --timeout=60s --memory=256Mi)
    if is_public "$name"; then cmd+=(--allow-unauthenticated); else cmd+=(--no-allow-unauthenticated); fi
  else
    # --retry: a run that could not create every task raises, and Pub/Sub's redelivery fills the gap.
    cmd+=("--trigger-topic=${ENTRY_TOPIC[$name]}" "--trigger-service-account=$(sa_email "$EVENTS_SA_ID")"
      --retry --timeout=540s --memory=512Mi)
  fi
  if [[ -n $BUILD_SERVICE_ACCOUNT ]]; then
    cmd+=("--build-service-account=projects/$PROJECT_ID/serviceAccounts/$BUILD_SERVICE_ACCOUNT")
  fi
  run "${cmd[@]}"
}

functions() {
  step "8/9 Functions (gen2, python312), each from functions/<folder> plus a copy of shared/"
  local note_line folder name
  for note_line in "${SKIPPED[@]}"; do note "skipping $note_line"; done
  for folder in "${FOLDERS[@]}"; do
    run "$PYTHON" -m deploy.stage "$folder" "$STAGE_ROOT/$folder"
  done

  local http=() events=()
  for name in "${ENTRY_NAMES[@]}"; do
    if [[ ${ENTRY_SIGNATURE[$name]} == http ]]; then http+=("$name"); else events+=("$name"); fi
  done
  # The HTTP functions' URLs are part of every function's environment (the handler's own audience,
  # the status callback Twilio signs). A function that does not exist yet is created once to learn its
  # URL; then every function is deployed with the complete environment. A re-run deploys each once.
  for name in "${http[@]}"; do
    function_url "$name"
    if [[ -z ${URL[$name]} ]]; then
      note "$name does not exist yet: creating it once to learn its URL"
      deploy_function "$name"
      function_url "$name"
      if (( DRY_RUN )); then URL[$name]="https://$name.url-known-after-deploy.invalid"; fi
      [[ -n ${URL[$name]} ]] || die "gcloud reported no URL for $name after deploying it"
    fi
  done
  for name in "${http[@]}" "${events[@]}"; do
    deploy_function "$name"
  done

  step "9/9 Who may invoke what"
  local tasks_sa events_sa
  tasks_sa=$(sa_email "$TASKS_SA_ID")
  events_sa=$(sa_email "$EVENTS_SA_ID")
  run_iam gcloud functions add-invoker-policy-binding "$TASK_HANDLER" "--region=$REGION" \
    "--member=serviceAccount:$tasks_sa" "--project=$PROJECT_ID" --format=none
  for name in "${events[@]}"; do
    run_iam gcloud functions add-invoker-policy-binding "$name" "--region=$REGION" \
      "--member=serviceAccount:$events_sa" "--project=$PROJECT_ID" --format=none
  done
}

summary() {
  local name
  if (( DRY_RUN )); then
    say ""
    say "# Dry run: nothing was run. URLs ending in .invalid are only known after the first deploy."
    return 0
  fi
  say ""
  say "Deployed to $PROJECT_ID ($REGION). URLs:"
  for name in "${ENTRY_NAMES[@]}"; do
    if [[ ${ENTRY_SIGNATURE[$name]} == http ]]; then say "  $name: ${URL[$name]}"; fi
  done
  say ""
  say "Twilio:"
  say "  - delivery status callback: ${URL[$STATUS_CALLBACK]:-not deployed}"
  say "    (sent with every message as StatusCallback; nothing to set in the Twilio console)"
  say "  - incoming SMS webhook (waitlist replies): no inbound entry point is deployed yet. When the"
  say "    waitlist's is, list it in PUBLIC_WEBHOOKS (deploy.sh) and set its URL as the 'A message comes in'"
  say "    webhook (HTTP POST) of ${TWILIO_SENDER:-the Twilio number or Messaging Service that sends reminders}"
  say "  - the SMS queue dispatches at most $TWILIO_MPS messages/s; raise TWILIO_MPS only with the sender's MPS"
  say "SendGrid:"
  say "  - event webhook: no endpoint is deployed yet; nothing to configure"
  say "  - the API key is read from Secret Manager secret $SENDGRID_API_KEY_SECRET"
  if (( ${#SKIPPED[@]} )); then
    say "Not deployed (not built yet):"
    printf '  - %s\n' "${SKIPPED[@]}"
  fi
}

# ---------------------------------------------------------------------------------------------------

main() {
  local env_file="" explicit_env_file=0
  while (( $# )); do
    case $1 in
      --env-file) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; env_file=$2; explicit_env_file=1; shift 2 ;;
      --env-file=*) env_file=${1#--env-file=}; explicit_env_file=1; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) printf 'deploy.sh: unknown argument %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
  done
  if (( explicit_env_file )); then
    load_env_file "$env_file"
  elif [[ -f deploy.env ]]; then
    env_file=deploy.env
    load_env_file "$env_file"
  fi
  apply_defaults
  validate
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/medspa-deploy.XXXXXX")
  if (( ${#PROBLEMS[@]} == 0 )); then discover_entry_points; fi
  if (( ${#PROBLEMS[@]} )); then
    printf 'deploy.sh: cannot deploy; nothing was changed:\n' >&2
    printf '  - %s\n' "${PROBLEMS[@]}" >&2
    exit 2
  fi
  if [[ -n ${DEPLOY_KEEP_STAGING:-} ]]; then
    mkdir -p -- "$DEPLOY_KEEP_STAGING"
    STAGE_ROOT=$(cd "$DEPLOY_KEEP_STAGING" && pwd)
  else
    STAGE_ROOT=$WORK/staging
  fi

  if (( DRY_RUN )); then
    say "# deploy.sh --dry-run: the commands a deploy to a fresh project runs, in order. Look-ups are"
    say "# shown as '# check:' comments and assumed to find nothing; on a deployed project the same"
    say "# steps update in place (queues update, scheduler jobs update pubsub, nothing is re-created)."
    say "export CLOUDSDK_CORE_DISABLE_PROMPTS=1"
  fi
  note "deploy.sh: project $PROJECT_ID, region $REGION${env_file:+, settings from $env_file}"
  enable_apis
  service_accounts
  secrets
  queues
  topics
  scheduler_jobs
  firestore
  functions
  summary
}

main "$@"
