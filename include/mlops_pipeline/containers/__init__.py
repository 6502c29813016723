"""Code that runs inside SageMaker jobs: self-contained, never imports mlops_pipeline."""
