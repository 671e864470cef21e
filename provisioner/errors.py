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
    │   ├── NoAnswerError                 exit 1  no answer at all within --timeout; not retried
    │   └── TlsError                      exit 1  TLS handshake failed; not retried
    │       └── CertificateError          exit 1  the server's certificate is not trusted
    ├── RunStoppedError                   a run stopped; the message says how to carry on
    │   ├── RunFailedError                exit 1  wraps the cause; the same command resumes
    │   ├── LostApplicationsError         exit 1  answers lost; awaits --lost resubmit|abandon
    │   └── UnfinishedRunError            exit 1  an unfinished run holds some of these devices
    ├── ExportIncompleteError             exit 1  created devices missing from the output
    ├── JournalError                      the journal cannot be read or written
    │   └── RunInProgressError            another process holds the run
    └── OutputError                       the output file cannot be written

``transient`` is a property of each error: the retry policy retries exactly the errors
whose ``transient`` is true.

Two exit codes belong to no error: 130 and 143, a stop by SIGINT or SIGTERM, which
:mod:`provisioner.entry` turns into one line (nothing lost, the command that carries on).
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
    "CertificateError",
    "ExportIncompleteError",
    "InputError",
    "JournalError",
    "LostApplicationsError",
    "NoAnswerError",
    "OutputError",
    "ProvisionerError",
    "RunFailedError",
    "RunInProgressError",
    "RunStoppedError",
    "TerminalApiError",
    "ThrottledError",
    "TlsError",
    "TransientApiError",
    "TransportError",
    "UnfinishedRunError",
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


class RunFailedError(RunStoppedError):
    """The run stopped on an error; the journal is consistent and the run can be resumed."""

    def __init__(self, run_id: str, cause: ProvisionerError) -> None:
        self.run_id = run_id
        self.cause = cause
        super().__init__(
            f"run {run_id} failed: {cause}; re-run the same command (or "
            f"`provisioner resume {run_id}`) to resume"
        )


class LostApplicationsError(RunStoppedError):
    """BatchRegisterDevice calls were sent but their answers lost; the operator decides."""

    def __init__(self, run_id: str, app_ids: list[int], devices: int, product_key: str) -> None:
        self.run_id = run_id
        self.app_ids = app_ids
        ids = ", ".join(str(a) for a in app_ids)
        super().__init__(
            f"run {run_id}: {len(app_ids)} BatchRegisterDevice call(s) for {devices} devices "
            f"(application {ids}) got no answer, so those devices may exist without their "
            "credentials; nothing was sent twice. Compare the product's device count "
            f"(`provisioner product show {product_key}`) with what you expect, then re-run "
            "with --lost resubmit (they were not created) or --lost abandon (finish without "
            "them; if they exist, export them from the console's ApplyId with "
            "`provisioner export`)"
        )


class ExportIncompleteError(ProvisionerError):
    """Devices the run created are missing from the output; re-running exports again."""


class UnfinishedRunError(RunStoppedError):
    """A new run would take devices that an unfinished run of the journal may have
    created; the message names that run and the command that finishes it."""


class NoAnswerError(TransportError):
    """No answer at all came from the endpoint for the no-answer time (``--timeout``):
    the retries are spent, so it is not retried again."""

    transient = False

    def __init__(self, endpoint: str, seconds: float, *, action: str, attempts: int) -> None:
        self.endpoint = endpoint
        self.seconds = seconds
        self.action = action
        self.attempts = attempts
        tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
        super().__init__(
            f"no answer from {endpoint} in {seconds:g} s ({action}, {tries}): "
            "check that this is the IoT Platform endpoint and that it is reachable from here "
            "(network, firewall, proxy), or allow longer with --timeout"
        )


class TlsError(TransportError):
    """The TLS handshake with the endpoint failed. Not retried: the same handshake fails
    the same way. ``reason`` is OpenSSL's, ``hint`` what to try."""

    transient = False

    def __init__(self, endpoint: str, reason: str, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.hint = hint
        super().__init__(self._describe())

    def _describe(self) -> str:
        hint = f": {self.hint}" if self.hint else ""
        return f"TLS handshake with {self.endpoint} failed ({self.reason}{hint})"


class CertificateError(TlsError):
    """The server's certificate was not accepted (unknown CA, expired, wrong name)."""

    def _describe(self) -> str:
        return (
            f"the TLS certificate of {self.endpoint} was not accepted ({self.reason}); "
            "if it is signed by a private CA, set SSL_CERT_FILE=/path/to/ca.pem"
        )
