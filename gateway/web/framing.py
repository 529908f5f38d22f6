"""The security headers of the gateway's own pages, and who may frame them.

By default no page may be framed (CSP ``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``): a framed sign-in or sign-out button could be clickjacked.
``server.frame_ancestors`` names origins that may frame them instead (Spaces mode:
https://huggingface.co, whose Space page shows the Space in an iframe); X-Frame-Options
is then left out, because it cannot name an origin. Every other directive stays as strict.
"""

from __future__ import annotations

from functools import lru_cache

# A policy every page rendered here works under: no script at all, styles and images from
# the gateway only, forms post back to the gateway only.
_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "


@lru_cache(maxsize=8)
def page_headers(frame_ancestors: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers of a gateway page that only ``frame_ancestors`` may frame (none: no one).

    Cached per value; callers copy the dict, never change it."""
    framers = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    headers = {"Content-Security-Policy": f"{_CSP}frame-ancestors {framers}; base-uri 'none'"}
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    headers.update(
        {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
    )
    return headers
