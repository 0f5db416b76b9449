"""The contract's errors as plain exceptions, raised by services and rendered by handlers."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the client sees: HTTP status, machine code, one human sentence."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.headers = headers or {}
        # Members an error adds to the two (account_exists's `methods`), each documented
        # in openapi.yaml with the error's own schema.
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def invalid_request(description: str) -> ApiError:
    return ApiError(400, "invalid_request", description)


def invalid_credentials() -> ApiError:
    # One sentence for unknown user and wrong password alike (LG1).
    return ApiError(401, "invalid_credentials", "The identifier or the password is wrong.")


def invalid_token() -> ApiError:
    return ApiError(401, "invalid_token", "The refresh token is invalid, expired or revoked.")


def storage_unavailable() -> ApiError:
    return ApiError(
        503, "storage_unavailable", "The database cannot be reached; nothing was changed."
    )


def unverified_email() -> ApiError:
    return ApiError(
        403, "unverified_email", "The email address is not verified yet: confirm the code sent."
    )


def mfa_enrolment_required() -> ApiError:
    return ApiError(
        403,
        "mfa_required_enrolment",
        "This server requires a second factor: enrol one (/authorization/mfa) first.",
    )
