"""A tiny Django project for 300_driver_settings.t (tests/clients/django_client.py)."""
