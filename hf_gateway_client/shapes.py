"""huggingface_hub's OAuth dataclasses and Gradio's OAuthProfile, or look-alikes.

``oauth_types()`` hands out the real huggingface_hub classes when that library is installed,
else dataclasses with the same names, fields and order (huggingface_hub/_oauth.py), so code
written against ``OAuthInfo`` works either way. Both libraries are imported on first use
only: importing this package stays cheap.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from huggingface_hub import OAuthInfo as OAuthInfo
    from huggingface_hub import OAuthOrgInfo as OAuthOrgInfo
    from huggingface_hub import OAuthUserInfo as OAuthUserInfo
else:

    @dataclass
    class OAuthOrgInfo:
        sub: str
        name: str
        preferred_username: str
        picture: str
        plan: str | None = None
        can_pay: bool | None = None
        role_in_org: str | None = None
        security_restrictions: list[Literal["ip", "token-policy", "mfa", "sso"]] | None = None

    @dataclass
    class OAuthUserInfo:
        sub: str
        name: str
        preferred_username: str
        email_verified: bool | None
        email: str | None
        picture: str
        profile: str
        website: str | None
        is_pro: bool
        can_pay: bool | None
        orgs: list[OAuthOrgInfo] | None

    @dataclass
    class OAuthInfo:
        access_token: str
        access_token_expires_at: datetime.datetime
        user_info: OAuthUserInfo
        state: str | None
        scope: str


class OAuthProfileLike(Protocol):
    """What gr.OAuthProfile offers: a dict of the userinfo with four attributes."""

    name: str
    username: str
    profile: str
    picture: str

    def __getitem__(self, key: str, /) -> Any: ...


class OAuthProfile(dict[str, Any]):
    """Gradio's OAuthProfile (gradio/oauth.py) for apps without gradio installed."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.name: str = self["name"]
        self.username: str = self["preferred_username"]
        self.profile: str = self["profile"]
        self.picture: str = self["picture"]


@functools.cache
def oauth_types() -> tuple[type[OAuthInfo], type[OAuthUserInfo], type[OAuthOrgInfo]]:
    """(OAuthInfo, OAuthUserInfo, OAuthOrgInfo): huggingface_hub's when installed."""
    try:
        from huggingface_hub import OAuthInfo as Info
        from huggingface_hub import OAuthOrgInfo as Org
        from huggingface_hub import OAuthUserInfo as User
    except ImportError:
        return OAuthInfo, OAuthUserInfo, OAuthOrgInfo
    return Info, User, Org


@functools.cache
def profile_type() -> Callable[[dict[str, Any]], OAuthProfileLike]:
    """gr.OAuthProfile when gradio is installed, else the look-alike above."""
    try:
        from gradio.oauth import OAuthProfile as GradioProfile
    except ImportError:
        return OAuthProfile
    profile: Callable[[dict[str, Any]], OAuthProfileLike] = GradioProfile
    return profile
