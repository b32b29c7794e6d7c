"""SendGrid v3 Mail Send (`POST /v3/mail/send`), validating like the real endpoint and answering 202.

With `mail_settings.sandbox_mode.enable: true` (a boolean, else 400) the request is validated the same way
and answered 200 with no body: recorded as `sandboxed`, never delivered, no Event Webhook events
(https://www.twilio.com/docs/sendgrid/for-developers/sending-email/sandbox-mode). The smoke test's clinic
sends this way.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from local.sandbox.log import log
from local.sandbox.outbox import Message, Refusal, ledger_reference
from shared.platform.masking import mask_address

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")

MSG_PERSONALIZATIONS = "The personalizations field is required and must have at least 1 personalization."
MSG_TO = (
    "The to array is required for all personalization objects, and must have at least one email "
    "object with a valid email address."
)
MSG_BAD_ADDRESS = "Does not contain a valid address."
MSG_FROM = (
    "The from object must be provided for every email send. It is an object that requires the email "
    "parameter, but may also contain a name parameter."
)
MSG_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template with a "
    "subject defined or if every personalization has a subject defined."
)
MSG_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at "
    "least one defined content block."
)
MSG_CONTENT_VALUE = "The content value must be a string at least one character in length."
MSG_CONTENT_TYPE = "The content type must be a string at least one character in length."
MSG_CUSTOM_ARG = "Invalid type. Expected: string."
MSG_ATTACHMENT_CONTENT = "The attachment content is required and must be a base64 encoded string."
MSG_ATTACHMENT_FILENAME = "The attachment filename is required."
MSG_ATTACHMENT_DISPOSITION = "The disposition of the attachment must be either inline or attachment."
MSG_ATTACHMENT_CONTENT_ID = "The content_id is required when the disposition is inline."
MSG_SANDBOX_MODE = "The sandbox mode enable param should be a boolean value."

FAULT_MESSAGES = {429: "too many requests", 500: "internal server error", 503: "service unavailable"}


def sendgrid_error(field: str | None, message: str) -> dict[str, Any]:
    return {"message": message, "field": field, "help": None}


def errors_response(status: int, errors: list[dict[str, Any]], *, retry_after: int | None = None) -> Response:
    response = jsonify({"errors": errors})
    response.status_code = status
    if status == 429:
        response.headers["Retry-After"] = str(1 if retry_after is None else retry_after)
    return response


def _valid_email(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL.match(value.strip()))


def _check_custom_args(args: Any, prefix: str, errors: list[dict[str, Any]]) -> None:
    if args is None:
        return
    if not isinstance(args, dict):
        errors.append(sendgrid_error(prefix, "custom_args must be an object"))
        return
    for key, value in args.items():
        if not isinstance(value, str):
            errors.append(sendgrid_error(f"{prefix}.{key}", MSG_CUSTOM_ARG))


def _check_attachments(attachments: Any, errors: list[dict[str, Any]]) -> None:
    """SendGrid's rules: content (base64) and filename required; disposition inline|attachment; inline needs
    a content_id."""
    if attachments is None:
        return
    if not isinstance(attachments, list):
        errors.append(sendgrid_error("attachments", "attachments must be an array"))
        return
    for k, attachment in enumerate(attachments):
        where = f"attachments.{k}"
        if not isinstance(attachment, dict):
            errors.append(sendgrid_error(where, MSG_ATTACHMENT_CONTENT))
            continue
        content = attachment.get("content")
        try:
            valid = isinstance(content, str) and bool(content) and bool(base64.b64decode(content, validate=True))
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            errors.append(sendgrid_error(f"{where}.content", MSG_ATTACHMENT_CONTENT))
        if not isinstance(attachment.get("filename"), str) or not attachment["filename"].strip():
            errors.append(sendgrid_error(f"{where}.filename", MSG_ATTACHMENT_FILENAME))
        disposition = attachment.get("disposition", "attachment")
        if disposition not in ("inline", "attachment"):
            errors.append(sendgrid_error(f"{where}.disposition", MSG_ATTACHMENT_DISPOSITION))
        elif disposition == "inline" and not attachment.get("content_id"):
            errors.append(sendgrid_error(f"{where}.content_id", MSG_ATTACHMENT_CONTENT_ID))


def validate_mail(payload: Any) -> list[dict[str, Any]]:
    """Every problem SendGrid would report for this mail/send body, each naming its field."""
    if not isinstance(payload, dict):
        return [sendgrid_error(None, "Bad Request: the request body must be a JSON object.")]
    errors: list[dict[str, Any]] = []
    templated = bool(payload.get("template_id"))
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(sendgrid_error("personalizations", MSG_PERSONALIZATIONS))
        personalizations = []
    for i, personalization in enumerate(personalizations):
        if not isinstance(personalization, dict):
            errors.append(sendgrid_error(f"personalizations.{i}", MSG_TO))
            continue
        to = personalization.get("to")
        if not isinstance(to, list) or not to:
            errors.append(sendgrid_error(f"personalizations.{i}.to", MSG_TO))
        for kind in ("to", "cc", "bcc"):
            for j, recipient in enumerate(personalization.get(kind) or []):
                if not isinstance(recipient, dict) or not _valid_email(recipient.get("email")):
                    errors.append(sendgrid_error(f"personalizations.{i}.{kind}.{j}.email", MSG_BAD_ADDRESS))
        _check_custom_args(personalization.get("custom_args"), f"personalizations.{i}.custom_args", errors)

    sender = payload.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(sendgrid_error("from.email", MSG_FROM))
    elif not _valid_email(sender["email"]):
        errors.append(sendgrid_error("from.email", "The from email does not contain a valid address."))
    reply_to = payload.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, dict) or not _valid_email(reply_to.get("email"))):
        errors.append(sendgrid_error("reply_to.email", "The reply_to email does not contain a valid address."))

    every_personal_subject = bool(personalizations) and all(
        isinstance(p, dict) and isinstance(p.get("subject"), str) and p["subject"] for p in personalizations
    )
    subject = payload.get("subject")
    if not templated and not every_personal_subject and (not isinstance(subject, str) or not subject.strip()):
        errors.append(sendgrid_error("subject", MSG_SUBJECT))

    content = payload.get("content")
    if content is None and templated:
        content = []
    if not isinstance(content, list) or (not content and not templated):
        errors.append(sendgrid_error("content", MSG_CONTENT))
        content = []
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str) or not block["type"].strip():
            errors.append(sendgrid_error(f"content.{k}.type", MSG_CONTENT_TYPE))
        if not isinstance(block, dict) or not isinstance(block.get("value"), str) or not block["value"]:
            errors.append(sendgrid_error(f"content.{k}.value", MSG_CONTENT_VALUE))
    _check_custom_args(payload.get("custom_args"), "custom_args", errors)
    _check_attachments(payload.get("attachments"), errors)
    sandbox_mode = (payload.get("mail_settings") or {}).get("sandbox_mode") if isinstance(payload, dict) else None
    if sandbox_mode is not None and (
        not isinstance(sandbox_mode, dict) or not isinstance(sandbox_mode.get("enable"), bool)
    ):
        errors.append(sendgrid_error("mail_settings.sandbox_mode.enable", MSG_SANDBOX_MODE))
    return errors


def in_sandbox_mode(payload: dict[str, Any]) -> bool:
    """mail_settings.sandbox_mode.enable is true (validate_mail has checked it is a boolean)."""
    settings = payload.get("mail_settings")
    mode = settings.get("sandbox_mode") if isinstance(settings, dict) else None
    return isinstance(mode, dict) and mode.get("enable") is True


def _content(payload: dict[str, Any], mime: str) -> str | None:
    for block in payload.get("content") or []:
        if block.get("type") == mime:
            return block.get("value")
    return None


def mail_message(
    payload: dict[str, Any], personalization: dict[str, Any], address: str, message_id: str, status: str, fault: Any
) -> Message:
    """The outbox's record of one recipient of an accepted mail/send (`fault`: the rule that touched it)."""
    return Message(
        id=message_id,
        channel="email",
        direction="outbound",
        to=address,
        from_=payload["from"]["email"].strip(),
        status=status,
        subject=personalization.get("subject") or payload.get("subject"),
        text=_content(payload, "text/plain"),
        html=_content(payload, "text/html"),
        custom_args={**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})},
        attachments=[
            {
                "filename": attachment["filename"],
                "type": attachment.get("type") or "application/octet-stream",
                "disposition": attachment.get("disposition", "attachment"),
                "content": attachment["content"],
            }
            for attachment in payload.get("attachments") or []
        ],
        fault=None if fault is None else f"{fault.id} {fault.kind.replace('_', ' ')}",
    )


def new_message_id() -> str:
    """An X-Message-Id: 22 URL-safe characters, like SendGrid's."""
    return secrets.token_urlsafe(16)[:22]


def sendgrid_blueprint(sandbox: Sandbox) -> Blueprint:
    """Routes under /v3 answering like api.sendgrid.com."""
    api = Blueprint("sendgrid", __name__, url_prefix="/v3")

    @api.before_request
    def authenticate() -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            return errors_response(401, [sendgrid_error(None, "authorization required")])
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), sandbox.settings.sendgrid_api_key.encode()
        ):
            return errors_response(
                401, [sendgrid_error(None, "The provided authorization grant is invalid, expired, or revoked")]
            )
        return None

    @api.post("/mail/send")
    def send_mail() -> Response:
        payload = request.get_json(silent=True)
        errors = validate_mail(payload)
        if errors or not isinstance(payload, dict):  # a body that is not an object has its error in `errors`
            log("INFO", "email rejected", fields=[error["field"] for error in errors])
            return errors_response(400, errors)
        recipients = [
            (personalization, recipient["email"].strip())
            for personalization in payload["personalizations"]
            for kind in ("to", "cc", "bcc")
            for recipient in personalization.get(kind) or []
        ]
        sandbox_mode = in_sandbox_mode(payload)  # validated only: no fault plays on it, nothing is delivered
        fault = None if sandbox_mode else sandbox.faults.take("email", [address for _, address in recipients])

        def refused(response: Response, fault_id: str) -> Response:
            """Answer with SendGrid's error, and keep the attempt (one per recipient) for the console."""
            for personalization, address in recipients:
                sandbox.outbox.refuse(
                    Refusal(
                        channel="email",
                        to=address,
                        from_=payload["from"]["email"].strip(),
                        http_status=response.status_code,
                        code=None,
                        summary=str(personalization.get("subject") or payload.get("subject") or "")[:200],
                        fault=fault_id,
                        ledger=ledger_reference(
                            None, {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
                        ),
                    )
                )
            return response

        if fault and fault.kind == "timeout" and not fault.accept:
            log("INFO", "email fault: hanging", fault=fault.id)
            sandbox.hang(fault.seconds)
            return refused(errors_response(503, [sendgrid_error(None, FAULT_MESSAGES[503])]), fault.id)
        if fault and fault.kind == "http":
            status = fault.status or 500
            log("INFO", "email fault: error answer", fault=fault.id, http_status=status)
            message = FAULT_MESSAGES.get(status, "sandbox fault")
            return refused(
                errors_response(status, [sendgrid_error(None, message)], retry_after=fault.retry_after), fault.id
            )

        message_id = new_message_id()
        final = fault.final_status if fault and fault.kind == "delivery_failure" else "delivered"
        for personalization, address in recipients:
            recorded = "sandboxed" if sandbox_mode else "processed"
            sandbox.outbox.add(mail_message(payload, personalization, address, message_id, recorded, fault))
            log(
                "INFO",
                "email accepted in sandbox mode: not delivered" if sandbox_mode else "email accepted",
                message_id=message_id,
                recipient=mask_address(address),
                fault=fault.id if fault else None,
            )
        if sandbox_mode:
            return Response(status=200)  # SendGrid's answer to a valid sandbox-mode request: 200, no body
        if sandbox.settings.sendgrid_events_url:  # the Event Webhook reports processed, then the outcome
            custom = [
                (address, {**(payload.get("custom_args") or {}), **(p.get("custom_args") or {})})
                for p, address in recipients
            ]
            sandbox.courier.dispatch_email(message_id, custom, final or "delivered")
        else:
            sandbox.outbox.set_status(message_id, final or "delivered")
        if fault and fault.kind == "timeout":  # accepted, but the answer is lost: the caller times out
            sandbox.hang(fault.seconds)
        response = Response(status=202)
        response.headers["X-Message-Id"] = message_id
        return response

    return api
