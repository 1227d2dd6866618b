"""An aiosmtpd handler for the tests: aiosmtpd's own Mailbox, except that it refuses for good
(550) every recipient whose address starts with "typo" -- a mistyped address in `to`."""

from aiosmtpd.handlers import Mailbox


class RejectTypos(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("typo"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"
