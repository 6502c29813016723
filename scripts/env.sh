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
