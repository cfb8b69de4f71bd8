"""Phone numbers in one form, E.164, wherever they enter: webhooks, the API, the admin."""
from __future__ import annotations

import phonenumbers


def e164(number: str) -> str | None:
    """The number in E.164 (+14155550100), or None when it is not a phone number.

    "Possible" (plausible length for its country), not "valid": the metadata of number
    ranges lags behind carriers, and Twilio has already routed the message.
    """
    try:
        parsed = phonenumbers.parse(number.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
