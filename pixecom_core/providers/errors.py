"""Errors a provider raises so core can decide what to do next without knowing the provider.

Core's worker maps each class to one reaction: wait and retry (``ProviderThrottled``),
ask the seller to reconnect (``ProviderAuthError``), retry with backoff
(``ProviderTransientError``), or open the circuit breaker (``ProviderUnavailable``).
Raise the most specific class; wrap the original exception with ``raise ... from exc``.
"""


class ProviderError(Exception):
    """Base class of every error a provider raises on purpose.

    :param message: what went wrong, in words an operator can act on.
    :param provider: the provider's ``identifier`` (e.g. ``"meta"``), when known.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class ProviderThrottled(ProviderError):
    """The provider's rate limit was hit; retry the same call after a pause.

    :param retry_after_seconds: how long the provider asked to wait (from its rate-limit
        headers or error body), or ``None`` when it did not say and core should back off.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after_seconds = retry_after_seconds


class ProviderAuthError(ProviderError):
    """The credentials were refused (expired, revoked, missing permission).

    Retrying cannot help: the seller has to reconnect the account.
    """


class ProviderTransientError(ProviderError):
    """A failure that is expected to pass (timeout, 5xx, connection reset); retry with backoff."""


class ProviderRefused(ProviderError):
    """The provider understood the request and declined it for a reason retrying will not
    change: a refund larger than what is left, a payment that was never captured, a closed
    account. The message is shown to the seller, so say what was refused and why, in the
    provider's own words, and never quote credentials.
    """


class ProviderUnavailable(ProviderError):
    """The provider is down or failing for every account; stop calling it for a while."""


class WebhookVerificationError(ProviderError):
    """A webhook or push notification failed signature or format verification.

    The request must be answered with a 4xx and never reach the ledger.
    """
