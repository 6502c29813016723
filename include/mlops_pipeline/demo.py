"""`make demo`: demo data into local_aws, the pipeline end to end, and a summary.

Run by scripts/demo (which starts local_aws and prepares Airflow's metadata DB). Steps:

1. write a week of synthetic card transactions (datagen) to the settings' bucket;
2. ``airflow dags test model_build <last day>``: validate, preprocess, tune, evaluate, gate,
   register (the full log goes to ``.airflow/demo/model_build.log``);
3. read what the run left in local_aws and print a summary: the data checked, the best
   hyperparameters, the metrics, the model package and where the reports are (copies of
   them in ``.airflow/demo/reports/``).

4. approve the new package through the registry API (as a reviewer in Studio would);
5. ``airflow dags test model_deploy`` with that package: approval seen, staging, smoke test,
   canary release onto the production endpoint (a first run creates it); the release's steps
   are printed from its audit record;
6. write the days after the window (the last one drifted) and ``airflow dags test
   batch_inference <day>`` for each: scored, validated, published, drift measured; the
   summary shows what each day published and detected.

Exit 0 only when every step worked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_pipeline.config import Settings, load_settings
from mlops_pipeline.jobs import DataWindow
from mlops_pipeline.quality.history import MetricHistoryStore
from mlops_pipeline.quality.request import history_prefix, run_uri

ROOT = Path(__file__).resolve().parents[2]
DEMO_END = dt.date(2026, 1, 7)
DEMO_ROWS = 5000
DEMO_SEED = 7
# the lines of the task logs worth showing while the run goes (the rest is in the log file)
SHOWN = re.compile(
    r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)"
    r"|(?P<line>(started|re-attaching to) (Processing|Tuning) job \S+"
    r"|Data quality gate (PASSED|FAILED)[^\[]*"
    r"|(Processing|Tuning) job \S+: InProgress - training jobs:[^\[]*"
    r"|quality gate (passed|FAILED)[^\[]*"
    r"|registered \S+ \(version \d+[^)]*\)"
    r"|(AirflowFailException|AirflowException): [^\[]*)"
)


class DemoError(RuntimeError):
    """A step failed; the message says which and where to look."""


@dataclass
class Demo:
    settings: Settings
    endpoint: str | None
    out: Path
    end: dt.date
    days: int
    rows: int
    started: float = field(default_factory=time.time)
    facts: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.settings.region,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        )


def say(text: str = "") -> None:
    print(text, flush=True)


# -- steps ---------------------------------------------------------------------------------------
def write_data(demo: Demo) -> None:
    from mlops_pipeline import datagen

    s3 = demo.client("s3")
    try:
        s3.create_bucket(Bucket=demo.settings.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    start = demo.end - dt.timedelta(days=demo.days - 1)
    infos = datagen.write_partitions(
        s3,
        demo.settings.bucket,
        start,
        demo.days,
        demo.rows,
        prefix=demo.settings.raw_prefix,
        seed=DEMO_SEED,
    )
    rows, fraud = sum(i.rows for i in infos), sum(i.fraud for i in infos)
    say(
        f"  {len(infos)} daily partitions {start}..{demo.end}, {rows:,} transactions, "
        f"{fraud:,} fraud ({fraud / rows:.2%}) → s3://{demo.settings.bucket}/"
        f"{demo.settings.raw_prefix}/"
    )


def run_model_build(demo: Demo) -> None:
    log_path = demo.out / "model_build.log"
    env = dict(os.environ, MLOPS_TRAINING_WINDOW_DAYS=str(demo.days))
    command = ["airflow", "dags", "test", "model_build", demo.end.isoformat()]
    say(f"  $ {' '.join(command)}   (full log: {shown(log_path)})")
    started = time.monotonic()
    code = _dag_test(command, log_path, SHOWN, env=env)
    demo.facts["model_build_seconds"] = time.monotonic() - started
    if code != 0:
        raise DemoError(
            f"model_build failed (exit {code}); the reason is above, the whole run in {log_path}"
        )


def collect(demo: Demo) -> None:
    """What the run left behind, read from local_aws (the registry, S3, the jobs)."""
    sm, s3 = demo.client("sagemaker"), demo.client("s3")
    settings = demo.settings
    packages = sm.list_model_packages(
        ModelPackageGroupName=settings.model_package_group,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    if not packages or packages[0]["CreationTime"].timestamp() < demo.started:
        raise DemoError("model_build succeeded but registered no model package: see the log")
    package = sm.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    lineage = package["CustomerMetadataProperties"]
    evaluation_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    baseline_uri = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    training = sm.describe_training_job(TrainingJobName=lineage["training_job"])
    tuning = sm.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=lineage["tuning_job"]
    )
    ranges = tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]
    tuned = {r["Name"] for group in ranges.values() for r in group}
    store = MetricHistoryStore(s3, settings.bucket, history_prefix(settings))
    demo.facts.update(
        package=package,
        lineage=lineage,
        evaluation_uri=evaluation_uri,
        baseline_uri=baseline_uri,
        evaluation=_read_json(s3, evaluation_uri),
        best={k: v for k, v in training["HyperParameters"].items() if k in tuned},
        objective=tuning["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"],
        children=sum(tuning["TrainingJobStatusCounters"].values()),
        quality=_quality(demo, s3, store, lineage),
        features_check=_features_check(store, lineage["data_window_end"]),
    )
    _copy_reports(demo, s3)


def _quality(
    demo: Demo, s3: Any, store: MetricHistoryStore, lineage: dict[str, str]
) -> list[dict[str, Any]]:
    settings = demo.settings
    window = DataWindow(
        dt.date.fromisoformat(lineage["data_window_start"]),
        dt.date.fromisoformat(lineage["data_window_end"]),
    )
    checked = []
    for day in window.partitions:
        entry = store.get("transactions", day)
        result: dict[str, Any] = {}
        if entry is not None and entry.job_name:
            uri = run_uri(settings, "transactions", day, entry.job_name) + "/output/result.json"
            result = _read_json(s3, uri)
        checked.append(
            {
                "partition": day,
                "status": entry.status if entry else "not checked",
                "rows": (entry.metrics.get("row_count") if entry else None),
                "data_docs_uri": result.get("data_docs_uri"),
            }
        )
    return checked


def _features_check(store: MetricHistoryStore, end: str) -> str:
    """The gate's verdict on the training features preprocess wrote for this run."""
    entry = store.get("training_features", end)
    if entry is None:
        return "not checked"
    return f"{entry.metrics.get('row_count', 0):,} training rows, {entry.status}"


def _copy_reports(demo: Demo, s3: Any) -> None:
    reports = demo.out / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    copies = {
        "evaluation.json": demo.facts["evaluation_uri"],
        "baseline.json": demo.facts["baseline_uri"],
    }
    for check in demo.facts["quality"]:
        if check["data_docs_uri"]:
            copies[f"data-docs-{check['partition']}.html"] = check["data_docs_uri"]
    for name, uri in copies.items():
        bucket, key = uri[5:].split("/", 1)
        s3.download_file(bucket, key, str(reports / name))
    demo.facts["reports"] = reports


def _read_json(s3: Any, uri: str) -> Any:
    bucket, key = uri[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# -- cost ----------------------------------------------------------------------------------------
COSTED_DAGS = ("model_build", "model_deploy", "batch_inference")


def collect_cost(demo: Demo) -> None:
    """The cost records the plugin's listener wrote for the runs this demo ran."""
    from mlops_pipeline.cost import record

    s3 = demo.client("s3")
    settings = demo.settings
    started = dt.datetime.fromtimestamp(demo.started, dt.UTC).isoformat()
    records = []
    for dag_id in COSTED_DAGS:
        found = record.read_all(s3, settings.bucket, settings.cost_prefix, dag_id)
        records += [r for r in found if r["end"] >= started]
    demo.facts["cost"] = records


def cost_summary(demo: Demo) -> str:
    from mlops_pipeline.cost import record

    records = demo.facts.get("cost") or []
    lines = ["Cost (on-demand list prices, as if on AWS)"]
    if not records:
        lines.append(
            "  no cost record was written: is the plugin loaded (AIRFLOW__CORE__PLUGINS_FOLDER)?"
        )
    for r in records:
        lines.append(f"  {record.summary(r)}")
    if records:
        lines.append(f"  all runs: python -m mlops_pipeline.cost report --dag-id {COSTED_DAGS[0]}")
    return "\n".join(lines)


# -- summary -------------------------------------------------------------------------------------
def summary(demo: Demo) -> str:
    facts = demo.facts
    package, lineage = facts["package"], facts["lineage"]
    metrics = facts["evaluation"]["binary_classification_metrics"]
    threshold = facts["evaluation"]["threshold"]
    calibration = facts["evaluation"]["calibration"]
    quality = facts["quality"]
    rows = sum(q["rows"] or 0 for q in quality)
    counts: dict[str, int] = {}
    for q in quality:
        label = {"warning": "passed with warnings"}.get(q["status"], q["status"])
        counts[label] = counts.get(label, 0) + 1
    verdicts = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    objective = facts["objective"]
    reports = facts["reports"]
    lines = [
        "Data checked",
        f"  {len(quality)} partitions {quality[0]['partition']}..{quality[-1]['partition']}, "
        f"{rows:,} rows; the gate (suite 'transactions', a GX Processing job per day): "
        f"{verdicts}",
        f"  training features (suite 'training_features', after preprocess): "
        f"{facts['features_check']}",
        "Best hyperparameters",
        f"  {', '.join(f'{k}={_short(v)}' for k, v in sorted(facts['best'].items()))}",
        f"  {objective['MetricName']} = {objective['Value']:.4f}, best of "
        f"{facts['children']} training jobs in {lineage['tuning_job']}",
        "Metrics (held-out test split, the last days of the window)",
        f"  PR-AUC {metrics['pr_auc']['value']:.4f}   ROC-AUC {metrics['auc']['value']:.4f}",
        f"  at threshold {threshold['value']:.3f} ({threshold['strategy']}, chosen on "
        f"validation): precision {metrics['precision']['value']:.4f}, recall "
        f"{metrics['recall']['value']:.4f}, F1 {metrics['f1']['value']:.4f}",
        f"  calibration: Brier {calibration['brier_score']:.4f}, ECE "
        f"{calibration['expected_calibration_error']:.4f}; test rows "
        f"{facts['evaluation']['rows']['test']:,} ({facts['evaluation']['rows']['test_positives']} "
        "fraud)",
        "Model package",
        f"  {package['ModelPackageArn']}",
        f"  version {package['ModelPackageVersion']} of {package['ModelPackageGroupName']}, "
        f"{package['ModelApprovalStatus']}; code {lineage['code_version']}, data "
        f"{lineage['data_window_start']}..{lineage['data_window_end']}, run {lineage['run_id']}",
        "Reports",
        f"  evaluation   {facts['evaluation_uri']}",
        f"  baseline     {facts['baseline_uri']}",
        *(f"  data docs    {q['data_docs_uri']}" for q in quality[-1:] if q["data_docs_uri"]),
        f"  copies in {shown(reports)}/; the run's log in {shown(demo.out / 'model_build.log')}",
        "  Airflow UI with these runs: make up (http://127.0.0.1:8080)",
    ]
    return "\n".join(lines)


def shown(path: Path) -> str:
    """A path as the user typed the command: relative to the repository when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


# -- model_deploy --------------------------------------------------------------------------------
# quick bakes for the demo; the local profile's plan bakes 30 s per step
DEMO_CANARY_PLAN = "10%:5s,50%:5s,100%"
DEPLOY_SHOWN = re.compile(
    r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=(?P<index>-?\d+)"
    r"|(?P<line>(Approved|Rejected) in the Model Registry by \S+"
    r"|smoke test of \S+ passed: [^\[]*"
    r"|canary release of \S+ onto \S+: [^\[]*"
    r"|endpoint \S+ does not exist: first deployment[^\[]*"
    r"|step \d+ verdict: [^\[]*"
    r"|(AirflowFailException|AirflowException): [^\[]*)"
)


def approve_package(demo: Demo) -> None:
    """The newest package, approved through the registry API as a reviewer in Studio would."""
    sm = demo.client("sagemaker")
    package = demo.facts.get("package") or sm.describe_model_package(
        ModelPackageName=sm.list_model_packages(
            ModelPackageGroupName=demo.settings.model_package_group,
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"][0]["ModelPackageArn"]
    )
    arn = package["ModelPackageArn"]
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="approved by make demo (a reviewer in Studio would do the same)",
    )
    demo.facts["deploy_package"] = demo.facts["approved_arn"] = arn
    if "package" in demo.facts:  # the summary shows the package as it is now
        demo.facts["package"] = sm.describe_model_package(ModelPackageName=arn)
    say(f"  {arn}: Approved (UpdateModelPackage)")


def run_model_deploy(demo: Demo) -> None:
    log_path = demo.out / "model_deploy.log"
    conf = json.dumps({"package_arn": demo.facts["deploy_package"]})
    command = ["airflow", "dags", "test", "model_deploy", demo.end.isoformat(), "-c", conf]
    env = dict(os.environ)
    env.setdefault("MLOPS_DEPLOY_CANARY_PLAN", DEMO_CANARY_PLAN)
    say(
        f"  $ airflow dags test model_deploy {demo.end} -c '{conf}'   (full log: {shown(log_path)})"
    )
    started = time.monotonic()
    code = _dag_test(command, log_path, DEPLOY_SHOWN, env=env)
    demo.facts["model_deploy_seconds"] = time.monotonic() - started
    if code != 0:
        raise DemoError(f"model_deploy failed (exit {code}); the whole run in {log_path}")
    say(release_steps(demo))


def release_steps(demo: Demo) -> str:
    """The newest release onto the production endpoint, step by step, from its audit record."""
    from mlops_pipeline.deploy.release import Release, iso, step_lines

    s3, settings = demo.client("s3"), demo.settings
    prefix = f"{settings.deploy_prefix}/releases/{settings.deploy_endpoint_name}/"
    listing = s3.list_objects_v2(Bucket=settings.bucket, Prefix=prefix).get("Contents", [])
    if not listing:
        raise DemoError(
            f"model_deploy left no release record under s3://{settings.bucket}/{prefix}"
        )
    newest = max(listing, key=lambda o: o["LastModified"])
    release = Release.from_json(_read_json(s3, f"s3://{settings.bucket}/{newest['Key']}"))
    lines = [
        "Release",
        f"  {release.endpoint}: {release.status} at {iso(release.ended_at)}; "
        f"{release.candidate.variant} = {release.candidate.package_arn}",
    ]
    if release.baseline is not None:
        lines.append(
            f"  previous production: {release.baseline.variant} = {release.baseline.package_arn}"
        )
    lines += [f"  {line}" for line in step_lines(release)]
    if release.status == "created":
        lines.append("  (first deployment: the endpoint was created; the next run is a canary)")
    lines.append(f"  audit record: s3://{settings.bucket}/{newest['Key']}")
    return "\n".join(lines)


# -- batch_inference -----------------------------------------------------------------------------
BATCH_DAYS = 3  # scored after the training window; the last one drifts
BATCH_DRIFT = 2.0
BATCH_SHOWN = re.compile(
    r"\[DAG TEST\] starting task_id=(?P<task>\S+) map_index=-1"
    r"|(?P<line>(started|re-attaching to) Transform job \S+"
    r"|Transform job \S+ already completed[^\[]*"
    r"|Data quality gate (PASSED|FAILED)[^\[]*"
    r"|published \d+ predictions[^\[]*"
    r"|(DRIFT|no drift) on [^\[]*"
    r"|partition \S+ is (missing|in the future)[^\[]*"
    r"|(AirflowFailException|AirflowException|AirflowSensorTimeout): [^\[]*)"
)


def batch_days(demo: Demo) -> list[dt.date]:
    return [demo.end + dt.timedelta(days=i) for i in range(1, BATCH_DAYS + 1)]


def write_batch_data(demo: Demo) -> None:
    """The days after the training window, the last one drifted (datagen's drift knob)."""
    from mlops_pipeline import datagen

    s3 = demo.client("s3")
    for day in batch_days(demo):
        drifted = day == batch_days(demo)[-1]
        info = datagen.write_partition(
            s3,
            demo.settings.bucket,
            day,
            demo.rows,
            prefix=demo.settings.raw_prefix,
            seed=DEMO_SEED,
            drift=datagen.Drift(BATCH_DRIFT if drifted else 0.0),
        )
        note = f" (drift {BATCH_DRIFT:g}: amounts up, more online)" if drifted else ""
        say(f"  {info.uri}: {info.rows:,} transactions{note}")


def run_batch_inference(demo: Demo) -> None:
    """``airflow dags test batch_inference <day>`` for each scored day, one after the other."""
    demo.facts["batch_seconds"] = 0.0
    for day in batch_days(demo):
        log_path = demo.out / f"batch_inference-{day}.log"
        command = ["airflow", "dags", "test", "batch_inference", day.isoformat()]
        say(f"  $ {' '.join(command)}   (full log: {shown(log_path)})")
        started = time.monotonic()
        code = _dag_test(command, log_path, BATCH_SHOWN)
        demo.facts["batch_seconds"] += time.monotonic() - started
        if code != 0:
            raise DemoError(
                f"batch_inference for {day} failed (exit {code}); the reason is above, the "
                f"whole run in {log_path}"
            )


def _dag_test(
    command: list[str],
    log_path: Path,
    pattern: re.Pattern[str],
    env: dict[str, str] | None = None,
) -> int:
    """Run ``airflow dags test``, log everything, show the lines ``pattern`` picks."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert process.stdout is not None
        seen: set[str] = set()
        for line in process.stdout:
            log.write(line)
            match = pattern.search(line)
            if not match:
                continue
            if match.group("task"):
                index = match.groupdict().get("index")
                task = match.group("task")
                label = task if index is None or int(index) < 0 else f"{task}[{index}]"
                if label not in seen:  # a deferred task starts twice
                    seen.add(label)
                    say(f"  ▸ {label}")
            else:
                say(f"      {match.group('line').strip()[:160]}")
        return process.wait()


def collect_batch(demo: Demo) -> None:
    """What each scored day left: the published manifest and the drift report."""
    from mlops_pipeline import batch

    s3 = demo.client("s3")
    days = []
    for day in batch_days(demo):
        paths = batch.DayPaths(demo.settings, day.isoformat())
        manifest = _read_json(s3, paths.published_uri + batch.MANIFEST_FILE)
        report = _read_json(s3, paths.drift_report_uri)
        days.append({"day": day.isoformat(), "manifest": manifest, "drift": report})
    demo.facts["batch"] = days


def batch_summary(demo: Demo) -> str:
    days = demo.facts["batch"]
    settings = demo.settings
    lines = [
        "Batch inference (batch_inference, one run per day, the approved model)",
        f"  model {days[0]['manifest']['model_version']} ({demo.facts['approved_arn']})",
    ]
    for item in days:
        manifest, report = item["manifest"], item["drift"]
        top = sorted(report["psi"].items(), key=lambda kv: -kv[1])[:2]
        psi = ", ".join(f"{name} {value:.3f}" for name, value in top)
        score = report["score_psi"]
        verdict = (
            f"DRIFT → card_fraud_drift event (top: {', '.join(report['top_features'])})"
            if report["drifted"]
            else "no drift"
        )
        lines.append(
            f"  {item['day']}: {manifest['rows']:,} scored → "
            f"{settings.s3_uri(settings.predictions_prefix)}/dt={item['day']}/ "
            f"(sha256 {manifest['files'][0]['sha256'][:12]}…); PSI {psi}, score "
            f"{'n/a' if score is None else f'{score:.3f}'}: {verdict}"
        )
    lines.append(
        "  a drift event schedules model_build on the window ending that day (make up runs it)"
    )
    return "\n".join(lines)


STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("demo data", write_data),
    ("model_build", run_model_build),
    ("results", collect),
    ("approval", approve_package),
    ("model_deploy", run_model_deploy),
    ("days to score", write_batch_data),
    ("batch_inference", run_batch_inference),
    ("batch results", collect_batch),
    ("cost", collect_cost),
]


def endpoint_from_connection() -> str | None:
    """The endpoint the DAGs use: aws_default's endpoint_url (local_aws), else AWS's own."""
    raw = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT", "")
    try:
        extra = json.loads(raw).get("extra", {}) if raw.startswith("{") else {}
    except ValueError:
        extra = {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    return extra.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_pipeline.demo")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEMO_END)
    parser.add_argument("--days", type=int, default=None, help="default: training_window_days")
    parser.add_argument("--rows", type=int, default=DEMO_ROWS, help="transactions per day")
    args = parser.parse_args(argv)
    settings = load_settings()
    out = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")) / "demo"
    out.mkdir(parents=True, exist_ok=True)
    demo = Demo(
        settings,
        endpoint_from_connection(),
        out,
        args.end,
        args.days or settings.training_window_days,
        args.rows,
    )
    started = time.monotonic()
    for number, (title, step) in enumerate(STEPS, 1):
        say(f"[{number}/{len(STEPS)}] {title}")
        try:
            step(demo)
        except DemoError as error:
            say(f"\nDEMO FAILED at '{title}': {error}")
            return 1
    say("")
    say(summary(demo))
    say(batch_summary(demo))
    say(cost_summary(demo))
    say(
        f"\nDemo finished in {time.monotonic() - started:.0f} s "
        f"(model_build {demo.facts['model_build_seconds']:.0f} s, model_deploy "
        f"{demo.facts['model_deploy_seconds']:.0f} s, batch_inference "
        f"{demo.facts['batch_seconds']:.0f} s)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
