# Environment for running the project locally against local_aws: sourced by `make up`/`make demo`.
# On AWS, none of this applies: configure the aws_default connection and MLOPS_PROFILE=aws.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LOCAL_AWS_PORT="${LOCAL_AWS_PORT:-4566}"
export LOCAL_AWS_URL="http://127.0.0.1:${LOCAL_AWS_PORT}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# one botocore model loader per process instead of one per hook (see mlops_pipeline.aws_session)
export AIRFLOW__AWS__SESSION_FACTORY="${AIRFLOW__AWS__SESSION_FACTORY:-mlops_pipeline.aws_session.SharedLoaderSessionFactory}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export MLOPS_PROFILE="${MLOPS_PROFILE:-local}"
# The only thing that differs from AWS: where aws_default points.
export AIRFLOW_CONN_AWS_DEFAULT="{\"conn_type\": \"aws\", \"login\": \"local\", \"password\": \"local\", \"extra\": {\"endpoint_url\": \"$LOCAL_AWS_URL\", \"region_name\": \"us-east-1\"}}"
export PATH="$ROOT/.venv/bin:$PATH"

start_local_aws() {
  if local-aws health --endpoint-url "$LOCAL_AWS_URL" >/dev/null 2>&1; then
    echo "local_aws already running on $LOCAL_AWS_URL"
    return 0
  fi
  mkdir -p "$ROOT/.local-aws"
  local-aws serve --port "$LOCAL_AWS_PORT" --data-dir "$ROOT/.local-aws" >>"$ROOT/.local-aws/server.log" 2>&1 &
  LOCAL_AWS_PID=$!
  for _ in $(seq 1 120); do
    if local-aws health --endpoint-url "$LOCAL_AWS_URL" >/dev/null 2>&1; then
      echo "local_aws serving on $LOCAL_AWS_URL (log: .local-aws/server.log)"
      return 0
    fi
    if ! kill -0 "$LOCAL_AWS_PID" 2>/dev/null; then
      echo "local_aws failed to start; see .local-aws/server.log" >&2
      tail -20 "$ROOT/.local-aws/server.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "local_aws did not answer within 60 s; see .local-aws/server.log" >&2
  return 1
}
