# The production image: Airflow 3.3 with this project's pinned runtime and its package.
# Built for docker-compose.yaml (CeleryExecutor on Postgres and Redis); the same image runs
# every Airflow component. DAGs and plugins are baked in (mount over them to develop).
FROM apache/airflow:3.3.2-python3.11

USER root
# nothing from apt: the runtime is pure Python wheels
USER airflow

WORKDIR /opt/airflow
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
# the project's pins, with Airflow's own constraints already satisfied by them (the same
# versions the tests ran against)
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:root pyproject.toml /opt/airflow/project/pyproject.toml
COPY --chown=airflow:root include /opt/airflow/project/include
RUN pip install --no-cache-dir --no-deps /opt/airflow/project

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root great_expectations /opt/airflow/great_expectations
ENV MLOPS_GX_ROOT=/opt/airflow/great_expectations
