"""``--api-key``: the ``/v1`` routes then require ``Authorization: Bearer KEY`` (compared in constant time)."""
import hmac

from fastapi import Request

from swiftllm.server.api.errors import APIError


def bearer_check(api_key: str | None):
    """A FastAPI dependency refusing requests without the key (401); accepting everything when no key is set."""
    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise APIError(401, "a valid API key is required: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    return check
