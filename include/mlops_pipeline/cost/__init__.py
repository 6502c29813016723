"""What each DAG run cost on SageMaker: a dated price table, the cost model (pure), the
finder that collects a run's jobs by their Airflow tags, and the per-run record and report."""
