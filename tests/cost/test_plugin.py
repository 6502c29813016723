"""The project's plugin, as Airflow loads it from the plugins folder."""

from __future__ import annotations


def test_the_plugin_registers_the_cost_listener(airflow_db):
    from airflow import plugins_manager
    from airflow.listeners.listener import get_listener_manager

    from mlops_pipeline.cost import listener

    plugins, errors = plugins_manager._get_plugins()
    assert not errors, errors
    assert "mlops" in [p.name for p in plugins]
    assert get_listener_manager().pm.is_registered(listener)
