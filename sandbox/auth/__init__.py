"""Email authentication on arrival: SPF, DKIM, DMARC and ARC against the fake DNS, and DKIM/ARC signing."""

from mailsandbox.auth.checks import authenticate
from mailsandbox.auth.results import ArcResult, AuthReport, DkimResult, DmarcResult, SpfResult

__all__ = ["ArcResult", "AuthReport", "DkimResult", "DmarcResult", "SpfResult", "authenticate"]
