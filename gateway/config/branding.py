"""The ``branding`` section: what the gateway's own pages say and look like."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BrandingConfig(BaseModel):
    """Names, colours and contacts shown on the sign-in, error and account pages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_name: str | None = Field(
        default=None,
        description="The name the pages use for what sits behind the gateway "
        "(default: the route's name)",
    )
    logo_url: str | None = Field(
        default=None, description="An image URL shown above the sign-in button"
    )
    accent_color: str | None = Field(
        default=None, description="The pages' accent colour, as #rgb or #rrggbb"
    )
    help_text: str | None = Field(
        default=None, description="A sentence shown under the sign-in button"
    )
    support_contact: str | None = Field(
        default=None,
        description="Who refused users should ask: an email address or an https:// URL",
    )
    skip_sign_in_page: bool = Field(
        default=False,
        description="Send browsers straight to Hugging Face instead of showing the "
        "sign-in page first",
    )
