"""SageMaker and SageMaker Runtime APIs that execute jobs under the container contract."""
