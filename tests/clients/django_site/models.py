"""items: one table per schema (public, tenant_a, tenant_b), made by the test."""
from django.db import models


class Item(models.Model):
    who = models.TextField(primary_key=True)

    class Meta:
        app_label = 'drv'
        db_table = 'items'
        managed = False
