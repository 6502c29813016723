"""model_deploy's cores: the canary plan, the analysis, the release record (pure), and the
operators and triggers that drive them against SageMaker."""
