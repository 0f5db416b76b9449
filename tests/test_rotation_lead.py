"""The least `jwt.rotation_lead` (issue 21, item 14): stock verifiers (jose, PyJWT) fetch the
JWKS again for an unknown kid at most every 30 s, so a lead that does not cover that, the
JWKS max-age and the instances' key refresh is refused, with one line, at the start and by
--check-config. tests/test_verifiers.py follows rotations with real verifiers."""

from __future__ import annotations

import pytest
import yaml

from core.config import ConfigError, load_config
from core.signing.key_manager import jwks_max_age, refresh_interval
from core.signing.keys import MIN_ROTATION_LEAD, VERIFIER_REFETCH_SECONDS, RotationPolicy
from server import main


def test_the_least_lead_covers_the_refetch_interval_the_cache_and_the_key_refresh():
    for lead in [MIN_ROTATION_LEAD, *range(MIN_ROTATION_LEAD, 20_000, 7), 86_400, 10**7]:
        policy = RotationPolicy(interval=2 * lead, lead=lead, retention=0)
        # The worst verifier fetched just before its copy held the key, and waits 30 s.
        needed = refresh_interval(policy) + jwks_max_age(policy) + VERIFIER_REFETCH_SECONDS
        assert needed <= lead, lead


@pytest.mark.parametrize("lead", [2, 5, 30, MIN_ROTATION_LEAD - 1])
def test_a_shorter_lead_is_refused_with_one_line(lead):
    with pytest.raises(ConfigError) as refused:
        load_config(None, environ={"VHOD_JWT__ROTATION_LEAD": str(lead)})
    message = str(refused.value)
    assert message.startswith("jwt.rotation_lead: must be at least 60 seconds")
    assert "30 s" in message and "\n" not in message


def test_the_least_lead_is_accepted():
    config = load_config(None, environ={"VHOD_JWT__ROTATION_LEAD": str(MIN_ROTATION_LEAD)})
    assert config.jwt.rotation_lead == MIN_ROTATION_LEAD


def test_check_config_refuses_a_short_lead(tmp_path, capsys):
    path = tmp_path / "vhod.yaml"
    settings = {"server": {"data_dir": str(tmp_path)}, "jwt": {"rotation_lead": 5}}
    path.write_text(yaml.safe_dump(settings))
    assert main(["--config", str(path), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert "jwt.rotation_lead" in err and len(err.strip().splitlines()) == 1
