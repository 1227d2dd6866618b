"""aiosmtpd for the TLS tests: STARTTLS required, with a certificate the tests made (signed by
their own CA), and AUTH LOGIN/PLAIN required for one user. Writes what it accepts to a
Maildir, like `python3 -m aiosmtpd -c aiosmtpd.handlers.Mailbox`.

Usage: tls_smtp.py PORT MAILDIR CERT KEY USER PASSWORD
"""

import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, cert, key, user, password = sys.argv[1:7]


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Mailbox(maildir),
    hostname="127.0.0.1",
    port=int(port),
    server_hostname="localhost",
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
while True:
    time.sleep(3600)
