"""An SMTP sink for tests: accepts every email on 127.0.0.1 and a free port, and writes
each one as JSON (envelope, headers, text parts, login) to DIR/<n>.json.

Prints the port on the first line of stdout once it accepts connections. Accepts AUTH
PLAIN/LOGIN without TLS with any password, and records the login used.

Usage: python smtp-sink.py DIR
"""

import asyncio
import email
import email.policy
import json
import pathlib
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

# aiosmtpd warns about its own use of a deprecated attribute during AUTH.
warnings.filterwarnings("ignore", message="Session.login_data")


class Sink:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        login = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "parts": parts,
            "login": login.decode() if isinstance(login, bytes) else login,
        }
        self.count += 1
        tmp = self.out / f".{self.count}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.rename(self.out / f"{self.count}.json")
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=True, auth_data=auth_data.login)


async def main(out):
    sink = Sink(out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, authenticator=authenticate, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(pathlib.Path(sys.argv[1])))
