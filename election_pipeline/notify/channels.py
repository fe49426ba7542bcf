"""Sending one message: a webhook call (``urllib.request``) or an email (``smtplib``).

A failure raises :class:`DeliveryError` whose text names no secret: not the webhook's URL
(its path and query are a token), not the SMTP password. Webhooks are named by their host
only (:func:`~election_pipeline.settings.webhook_label`).
"""

from __future__ import annotations

import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .message import Message

USER_AGENT = "election-pipeline-notifier/1"


class DeliveryError(Exception):
    """A message could not be delivered; the text is safe to log and store."""


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (and its URL-decoded form) replaced by ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
        if unquote(secret) != secret:
            text = text.replace(unquote(secret), "***")
    return text


def _url_secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    return [url, parts.path if len(parts.path) > 1 else "", parts.query, parts.password or "", parts.fragment]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would turn the POST into a GET (or post the
    alert to another address)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def send_webhook(url: str, message: Message, timeout: float) -> None:
    """POST the message's JSON body; any 2xx answer is a success."""
    data = json.dumps(message.body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": message.key,
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {scrub(str(exc.reason), _url_secrets(url))}".strip()) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryError(f"no answer within {timeout:g} s") from None
        raise DeliveryError(f"cannot connect: {scrub(str(reason), _url_secrets(url))}") from None
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {scrub(str(exc), _url_secrets(url))}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how notification emails are sent (``ELECTION_SMTP_*``)."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = True


def send_email(smtp: SmtpConfig, message: Message, timeout: float) -> str | None:
    """Send the message as one email to every recipient. Returns the recipients the server
    refused, if some (and not all) were; raises :class:`DeliveryError` otherwise."""
    email = message.email(smtp.sender, list(smtp.recipients))
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout) as server:
            server.ehlo()
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context())
                server.ehlo()
            if smtp.username:
                server.login(smtp.username, smtp.password)
            refused = server.send_message(email, from_addr=smtp.sender, to_addrs=list(smtp.recipients))
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"every recipient refused: {', '.join(sorted(exc.recipients))}") from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(f"SMTP {exc.smtp_code} {scrub(text, [smtp.password])}".strip()) from None
    except TimeoutError:
        raise DeliveryError(f"no answer within {timeout:g} s") from None
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {scrub(str(exc), [smtp.password])}") from None
    if refused:
        return ", ".join(sorted(refused))
    return None
