"""The bearer tokens' checks: MONITORING_TOKEN and INTAKE_TOKEN long enough not to be guessed, and different.

Pydantic types, so `bot.config` only names them on its fields; each refusal is one line naming the setting
(`invalid setting MONITORING_TOKEN: …`) and never echoes the value.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, SecretStr, ValidationInfo

# The sign-in form and the API allow 5 wrong tokens per client in 15 minutes, but many clients (a botnet) multiply
# that: 24 random characters put guessing out of reach whatever their number.
MIN_TOKEN_CHARS: Final = 24
TOKEN_ADVICE: Final = 'e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"'


def long_enough(value: SecretStr) -> SecretStr:
    """`value` unchanged if at least MIN_TOKEN_CHARS long (blanks aside); ValueError saying so otherwise."""
    length = len(value.get_secret_value().strip())
    if length < MIN_TOKEN_CHARS:
        raise ValueError(f"{length} characters is too short to resist guessing: use at least {MIN_TOKEN_CHARS}"
                         f" random characters ({TOKEN_ADVICE})")
    return value


def not_the_monitoring_token(value: SecretStr, info: ValidationInfo) -> SecretStr:
    """INTAKE_TOKEN unchanged if it is not MONITORING_TOKEN (declared before it, so already in `info.data`)."""
    monitoring = info.data.get("monitoring_token")
    if isinstance(monitoring, SecretStr) and monitoring.get_secret_value().strip() == value.get_secret_value().strip():
        raise ValueError("must differ from MONITORING_TOKEN: the store's app holds INTAKE_TOKEN, and with this one it"
                         " could read revenue on the dashboard and the API")
    return value


MonitoringToken = Annotated[SecretStr, AfterValidator(long_enough)]
IntakeToken = Annotated[SecretStr, AfterValidator(long_enough), AfterValidator(not_the_monitoring_token)]
