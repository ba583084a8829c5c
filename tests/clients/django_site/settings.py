"""Settings of the tiny Django project that django_client.py runs.

Three database aliases on one database, as a multi-tenant Django site has
them: "default" and two tenants.  Each tenant has a TIME_ZONE of its own
(with USE_TZ, Django's connect runs SET TIME ZONE when the server's differs)
and a TENANT_SCHEMA, which the connection_created handler of apps.py sets
as its search_path, as schema-per-tenant apps do.  Where the server is comes
from the environment: DRV_HOST, DRV_PORT, DRV_USER, DRV_PASSWORD, DRV_DB.
"""
import os

SECRET_KEY = 'pgnear-300-driver-settings'
DEBUG = False
USE_TZ = True
TIME_ZONE = 'UTC'
INSTALLED_APPS = ['django_site.apps.DriverSettingsConfig']
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'


def _db(time_zone=None, schema=None):
    db = {
        'ENGINE': 'django.db.backends.postgresql',
        'HOST': os.environ.get('DRV_HOST', '127.0.0.1'),
        'PORT': os.environ['DRV_PORT'],
        'USER': os.environ.get('DRV_USER', 'app'),
        'PASSWORD': os.environ.get('DRV_PASSWORD', 'app-secret'),
        'NAME': os.environ.get('DRV_DB', 'movr'),
        'TIME_ZONE': time_zone,
        'TENANT_SCHEMA': schema,
    }
    return db


DATABASES = {
    'default': _db(),
    'tenant_a': _db('Asia/Kolkata', 'tenant_a'),
    'tenant_b': _db('America/Los_Angeles', 'tenant_b'),
}
