"""Every error leaves the server as OpenAI's body ``{"error": {"message", "type", "param", "code"}}``.

FastAPI's own answers are rewritten into it: a body that fails validation (malformed JSON, a wrong type, a missing
or unknown field) is a 400, not FastAPI's 422, and unknown paths and methods keep their status with this body.
"""
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from swiftllm.server.async_engine import EngineShutDown, EngineStepError, RequestFailed

logger = logging.getLogger(__name__)

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "server_error", 503: "service_unavailable"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class APIError(Exception):
    """An error answer: HTTP ``status`` with the OpenAI error body (and optional extra ``headers``)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict:
        detail = ErrorDetail(message=self.message, type=error_type(self.status), param=self.param, code=self.code)
        return ErrorBody(error=detail).model_dump()

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def validation_error(failure: RequestValidationError) -> APIError:
    """The first field that failed validation, named as ``param`` (``messages.0.role``). A field that may take
    several forms (a prompt is text or token ids) fails once per form: their messages are joined."""
    errors = failure.errors()
    first = errors[0]
    if first.get("type") == "json_invalid":
        return APIError(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}",
                        code="invalid_json")
    path = _body_path(first)
    if not path:
        return APIError(400, f"the body: {first['msg']}", code=first.get("type"))
    same_field = [_body_path(error) for error in errors if _body_path(error)[:1] == path[:1]]
    common = path[:min(len(p) for p in same_field)]
    while any(p[:len(common)] != common for p in same_field):
        common = common[:-1]
    param = ".".join(common)
    messages = list(dict.fromkeys(error["msg"] for error in errors if _body_path(error)[:len(common)] == common))
    if len(messages) == 1:
        return APIError(400, f"{param}: {messages[0]}", param=param, code=first.get("type"))
    return APIError(400, f"{param}: matches none of its accepted forms ({'; '.join(messages[:4])})", param=param,
                    code="invalid_value")


def _body_path(error: dict) -> list[str]:
    return [str(part) for part in error.get("loc", ()) if part != "body"]


ENGINE_FAILURES = ((ValueError, 400, None), (TypeError, 400, None), (RequestFailed, 500, "request_failed"),
                   (EngineStepError, 500, "engine_step_failed"), (EngineShutDown, 503, "engine_shut_down"))


def engine_failure(error: Exception) -> APIError | None:
    """The answer to an error the engine raised for a request: refused at the door (400), failed in a step (500),
    or the engine shut down (503); ``None`` for anything else (a bug: the generic 500)."""
    if isinstance(error, APIError):
        return error
    for kind, status, code in ENGINE_FAILURES:
        if isinstance(error, kind):
            return APIError(status, str(error), code=code)
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, error: APIError) -> JSONResponse:
        return error.response()

    async def on_invalid_body(request: Request, failure: RequestValidationError) -> JSONResponse:
        return validation_error(failure).response()

    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return APIError(error.status_code, str(error.detail), headers=error.headers).response()

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving %s", request.url.path)
        return APIError(500, f"internal error: {type(error).__name__}").response()

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid_body)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
