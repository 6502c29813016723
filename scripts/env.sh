# Environment for running the project locally against local_aws: sourced by `make up`/`make demo`.
# On AWS, none of this applies: configure the aws_default connection and MLOPS_PROFILE=aws.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LOCAL_AWS_PORT="${LOCAL_AWS_PORT:-4566}"
export LOCAL_AWS_URL="http://127.0.0.1:${LOCAL_AWS_PORT}"
export LOCAL_AWS_DATA_DIR="${LOCAL_AWS_DATA_DIR:-$ROOT/.local-aws}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# one botocore model loader per process instead of one per hook (see mlops_pipeline.aws_session)
export AIRFLOW__AWS__SESSION_FACTORY="${AIRFLOW__AWS__SESSION_FACTORY:-mlops_pipeline.aws_session.SharedLoaderSessionFactory}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
# Tasks talk to the api-server's execution API: it must follow the port, or every task goes
# to :8080 and fails with "Connection refused" (seen only in the scheduler's output).
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW__API__PORT}/execution/"
# Loopback only, like local_aws: the UI's login travels in plain HTTP.
export AIRFLOW__API__HOST="${AIRFLOW_HOST:-127.0.0.1}"
# A laptop default: a few task processes and one api-server worker (32 idle workers held ~6 GB).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
export MLOPS_PROFILE="${MLOPS_PROFILE:-local}"
# The only thing that differs from AWS: where aws_default points.
# Credentials that are no common word: Airflow masks a connection's password in every log,
# and a password "local" turned each "local" in the task logs (s3://mlops-local/...) into ***.
export AIRFLOW_CONN_AWS_DEFAULT="{\"conn_type\": \"aws\", \"login\": \"local-aws-key-id\", \"password\": \"local-aws-not-a-secret\", \"extra\": {\"endpoint_url\": \"$LOCAL_AWS_URL\", \"region_name\": \"us-east-1\"}}"
export PATH="$ROOT/.venv/bin:$PATH"

start_local_aws() {
  local health
  if health=$(local-aws health --endpoint-url "$LOCAL_AWS_URL" 2>/dev/null); then
    # another checkout's emulator (its own data, its own jobs) must not be reused silently
    local serving
    serving=$(python -c 'import json,sys; print(json.load(sys.stdin).get("data_dir", ""))' <<<"$health")
    if [ "$serving" != "$LOCAL_AWS_DATA_DIR" ]; then
      echo "local_aws on $LOCAL_AWS_URL serves ${serving:-another data dir}, not $LOCAL_AWS_DATA_DIR:" >&2
      echo "stop it, or use another port: LOCAL_AWS_PORT=4567 make ..." >&2
      return 1
    fi
    echo "local_aws already running on $LOCAL_AWS_URL (data in $LOCAL_AWS_DATA_DIR)"
    return 0
  fi
  mkdir -p "$LOCAL_AWS_DATA_DIR"
  local-aws serve --port "$LOCAL_AWS_PORT" --data-dir "$LOCAL_AWS_DATA_DIR" >>"$LOCAL_AWS_DATA_DIR/server.log" 2>&1 &
  LOCAL_AWS_PID=$!
  echo "$LOCAL_AWS_PID" >"$LOCAL_AWS_DATA_DIR/server.pid"
  for _ in $(seq 1 120); do
    if local-aws health --endpoint-url "$LOCAL_AWS_URL" >/dev/null 2>&1; then
      echo "local_aws serving on $LOCAL_AWS_URL (log: $LOCAL_AWS_DATA_DIR/server.log)"
      return 0
    fi
    if ! kill -0 "$LOCAL_AWS_PID" 2>/dev/null; then
      echo "local_aws failed to start; see $LOCAL_AWS_DATA_DIR/server.log" >&2
      tail -20 "$LOCAL_AWS_DATA_DIR/server.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "local_aws did not answer within 60 s; see $LOCAL_AWS_DATA_DIR/server.log" >&2
  return 1
}

# `make up STACK=celery`: the production topology from the venv. Postgres as the metadata DB,
# CeleryExecutor on Redis, one database and one Redis key prefix per Airflow home, so two
# clones (or a test beside a developer's stack) share the servers but never a task or a row.
celery_stack_env() {
  export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
  local base hash
  base=$(basename "$ROOT" | tr -c 'a-zA-Z0-9\n' '_' | tr 'A-Z' 'a-z' | cut -c1-24)
  hash=$(printf '%s' "$AIRFLOW_HOME" | sha1sum | cut -c1-10)
  export AIRFLOW_STACK_ID="${AIRFLOW_STACK_ID:-airflow_${base}_${hash}}"
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
  local db_url="postgresql+psycopg2://${PGUSER}@${PGHOST}:${PGPORT}/${AIRFLOW_STACK_ID}"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$db_url"
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__CELERY__BROKER_URL="$REDIS_URL"
  export AIRFLOW__CELERY__RESULT_BACKEND="db+$db_url"
  # every key (queues, unacked messages, control replies) under the stack's prefix, and a
  # queue of its own: another stack's worker on the same Redis never takes this one's tasks
  export AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX="${AIRFLOW_STACK_ID}:"
  export AIRFLOW__OPERATORS__DEFAULT_QUEUE="$AIRFLOW_STACK_ID"
  export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-$AIRFLOW__CORE__PARALLELISM}"
  # the scheduler signs the tasks' tokens and the api-server checks them: one secret for
  # both, kept in the Airflow home (not in any file of the repository)
  mkdir -p "$AIRFLOW_HOME"
  if [ ! -s "$AIRFLOW_HOME/jwt_secret" ]; then
    (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(48))' >"$AIRFLOW_HOME/jwt_secret")
  fi
  AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$AIRFLOW_HOME/jwt_secret")"
  export AIRFLOW__API_AUTH__JWT_SECRET
}

# The stack's database, created when absent (Postgres must answer on $PGHOST:$PGPORT).
ensure_stack_database() {
  if ! psql -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    echo "Postgres does not answer on $PGHOST:$PGPORT as $PGUSER: start it, or set PGHOST/PGPORT/PGUSER" >&2
    return 1
  fi
  if [ "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$AIRFLOW_STACK_ID'")" != 1 ]; then
    psql -d postgres -q -c "CREATE DATABASE \"$AIRFLOW_STACK_ID\"" || return 1
    echo "created database $AIRFLOW_STACK_ID on $PGHOST:$PGPORT"
  fi
}
