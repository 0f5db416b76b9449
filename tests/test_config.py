"""Configuration: defaults, file, environment overrides and the errors that name the key."""

import pytest

from core.config import ConfigError, load_config, masked
from core.infra.redact import redact_text, redact_url


def test_defaults_match_the_contract():
    config = load_config(None, environ={})
    assert config.server.port == 8888
    assert config.storage.url == "sqlite:///data/vhod.db"
    # Unset: chosen at start, HS256 where a secret exists, else ES256 (core.signing.tokens).
    assert config.jwt.algorithm is None and config.jwt.secret is None
    assert config.passwords.bcrypt_rounds == 12 and config.passwords.min_length == 8
    # Argon2id at OWASP's minimum: 19 MiB, 2 iterations, 1 lane.
    assert config.passwords.algorithm == "argon2id"
    assert (config.passwords.argon2_memory_kib, config.passwords.argon2_iterations) == (19456, 2)
    assert config.passwords.argon2_parallelism == 1
    assert config.limits.hash_queue == 64 and config.limits.hash_workers is None
    assert config.public_url == "http://127.0.0.1:8888"


def test_shipped_config_yaml_is_valid_and_documents_providers():
    config = load_config("config.yaml", environ={}, required=True)
    assert set(config.providers) == {"vk", "mailru", "ok", "yandex", "telegram", "tid", "sber"}
    assert config.providers["vk"]["host"] == "id.vk.ru"
    assert config.providers["mailru"]["mode"] == "vkid"


def test_environment_overrides_with_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 1000\n")
    config = load_config(
        path,
        environ={
            "VHOD_SERVER__PORT": "9000",
            "VHOD_JWT__ROTATE_REFRESH": "true",
            "VHOD_SERVER__TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
            "VHOD_PROVIDERS__VK__CLIENT_ID": "007",
            "VHOD_JWT__SECRET": "s" * 32,
            "VHOD_CONFIG": "ignored: names the file, not a key",
        },
    )
    assert config.server.port == 9000
    assert config.jwt.rotate_refresh is True
    assert config.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert config.providers["vk"]["client_id"] == "007"  # a string stays a string
    assert config.public_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "environ,named",
    [
        ({"VHOD_JWT__SECRET": "x" * 31}, "jwt.secret"),
        ({"VHOD_JWT__ALGORITHM": "none"}, "jwt.algorithm"),
        ({"VHOD_STORAGE__URLL": "x"}, "storage.urll"),
        ({"VHOD_SERVER__PORT": "eighty"}, "server.port"),
        ({"VHOD_PASSWORDS__BCRYPT_ROUNDS": "3"}, "passwords.bcrypt_rounds"),
        ({"VHOD_PASSWORDS__ALGORITHM": "scrypt"}, "passwords.algorithm"),
        ({"VHOD_PASSWORDS__ARGON2_MEMORY_KIB": "19455"}, "passwords.argon2_memory_kib"),
        ({"VHOD_PASSWORDS__ARGON2_MEMORY_KIB": str(19 << 20)}, "passwords.argon2_memory_kib"),
        ({"VHOD_PASSWORDS__ARGON2_ITERATIONS": "1"}, "passwords.argon2_iterations"),
        ({"VHOD_PASSWORDS__ARGON2_PARALLELISM": "0"}, "passwords.argon2_parallelism"),
        # The floor holds with bcrypt chosen too: a later switch back meets no weak setting.
        (
            {"VHOD_PASSWORDS__ALGORITHM": "bcrypt", "VHOD_PASSWORDS__ARGON2_ITERATIONS": "1"},
            "passwords.argon2_iterations",
        ),
        ({"VHOD_STORAGE__URL": "postgres://x"}, "storage.url"),
        ({"VHOD_IDENTIFIERS__DEFAULT_REGION": "XX"}, "identifiers.default_region"),
        ({"VHOD_NOPE__KEY": "1"}, "nope"),
        ({"VHOD_JWT__ROTATE_REFRESH": "often"}, "jwt.rotate_refresh"),
        ({"VHOD_LIMITS__IPV6_PREFIX": "129"}, "limits.ipv6_prefix"),
        ({"VHOD_LIMITS__IPV6_PREFIX": "0"}, "limits.ipv6_prefix"),
    ],
)
def test_bad_settings_name_the_key(environ, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, environ=environ)


def test_argon2_at_or_above_the_floor_is_accepted_from_the_environment():
    config = load_config(
        None,
        environ={
            "VHOD_PASSWORDS__ALGORITHM": "argon2id",
            "VHOD_PASSWORDS__ARGON2_MEMORY_KIB": "47104",
            "VHOD_PASSWORDS__ARGON2_ITERATIONS": "3",
            "VHOD_PASSWORDS__ARGON2_PARALLELISM": "2",
        },
    )
    assert (config.passwords.argon2.memory_kib, config.passwords.argon2.iterations) == (47104, 3)
    assert config.passwords.argon2.parallelism == 2
    legacy = load_config(None, environ={"VHOD_PASSWORDS__ALGORITHM": "bcrypt"})
    assert legacy.passwords.algorithm == "bcrypt"


def test_wrong_type_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("limits:\n  hash_queue: [1]\n")
    with pytest.raises(ConfigError, match=r"limits\.hash_queue"):
        load_config(path, environ={})


def test_masked_hides_secrets_and_url_passwords():
    config = load_config(
        None,
        environ={
            "VHOD_JWT__SECRET": "s" * 40,
            "VHOD_STORAGE__URL": "mongodb://vhod:hunter2@db:27017/vhod",
            "VHOD_PROVIDERS__YANDEX__CLIENT_SECRET": "yandex-secret",
        },
    )
    text = str(masked(config))
    for secret in ("s" * 40, "hunter2", "yandex-secret"):
        assert secret not in text
    assert redact_url("mongodb://u:p@h/db") == "mongodb://u:***@h/db"
    assert redact_url("sqlite:///data/vhod.db") == "sqlite:///data/vhod.db"


# Passwords with every character that ends a part of a URL when it is not percent-encoded.
NASTY_PASSWORDS = ["pa/ss", "p@ss@word", "pa?ss=1", "pa#ss", "p:a/s@s?x#y", "pa%2Fss", "a&b;c"]


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_url_passwords_are_masked_whatever_they_contain(password):
    url = f"mongodb://admin:{password}@db.example:27017/vhod?replicaSet=rs0"
    redacted = redact_url(url)
    assert redacted == "mongodb://admin:***@db.example:27017/vhod?replicaSet=rs0"
    config = load_config(None, environ={"VHOD_STORAGE__URL": url})
    assert password not in str(masked(config))


def test_redact_url_keeps_what_is_not_secret():
    assert redact_url("mongodb://db:27017/vhod") == "mongodb://db:27017/vhod"
    assert redact_url("mongodb+srv://reader@cluster.example/vhod") == (
        "mongodb+srv://reader@cluster.example/vhod"
    )
    assert redact_url("sqlite:////var/lib/vhod/a@b.db") == "sqlite:////var/lib/vhod/a@b.db"
    # A "@" in an option value hides more than needed, never less.
    assert "hunter2" not in redact_url("mongodb://u:hunter2@db/vhod?appName=me@corp")


def test_secret_url_options_are_masked():
    url = "mongodb://db/vhod?tls=true&tlsCertificateKeyFilePassword=key-pass&w=1"
    assert redact_url(url) == "mongodb://db/vhod?tls=true&tlsCertificateKeyFilePassword=***&w=1"
    url = "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok"
    assert "tok" not in redact_url(url).rsplit("=", 1)[1]


def test_redact_text_removes_the_password_in_every_spelling():
    url = "mongodb://admin:p%2Fa+ss@db/vhod"
    text = f"cannot reach {url}: auth failed for p%2Fa+ss (p/a+ss, p/a ss)"
    redacted = redact_text(text, url)
    for spelling in ("p%2Fa+ss", "p/a+ss", "p/a ss"):
        assert spelling not in redacted
    assert "mongodb://admin:***@db/vhod" in redacted
