"""The server's bounded queue: at most ``limit`` requests in flight (running or queued); one more is answered
429 with ``Retry-After`` instead of waiting without bound."""
from swiftllm.server.api.errors import APIError

RETRY_AFTER_S = 1


class AdmissionGate:
    """Counts requests in flight. Single-threaded: used only from the server's event loop."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the admission limit must be >= 1, got {limit}")
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> None:
        """Admit one request, or raise the 429."""
        if self.in_flight >= self.limit:
            raise APIError(429, f"the server holds its limit of {self.limit} requests in flight; retry later",
                           code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
