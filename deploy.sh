#!/usr/bin/env bash
# deploy.sh: one idempotent deploy of medspa-jobs to a Google Cloud project.
#
#   ./deploy.sh [--env-file PATH] [--dry-run] [--verify]
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
# What gets deployed is read from deploy/registry.py through deploy/plan.py (functions, the queues,
# topics, scheduler jobs and secrets they use); nothing about a function is written down here.

readonly APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com cloudtasks.googleapis.com pubsub.googleapis.com
  cloudscheduler.googleapis.com firestore.googleapis.com secretmanager.googleapis.com
  eventarc.googleapis.com iam.googleapis.com logging.googleapis.com monitoring.googleapis.com)

# Cloud Build builds the functions as this account unless BUILD_SERVICE_ACCOUNT names another: projects created
# since mid-2024 may default to an account without the roles a build needs (docs/deploy.md, "Build account").
readonly BUILD_SA_ID=functions-build
readonly BUILD_ROLES=(roles/logging.logWriter roles/artifactregistry.writer roles/storage.objectAdmin)
readonly FIRESTORE_DATABASE='(default)'
# Operators read dead letters at their own pace: keep them the longest Pub/Sub allows, never let the
# subscription expire for want of readers (a topic without subscriptions drops what it is sent), and
# give a pulled message 10 minutes before it is offered again.
readonly REVIEW_SUBSCRIPTION_FLAGS=(--message-retention-duration=7d --expiration-period=never --ack-deadline=600)

# ---------------------------------------------------------------------------------------------------
# Settings: name, then default ("" = required or optional, as validate() says).

readonly SETTING_NAMES=(PROJECT_ID REGION TWILIO_MPS TWILIO_SENDER SMS_MAX_CONCURRENT
  EMAIL_MAX_PER_SECOND EMAIL_MAX_CONCURRENT WAITLIST_MAX_PER_SECOND REPORTS_MAX_PER_SECOND
  FANOUT_MAX_PER_SECOND FANOUT_MAX_CONCURRENT CAMPAIGN_MPS CAMPAIGN_PLANNING_MAX_PER_SECOND
  QUEUE_MAX_ATTEMPTS QUEUE_MIN_BACKOFF QUEUE_MAX_BACKOFF
  REMINDER_SCHEDULE REPORT_SCHEDULE_DAILY REPORT_SCHEDULE_WEEKLY INVENTORY_SCHEDULE SWEEP_SCHEDULE SCHEDULER_TIME_ZONE
  SCHEDULER_LOCATION SCHEDULER_MAX_RETRY_ATTEMPTS DEAD_LETTER_MAX_ATTEMPTS EVENT_MIN_RETRY_DELAY
  EVENT_MAX_RETRY_DELAY FIRESTORE_LOCATION BUILD_SERVICE_ACCOUNT PUBLIC_INVOKER INDEX_WAIT_SECONDS ALERT_EMAIL)

# Every secret the registry names (deploy/registry.py SECRETS) has a setting <ENV NAME>_SECRET holding its
# Secret Manager name, by default the env name in lowercase with hyphens (TWILIO_AUTH_TOKEN → twilio-auth-token).
SECRET_SETTINGS=()
if command -v "$PYTHON" >/dev/null 2>&1; then
  while IFS= read -r env_name; do
    [[ -n $env_name ]] && SECRET_SETTINGS+=("${env_name}_SECRET")
  done < <("$PYTHON" -c 'from deploy.registry import SECRETS; print(*SECRETS, sep="\n")' 2>/dev/null || true)
fi
readonly SECRET_SETTINGS

apply_defaults() {
  : "${EMAIL_MAX_PER_SECOND:=50}" "${EMAIL_MAX_CONCURRENT:=20}"
  : "${WAITLIST_MAX_PER_SECOND:=1}" "${REPORTS_MAX_PER_SECOND:=5}"
  : "${FANOUT_MAX_PER_SECOND:=100}" "${FANOUT_MAX_CONCURRENT:=100}"
  : "${CAMPAIGN_MPS:=1}" "${CAMPAIGN_PLANNING_MAX_PER_SECOND:=5}"
  : "${QUEUE_MAX_ATTEMPTS:=8}" "${QUEUE_MIN_BACKOFF:=10s}" "${QUEUE_MAX_BACKOFF:=600s}"
  : "${REMINDER_SCHEDULE:=0 10 * * *}" "${REPORT_SCHEDULE_DAILY:=0 6 * * *}"
  : "${REPORT_SCHEDULE_WEEKLY:=0 7 * * 1}" "${SCHEDULER_TIME_ZONE:=Etc/UTC}"
  : "${INVENTORY_SCHEDULE:=0 11 * * *}"
  : "${SWEEP_SCHEDULE:=*/5 * * * *}"
  : "${SCHEDULER_MAX_RETRY_ATTEMPTS:=3}"
  : "${DEAD_LETTER_MAX_ATTEMPTS:=10}" "${EVENT_MIN_RETRY_DELAY:=10s}" "${EVENT_MAX_RETRY_DELAY:=600s}"
  local setting default
  for setting in "${SECRET_SETTINGS[@]}"; do
    default=${setting%_SECRET}
    default=${default,,}
    if [[ -z ${!setting:-} ]]; then printf -v "$setting" '%s' "${default//_/-}"; fi
  done
  : "${SCHEDULER_LOCATION:=${REGION:-}}"
  : "${TWILIO_SENDER:=}" "${FIRESTORE_LOCATION:=}" "${BUILD_SERVICE_ACCOUNT:=}" "${ALERT_EMAIL:=}"
  : "${PUBLIC_INVOKER:=allusers}" "${INDEX_WAIT_SECONDS:=600}"
  if [[ -z ${SMS_MAX_CONCURRENT:-} && ${TWILIO_MPS:-} =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    # A send takes up to ~1 s, so twice the rate in flight keeps the queue at its rate.
    SMS_MAX_CONCURRENT=$(awk -v mps="$TWILIO_MPS" 'BEGIN { n = int(mps * 2 + 0.999); print (n < 2 ? 2 : n) }')
  fi
}

usage() {
  cat <<'EOF'
usage: ./deploy.sh [--env-file PATH] [--dry-run] [--verify]

  --env-file PATH  read settings from PATH (default: ./deploy.env when it exists)
  --dry-run        print every command instead of running it (no gcloud call is made)
  --verify         deploy nothing: run the smoke test (python -m ops smoke, in the repo's .venv) against
                   the deployed project; with --dry-run, print that command

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
  for name in "${SETTING_NAMES[@]}" "${SECRET_SETTINGS[@]}"; do [[ $name == "$1" ]] && return 0; done
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
      TWILIO_ACCOUNT_SID | TWILIO_AUTH_TOKEN | SENDGRID_API_KEY | WAITLIST_TOKEN_KEY | CAMPAIGN_LINK_KEY | BOOKING_LINK_KEY | FEEDBACK_LINK_KEY)
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

check_retry_delay() {  # name value: whole seconds, 0s to 600s (Pub/Sub's retry policy range)
  if [[ ! $2 =~ ^[0-9]+s$ ]] || (( 10#${2%s} > 600 )); then
    problem "$1 must be whole seconds from 0s to 600s (Pub/Sub's retry policy range), got '$2'"
  fi
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
  check_number FANOUT_MAX_PER_SECOND "$FANOUT_MAX_PER_SECOND" 500
  check_number CAMPAIGN_MPS "$CAMPAIGN_MPS" 500
  check_number CAMPAIGN_PLANNING_MAX_PER_SECOND "$CAMPAIGN_PLANNING_MAX_PER_SECOND" 500
  [[ -z ${SMS_MAX_CONCURRENT:-} ]] || check_int SMS_MAX_CONCURRENT "$SMS_MAX_CONCURRENT" 1 5000
  check_int EMAIL_MAX_CONCURRENT "$EMAIL_MAX_CONCURRENT" 1 5000
  check_int FANOUT_MAX_CONCURRENT "$FANOUT_MAX_CONCURRENT" 1 5000
  check_int QUEUE_MAX_ATTEMPTS "$QUEUE_MAX_ATTEMPTS" 1 100
  check_int SCHEDULER_MAX_RETRY_ATTEMPTS "$SCHEDULER_MAX_RETRY_ATTEMPTS" 0 5
  # Pub/Sub accepts 5 to 100 delivery attempts before dead-lettering a message.
  check_int DEAD_LETTER_MAX_ATTEMPTS "$DEAD_LETTER_MAX_ATTEMPTS" 5 100
  check_retry_delay EVENT_MIN_RETRY_DELAY "$EVENT_MIN_RETRY_DELAY"
  check_retry_delay EVENT_MAX_RETRY_DELAY "$EVENT_MAX_RETRY_DELAY"
  if [[ $EVENT_MIN_RETRY_DELAY =~ ^[0-9]+s$ && $EVENT_MAX_RETRY_DELAY =~ ^[0-9]+s$ ]] &&
    (( 10#${EVENT_MIN_RETRY_DELAY%s} > 10#${EVENT_MAX_RETRY_DELAY%s} )); then
    problem "EVENT_MIN_RETRY_DELAY ($EVENT_MIN_RETRY_DELAY) must not exceed EVENT_MAX_RETRY_DELAY ($EVENT_MAX_RETRY_DELAY)"
  fi
  check_duration QUEUE_MIN_BACKOFF "$QUEUE_MIN_BACKOFF"
  check_duration QUEUE_MAX_BACKOFF "$QUEUE_MAX_BACKOFF"
  check_cron REMINDER_SCHEDULE "$REMINDER_SCHEDULE"
  check_cron REPORT_SCHEDULE_DAILY "$REPORT_SCHEDULE_DAILY"
  check_cron REPORT_SCHEDULE_WEEKLY "$REPORT_SCHEDULE_WEEKLY"
  check_cron INVENTORY_SCHEDULE "$INVENTORY_SCHEDULE"
  check_cron SWEEP_SCHEDULE "$SWEEP_SCHEDULE"
  if [[ ! $SCHEDULER_TIME_ZONE =~ ^(UTC|[A-Z][A-Za-z_]*(/[A-Za-z0-9_+-]+)+)$ ]]; then
    problem "SCHEDULER_TIME_ZONE must be an IANA time zone name such as Etc/UTC or America/New_York, got '$SCHEDULER_TIME_ZONE'"
  elif [[ -d /usr/share/zoneinfo && ! -f /usr/share/zoneinfo/$SCHEDULER_TIME_ZONE ]]; then
    problem "SCHEDULER_TIME_ZONE '$SCHEDULER_TIME_ZONE' is not a known time zone (not in /usr/share/zoneinfo)"
  fi
  for name in "${SECRET_SETTINGS[@]}"; do
    [[ ${!name} =~ ^[A-Za-z0-9_-]{1,255}$ ]] || problem "$name must be a Secret Manager secret name (letters, digits, - and _), got '${!name}'"
  done
  if [[ -n $TWILIO_SENDER && ! $TWILIO_SENDER =~ ^(\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32})$ ]]; then
    problem "TWILIO_SENDER must be an E.164 number (+15551234567) or a Messaging Service SID (MG + 32 hex), got '$TWILIO_SENDER'"
  fi
  if [[ -n $FIRESTORE_LOCATION && ! $FIRESTORE_LOCATION =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]]; then
    problem "FIRESTORE_LOCATION must be a Firestore location such as nam5 or us-central1, got '$FIRESTORE_LOCATION'"
  fi
  case $PUBLIC_INVOKER in
    allusers | iam-check-off) ;;
    *) problem "PUBLIC_INVOKER must be allusers (bind allUsers as invoker) or iam-check-off (for projects whose organisation forbids allUsers: Cloud Run's invoker check is turned off on the public webhooks instead), got '$PUBLIC_INVOKER'" ;;
  esac
  check_int INDEX_WAIT_SECONDS "$INDEX_WAIT_SECONDS" 0 3600
  if [[ -n $ALERT_EMAIL && ! $ALERT_EMAIL =~ ^[^@[:space:],]+@[^@[:space:],]+\.[A-Za-z]{2,}$ ]]; then
    problem "ALERT_EMAIL must be one email address (the alerts' notification channel), got '$ALERT_EMAIL'"
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
# The plan: deploy/plan.py reads the registry and the repo (never the cloud) and writes TSV files.

FN_NAMES=()       # the functions to deploy, in registry order
EVENT_NAMES=()    # those with a Pub/Sub trigger
declare -A FN_FOLDER=() FN_TARGET=() FN_SIGNATURE=() FN_TOPIC=() FN_PUBLIC=() FN_ACCOUNT=()
declare -A FN_MEMORY=() FN_CPU=() FN_TIMEOUT=() FN_SECRETS=() FN_ENQUEUES=() FN_PUBLISHES=() FN_INVOKERS=()
FOLDERS=()
SKIPPED=()
QUEUE_NAMES=()
declare -A QUEUE_RATE_SETTING=() QUEUE_CONCURRENCY=() QUEUE_MIN_BACKOFF_OF=() QUEUE_MAX_BACKOFF_OF=()
TOPIC_NAMES=()
DEAD_LETTER_SOURCES=()
declare -A DEAD_LETTER_OF=() REVIEW_OF=()
JOB_NAMES=()
declare -A JOB_TOPIC=() JOB_SETTING=() JOB_BODY=() JOB_DESCRIPTION=()
SKIPPED_JOBS=()
SECRET_ENVS=()
declare -A SECRET_SETTING=() SECRET_OPTIONAL=()
TASK_HANDLER=""
FANOUT_UNIT=""
STATUS_CALLBACK=""
INBOUND_SMS=""
CLAIM_LINK=""
CAMPAIGN_CLICK=""
BOOKING_RESTORE=""
FEEDBACK_PAGE=""
EMAIL_EVENTS=""
QUEUE_ENV=""
RUNTIME=""  # deploy/registry.py RUNTIME: the Python the functions run on (and the local stack serves them with)
TASKS_SA_ID=""   # registry TASKS_INVOKER: Cloud Tasks signs its OIDC tokens as this account
EVENTS_SA_ID=""  # registry EVENTS_INVOKER: Eventarc pushes Pub/Sub events to functions as this account

words_of() {  # a plan list cell ("-" or a,b,c) as space-separated words
  if [[ $1 == - ]]; then printf ''; else printf '%s' "${1//,/ }"; fi
}

need_setting() {  # where, setting name: the registry may only name settings deploy.sh knows
  is_setting "$2" || problem "deploy/registry.py: $1 names setting $2, which deploy.sh does not know (known: ${SETTING_NAMES[*]})"
}

read_plan() {
  local plan=$WORK/plan line
  local name folder target signature topic public account memory cpu timeout secrets enqueues publishes invokers
  local rate concurrency min_backoff max_backoff dead review setting body description key value why optional
  if ! "$PYTHON" -m deploy.plan write "$plan" 2>"$WORK/plan.err"; then
    while IFS= read -r line; do problem "$line"; done <"$WORK/plan.err"
    [[ -s $WORK/plan.err ]] || problem "python -m deploy.plan write failed without saying why"
    return 0
  fi
  while IFS=$'\t' read -r name folder target signature topic public account memory cpu timeout secrets enqueues \
    publishes invokers; do
    FN_NAMES+=("$name")
    FN_FOLDER[$name]=$folder
    FN_TARGET[$name]=$target
    FN_SIGNATURE[$name]=$signature
    FN_TOPIC[$name]=$(words_of "$topic")
    FN_PUBLIC[$name]=$public
    FN_ACCOUNT[$name]=$account
    FN_MEMORY[$name]=$memory
    FN_CPU[$name]=$cpu
    FN_TIMEOUT[$name]=$timeout
    FN_SECRETS[$name]=$(words_of "$secrets")
    FN_ENQUEUES[$name]=$(words_of "$enqueues")
    FN_PUBLISHES[$name]=$(words_of "$publishes")
    FN_INVOKERS[$name]=$(words_of "$invokers")
    if [[ $signature != http ]]; then EVENT_NAMES+=("$name"); fi
    if [[ " ${FOLDERS[*]} " != *" $folder "* ]]; then FOLDERS+=("$folder"); fi
  done <"$plan/functions.tsv"
  while IFS=$'\t' read -r name why; do SKIPPED+=("$name: $why"); done <"$plan/skipped.tsv"
  while IFS=$'\t' read -r name rate concurrency min_backoff max_backoff; do
    QUEUE_NAMES+=("$name")
    QUEUE_RATE_SETTING[$name]=$rate
    QUEUE_CONCURRENCY[$name]=$concurrency
    QUEUE_MIN_BACKOFF_OF[$name]=$min_backoff
    QUEUE_MAX_BACKOFF_OF[$name]=$max_backoff
    need_setting "queue $name" "$rate"
    [[ $concurrency =~ ^[0-9]+$ ]] || need_setting "queue $name" "$concurrency"
  done <"$plan/queues.tsv"
  while IFS=$'\t' read -r topic; do TOPIC_NAMES+=("$topic"); done <"$plan/topics.tsv"
  while IFS=$'\t' read -r topic dead review; do
    DEAD_LETTER_SOURCES+=("$topic")
    DEAD_LETTER_OF[$topic]=$dead
    REVIEW_OF[$topic]=$review
  done <"$plan/dead_letters.tsv"
  while IFS=$'\t' read -r name topic setting body description; do
    JOB_NAMES+=("$name")
    JOB_TOPIC[$name]=$topic
    JOB_SETTING[$name]=$setting
    JOB_BODY[$name]=$body
    JOB_DESCRIPTION[$name]=$description
    need_setting "job $name" "$setting"
  done <"$plan/jobs.tsv"
  while IFS=$'\t' read -r name why; do SKIPPED_JOBS+=("$name: $why"); done <"$plan/skipped_jobs.tsv"
  while IFS=$'\t' read -r name setting optional; do
    SECRET_ENVS+=("$name")
    SECRET_SETTING[$name]=$setting
    SECRET_OPTIONAL[$name]=$optional
    need_setting "secret $name" "$setting"
  done <"$plan/secrets.tsv"
  while IFS=$'\t' read -r key value; do
    case $key in
      task_handler) TASK_HANDLER=$value ;;
      fanout_unit) FANOUT_UNIT=$value ;;
      status_callback) STATUS_CALLBACK=$value ;;
      inbound_sms) INBOUND_SMS=$value ;;
      claim_link) CLAIM_LINK=$value ;;
      campaign_click) CAMPAIGN_CLICK=$value ;;
      booking_restore) BOOKING_RESTORE=$value ;;
      feedback_page) FEEDBACK_PAGE=$value ;;
      email_events) EMAIL_EVENTS=$value ;;
      queue_env) QUEUE_ENV=$value ;;
      runtime) RUNTIME=$value ;;
      tasks_invoker) TASKS_SA_ID=$value ;;
      events_invoker) EVENTS_SA_ID=$value ;;
    esac
  done <"$plan/meta.tsv"
  cp -- "$plan/ttl_fields.tsv" "$WORK/ttl_fields.tsv"
  cp -- "$plan/index_exemptions.tsv" "$WORK/index_exemptions.tsv"
}

# ---------------------------------------------------------------------------------------------------
# Names.

sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT_ID"; }
fn_sa() { sa_email "${FN_ACCOUNT[$1]}"; }
secret_name() { local setting=${SECRET_SETTING[$1]}; printf '%s' "${!setting}"; }
is_public() { [[ ${FN_PUBLIC[$1]} == yes ]]; }

# The account Cloud Build builds the functions as: BUILD_SERVICE_ACCOUNT when set, else the one deploy.sh makes.
build_sa() { if [[ -n $BUILD_SERVICE_ACCOUNT ]]; then printf '%s' "$BUILD_SERVICE_ACCOUNT"; else sa_email "$BUILD_SA_ID"; fi; }

PROJECT_NUMBER=""
project_number() {  # → PROJECT_NUMBER (looked up once; PROJECT_NUMBER in a dry run)
  [[ -z $PROJECT_NUMBER ]] || return 0
  if probe gcloud projects describe "$PROJECT_ID" --format=value\(projectNumber\) && [[ -n $PROBE_OUT ]]; then
    PROJECT_NUMBER=$PROBE_OUT
  elif (( DRY_RUN )); then
    PROJECT_NUMBER=PROJECT_NUMBER
  else
    die "gcloud projects describe $PROJECT_ID reports no project number"
  fi
}
# Pub/Sub's service agent (Google's): mints Eventarc's push tokens and forwards dead letters. After project_number.
pubsub_agent() { printf 'serviceAccount:service-%s@gcp-sa-pubsub.iam.gserviceaccount.com' "$PROJECT_NUMBER"; }

# ---------------------------------------------------------------------------------------------------
# Steps.

enable_apis() {
  step "1/12 Enable the APIs"
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
  step "2/12 Service accounts: one per function, least privilege (docs/deploy.md says why each role)"
  local name sa tasks_sa role
  tasks_sa=$(sa_email "$TASKS_SA_ID")
  ensure_service_account "$TASKS_SA_ID" "Cloud Tasks signs its OIDC calls to the task handler and the fan-out units as this account"
  ensure_service_account "$EVENTS_SA_ID" "Eventarc delivers Pub/Sub events to the event functions as this account"
  if [[ -n $BUILD_SERVICE_ACCOUNT ]]; then
    note "functions are built as BUILD_SERVICE_ACCOUNT $BUILD_SERVICE_ACCOUNT (its roles are yours to manage)"
  else
    # A new project's default build account may lack these; a build as an account without them fails the first
    # deploy at the build step. The deployer needs actAs on this account (roles/iam.serviceAccountUser).
    ensure_service_account "$BUILD_SA_ID" "Cloud Build builds the functions' images as this account"
    for role in "${BUILD_ROLES[@]}"; do
      run_iam gcloud projects add-iam-policy-binding "$PROJECT_ID" "--member=serviceAccount:$(build_sa)" \
        "--role=$role" --condition=None --format=none
    done
  fi
  # Eventarc's push subscriptions sign their tokens for events-invoker through Pub/Sub's service agent. An agent
  # created before 8 April 2021 lacks the role to do so: granted here, on that one account only (harmless elsewhere).
  project_number
  run_iam gcloud iam service-accounts add-iam-policy-binding "$(sa_email "$EVENTS_SA_ID")" "--member=$(pubsub_agent)" \
    --role=roles/iam.serviceAccountTokenCreator "--project=$PROJECT_ID" --format=none
  for name in "${FN_NAMES[@]}"; do
    ensure_service_account "${FN_ACCOUNT[$name]}" \
      "runtime identity of function $name (functions/${FN_FOLDER[$name]} ${FN_TARGET[$name]})"
  done
  for name in "${FN_NAMES[@]}"; do
    sa=$(fn_sa "$name")
    # Firestore's roles are granted on the project (there is no narrower resource for the default database).
    run_iam gcloud projects add-iam-policy-binding "$PROJECT_ID" "--member=serviceAccount:$sa" \
      --role=roles/datastore.user --condition=None --format=none
    if [[ -n ${FN_ENQUEUES[$name]} ]]; then
      # Creating a task with oidc_token needs iam.serviceAccounts.actAs on the token's account: on that one only.
      run_iam gcloud iam service-accounts add-iam-policy-binding "$tasks_sa" "--member=serviceAccount:$sa" \
        --role=roles/iam.serviceAccountUser "--project=$PROJECT_ID" --format=none
    fi
  done
}

SECRETS_WITHOUT_VERSION=()
declare -A UNMAPPED=()  # optional secrets (registry OPTIONAL_SECRETS) without a version: not mapped this run
secrets() {
  step "3/12 Secret Manager secrets (deploy.sh never reads or writes a secret value)"
  local env_name name fn sa
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
    elif [[ ${SECRET_OPTIONAL[$env_name]} == yes ]]; then
      # Its value can only exist after this deploy (SendGrid's key needs the webhook's URL): deploy without it.
      UNMAPPED[$env_name]=$name
      note "secret $name has no version yet: not mapped into its functions this run (the summary says what to do)"
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
  for fn in "${FN_NAMES[@]}"; do
    sa=$(fn_sa "$fn")
    for env_name in ${FN_SECRETS[$fn]}; do
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
  step "4/12 Cloud Tasks queues that a deployed function enqueues into (rate limits and retries)"
  local queue rate concurrency min_backoff max_backoff fn sa
  for queue in "${QUEUE_NAMES[@]}"; do
    rate=${QUEUE_RATE_SETTING[$queue]}
    concurrency=${QUEUE_CONCURRENCY[$queue]}
    if [[ ! $concurrency =~ ^[0-9]+$ ]]; then concurrency=${!concurrency}; fi
    # A queue's own backoff (the registry's Queue row) wins over deploy.env's, e.g. the fan-out's units.
    min_backoff=${QUEUE_MIN_BACKOFF_OF[$queue]}
    max_backoff=${QUEUE_MAX_BACKOFF_OF[$queue]}
    if [[ $min_backoff == - ]]; then min_backoff=$QUEUE_MIN_BACKOFF; fi
    if [[ $max_backoff == - ]]; then max_backoff=$QUEUE_MAX_BACKOFF; fi
    ensure_queue "$queue" "--max-dispatches-per-second=${!rate}" "--max-concurrent-dispatches=$concurrency" \
      "--max-attempts=$QUEUE_MAX_ATTEMPTS" "--min-backoff=$min_backoff" "--max-backoff=$max_backoff" \
      --max-doublings=4
  done
  for fn in "${FN_NAMES[@]}"; do
    sa=$(fn_sa "$fn")
    for queue in ${FN_ENQUEUES[$fn]}; do
      run_iam gcloud tasks queues add-iam-policy-binding "$queue" "--location=$REGION" \
        "--member=serviceAccount:$sa" --role=roles/cloudtasks.enqueuer "--project=$PROJECT_ID" --format=none
    done
  done
}

ensure_topic() {
  if probe gcloud pubsub topics describe "$1" "--project=$PROJECT_ID" --format=value\(name\); then
    note "topic $1 exists"
  else
    run gcloud pubsub topics create "$1" "--project=$PROJECT_ID"
  fi
}

topics() {
  step "5/12 Pub/Sub topics a deployed function is triggered by or publishes to; a dead-letter topic per trigger"
  local topic dead review fn sa
  for topic in "${TOPIC_NAMES[@]}"; do
    ensure_topic "$topic"
  done
  for topic in "${DEAD_LETTER_SOURCES[@]}"; do
    dead=${DEAD_LETTER_OF[$topic]}
    review=${REVIEW_OF[$topic]}
    ensure_topic "$dead"
    # Made before anything can be dead-lettered: a message sent to a topic without subscriptions is lost.
    if probe gcloud pubsub subscriptions describe "$review" "--project=$PROJECT_ID" --format=value\(name\); then
      run gcloud pubsub subscriptions update "$review" "${REVIEW_SUBSCRIPTION_FLAGS[@]}" "--project=$PROJECT_ID"
    else
      run gcloud pubsub subscriptions create "$review" "--topic=$dead" "${REVIEW_SUBSCRIPTION_FLAGS[@]}" \
        "--project=$PROJECT_ID"
    fi
  done
  for fn in "${FN_NAMES[@]}"; do
    sa=$(fn_sa "$fn")
    for topic in ${FN_PUBLISHES[$fn]}; do
      run_iam gcloud pubsub topics add-iam-policy-binding "$topic" "--member=serviceAccount:$sa" \
        --role=roles/pubsub.publisher "--project=$PROJECT_ID" --format=none
    done
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
  # Last: a job publishes its first tick only once the functions, their trigger subscriptions (a tick published
  # to a topic before its function's subscription exists is dropped), the dead letters and the indexes are there.
  step "12/12 Cloud Scheduler jobs (Pub/Sub targets) whose topic triggers a deployed function"
  local job setting line
  for line in "${SKIPPED_JOBS[@]}"; do note "no job $line"; done
  for job in "${JOB_NAMES[@]}"; do
    setting=${JOB_SETTING[$job]}
    ensure_job "$job" "${JOB_TOPIC[$job]}" "${!setting}" "${JOB_BODY[$job]}" "${JOB_DESCRIPTION[$job]}"
  done
}

firestore() {
  step "6/12 Firestore: database, composite indexes (firestore.indexes.json), TTL policies, index exemptions"
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
  "$PYTHON" -m deploy.plan missing-indexes firestore.indexes.json ${existing:+"$existing"} >"$WORK/missing_indexes.tsv"
  if [[ ! -s $WORK/missing_indexes.tsv ]]; then note "every composite index in firestore.indexes.json exists"; fi
  # The loops read their lists on fd 3, so no gcloud inside them can swallow the list from stdin.
  while IFS=$'\t' read -r -u 3 -a parts; do
    group=${parts[0]}
    scope=${parts[1]}
    configs=()
    for field in "${parts[@]:2}"; do configs+=("--field-config=$field"); done
    # --async: an index builds for minutes while the functions deploy; step 11 waits for it to be READY before
    # the scheduler jobs (the first callers of the indexed queries) are made.
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

  # Timestamps a tick writes on every ledger doc at once are sequential index entries, a hotspot past ~500
  # writes/s; nobody queries them alone, so their single-field indexes are disabled (docs/deploy.md).
  while IFS=$'\t' read -r -u 3 group field; do
    line="indexed"
    if probe gcloud firestore indexes fields describe "$field" "--collection-group=$group" \
      "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" --format=value\(indexConfig.indexes\); then
      line=$PROBE_OUT
    fi
    if [[ -z $line ]]; then
      note "$group.$field is not indexed"
    else
      run gcloud firestore indexes fields update "$field" "--collection-group=$group" --disable-indexes \
        "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" --async
    fi
  done 3<"$WORK/index_exemptions.tsv"
}

# A query that needs a composite index fails (FAILED_PRECONDITION) until the index is READY. The scheduled
# functions are the first to run those queries, so their jobs are made only after this wait (or its timeout).
INDEXES_NOT_READY=()
wait_for_indexes() {
  step "11/12 Firestore composite indexes READY (waits up to INDEX_WAIT_SECONDS=$INDEX_WAIT_SECONDS s)"
  local deadline=$((SECONDS + INDEX_WAIT_SECONDS)) poll=${DEPLOY_INDEX_POLL_SECONDS:-20} line
  while :; do
    if ! probe gcloud firestore indexes composite list "--database=$FIRESTORE_DATABASE" "--project=$PROJECT_ID" \
      --format=json; then
      PROBE_OUT="[]"
    fi
    printf '%s' "$PROBE_OUT" >"$WORK/indexes.json"
    INDEXES_NOT_READY=()
    while IFS= read -r line; do INDEXES_NOT_READY+=("$line"); done \
      < <("$PYTHON" -m deploy.plan not-ready-indexes firestore.indexes.json "$WORK/indexes.json")
    if (( DRY_RUN )); then
      note "(polled every ${poll} s until every index of firestore.indexes.json is READY, for at most $INDEX_WAIT_SECONDS s)"
      INDEXES_NOT_READY=()
      return 0
    fi
    if (( ${#INDEXES_NOT_READY[@]} == 0 )); then note "every composite index is READY"; return 0; fi
    if (( SECONDS >= deadline )); then break; fi
    note "${#INDEXES_NOT_READY[@]} index(es) still building, e.g. ${INDEXES_NOT_READY[0]}; checking again in ${poll} s"
    sleep "$poll"
  done
  note "not READY after $INDEX_WAIT_SECONDS s (continuing; they finish on their own):"
  for line in "${INDEXES_NOT_READY[@]}"; do note "  $line"; done
  note "until they are, the queries that need them fail and are retried: the retry sweep every 5 minutes, a"
  note "reminders tick or report run by Pub/Sub's redelivery (docs/deploy.md, \"Indexes on a first deploy\")"
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

function_env() {  # function name → its --set-env-vars value
  local handler_url=${URL[$TASK_HANDLER]:-} vars
  vars="GOOGLE_CLOUD_PROJECT=$PROJECT_ID,TASKS_LOCATION=$REGION"
  # Deployed --no-allow-unauthenticated: Cloud Run has verified the caller's token before the function runs
  # and forwards it with the signature removed; only such a function may accept that token (shared/tasks/auth.py).
  if ! is_public "$1"; then vars+=",INVOKER_IAM_CHECK=on"; fi
  vars+=",TASKS_SERVICE_ACCOUNT=$(sa_email "$TASKS_SA_ID")"
  # serviceConfig.uri is the run.app URL: Cloud Tasks' calls to it count as internal traffic.
  if [[ -n $handler_url ]]; then vars+=",TASK_HANDLER_URL=$handler_url,TASK_AUDIENCE=$handler_url"; fi
  # The fan-out's units are POSTed to the unit function's run.app URL, which is also their tokens' audience.
  if [[ -n ${URL[$FANOUT_UNIT]:-} ]]; then vars+=",FANOUT_UNIT_URL=${URL[$FANOUT_UNIT]}"; fi
  vars+=",$QUEUE_ENV,QUEUE_MAX_ATTEMPTS=$QUEUE_MAX_ATTEMPTS"
  if [[ -n ${URL[$STATUS_CALLBACK]:-} ]]; then vars+=",STATUS_CALLBACK_URL=${URL[$STATUS_CALLBACK]}"; fi
  # The URL Twilio signs inbound webhooks with, and the one email offers' claim links start with.
  if [[ -n ${URL[$INBOUND_SMS]:-} ]]; then vars+=",INBOUND_SMS_URL=${URL[$INBOUND_SMS]}"; fi
  if [[ -n ${URL[$CLAIM_LINK]:-} ]]; then vars+=",WAITLIST_CLAIM_URL=${URL[$CLAIM_LINK]}"; fi
  # The start of every campaign message's tracked link (campaign-click, public).
  if [[ -n ${URL[$CAMPAIGN_CLICK]:-} ]]; then vars+=",CAMPAIGN_CLICK_URL=${URL[$CAMPAIGN_CLICK]}"; fi
  # The start of every booking nudge's restore link (booking-restore, public; docs/booking-recovery.md).
  if [[ -n ${URL[$BOOKING_RESTORE]:-} ]]; then vars+=",BOOKING_RESTORE_URL=${URL[$BOOKING_RESTORE]}"; fi
  # The start of every emailed survey's page link (feedback-page, public; docs/feedback.md).
  if [[ -n ${URL[$FEEDBACK_PAGE]:-} ]]; then vars+=",FEEDBACK_PAGE_URL=${URL[$FEEDBACK_PAGE]}"; fi
  printf '%s' "$vars"
}

secret_refs() {  # function name → KEY=secret:latest,... (an optional secret without a version is left out)
  local env_name refs=""
  for env_name in ${FN_SECRETS[$1]}; do
    [[ -z ${UNMAPPED[$env_name]:-} ]] || continue
    refs+="${refs:+,}$env_name=$(secret_name "$env_name"):latest"
  done
  printf '%s' "$refs"
}

deploy_function() {
  local name=$1 refs
  local cmd=(gcloud functions deploy "$name" --gen2 "--runtime=$RUNTIME" "--region=$REGION" "--project=$PROJECT_ID"
    "--source=$STAGE_ROOT/${FN_FOLDER[$name]}" "--entry-point=${FN_TARGET[$name]}"
    "--service-account=$(fn_sa "$name")" "--set-env-vars=$(function_env "$name")"
    "--memory=${FN_MEMORY[$name]}" "--cpu=${FN_CPU[$name]}" "--timeout=${FN_TIMEOUT[$name]}s")
  refs=$(secret_refs "$name")
  if [[ -n $refs ]]; then cmd+=("--set-secrets=$refs"); fi
  if [[ ${FN_SIGNATURE[$name]} == http ]]; then
    cmd+=(--trigger-http)
    # A public webhook is called from the internet and checks its caller's signature itself; every
    # other function takes only same-project traffic (Cloud Tasks, Eventarc) and only authenticated.
    if is_public "$name" && [[ $PUBLIC_INVOKER == iam-check-off ]]; then
      # The organisation forbids binding allUsers: public_without_iam_check turns Cloud Run's check off instead.
      cmd+=(--ingress-settings=all --no-allow-unauthenticated)
    elif is_public "$name"; then
      cmd+=(--ingress-settings=all --allow-unauthenticated)
    else
      cmd+=(--ingress-settings=internal-only --no-allow-unauthenticated)
    fi
  else
    # --retry: a run that could not create every task raises, and Pub/Sub's redelivery fills the gap;
    # a message that keeps failing ends in the trigger's dead-letter topic (step 9).
    cmd+=("--trigger-topic=${FN_TOPIC[$name]}" "--trigger-service-account=$(sa_email "$EVENTS_SA_ID")"
      --retry --ingress-settings=internal-only)
  fi
  cmd+=("--build-service-account=projects/$PROJECT_ID/serviceAccounts/$(build_sa)")
  if [[ ${FN_SIGNATURE[$name]} == http ]]; then
    run "${cmd[@]}"
    if is_public "$name" && [[ $PUBLIC_INVOKER == iam-check-off ]]; then public_without_iam_check "$name"; fi
  else
    run_event_deploy "${cmd[@]}"
  fi
}

# A gen2 function is served by the Cloud Run service of the same name. With the invoker IAM check off, Cloud Run
# lets every caller through without an allUsers binding (which the domain-restricted-sharing policy refuses);
# the webhook still verifies its caller's signature itself. Re-applied after every deploy of the function.
public_without_iam_check() {
  run gcloud run services update "$1" "--region=$REGION" "--project=$PROJECT_ID" --no-invoker-iam-check
}

# The first Eventarc trigger of a project can be refused for a few minutes while Google provisions Eventarc's
# service agent ("Permission denied while using the Eventarc Service Agent ... it may take a few minutes"):
# that error, and only that one, is retried with a growing wait, about 5 minutes in all.
readonly EVENTARC_PROPAGATION='Permission denied while using the Eventarc Service Agent'
run_event_deploy() {
  if (( DRY_RUN )); then run "$@"; return 0; fi
  local attempt rc wait unit=${DEPLOY_EVENTARC_RETRY_SECONDS:-15}
  for attempt in 1 2 3 4 5 6 7; do
    CURRENT_CMD=$(quote_cmd "$@")
    printf '+ %s\n' "$CURRENT_CMD"
    rc=0
    # stderr is shown as it comes and kept, to recognise the one error worth waiting out
    { "$@" 2>&1 1>&3 | tee "$WORK/deploy.err" >&2; } 3>&1 || rc=$?
    CURRENT_CMD=""
    if (( rc == 0 )); then return 0; fi
    if (( attempt < 7 )) && grep -qiF "$EVENTARC_PROPAGATION" "$WORK/deploy.err"; then
      wait=$((attempt * unit))
      note "Eventarc's service agent is still being provisioned (a project's first trigger); retrying in $wait s"
      sleep "$wait"
      continue
    fi
    fail_command "$rc" "$@"
  done
}

functions() {
  step "7/12 Functions (gen2, $RUNTIME), each from functions/<folder> plus a copy of shared/"
  local note_line folder name
  for note_line in "${SKIPPED[@]}"; do note "skipping $note_line"; done
  for folder in "${FOLDERS[@]}"; do
    run "$PYTHON" -m deploy.stage "$folder" "$STAGE_ROOT/$folder"
  done

  local http=()
  for name in "${FN_NAMES[@]}"; do
    if [[ ${FN_SIGNATURE[$name]} == http ]]; then http+=("$name"); fi
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
  for name in "${http[@]}" "${EVENT_NAMES[@]}"; do
    deploy_function "$name"
  done
}

invokers() {
  step "8/12 Who may invoke what (each private function's invokers, from deploy/registry.py)"
  local name account
  # Cloud Run checks the caller's token and this binding before a request reaches the function, then
  # forwards the token with its signature removed; the function trusts that check (INVOKER_IAM_CHECK=on).
  for name in "${FN_NAMES[@]}"; do
    for account in ${FN_INVOKERS[$name]}; do
      run_iam gcloud functions add-invoker-policy-binding "$name" "--region=$REGION" \
        "--member=serviceAccount:$(sa_email "$account")" "--project=$PROJECT_ID" --format=none
    done
  done
}

TRIGGER_SUBSCRIPTION=""
trigger_subscription() {  # event function name → TRIGGER_SUBSCRIPTION, the push subscription Eventarc made
  local name=$1 trigger="" location=$REGION id
  TRIGGER_SUBSCRIPTION=""
  if probe gcloud functions describe "$name" --gen2 "--region=$REGION" "--project=$PROJECT_ID" \
    --format=value\(eventTrigger.trigger\); then
    trigger=$PROBE_OUT
  fi
  if [[ -z $trigger ]]; then
    (( DRY_RUN )) || die "gcloud functions describe $name reports no Eventarc trigger (eventTrigger.trigger) although it was deployed with --trigger-topic"
    trigger="trigger-of-$name-known-after-deploy"
  fi
  id=$trigger
  if [[ $trigger =~ ^projects/[^/]+/locations/([^/]+)/triggers/([^/]+)$ ]]; then
    location=${BASH_REMATCH[1]}
    id=${BASH_REMATCH[2]}
  fi
  if probe gcloud eventarc triggers describe "$id" "--location=$location" "--project=$PROJECT_ID" \
    --format=value\(transport.pubsub.subscription\) && [[ -n $PROBE_OUT ]]; then
    TRIGGER_SUBSCRIPTION=$PROBE_OUT
  elif (( DRY_RUN )); then
    TRIGGER_SUBSCRIPTION="projects/$PROJECT_ID/subscriptions/eventarc-$REGION-$name-sub-known-after-deploy"
  else
    die "Eventarc trigger $trigger of $name reports no Pub/Sub subscription (transport.pubsub.subscription)"
  fi
}

dead_letters() {
  step "9/12 Dead letters: each event trigger's subscription forwards a message refused $DEAD_LETTER_MAX_ATTEMPTS times"
  if (( ${#EVENT_NAMES[@]} == 0 )); then note "no event function is deployed"; return 0; fi
  local agent topic name
  # Pub/Sub's own service agent does the forwarding: it publishes to the dead-letter topic and
  # acknowledges the message on the source subscription.
  project_number
  agent=$(pubsub_agent)
  for topic in "${DEAD_LETTER_SOURCES[@]}"; do
    run_iam gcloud pubsub topics add-iam-policy-binding "${DEAD_LETTER_OF[$topic]}" "--member=$agent" \
      --role=roles/pubsub.publisher "--project=$PROJECT_ID" --format=none
  done
  # Re-applied on every run, after the deploys: a redeploy may give the function a new trigger.
  for name in "${EVENT_NAMES[@]}"; do
    topic=${FN_TOPIC[$name]}
    trigger_subscription "$name"
    run gcloud pubsub subscriptions update "$TRIGGER_SUBSCRIPTION" \
      "--dead-letter-topic=projects/$PROJECT_ID/topics/${DEAD_LETTER_OF[$topic]}" \
      "--max-delivery-attempts=$DEAD_LETTER_MAX_ATTEMPTS" \
      "--min-retry-delay=$EVENT_MIN_RETRY_DELAY" "--max-retry-delay=$EVENT_MAX_RETRY_DELAY" "--project=$PROJECT_ID"
    run_iam gcloud pubsub subscriptions add-iam-policy-binding "$TRIGGER_SUBSCRIPTION" "--member=$agent" \
      --role=roles/pubsub.subscriber "--project=$PROJECT_ID" --format=none
  done
}

# ---------------------------------------------------------------------------------------------------
# Monitoring: what deploy/alerts.py lists from deploy/monitoring/ (the metrics' filters match what the functions log).

MONITORING_ROWS=()  # kind<TAB>name<TAB>file
read_monitoring() {
  local line
  if ! "$PYTHON" -m deploy.alerts >"$WORK/monitoring.tsv" 2>"$WORK/monitoring.err"; then
    while IFS= read -r line; do problem "$line"; done <"$WORK/monitoring.err"
    return 0
  fi
  while IFS= read -r line; do MONITORING_ROWS+=("$line"); done <"$WORK/monitoring.tsv"
}

first_line() { printf '%s' "${1%%$'\n'*}"; }

ALERT_CHANNEL=""
alert_channel() {  # → ALERT_CHANNEL, the email channel for ALERT_EMAIL (made when missing)
  local list=(gcloud beta monitoring channels list "--filter=type=\"email\" AND labels.email_address=\"$ALERT_EMAIL\""
    --format=value\(name\) "--project=$PROJECT_ID")
  if probe "${list[@]}" && [[ -n $PROBE_OUT ]]; then
    ALERT_CHANNEL=$(first_line "$PROBE_OUT")
    note "notification channel for $ALERT_EMAIL exists"
    return 0
  fi
  run gcloud beta monitoring channels create --type=email "--display-name=medspa-jobs alerts" \
    "--description=deploy.sh: where the medspa-jobs alert policies notify" \
    "--channel-labels=email_address=$ALERT_EMAIL" "--project=$PROJECT_ID" --format=none
  if probe "${list[@]}" && [[ -n $PROBE_OUT ]]; then
    ALERT_CHANNEL=$(first_line "$PROBE_OUT")
  elif (( DRY_RUN )); then
    ALERT_CHANNEL="projects/$PROJECT_ID/notificationChannels/CHANNEL_ID-known-after-deploy"
  else
    die "the notification channel for ALERT_EMAIL was created but cannot be listed"
  fi
}

monitoring() {
  step "10/12 Monitoring: log-based metrics, alert policies, the dashboard (deploy/monitoring/)"
  local line kind name file channel_flags=() update_flags=()
  if [[ -n $ALERT_EMAIL ]]; then
    alert_channel
    channel_flags=("--notification-channels=$ALERT_CHANNEL")
    update_flags=("--set-notification-channels=$ALERT_CHANNEL")
  else
    note "ALERT_EMAIL is not set: the alert policies are made without a notification channel (console only)"
  fi
  for line in "${MONITORING_ROWS[@]}"; do
    IFS=$'\t' read -r kind name file <<<"$line"
    case $kind in
      metric)
        if probe gcloud logging metrics describe "$name" "--project=$PROJECT_ID" --format=value\(name\); then
          run gcloud logging metrics update "$name" "--config-from-file=$file" "--project=$PROJECT_ID" --format=none
        else
          run gcloud logging metrics create "$name" "--config-from-file=$file" "--project=$PROJECT_ID" --format=none
        fi ;;
      policy)
        # The file is the whole policy: an update replaces it (its channel is ALERT_EMAIL's, or none).
        if probe gcloud alpha monitoring policies list "--filter=displayName=\"$name\"" --format=value\(name\) \
          "--project=$PROJECT_ID" && [[ -n $PROBE_OUT ]]; then
          run gcloud alpha monitoring policies update "$(first_line "$PROBE_OUT")" "--policy-from-file=$file" \
            "${update_flags[@]}" "--project=$PROJECT_ID" --format=none
        else
          run gcloud alpha monitoring policies create "--policy-from-file=$file" "${channel_flags[@]}" \
            "--project=$PROJECT_ID" --format=none
        fi ;;
      dashboard)
        if probe gcloud monitoring dashboards list "--filter=displayName=\"$name\"" --format=value\(name\) \
          "--project=$PROJECT_ID" && [[ -n $PROBE_OUT ]]; then
          run gcloud monitoring dashboards update "$(first_line "$PROBE_OUT")" "--config-from-file=$file" \
            "--project=$PROJECT_ID" --format=none
        else
          run gcloud monitoring dashboards create "--config-from-file=$file" "--project=$PROJECT_ID" --format=none
        fi ;;
    esac
  done
}

# ---------------------------------------------------------------------------------------------------

summary() {
  local name topic
  if (( DRY_RUN )); then
    say ""
    say "# Dry run: nothing was run. URLs ending in .invalid, PROJECT_NUMBER and names ending in"
    say "# known-after-deploy are only known once the project and the functions exist."
    return 0
  fi
  say ""
  say "Deployed to $PROJECT_ID ($REGION). URLs:"
  for name in "${FN_NAMES[@]}"; do
    if [[ ${FN_SIGNATURE[$name]} == http ]]; then say "  $name: ${URL[$name]}"; fi
  done
  say ""
  say "Twilio:"
  say "  - delivery status callback: ${URL[$STATUS_CALLBACK]:-not deployed}"
  say "    (sent with every message as StatusCallback; nothing to set in the Twilio console)"
  if [[ -n ${URL[$INBOUND_SMS]:-} ]]; then
    say "  - incoming SMS webhook (patients' replies): ${URL[$INBOUND_SMS]}"
    say "    set it, exactly, as the 'A message comes in' webhook (HTTP POST) of"
    say "    ${TWILIO_SENDER:-the Twilio number or Messaging Service that sends reminders} (its signatures cover that URL)"
  else
    say "  - incoming SMS webhook (patients' replies): $INBOUND_SMS is not deployed"
  fi
  say "  - the SMS queue dispatches at most $TWILIO_MPS messages/s; raise TWILIO_MPS only with the sender's MPS"
  say "SendGrid:"
  if [[ -n ${URL[$EMAIL_EVENTS]:-} ]]; then
    say "  - Event Webhook (Settings > Mail Settings > Event Webhook): HTTP POST URL ${URL[$EMAIL_EVENTS]}"
    say "    events: Processed, Delivered, Deferred, Dropped, Bounced (opens and clicks are ignored); Signed Event Webhook on"
    if [[ -n ${UNMAPPED[SENDGRID_WEBHOOK_PUBLIC_KEY]:-} ]]; then
      say "    then put its verification key into secret $SENDGRID_WEBHOOK_PUBLIC_KEY_SECRET and re-run ./deploy.sh"
      say "    (until then the function answers 503 and SendGrid retries each batch for up to 24 hours)"
    else
      say "    its verification key is read from secret $SENDGRID_WEBHOOK_PUBLIC_KEY_SECRET"
    fi
  else
    say "  - Event Webhook: $EMAIL_EVENTS is not deployed; nothing to configure"
  fi
  say "  - the API key is read from Secret Manager secret $SENDGRID_API_KEY_SECRET"
  local env_name
  if (( ${#UNMAPPED[@]} )); then
    say "Not mapped yet (optional secrets without a version; each function that reads one answers 503 until then):"
    for env_name in "${SECRET_ENVS[@]}"; do
      [[ -n ${UNMAPPED[$env_name]:-} ]] || continue
      say "  - ${UNMAPPED[$env_name]} ($env_name): gcloud secrets versions add ${UNMAPPED[$env_name]} --data-file=- --project=$PROJECT_ID"
    done
    say "  then re-run ./deploy.sh to map it (docs/deploy.md, \"First deploy, step by step\")"
  fi
  if (( ${#INDEXES_NOT_READY[@]} )); then
    say "Firestore indexes still building (queries that need them fail until READY, then recover on retry):"
    printf '  - %s\n' "${INDEXES_NOT_READY[@]}"
  fi
  if [[ -n $ALERT_EMAIL ]]; then
    say "Alerts notify $ALERT_EMAIL; runbook: docs/runbook.md, \"Alerts\""
  else
    say "Alerts: made without a notification channel (set ALERT_EMAIL and re-run); runbook: docs/runbook.md"
  fi
  if (( ${#DEAD_LETTER_SOURCES[@]} )); then
    say "Dead letters (runbook: docs/deploy.md):"
    for topic in "${DEAD_LETTER_SOURCES[@]}"; do
      say "  - $topic: gcloud pubsub subscriptions pull ${REVIEW_OF[$topic]} --limit=10 --project=$PROJECT_ID"
    done
  fi
  if (( ${#SKIPPED[@]} )); then
    say "Not deployed (not built yet):"
    printf '  - %s\n' "${SKIPPED[@]}"
  fi
  say "Check the deployment end to end: ./deploy.sh --verify"
}

# ---------------------------------------------------------------------------------------------------

# --verify: the smoke test of ops/ (python -m ops smoke) against the deployed project, in the repo's .venv.
verify() {
  local venv_py=$ROOT/.venv/bin/python
  step "Verify: python -m ops smoke against $PROJECT_ID"
  if [[ ! -x $venv_py ]]; then
    run make -C "$ROOT" venv
  fi
  if (( DRY_RUN )); then
    quote_cmd env "GOOGLE_CLOUD_PROJECT=$PROJECT_ID" "TASKS_LOCATION=$REGION" "$venv_py" -m ops smoke
    printf '\n'
    return 0
  fi
  CURRENT_CMD="GOOGLE_CLOUD_PROJECT=$PROJECT_ID $venv_py -m ops smoke"
  printf '+ %s\n' "$CURRENT_CMD"
  GOOGLE_CLOUD_PROJECT=$PROJECT_ID TASKS_LOCATION=$REGION "$venv_py" -m ops smoke
  CURRENT_CMD=""
}

main() {
  local env_file="" explicit_env_file=0 verify_only=0
  while (( $# )); do
    case $1 in
      --env-file) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; env_file=$2; explicit_env_file=1; shift 2 ;;
      --env-file=*) env_file=${1#--env-file=}; explicit_env_file=1; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      --verify) verify_only=1; shift ;;
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
  if command -v "$PYTHON" >/dev/null 2>&1; then read_plan; read_monitoring; fi
  if (( ${#PROBLEMS[@]} )); then
    printf 'deploy.sh: cannot deploy; nothing was changed:\n' >&2
    printf '  - %s\n' "${PROBLEMS[@]}" >&2
    exit 2
  fi
  if (( verify_only )); then verify; return 0; fi
  if (( ! DRY_RUN )) && ! gcloud alpha monitoring policies list --help >/dev/null 2>&1; then
    # Alert policies have no gcloud command outside alpha; checked before anything is changed.
    die "gcloud's alpha commands are missing (alert policies need them): gcloud components install alpha, or install the google-cloud-cli-alpha package, then re-run"
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
  firestore
  functions
  invokers
  dead_letters
  monitoring
  wait_for_indexes
  scheduler_jobs
  summary
}

main "$@"
