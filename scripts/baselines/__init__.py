"""What a Django team would build instead of Meterline, measured beside it by `make bench-fleet`.

- naive_channels.py: (a) the Channels docs' pattern, one channel message and one ORM
  save per reading, the device acked after the save;
- http_celery.py: (b) an HTTP POST per reading into a Celery task that saves it;
  http_load.py drives it and times both the 202 and the save.

Both save through saving.py (the ORM, priced with billing/pricing.py) into Meterline's
own tables, so the operator API reads their totals as it reads Meterline's. Delta
meters only: what the benchmark sends.
"""
