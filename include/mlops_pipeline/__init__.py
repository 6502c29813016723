"""The ML pipeline package: settings, job request builders, data quality, deploy, cost."""
