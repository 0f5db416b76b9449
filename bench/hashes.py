"""The password hash a benchmark's vhod servers run on: config.yaml's default (Argon2id at its
parameters) unless a run asks for another. Seeded hashes and the hashing limit come from vhod's
own hashing code (core.domain.passwords) at exactly the servers' parameters, so that a seeded
user's login verifies without a rehash and the limit is the cost of the check a login makes."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from core.domain.passwords import ARGON2_FLOOR, Argon2Params, Hasher, check_password

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password"  # every seeded user's


@dataclass(frozen=True)
class PasswordHash:
    algorithm: str  # "argon2id" or "bcrypt"
    bcrypt_rounds: int = 12
    argon2: Argon2Params = ARGON2_FLOOR
    default: bool = False  # config.yaml's own: the servers get no passwords.* override

    @classmethod
    def shipped(cls) -> PasswordHash:
        """config.yaml's passwords section, as a server started on it reads it."""
        from core.config import load_config

        passwords = load_config(ROOT / "config.yaml", environ={}).passwords
        return cls(passwords.algorithm, passwords.bcrypt_rounds, passwords.argon2, default=True)

    @classmethod
    def bcrypt(cls, rounds: int) -> PasswordHash:
        return cls("bcrypt", bcrypt_rounds=rounds)

    @classmethod
    def parse(cls, spec: str) -> PasswordHash:
        """`default`, `bcrypt:COST` or `argon2id:MEMORY_KIB,ITERATIONS,LANES`."""
        name, _, value = spec.partition(":")
        try:
            if name == "default" and not value:
                return cls.shipped()
            if name == "bcrypt":
                return cls.bcrypt(int(value))
            if name == "argon2id":
                memory, iterations, lanes = (int(part) for part in value.split(","))
                return cls("argon2id", argon2=Argon2Params(memory, iterations, lanes))
        except ValueError:
            pass
        raise ValueError(
            f"{spec!r}: expected default, bcrypt:COST or argon2id:MEMORY_KIB,ITERATIONS,LANES"
        )

    @property
    def spec(self) -> str:
        """This hash as --password-hash takes it."""
        if self.default:
            return "default"
        if self.algorithm == "bcrypt":
            return f"bcrypt:{self.bcrypt_rounds}"
        a = self.argon2
        return f"argon2id:{a.memory_kib},{a.iterations},{a.parallelism}"

    @property
    def label(self) -> str:
        if self.algorithm == "bcrypt":
            what = f"bcrypt cost {self.bcrypt_rounds}"
        else:
            a = self.argon2
            what = (
                f"Argon2id ({a.memory_kib:,} KiB, {a.iterations} iterations,"
                f" {a.parallelism} lane{'s' * (a.parallelism != 1)})"
            )
        return what + (", config.yaml's default" if self.default else "")

    def overrides(self) -> dict[str, str]:
        """The environment that puts a server started on config.yaml on this hash."""
        if self.default:
            return {}
        env = {"VHOD_PASSWORDS__ALGORITHM": self.algorithm}
        if self.algorithm == "bcrypt":
            env["VHOD_PASSWORDS__BCRYPT_ROUNDS"] = str(self.bcrypt_rounds)
        else:
            env["VHOD_PASSWORDS__ARGON2_MEMORY_KIB"] = str(self.argon2.memory_kib)
            env["VHOD_PASSWORDS__ARGON2_ITERATIONS"] = str(self.argon2.iterations)
            env["VHOD_PASSWORDS__ARGON2_PARALLELISM"] = str(self.argon2.parallelism)
        return env

    def _hasher(self) -> Hasher:
        return Hasher(
            self.algorithm, rounds=self.bcrypt_rounds, argon2=self.argon2, workers=1, queue=0
        )

    def hash_password(self, password: str = PASSWORD) -> str:
        """One hash of `password` as a server on this hash would store it (computed once per
        run and shared by every seeded user: a million hashes would take hours)."""
        hasher = self._hasher()
        try:
            return hasher.hash_now(password.encode())
        finally:
            hasher.close()

    def verify_seconds(self, hashed: str | None = None, samples: int = 5) -> float:
        """One verification of `hashed` (by default a new hash) as a login makes it, on an
        idle machine: the median of a few."""
        secret = PASSWORD.encode()
        hashed = hashed or self.hash_password()
        times = []
        for _ in range(samples):
            began = time.perf_counter()
            if not check_password(secret, hashed):
                raise RuntimeError(f"a {self.label} hash did not verify")
            times.append(time.perf_counter() - began)
        return statistics.median(times)
