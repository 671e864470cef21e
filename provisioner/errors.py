"""The one exception tree of provisioner, and the exit code of each branch.

Every error an operator can cause is a :class:`ProvisionerError` whose ``str()`` is a
single line saying what went wrong and what to do. Errors from lower layers (httpx,
sqlite3, pyrage, polars) are translated into this tree with ``raise ... from``.

::

    ProvisionerError                      exit 1  (the run failed and can be resumed)
    ├── UsageError                        exit 2  bad options, settings or credentials
    ├── InputError                        exit 3  the input file was rejected, nothing was sent
    ├── ApiError                                  IoT Platform (or the gateway) answered an error
    │   ├── TransientApiError             transient: retried with backoff
    │   │   └── ThrottledError            transient: Throttling*, honours retry_after
    │   └── TerminalApiError              terminal: retrying would not help
    │       └── AuthenticationError       exit 2  AccessKey or signature refused
    ├── TransportError                    transient: connection refused, reset, timed out
    ├── RunStoppedError                   a run stopped; the message says how to carry on
    │   (pipeline: RunFailedError wraps the cause; LostApplicationsError awaits --lost)
    ├── JournalError                      the journal cannot be read or written
    │   └── RunInProgressError            another process holds the run
    └── OutputError                       the output file cannot be written

``transient`` is a property of each error: the retry policy retries exactly the errors
whose ``transient`` is true.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "ApiError",
    "AuthenticationError",
    "InputError",
    "JournalError",
    "OutputError",
    "ProvisionerError",
    "RunInProgressError",
    "RunStoppedError",
    "TerminalApiError",
    "ThrottledError",
    "TransientApiError",
    "TransportError",
    "UsageError",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_PARTIAL = 4


class ProvisionerError(Exception):
    """Base of every error provisioner raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED
    transient: ClassVar[bool] = False


class UsageError(ProvisionerError):
    """A bad option, setting or credential: fix the command line or environment."""

    exit_code = EXIT_USAGE


class InputError(ProvisionerError):
    """The input file cannot be read or has the wrong shape."""

    exit_code = EXIT_INPUT


class ApiError(ProvisionerError):
    """An error answer from IoT Platform or its gateway.

    ``code`` is the service's ``Code`` (``iot.device.AlreadyExistedDeviceName``,
    ``Throttling.User``...), ``http_status`` the HTTP status it came with.
    The message never contains request parameters, so it cannot carry a secret.
    """

    def __init__(
        self,
        action: str,
        code: str,
        message: str,
        *,
        http_status: int = 200,
        request_id: str | None = None,
    ) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        rid = f" (RequestId {self.request_id})" if self.request_id else ""
        return f"{self.action} failed: {self.code}: {self.message}{rid}"


class TransientApiError(ApiError):
    """The service failed for now (503, SystemException...): the same call may succeed later."""

    transient = True


class ThrottledError(TransientApiError):
    """The account's QPS limit was hit. ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self,
        action: str,
        code: str,
        message: str,
        *,
        http_status: int = 400,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(action, code, message, http_status=http_status, request_id=request_id)


class TerminalApiError(ApiError):
    """The service refused the call for a reason retrying cannot change."""


class AuthenticationError(TerminalApiError):
    """The AccessKey pair or the signature was refused."""

    exit_code = EXIT_USAGE

    def _describe(self) -> str:
        hint = (
            "check ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET and the endpoint"
        )
        return f"{self.action} refused: {self.code}: {hint}"


class TransportError(ProvisionerError):
    """The request did not get an HTTP answer (refused, reset, timed out)."""

    transient = True


class JournalError(ProvisionerError):
    """The journal cannot be opened, read or written."""


class RunInProgressError(JournalError):
    """Another process is working on the same run."""


class OutputError(ProvisionerError):
    """The output file cannot be written (exists, permissions, disk full...)."""


class RunStoppedError(ProvisionerError):
    """A run stopped before completing; the journal is consistent and the message says
    how to carry on (re-run the command, or decide with an option)."""
