"""Rating: device frames become committed charges, exactly once.

    service.py   frames_rate: one transaction per batch of frames of any meters and accounts
    loading.py   lock the accounts, then the meters; read what the batch needs
    step.py      one reading: its usage and its price; pure, no database
    writing.py   COPY readings and charges, update running totals, number the events
    metering/dashboard.py  the charge events a batch sends, beside the snapshot

The caller publishes the events once the transaction has committed: the
worker after it has answered its devices, HTTP ingest before it answers.
"""

from metering.rating.service import BatchResult, FrameIn, RatingResult, frames_rate, readings_rate

__all__ = ["BatchResult", "FrameIn", "RatingResult", "frames_rate", "readings_rate"]
