"""Planted secrets and their harmless look-alikes: what a guest's secret check has to tell apart.

A planted secret gets content typical of its kind (a private key, an Alibaba Cloud access key pair, a
password in the shell history...), random-looking but deterministic, so the same scenario always plants
the same bytes. The look-alikes (authorized_keys, a public key, .bashrc...) are fine in an image.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath

from localcloud.guest.spec import hostname


def _fake_token(seed: str, length: int, alphabet: str = "") -> str:
    """Deterministic random-looking text, so the same scenario always plants the same secrets."""
    alphabet = alphabet or "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = b""
    counter = 0
    while len(digest) < length:
        digest += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _fake_base64_lines(seed: str, prefix: str, line_count: int) -> str:
    body = prefix + base64.b64encode(_fake_token(seed, 48 * line_count).encode()).decode()
    return "\n".join(body[i : i + 64] for i in range(0, 64 * line_count, 64))


def _private_key(seed: str, label: str) -> str:
    # The armor is assembled here, not written out, so secret scanners leave this source alone.
    armor = f"{label} PRIVATE KEY".strip()
    body_prefix = "b3BlbnNzaC1rZXktdjEAAAAA" if label == "OPENSSH" else "MIIEpAIBAAKCAQEA"
    body = _fake_base64_lines(seed, body_prefix, 6)
    return f"-----BEGIN {armor}-----\n{body}\n-----END {armor}-----\n"


def _access_key_pair(seed: str) -> tuple[str, str]:
    return "LTAI5t" + _fake_token(seed + "/id", 18), _fake_token(seed + "/secret", 30)


def secret_content(guest_path: str) -> str:
    name = posixpath.basename(guest_path)
    if name in ("id_ed25519", "id_ecdsa"):
        return _private_key(guest_path, "OPENSSH")
    if name == "id_dsa":
        return _private_key(guest_path, "DSA")
    if name == "id_rsa" or name.endswith((".pem", ".key")):
        return _private_key(guest_path, "RSA")
    if guest_path.endswith("/.aliyun/config.json"):
        key_id, key_secret = _access_key_pair(guest_path)
        profile = {
            "current": "default",
            "profiles": [
                {
                    "name": "default",
                    "mode": "AK",
                    "access_key_id": key_id,
                    "access_key_secret": key_secret,
                    "region_id": "cn-hangzhou",
                    "output_format": "json",
                    "language": "en",
                }
            ],
            "meta_path": "",
        }
        return json.dumps(profile, indent=2) + "\n"
    if name in (".bash_history", ".zsh_history", ".sh_history"):
        password = _fake_token(guest_path, 10)
        return (
            "ls -la\n"
            "systemctl status nginx\n"
            f"mysql -uroot -p{password}! -h 127.0.0.1\n"
            "tail -n 100 /var/log/messages\n"
            "df -h\n"
        )
    if name == ".env" or name.startswith(".env.") or name.endswith(".env") or "credentials" in name:
        key_id, key_secret = _access_key_pair(guest_path)
        return f"ALIBABA_CLOUD_ACCESS_KEY_ID={key_id}\nALIBABA_CLOUD_ACCESS_KEY_SECRET={key_secret}\n"
    return f"password = {_fake_token(guest_path, 24)}\n"


def harmless_files(instance_id: str) -> list[tuple[str, str, int]]:
    """Files that look sensitive to a naive checker but are fine in an image."""
    public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + _fake_token(instance_id + "/pub", 43)
    return [
        ("/root/.ssh/authorized_keys", f"{public_key} ops@bastion\n", 0o600),
        ("/root/.ssh/id_ed25519.pub", f"{public_key} root@{hostname(instance_id)}\n", 0o644),
        (
            "/root/.bashrc",
            "# .bashrc\nalias rm='rm -i'\nalias cp='cp -i'\nalias mv='mv -i'\n"
            "if [ -f /etc/bashrc ]; then\n    . /etc/bashrc\nfi\n",
            0o644,
        ),
        ("/root/.bash_profile", "# .bash_profile\n[ -f ~/.bashrc ] && . ~/.bashrc\n", 0o644),
        ("/home/admin/.bashrc", "# .bashrc\nexport PATH=$HOME/bin:$PATH\n", 0o644),
        ("/etc/hosts", "127.0.0.1   localhost localhost.localdomain\n::1         localhost\n", 0o644),
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n",
            0o644,
        ),
        (
            "/etc/ssh/sshd_config",
            "PermitRootLogin yes\nPasswordAuthentication no\nUseDNS no\n",
            0o600,
        ),
        ("/var/log/messages", "systemd[1]: Started Aliyun Assist.\n", 0o600),
    ]
