"""An aiosmtpd handler for the tests: aiosmtpd's own Mailbox, except that it refuses for good
(550) every recipient whose address starts with "typo" -- a mistyped address in `to` -- and
refuses once for now (450) each recipient whose address starts with "busy"."""

from aiosmtpd.handlers import Mailbox


class RejectTypos(Mailbox):
    refused_once = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("typo"):
            return "550 5.1.1 no such user here"
        if address.startswith("busy") and address not in self.refused_once:
            self.refused_once.add(address)
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
