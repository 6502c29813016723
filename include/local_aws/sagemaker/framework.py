"""The training framework module for script mode, as in SageMaker's scikit-learn container.

The toolkit imports ``SAGEMAKER_TRAINING_MODULE`` and calls it; like the framework
containers we run the user's entry point with ``capture_error=True``, so an exception in
the script reaches FailureReason with its message instead of only an exit code.
"""

from sagemaker_training import entry_point, environment


def main() -> None:
    env = environment.Environment()
    entry_point.run(
        uri=env.module_dir,
        user_entry_point=env.user_entry_point,
        args=env.to_cmd_args(),
        env_vars=env.to_env_vars(),
        capture_error=True,
    )
