"""The app: on each new connection a tenant's alias sets its schema."""
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def set_tenant_schema(sender, connection, **kwargs):
    """connection_created: SET search_path for a tenant's alias, as tenant apps do."""
    schema = connection.settings_dict.get('TENANT_SCHEMA')
    if schema:
        with connection.cursor() as cursor:
            cursor.execute('SET search_path TO %s' % connection.ops.quote_name(schema))


class DriverSettingsConfig(AppConfig):
    name = 'django_site'
    label = 'drv'

    def ready(self):
        connection_created.connect(set_tenant_schema)
