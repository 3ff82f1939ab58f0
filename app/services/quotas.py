"""Per-owner job quotas: how many jobs one owner may have running and waiting at once.

Checked when a job is submitted (``app.services.jobs.submit``), before its row is added: with
``max_running_jobs_per_owner`` jobs running, or ``max_queued_jobs_per_owner`` waiting, a new
one is a 429 that says which limit was reached. The check reads the counts without a lock, so two
requests racing may each pass by one; the quotas bound floods, not single jobs.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import QuotaExceeded
from infra.repositories import job_counts
from infra.settings import Settings

RETRY_AFTER_S = 10


def check_job_quota(session: Session, settings: Settings, owner_id: str) -> None:
    counts = job_counts.active_by_state(session, owner_id)
    if counts["running"] >= settings.max_running_jobs_per_owner:
        reason = (f"you have {counts['running']} jobs running, the most this server runs at once per owner "
                  f"(max_running_jobs_per_owner={settings.max_running_jobs_per_owner})")
    elif counts["queued"] >= settings.max_queued_jobs_per_owner:
        reason = (f"you have {counts['queued']} jobs queued, the most this server lets one owner queue "
                  f"(max_queued_jobs_per_owner={settings.max_queued_jobs_per_owner})")
    else:
        return
    raise QuotaExceeded(f"{reason}; wait for some to finish (or cancel them: POST /v1/jobs/{{id}}/cancel) and retry",
                        details={**counts, "max_running_jobs_per_owner": settings.max_running_jobs_per_owner,
                                 "max_queued_jobs_per_owner": settings.max_queued_jobs_per_owner},
                        headers={"Retry-After": str(RETRY_AFTER_S)})
