"""manage.py close_periods: close every period that has ended now, as the beat task does."""

from django.core.management.base import BaseCommand

from billing.invoicing import periods_close_due


class Command(BaseCommand):
    help = "Close every account's ended billing periods into invoices (what Celery beat runs)."

    def handle(self, *args, **options):
        invoices = periods_close_due()
        self.stdout.write(f"{len(invoices)} invoice(s) made")
