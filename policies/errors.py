"""The platform's one error hierarchy.

It lives in ``policies`` because that is the package every other layer may
import; nothing here touches Temporal or I/O.
"""

from __future__ import annotations


class GovflowError(Exception):
    """Base of every error govflow raises on purpose.

    Messages name the thing that is wrong and, where possible, what would be right.
    """
